//! A gateway process's store thread. Shards never wait on Redis: each hands the uids and groups
//! it started or stopped holding to this thread through a bounded queue ([`ShardFeed::offer`],
//! see `gateway::holdings` for when); a full queue leaves the changes with the shard, coalesced
//! per key, for its next try (counted). The thread keeps a mirror of what every shard holds and
//! writes to Redis in one pipeline per wake-up:
//!
//! - the changes (a new holder, a holder gone);
//! - every second, each shard in the writers' list, only after its changes went through — a
//!   shard that cannot write drops off the list within [`WRITER_TTL`] and gets every command;
//! - every third of `store.ttl`, the whole mirror again (the refresh that keeps entries alive),
//!   spread evenly over a quarter of the TTL in small slices, so Redis never holds the workers'
//!   lookups behind one big pipeline;
//! - after a reconnect (Redis restarted or was unreachable), the whole mirror at once, in
//!   pipelines of [`PIPELINE_KEYS`].
//!
//! When the gateway stops, its entries are withdrawn.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indexmap::IndexMap;
use tracing::{info, warn};

use super::redis::{StoreConnection, WRITER_TTL, holders_key, writers_key};
use super::{HoldingChanges, Kind};
use crate::config::StoreConfig;

/// Batches of changes the queue holds (a shard offers one per batch of inner packets that bound
/// or joined something, and one per publishing tick).
const QUEUE_BATCHES: usize = 4096;
/// How often the writers' list is refreshed.
const WRITER_EVERY: Duration = Duration::from_secs(1);
/// How long after a failed connection the next one is tried.
const RECONNECT_AFTER: Duration = Duration::from_secs(1);
/// Keys per script call.
const CHUNK: usize = 128;
/// Keys per pipeline (one round trip): Redis serves a client's whole pipeline before the next
/// client, so a large one would hold the workers' lookups back (docs/benchmarks.md,
/// "Measurements behind constants").
const PIPELINE_KEYS: usize = 512;
/// How often the store thread wakes while a refresh is being spread out.
const REFRESH_TICK: Duration = Duration::from_millis(50);
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
        let deadline = Instant::now() + wait;
        let (done, finished) = std::sync::mpsc::channel();
        let mut note = Note::Stop(done);
        // The queue may be full (a thread stuck on a slow Redis): never block on it.
        loop {
            match self.queue.try_send(note) {
                Ok(()) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    let _ = finished.recv_timeout(left);
                    break;
                }
                Err(TrySendError::Full(back)) if Instant::now() < deadline => {
                    note = back;
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(_) => break,
            }
        }
        if let Some(thread) = self.thread.lock().ok().and_then(|mut t| t.take())
            && thread.is_finished()
        {
            let _ = thread.join();
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
    /// Entries still to refresh in this refresh period, and how many per second.
    refresh_due: Vec<(Arc<str>, Entry)>,
    refresh_pace: f64,
    last_slice: Instant,
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
            refresh_due: Vec::new(),
            refresh_pace: 0.0,
            last_slice: now,
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
            let mut wake = self.next_writers.min(self.next_refresh);
            if !self.refresh_due.is_empty() {
                wake = wake.min(Instant::now() + REFRESH_TICK);
            }
            if self.conn.is_none() {
                // Nothing can be written before the next connection attempt (waking earlier
                // would spin on a Redis that is down).
                wake = wake.max(self.retry_at);
            }
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
        if self.resync {
            // Everything at once (Redis was empty or unreachable), in pipelines of a bounded
            // size so other clients' lookups are served between them.
            self.refresh_due = self.everything();
            self.dirty.clear();
            while !self.refresh_due.is_empty() {
                if let Err(e) = self.write(Vec::new(), PIPELINE_KEYS, false) {
                    return self.failed(&e);
                }
            }
            self.resync = false;
            self.stats.resyncs.fetch_add(1, Ordering::Relaxed);
            self.next_refresh = now + self.ttl() / 3;
            self.next_writers = now;
        }
        if now >= self.next_refresh && self.refresh_due.is_empty() {
            // A new refresh period: every entry once, spread over most of the period.
            self.refresh_due = self.everything();
            self.refresh_pace = self.refresh_due.len() as f64 / (self.ttl() / 4).as_secs_f64();
            self.next_refresh = now + self.ttl() / 3;
        }
        let slice = if self.refresh_due.is_empty() {
            0
        } else {
            // At most two ticks' worth: after a quiet second the refresh resumes at its pace
            // rather than catching up in one pipeline.
            let since = now
                .saturating_duration_since(self.last_slice)
                .min(REFRESH_TICK * 2)
                .as_secs_f64();
            ((self.refresh_pace * since).ceil() as usize).clamp(1, PIPELINE_KEYS)
        };
        let changes: Vec<(Arc<str>, Entry, bool)> = self
            .dirty
            .drain()
            .flat_map(|(shard, dirty)| {
                dirty
                    .into_iter()
                    .map(move |(entry, held)| (shard.clone(), entry, held))
            })
            .collect();
        let writers = now >= self.next_writers;
        if changes.is_empty() && slice == 0 && !writers {
            return;
        }
        match self.write(changes, slice, writers) {
            Ok(()) => {
                self.last_slice = now;
                if writers {
                    self.next_writers = now + WRITER_EVERY;
                }
            }
            Err(e) => self.failed(&e),
        }
    }

    /// Every entry of every shard.
    fn everything(&self) -> Vec<(Arc<str>, Entry)> {
        self.held
            .iter()
            .flat_map(|(shard, held)| held.iter().map(move |e| (shard.clone(), e.clone())))
            .collect()
    }

    /// One pipeline: `changes` (removals, then additions), up to `slice` entries of the refresh
    /// due, and with `writers` this process's shards in the writers' list — last, so a shard is
    /// listed only once its changes went through.
    fn write(
        &mut self,
        changes: Vec<(Arc<str>, Entry, bool)>,
        slice: usize,
        writers: bool,
    ) -> redis::RedisResult<()> {
        let Some(conn) = self.conn.as_mut() else {
            return Ok(());
        };
        let prefix = &self.config.prefix;
        let ttl = Duration::from_secs_f64(self.config.ttl);
        let mut pipe = redis::pipe();
        let mut adds: HashMap<Arc<str>, Vec<Vec<u8>>> = HashMap::new();
        let written = changes.len() as u64;
        for (shard, (kind, name), held) in changes {
            let key = holders_key(prefix, kind, &name);
            if held {
                adds.entry(shard).or_default().push(key);
            } else {
                pipe.cmd("ZREM").arg(key).arg(shard.as_ref()).ignore();
            }
        }
        let from = self.refresh_due.len().saturating_sub(slice);
        for (shard, (kind, name)) in self.refresh_due.drain(from..) {
            // An entry gone since the period began is not brought back.
            if self
                .held
                .get(&shard)
                .is_some_and(|h| h.contains(&(kind, name.clone())))
            {
                adds.entry(shard)
                    .or_default()
                    .push(holders_key(prefix, kind, &name));
            }
        }
        for (shard, keys) in &adds {
            for chunk in keys.chunks(CHUNK) {
                pipe.add_command(conn.hold(chunk, shard, ttl)).ignore();
            }
        }
        if writers {
            let key = [writers_key(prefix)];
            for shard in &self.shards {
                pipe.add_command(conn.hold(&key, shard, WRITER_TTL))
                    .ignore();
            }
        }
        // Nothing to send (the refresh slice held only entries gone since): an empty pipeline
        // is an error to Redis ("empty command"), which would cost the connection and a resync.
        if pipe.cmd_iter().next().is_some() {
            pipe.query::<()>(&mut conn.conn)?;
        }
        self.stats
            .changes_written
            .fetch_add(written, Ordering::Relaxed);
        Ok(())
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
        self.refresh_due.clear();
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
