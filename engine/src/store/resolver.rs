//! Which gateways a uid or group command goes to. With the store off (or for commands without a
//! uid or group) it is every gateway, as in GatewayWorker. With it on, one Redis round trip
//! (one script call for all the command's uids or groups and the writers' list) narrows that to:
//!
//! - the shards the store lists as holders;
//! - every shard that does not write to the store (a PHP gateway, one with the store off, or one
//!   that lost Redis), which the store cannot speak for;
//! - the shards this thread itself bound the uid or added the group on within the last
//!   [`RECENT`](super::recent::RECENT) — the gateway applies the bind before the send (same link, in order), but the
//!   store learns of it a few milliseconds later, so `bindUid` then `sendToUid` in one callback
//!   still reaches the new holder.
//!
//! When Redis does not answer within `store.timeout` (or could not be reached in the last
//! second), the command goes to every gateway: counted as a fallback and logged, never dropped.
//!
//! The window: a uid bound by *another* worker (or GatewayClient) becomes visible to this one
//! once the holding gateway's store thread has written it — the shard hands it over as soon as
//! it has read the batch of inner packets holding the bind, so one Redis round trip after the
//! gateway applied it, longer only while that thread is queued behind a slow Redis. A send resolved inside that window can miss the new holder, as
//! a GatewayWorker send can overtake a bind made over another worker's link.

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender};
use std::time::{Duration, Instant};

use super::Kind;
use super::recent::RecentHoldings;
use super::redis::{StoreConnection, holders_key, writers_key};
use crate::config::StoreConfig;

/// How long after a failed connection the next one is tried (sends meanwhile go everywhere).
const RECONNECT_AFTER: Duration = Duration::from_secs(1);

/// How uid and group commands were routed in this process (for `/metrics` and the benchmark).
#[derive(Debug, Default)]
pub struct RoutingStats {
    /// uid and group commands sent (and queries asked).
    pub sends: AtomicU64,
    /// Gateway packets those commands took.
    pub packets: AtomicU64,
    /// Store lookups answered.
    pub lookups: AtomicU64,
    /// Commands sent to every gateway because the store did not answer.
    pub fallbacks: AtomicU64,
    /// Commands not sent because their packet could not be built (a message over 4 GiB).
    pub unencodable: AtomicU64,
}

/// This process's routing counters.
pub static ROUTING: RoutingStats = RoutingStats {
    sends: AtomicU64::new(0),
    packets: AtomicU64::new(0),
    lookups: AtomicU64::new(0),
    fallbacks: AtomicU64::new(0),
    unencodable: AtomicU64::new(0),
};

/// The live holders of some uids or groups, and the shards that write to the store.
#[derive(Debug, Default)]
pub struct Holders {
    pub writers: HashSet<String>,
    pub holders: HashSet<String>,
}

/// A thread's view of the store. Its Redis connection lives on a helper thread of its own: a
/// blocking socket call on an executor thread is interrupted (EINTR) whenever io_uring has
/// completions for it, which the Redis client takes for an error. The caller waits for the
/// helper's answer on a channel, at most `store.timeout`.
pub struct Resolver {
    config: StoreConfig,
    asks: SyncSender<(u64, Vec<Vec<u8>>)>,
    answers: Receiver<(u64, Option<Vec<Vec<String>>>)>,
    asked: Cell<u64>,
    /// (kind, name) → shards this thread bound or joined it on, with when.
    recent: RefCell<RecentHoldings>,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver")
            .field("redis_url", &self.config.redis_url)
            .finish_non_exhaustive()
    }
}

impl Resolver {
    /// A resolver for `config`, or `None` with the store off (or when its helper thread cannot
    /// start, logged: every command then goes to every gateway).
    pub fn new(config: &StoreConfig) -> Option<Resolver> {
        if !config.enabled() {
            return None;
        }
        // One question at a time: a caller that gave up on an answer finds the helper busy and
        // falls back rather than queueing behind it.
        let (asks, questions) = std::sync::mpsc::sync_channel(1);
        let (replies, answers) = std::sync::mpsc::channel();
        let helper = Helper {
            config: config.clone(),
            conn: None,
            retry_at: None,
        };
        let spawned = std::thread::Builder::new()
            .name("store-lookup".into())
            .spawn(move || helper.serve(questions, replies));
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "store: cannot start the lookup thread; sending to every gateway");
            return None;
        }
        Some(Resolver {
            config: config.clone(),
            asks,
            answers,
            asked: Cell::new(0),
            recent: RefCell::new(RecentHoldings::default()),
        })
    }

    /// Of `candidates` (gateway addresses), those a command for `names` (uids or groups) must
    /// go to.
    pub fn targets(&self, names: &[(Kind, &[u8])], candidates: Vec<String>) -> Vec<String> {
        let Some(found) = self.lookup(names) else {
            ROUTING.fallbacks.fetch_add(1, Ordering::Relaxed);
            return candidates;
        };
        let recent = self.recent.borrow();
        let now = Instant::now();
        let recently_here = |addr: &str| {
            !recent.is_empty()
                && names
                    .iter()
                    .any(|(kind, name)| recent.holds(*kind, name, addr, now))
        };
        candidates
            .into_iter()
            .filter(|addr| {
                found.holders.contains(addr) || !found.writers.contains(addr) || recently_here(addr)
            })
            .collect()
    }

    /// This thread bound a uid or added a group on the gateway at `gateway`.
    pub fn noted(&self, kind: Kind, name: &[u8], gateway: String) {
        self.recent
            .borrow_mut()
            .note(kind, name, gateway, Instant::now());
    }

    /// The store's holders of `names` and its writers; `None` when Redis does not answer in
    /// time.
    pub fn lookup(&self, names: &[(Kind, &[u8])]) -> Option<Holders> {
        let mut keys = Vec::with_capacity(names.len() + 1);
        keys.push(writers_key(&self.config.prefix));
        keys.extend(
            names
                .iter()
                .map(|(kind, name)| holders_key(&self.config.prefix, *kind, name)),
        );
        let n = self.asked.get() + 1;
        self.asked.set(n);
        self.asks.try_send((n, keys)).ok()?;
        let deadline = Instant::now() + Duration::from_secs_f64(self.config.timeout);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.answers.recv_timeout(left) {
                Ok((m, lists)) if m == n => {
                    let mut lists = lists?.into_iter();
                    ROUTING.lookups.fetch_add(1, Ordering::Relaxed);
                    let writers = lists.next().unwrap_or_default().into_iter().collect();
                    let holders = lists.flatten().collect();
                    return Some(Holders { writers, holders });
                }
                // A late answer to a question this thread gave up on.
                Ok(_) => continue,
                Err(_) => {
                    crate::log_limit::warn_limited(
                        "store slow",
                        &format!(
                            "store: Redis at {} did not answer within store.timeout ({} s): uid \
                             and group commands go to every gateway meanwhile",
                            self.config.redis_url, self.config.timeout
                        ),
                    );
                    return None;
                }
            }
        }
    }
}

/// The helper thread's side: one connection, opened on demand, not retried for a second after
/// a failure (questions meanwhile are answered "unreachable" at once).
struct Helper {
    config: StoreConfig,
    conn: Option<StoreConnection>,
    retry_at: Option<Instant>,
}

impl Helper {
    fn serve(
        mut self,
        questions: Receiver<(u64, Vec<Vec<u8>>)>,
        replies: std::sync::mpsc::Sender<(u64, Option<Vec<Vec<String>>>)>,
    ) {
        while let Ok((n, keys)) = questions.recv() {
            let answer = self.lookup(&keys);
            if replies.send((n, answer)).is_err() {
                return;
            }
        }
    }

    fn lookup(&mut self, keys: &[Vec<u8>]) -> Option<Vec<Vec<String>>> {
        if self.retry_at.is_some_and(|at| Instant::now() < at) {
            return None;
        }
        if self.conn.is_none() {
            let timeout = Duration::from_secs_f64(self.config.timeout);
            match StoreConnection::open(&self.config, timeout) {
                Ok(conn) => self.conn = Some(conn),
                Err(e) => {
                    self.unreachable(&e);
                    return None;
                }
            }
        }
        match self.conn.as_mut()?.lookup(keys) {
            Ok(lists) => Some(lists),
            Err(e) => {
                self.conn = None;
                self.unreachable(&e);
                None
            }
        }
    }

    fn unreachable(&mut self, e: &redis::RedisError) {
        self.retry_at = Some(Instant::now() + RECONNECT_AFTER);
        crate::log_limit::warn_limited(
            "store unreachable",
            &format!(
                "store: Redis at {} (store.redis_url) did not answer ({e}): uid and group \
                 commands go to every gateway until it does",
                self.config.redis_url
            ),
        );
    }
}
