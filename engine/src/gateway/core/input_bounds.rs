//! The shard's bounds on half-received client messages (the table is `pending_input.rs`): the
//! budget `gateway.max_pending_input_bytes` and the time limit `gateway.message_timeout`.

use std::time::Duration;

use bytes::Bytes;
use gatewire_proto::websocket::{CloseCode, close_frame};

use crate::gateway::core::shard::Shard;
use crate::gateway::core::stats::CloseCause;

/// Sweeps an incomplete message may last; the next one closes its client.
const SWEEPS_PER_TIMEOUT: u64 = 4;

impl Shard {
    /// After input from client `id`: it holds `bytes` of an incomplete message, and `completed`
    /// says whether a message finished in that input (what it holds now began after it).
    pub fn client_pending_input(&mut self, id: u32, bytes: usize, completed: bool) {
        if bytes == 0 || self.client_closing(id) {
            self.pending_input.remove(id);
            return;
        }
        self.pending_input.set(id, bytes, completed);
        while self.pending_input.total() > self.settings.max_pending_input_bytes {
            let Some(victim) = self.pending_input.largest() else {
                break;
            };
            self.pending_input.remove(victim);
            self.stats.pending_input_closes += 1;
            let last_words =
                self.close_words(CloseCode::TOO_BIG, "server busy: message too large now");
            self.close_client_with(victim, last_words, CloseCause::BadInput);
        }
    }

    /// Bytes of incomplete messages let go (finished or their clients closed) since the last
    /// call: the I/O side gives freed memory back to the OS after much was let go.
    pub fn take_released_input(&mut self) -> usize {
        std::mem::take(&mut self.pending_input.released)
    }

    /// A client is gone: it holds nothing any more.
    pub(in crate::gateway::core) fn forget_pending_input(&mut self, id: u32) {
        self.pending_input.remove(id);
    }

    /// How often the message sweep runs, or `None` when messages may take forever.
    pub fn message_check_period(&self) -> Option<Duration> {
        let timeout = self.settings.message_timeout;
        (timeout > 0.0).then(|| Duration::from_secs_f64(timeout / SWEEPS_PER_TIMEOUT as f64))
    }

    /// One sweep: closes every client whose incomplete message has lasted more than
    /// [`SWEEPS_PER_TIMEOUT`] sweeps.
    pub fn sweep_messages(&mut self) {
        self.pending_input.sweeps += 1;
        let now = self.pending_input.sweeps;
        let overdue: Vec<u32> = self
            .pending_input
            .clients
            .iter()
            .filter(|(_, p)| now - p.since > SWEEPS_PER_TIMEOUT)
            .map(|(&id, _)| id)
            .collect();
        for id in overdue {
            self.pending_input.remove(id);
            self.stats.message_timeouts += 1;
            let last_words = self.close_words(CloseCode::POLICY, "message not finished in time");
            self.close_client_with(id, last_words, CloseCause::BadInput);
        }
    }

    /// A close frame on WebSocket listeners; nothing on the others.
    fn close_words(&self, code: u16, reason: &str) -> Bytes {
        if self.settings.protocol.has_handshake() {
            close_frame(code, reason)
        } else {
            Bytes::new()
        }
    }
}
