//! Handshake deadlines: a client that has not finished its WebSocket (or TLS) handshake within
//! `gateway.handshake_timeout` is closed, so half-open handshakes cannot pile up. Deadlines are
//! kept in accept order (they all have the same length), so a check only looks at the front.

use std::time::{Duration, Instant};

use crate::gateway::state::Shard;
use crate::gateway::stats::CloseCause;

impl Shard {
    /// How often deadlines are checked, or `None` when handshakes never time out.
    pub fn handshake_check_period(&self) -> Option<Duration> {
        let timeout = self.settings.handshake_timeout;
        (timeout > 0.0 && self.settings.protocol.has_handshake())
            .then(|| Duration::from_secs_f64((timeout / 4.0).clamp(0.05, 1.0)))
    }

    /// Starts the deadline of a client accepted at `now`.
    pub(super) fn watch_handshake(&mut self, id: u32, now: Instant) {
        if self.settings.handshake_timeout > 0.0 && self.settings.protocol.has_handshake() {
            let deadline = now + Duration::from_secs_f64(self.settings.handshake_timeout);
            self.handshakes.push_back((deadline, id));
        }
    }

    /// Closes every client whose deadline passed before `now` and that is still in its
    /// handshake (its output still held back for the 101 response).
    pub fn expire_handshakes(&mut self, now: Instant) {
        while let Some(&(deadline, id)) = self.handshakes.front() {
            if deadline > now {
                break;
            }
            self.handshakes.pop_front();
            if self.clients.get(&id).is_some_and(|c| c.outbox.is_held()) {
                self.stats.handshake_timeouts += 1;
                self.destroy_client(id, CloseCause::BadInput);
            }
        }
    }
}
