//! Handshake deadlines: a client that has not finished its WebSocket (or TLS) handshake within
//! `gateway.handshake_timeout` is closed, so half-open handshakes cannot pile up. No per-client
//! timer or queue: every quarter of the timeout a sweep counts, for each client still in its
//! handshake, how many sweeps it has been there; the fifth closes it — between the timeout and
//! 1.25 × the timeout after its accept.

use std::time::Duration;

use crate::gateway::core::shard::Shard;
use crate::gateway::core::stats::CloseCause;

/// Sweeps a client may stay in its handshake; the next one closes it.
const SWEEPS_PER_TIMEOUT: u8 = 4;

impl Shard {
    /// How often the handshake sweep runs, or `None` when handshakes never time out.
    pub fn handshake_check_period(&self) -> Option<Duration> {
        let timeout = self.settings.handshake_timeout;
        (timeout > 0.0 && self.settings.protocol.has_handshake())
            .then(|| Duration::from_secs_f64(timeout / f64::from(SWEEPS_PER_TIMEOUT)))
    }

    /// One sweep: closes every client that has been in its handshake (its output still held
    /// back for the 101 response) for more than [`SWEEPS_PER_TIMEOUT`] sweeps.
    pub fn sweep_handshakes(&mut self) {
        let mut expired = Vec::new();
        for (&id, client) in self.clients.iter_mut() {
            if client.outbox.is_held() {
                client.handshake_sweeps += 1;
                if client.handshake_sweeps > SWEEPS_PER_TIMEOUT {
                    expired.push(id);
                }
            }
        }
        for id in expired {
            self.stats.handshake_timeouts += 1;
            self.destroy_client(id, CloseCause::BadInput);
        }
    }
}
