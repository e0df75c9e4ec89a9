//! Rate-limited warnings: a bad client or link is logged once per cause per interval, with the
//! number of repeats that were suppressed, never once per packet.

use std::cell::RefCell;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// At most one line per cause per this interval (per thread: each shard logs for itself).
const INTERVAL: Duration = Duration::from_secs(10);

thread_local! {
    static SEEN: RefCell<HashMap<&'static str, (Instant, u64)>> = RefCell::new(HashMap::new());
}

/// Logs `message` under `cause` unless that cause was logged within the interval.
pub fn warn_limited(cause: &'static str, message: &str) {
    SEEN.with(|seen| {
        let mut seen = seen.borrow_mut();
        let now = Instant::now();
        match seen.get_mut(cause) {
            Some((last, suppressed)) if now.duration_since(*last) < INTERVAL => {
                *suppressed += 1;
            }
            Some((last, suppressed)) => {
                tracing::warn!(cause, repeats_suppressed = *suppressed, "{message}");
                *last = now;
                *suppressed = 0;
            }
            None => {
                tracing::warn!(cause, "{message}");
                seen.insert(cause, (now, 0));
            }
        }
    });
}
