//! The binds and joins a worker thread made itself in the last [`RECENT`]: holdings the store
//! may not show yet (see `resolver`). Expiry walks a queue in the order they were made, so each
//! bind costs O(1) however fast they come; the queue is bounded by [`CAP`].

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use super::Kind;

/// How long a bind or join made by this thread counts as a holding the store may not show yet.
pub const RECENT: Duration = Duration::from_secs(2);
/// Binds remembered at most (a thread binding faster than CAP per [`RECENT`] forgets the oldest
/// early: a send for them then goes to the store's holders, which by then usually include it).
pub const CAP: usize = 1 << 20;

type Name = (Kind, Vec<u8>);

/// Recent holdings by name, and the same in the order they were made.
#[derive(Debug, Default)]
pub struct RecentHoldings {
    by_name: HashMap<Name, Vec<(String, Instant)>>,
    order: VecDeque<(Instant, Name)>,
}

impl RecentHoldings {
    /// `name` was bound or joined on the gateway at `gateway`, now.
    pub fn note(&mut self, kind: Kind, name: &[u8], gateway: String, now: Instant) {
        self.expire(now);
        if self.order.len() >= CAP
            && let Some((_, oldest)) = self.order.pop_front()
        {
            self.by_name.remove(&oldest);
        }
        let key = (kind, name.to_vec());
        let on = self.by_name.entry(key.clone()).or_default();
        on.retain(|(g, _)| *g != gateway);
        on.push((gateway, now));
        self.order.push_back((now, key));
    }

    /// Whether `name` was bound or joined on `gateway` within [`RECENT`] of `now`.
    pub fn holds(&self, kind: Kind, name: &[u8], gateway: &str, now: Instant) -> bool {
        self.by_name.get(&(kind, name.to_vec())).is_some_and(|on| {
            on.iter()
                .any(|(g, at)| g == gateway && now.duration_since(*at) < RECENT)
        })
    }

    /// Names remembered.
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    fn expire(&mut self, now: Instant) {
        while let Some((at, _)) = self.order.front() {
            if now.duration_since(*at) < RECENT {
                return;
            }
            let Some((_, name)) = self.order.pop_front() else {
                return;
            };
            if let Some(on) = self.by_name.get_mut(&name) {
                on.retain(|(_, at)| now.duration_since(*at) < RECENT);
                if on.is_empty() {
                    self.by_name.remove(&name);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_holding_counts_for_its_gateway_until_it_is_old() {
        let mut recent = RecentHoldings::default();
        let t0 = Instant::now();
        recent.note(Kind::Uid, b"alice", "10.0.0.1:2900".into(), t0);
        assert!(recent.holds(Kind::Uid, b"alice", "10.0.0.1:2900", t0));
        assert!(!recent.holds(Kind::Uid, b"alice", "10.0.0.2:2900", t0));
        assert!(!recent.holds(Kind::Group, b"alice", "10.0.0.1:2900", t0));
        let later = t0 + RECENT;
        assert!(!recent.holds(Kind::Uid, b"alice", "10.0.0.1:2900", later));
        // Noting anything expires what is old.
        recent.note(Kind::Uid, b"bob", "10.0.0.1:2900".into(), later);
        assert_eq!(recent.len(), 1);
    }

    #[test]
    fn a_rebind_refreshes_and_many_binds_stay_cheap_and_bounded() {
        let mut recent = RecentHoldings::default();
        let t0 = Instant::now();
        recent.note(Kind::Uid, b"u", "a:1".into(), t0);
        let t1 = t0 + RECENT / 2;
        recent.note(Kind::Uid, b"u", "a:1".into(), t1);
        assert!(recent.holds(Kind::Uid, b"u", "a:1", t0 + RECENT + RECENT / 4));
        // 200,000 binds within the window: each is O(1) (this would take minutes with a sweep
        // of the whole map per bind), all remembered.
        for i in 0..200_000u32 {
            recent.note(Kind::Uid, &i.to_be_bytes(), "b:1".into(), t1);
        }
        assert_eq!(recent.len(), 200_001);
        recent.note(Kind::Group, b"g", "b:1".into(), t1 + RECENT);
        assert_eq!(recent.len(), 1, "everything older than RECENT is gone");
    }
}
