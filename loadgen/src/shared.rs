//! What every thread of a run shares: the live counters, the clock, and the phase marks the
//! load threads and their receivers meet on.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use crate::stats::Live;

/// State shared by all threads.
#[derive(Debug)]
pub struct Shared {
    pub live: Live,
    pub epoch: Instant,
    pub ramped: AtomicUsize,
    pub measure_start: OnceLock<Instant>,
    /// Set when the measurement phase is over (before the drain).
    pub measured: AtomicBool,
    /// When the latest delivery arrived (ns since `epoch`).
    pub last_delivery_ns: AtomicU64,
    /// Members per group confirmed by the chat app's "You joined gN" (group scenario).
    pub group_members: Vec<AtomicU64>,
    /// Joins (group scenario) or uid binds (uid scenario) confirmed so far.
    pub joined: AtomicU64,
    /// Set by Ctrl-C (or SIGTERM): stop connecting and sending, drain, report.
    pub stop: AtomicBool,
    /// When the measurement actually ended (ns since `epoch`).
    pub measure_end_ns: AtomicU64,
}

impl Shared {
    pub fn new(groups: u64) -> Shared {
        Shared {
            group_members: (0..groups).map(|_| AtomicU64::new(0)).collect(),
            joined: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            measure_end_ns: AtomicU64::new(0),
            live: Live::default(),
            epoch: Instant::now(),
            ramped: AtomicUsize::new(0),
            measure_start: OnceLock::new(),
            measured: AtomicBool::new(false),
            last_delivery_ns: AtomicU64::new(0),
        }
    }

    /// Nanoseconds since the run's epoch.
    pub fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }
}

/// Counts a confirmed join ("You joined gN") towards its group's audience, or a confirmed uid
/// ("You are now uN").
pub fn confirm_join(message: &[u8], shared: &Shared) {
    if message.starts_with(b"You are now u") {
        shared.joined.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let Some(rest) = message.strip_prefix(b"You joined g") else {
        return;
    };
    let group: Option<usize> = std::str::from_utf8(rest).ok().and_then(|g| g.parse().ok());
    if let Some(members) = group.and_then(|g| shared.group_members.get(g)) {
        members.fetch_add(1, Ordering::Relaxed);
        shared.joined.fetch_add(1, Ordering::Relaxed);
    }
}
