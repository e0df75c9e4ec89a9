//! A gateway process's store thread. Shards never wait on Redis: every few milliseconds each
//! hands the uids and groups it started or stopped holding to this thread through a bounded
//! queue ([`ShardFeed::offer`]); a full queue leaves the changes with the shard, coalesced per
//! key, for its next try (counted). The thread keeps a mirror of what every shard holds and
//! writes to Redis in one pipeline per wake-up:
//!
//! - the changes (a new holder, a holder gone);
//! - every second, each shard in the writers' list, only after its changes went through — a
//!   shard that cannot write drops off the list within [`WRITER_TTL`] and gets every command;
//! - every third of `store.ttl`, the whole mirror again (the refresh that keeps entries alive);
//! - after a reconnect (Redis restarted or was unreachable), the whole mirror at once.
//!
//! When the gateway stops, its entries are withdrawn.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indexmap::IndexMap;
use tracing::{info, warn};

use super::Kind;
use super::redis::{StoreConnection, WRITER_TTL, holders_key, writers_key};
use crate::config::StoreConfig;
use crate::gateway::HoldingChanges;

/// Batches of changes the queue holds (each shard offers at most one per flush interval).
const QUEUE_BATCHES: usize = 4096;
/// How often the writers' list is refreshed.
const WRITER_EVERY: Duration = Duration::from_secs(1);
/// How long after a failed connection the next one is tried.
const RECONNECT_AFTER: Duration = Duration::from_secs(1);
/// Keys per script call.
const CHUNK: usize = 512;
/// The least time a Redis operation of this thread may take before it counts as failed.
const MIN_TIMEOUT: Duration = Duration::from_secs(1);

/// What the store thread has done (for `/metrics`).
#[derive(Debug, Default)]
pub struct PublisherStats {
    /// 1 while connected to Redis.
    pub connected: AtomicU64,
    /// uid and group entries this process's shards hold (the mirror's size).
    pub entries: AtomicU64,
    /// Holder changes written (added or removed).
    pub changes_written: AtomicU64,
    /// Whole-mirror writes after a (re)connect.
    pub resyncs: AtomicU64,
    /// Failed connections and pipelines.
    pub errors: AtomicU64,
    /// Times a shard found the queue full and kept its changes for the next try.
    pub queue_full: AtomicU64,
}

enum Note {
    Changes {
        shard: Arc<str>,
        changes: HoldingChanges,
    },
    Stop(std::sync::mpsc::Sender<()>),
}

/// A shard's end of the queue.
#[derive(Clone)]
pub struct ShardFeed {
    queue: SyncSender<Note>,
    shard: Arc<str>,
    stats: Arc<PublisherStats>,
}

impl std::fmt::Debug for ShardFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardFeed")
            .field("shard", &self.shard)
            .finish_non_exhaustive()
    }
}

impl ShardFeed {
    /// Hands `changes` to the store thread; gives them back when its queue is full.
    pub fn offer(&self, changes: HoldingChanges) -> Result<(), HoldingChanges> {
        let note = Note::Changes {
            shard: self.shard.clone(),
            changes,
        };
        match self.queue.try_send(note) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(Note::Changes { changes, .. }))
            | Err(TrySendError::Disconnected(Note::Changes { changes, .. })) => {
                self.stats.queue_full.fetch_add(1, Ordering::Relaxed);
                Err(changes)
            }
            Err(_) => Ok(()),
        }
    }
}

/// The store thread of a gateway process.
#[derive(Debug)]
pub struct Publisher {
    queue: SyncSender<Note>,
    pub stats: Arc<PublisherStats>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Publisher {
    /// Starts the thread for the shards at `shards` (their inner addresses).
    pub fn start(config: &StoreConfig, shards: Vec<String>) -> std::io::Result<Publisher> {
        let (queue, notes) = std::sync::mpsc::sync_channel(QUEUE_BATCHES);
        let stats = Arc::new(PublisherStats::default());
        let mut state = State::new(config.clone(), shards, stats.clone());
        let thread = std::thread::Builder::new()
            .name("gw-store".into())
            .spawn(move || state.run(notes))?;
        Ok(Publisher {
            queue,
            stats,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// The queue end for the shard at `shard`.
    pub fn feed(&self, shard: &str) -> ShardFeed {
        ShardFeed {
            queue: self.queue.clone(),
            shard: Arc::from(shard),
            stats: self.stats.clone(),
        }
    }

    /// Writes what is queued, withdraws every entry of this process, and ends the thread
    /// (waiting at most `wait`).
    pub fn stop(&self, wait: Duration) {
        let (done, finished) = std::sync::mpsc::channel();
        if self.queue.send(Note::Stop(done)).is_ok() {
            let _ = finished.recv_timeout(wait);
        }
        if let Some(thread) = self.thread.lock().ok().and_then(|mut t| t.take()) {
            if thread.is_finished() {
                let _ = thread.join();
            }
        }
    }
}

type Entry = (Kind, Vec<u8>);

struct State {
    config: StoreConfig,
    shards: Vec<String>,
    stats: Arc<PublisherStats>,
    /// What each shard holds.
    held: HashMap<Arc<str>, HashSet<Entry>>,
    /// Changes not yet written, per shard, latest state per entry.
    dirty: HashMap<Arc<str>, IndexMap<Entry, bool>>,
    conn: Option<StoreConnection>,
    retry_at: Instant,
    /// Write the whole mirror before anything else (after a (re)connect).
    resync: bool,
    next_writers: Instant,
    next_refresh: Instant,
}

impl State {
    fn new(config: StoreConfig, shards: Vec<String>, stats: Arc<PublisherStats>) -> State {
        let now = Instant::now();
        State {
            config,
            shards,
            stats,
            held: HashMap::new(),
            dirty: HashMap::new(),
            conn: None,
            retry_at: now,
            resync: true,
            next_writers: now,
            next_refresh: now,
        }
    }

    fn ttl(&self) -> Duration {
        Duration::from_secs_f64(self.config.ttl)
    }

    fn run(&mut self, notes: Receiver<Note>) {
        loop {
            let wake = self.next_writers.min(self.next_refresh);
            let wait = wake
                .saturating_duration_since(Instant::now())
                .min(WRITER_EVERY);
            let mut stop = None;
            match notes.recv_timeout(wait) {
                Ok(note) => stop = self.take(note),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
            while stop.is_none() {
                match notes.try_recv() {
                    Ok(note) => stop = self.take(note),
                    Err(_) => break,
                }
            }
            self.sync();
            if let Some(done) = stop {
                self.withdraw();
                let _ = done.send(());
                return;
            }
        }
    }

    /// Applies a note to the mirror; returns the stop request, if it is one.
    fn take(&mut self, note: Note) -> Option<std::sync::mpsc::Sender<()>> {
        let (shard, changes) = match note {
            Note::Changes { shard, changes } => (shard, changes),
            Note::Stop(done) => return Some(done),
        };
        let held = self.held.entry(shard.clone()).or_default();
        let dirty = self.dirty.entry(shard).or_default();
        let entries = changes
            .uids
            .into_iter()
            .map(|(k, h)| (Kind::Uid, k, h))
            .chain(changes.groups.into_iter().map(|(k, h)| (Kind::Group, k, h)));
        for (kind, key, now_held) in entries {
            let entry = (kind, key.to_bytes().to_vec());
            if now_held {
                held.insert(entry.clone());
            } else {
                held.remove(&entry);
            }
            dirty.insert(entry, now_held);
        }
        let total: usize = self.held.values().map(HashSet::len).sum();
        self.stats.entries.store(total as u64, Ordering::Relaxed);
        None
    }

    /// Connects when needed and writes what is due; a failure drops the connection, and the
    /// next one starts with the whole mirror.
    fn sync(&mut self) {
        let now = Instant::now();
        if self.conn.is_none() {
            if now < self.retry_at {
                return;
            }
            let timeout = Duration::from_secs_f64(self.config.timeout).max(MIN_TIMEOUT);
            match StoreConnection::open(&self.config, timeout) {
                Ok(conn) => {
                    info!(url = %self.config.redis_url, "store connected");
                    self.conn = Some(conn);
                    self.resync = true;
                    self.stats.connected.store(1, Ordering::Relaxed);
                }
                Err(e) => {
                    self.failed(&e);
                    return;
                }
            }
        }
        let Some(conn) = self.conn.as_ref() else {
            return;
        };
        let ttl = self.ttl();
        let mut pipe = redis::pipe();
        let mut commands = 0usize;
        let mut written = 0u64;
        let full = self.resync || now >= self.next_refresh;
        // Removals first, then additions: an entry is never absent because of its own refresh.
        for (shard, dirty) in &self.dirty {
            for ((kind, name), held) in dirty {
                if !held {
                    let key = holders_key(&self.config.prefix, *kind, name);
                    pipe.cmd("ZREM").arg(key).arg(shard.as_ref()).ignore();
                    commands += 1;
                    written += 1;
                }
            }
        }
        for (shard, dirty) in &self.dirty {
            let keys: Vec<Vec<u8>> = if full {
                Vec::new()
            } else {
                dirty
                    .iter()
                    .filter(|(_, held)| **held)
                    .map(|((kind, name), _)| holders_key(&self.config.prefix, *kind, name))
                    .collect()
            };
            written += keys.len() as u64;
            for chunk in keys.chunks(CHUNK) {
                pipe.add_command(conn.hold(chunk, shard, ttl)).ignore();
                commands += 1;
            }
        }
        if full {
            for (shard, held) in &self.held {
                let keys: Vec<Vec<u8>> = held
                    .iter()
                    .map(|(kind, name)| holders_key(&self.config.prefix, *kind, name))
                    .collect();
                for chunk in keys.chunks(CHUNK) {
                    pipe.add_command(conn.hold(chunk, shard, ttl)).ignore();
                    commands += 1;
                }
            }
        }
        let writers_due = full || now >= self.next_writers;
        if writers_due {
            let key = [writers_key(&self.config.prefix)];
            for shard in &self.shards {
                pipe.add_command(conn.hold(&key, shard, WRITER_TTL))
                    .ignore();
                commands += 1;
            }
        }
        if commands == 0 {
            return;
        }
        let conn = self.conn.as_mut().expect("checked above");
        match pipe.query::<()>(&mut conn.conn) {
            Ok(()) => {
                self.dirty.clear();
                self.stats
                    .changes_written
                    .fetch_add(written, Ordering::Relaxed);
                if self.resync {
                    self.stats.resyncs.fetch_add(1, Ordering::Relaxed);
                    self.resync = false;
                }
                if full {
                    self.next_refresh = now + ttl / 3;
                }
                if writers_due {
                    self.next_writers = now + WRITER_EVERY;
                }
            }
            Err(e) => self.failed(&e),
        }
    }

    fn failed(&mut self, e: &redis::RedisError) {
        self.stats.errors.fetch_add(1, Ordering::Relaxed);
        self.stats.connected.store(0, Ordering::Relaxed);
        if self.conn.take().is_some() {
            warn!(url = %self.config.redis_url, error = %e,
                "store: Redis write failed; workers send every uid and group command to this \
                 gateway until it writes again");
        } else {
            crate::log_limit::warn_limited(
                "store connect",
                &format!(
                    "store: cannot connect to Redis at {} (store.redis_url): {e}",
                    self.config.redis_url
                ),
            );
        }
        // Additions are in the mirror and go out with the resync; removals not written leave
        // entries that expire within store.ttl (a send too many, never one too few).
        self.dirty.clear();
        self.resync = true;
        self.retry_at = Instant::now() + RECONNECT_AFTER;
    }

    /// Removes every entry of this process and its shards from the writers' list.
    fn withdraw(&mut self) {
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        let mut pipe = redis::pipe();
        for (shard, held) in &self.held {
            for (kind, name) in held {
                let key = holders_key(&self.config.prefix, *kind, name);
                pipe.cmd("ZREM").arg(key).arg(shard.as_ref()).ignore();
            }
        }
        for shard in &self.shards {
            pipe.cmd("ZREM")
                .arg(writers_key(&self.config.prefix))
                .arg(shard)
                .ignore();
        }
        if let Err(e) = pipe.query::<()>(&mut conn.conn) {
            warn!(error = %e, "store: could not withdraw this gateway's entries (they expire within store.ttl)");
        }
    }
}
