//! Retry delays for a peer that refuses us: 1 s, doubling up to 30 s, back to 1 s once a
//! connection is accepted. A peer that is merely down is retried at the base delay (so a
//! restarted register or gateway is found again within a second).

use std::time::Duration;

const BASE: Duration = Duration::from_secs(1);
const MAX: Duration = Duration::from_secs(30);

/// The delay before the next attempt.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { next: BASE }
    }
}

impl Backoff {
    /// The peer refused us: the delay to wait now (the next one doubles).
    pub fn refused(&mut self) -> Duration {
        let now = self.next;
        self.next = (self.next * 2).min(MAX);
        now
    }

    /// The peer accepted us: the next refusal starts again at the base delay.
    pub fn accepted(&mut self) {
        self.next = BASE;
    }

    /// After a connection ended: `None` when the peer had accepted it (the next refusal starts
    /// over), or the delay before the next attempt when it refused us.
    pub fn after_connection(&mut self, accepted: bool) -> Option<Duration> {
        if accepted {
            self.accepted();
            None
        } else {
            Some(self.refused())
        }
    }

    /// The delay after a failure that was not a refusal (nobody listening).
    pub fn base() -> Duration {
        BASE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_double_up_to_30_s_and_an_acceptance_starts_over() {
        let mut b = Backoff::default();
        let delays: Vec<u64> = (0..7).map(|_| b.refused().as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 30, 30]);
        b.accepted();
        assert_eq!(b.refused(), Duration::from_secs(1));
    }
}
