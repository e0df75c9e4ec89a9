//! Which worker a client's events go to (protocol §5.4): sticky per client while its worker stays
//! connected; the first choice (and any re-bind) is least-connections (ties: earliest connected)
//! or random.

use std::collections::HashMap;
use std::rc::Rc;

use indexmap::IndexMap;

use crate::config::RouterMode;

/// Routing state of one shard.
#[derive(Debug)]
pub struct Router {
    mode: RouterMode,
    /// Clients bound to each worker key (least-connections counters).
    bound: HashMap<Rc<str>, u64>,
    rng: u64,
}

impl Router {
    pub fn new(mode: RouterMode, seed: u64) -> Router {
        Router {
            mode,
            bound: HashMap::new(),
            rng: seed | 1,
        }
    }

    /// The worker for a client currently bound to `binding`, re-binding when that worker is gone.
    /// Returns the worker key and its link, or `None` when no worker is connected.
    pub fn route(
        &mut self,
        workers: &IndexMap<Rc<str>, u64>,
        binding: &mut Option<Rc<str>>,
    ) -> Option<(Rc<str>, u64)> {
        if let Some(key) = binding.as_ref()
            && let Some(&link) = workers.get(key)
        {
            return Some((key.clone(), link));
        }
        if workers.is_empty() {
            return None;
        }
        if let Some(old) = binding.take() {
            self.released(&old);
        }
        let index = match self.mode {
            RouterMode::LeastConnections => {
                let mut best = 0;
                let mut best_count = u64::MAX;
                for (i, key) in workers.keys().enumerate() {
                    let count = self.bound.get(key).copied().unwrap_or(0);
                    if count < best_count {
                        best = i;
                        best_count = count;
                    }
                }
                best
            }
            RouterMode::Random => (self.next_random() % workers.len() as u64) as usize,
        };
        let (key, &link) = workers.get_index(index)?;
        *self.bound.entry(key.clone()).or_insert(0) += 1;
        *binding = Some(key.clone());
        Some((key.clone(), link))
    }

    /// A client bound to `key` is gone.
    pub fn released(&mut self, key: &Rc<str>) {
        if let Some(count) = self.bound.get_mut(key) {
            *count = count.saturating_sub(1);
        }
    }

    /// A worker (re)connected: its counter starts from 0, as in GatewayWorker.
    pub fn worker_joined(&mut self, key: &Rc<str>) {
        self.bound.insert(key.clone(), 0);
    }

    /// A worker disconnected.
    pub fn worker_left(&mut self, key: &Rc<str>) {
        self.bound.remove(key);
    }

    /// Clients currently counted against `key`.
    pub fn bound_to(&self, key: &str) -> u64 {
        self.bound.get(key).copied().unwrap_or(0)
    }

    fn next_random(&mut self) -> u64 {
        // xorshift64*: routing needs spread, not cryptographic strength.
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workers(keys: &[&str]) -> IndexMap<Rc<str>, u64> {
        keys.iter()
            .enumerate()
            .map(|(i, k)| (Rc::from(*k), i as u64 + 1))
            .collect()
    }

    #[test]
    fn least_connections_spreads_and_sticks() {
        let ws = workers(&["a", "b"]);
        let mut router = Router::new(RouterMode::LeastConnections, 1);
        let mut c1 = None;
        let mut c2 = None;
        let mut c3 = None;
        assert_eq!(router.route(&ws, &mut c1).unwrap().1, 1);
        assert_eq!(router.route(&ws, &mut c2).unwrap().1, 2);
        assert_eq!(
            router.route(&ws, &mut c3).unwrap().1,
            1,
            "tie goes to the earliest"
        );
        assert_eq!(router.route(&ws, &mut c2).unwrap().1, 2, "sticky");
        router.released(c1.as_ref().unwrap());
        router.released(c3.as_ref().unwrap());
        let mut c4 = None;
        assert_eq!(router.route(&ws, &mut c4).unwrap().1, 1);
    }

    #[test]
    fn a_gone_worker_rebinds_its_clients() {
        let mut ws = workers(&["a", "b"]);
        let mut router = Router::new(RouterMode::LeastConnections, 1);
        let mut c = None;
        assert_eq!(router.route(&ws, &mut c).unwrap().1, 1);
        ws.shift_remove("a");
        router.worker_left(&Rc::from("a"));
        assert_eq!(router.route(&ws, &mut c).unwrap().1, 2);
        assert_eq!(router.bound_to("b"), 1);
        ws.clear();
        assert_eq!(router.route(&ws, &mut c), None);
    }

    #[test]
    fn random_mode_uses_every_worker() {
        let ws = workers(&["a", "b", "c"]);
        let mut router = Router::new(RouterMode::Random, 7);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..100 {
            let mut c = None;
            seen.insert(router.route(&ws, &mut c).unwrap().1);
        }
        assert_eq!(seen.len(), 3);
    }
}
