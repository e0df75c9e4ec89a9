//! What every thread of a run shares: the live counters, the clock, and the phase marks the
//! load threads and their receivers meet on.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
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
    /// Answers to the liveness check, across all threads.
    pub pongs: AtomicU64,
    /// Where each load thread is (a [`Phase`] as a byte), for the report of a thread that lags.
    pub phases: Vec<AtomicU8>,
}

/// The steps of a load thread, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    Connecting,
    WaitingForTheOthers,
    Sending,
    Draining,
    Pinging,
    Closing,
    Done,
}

impl Phase {
    const ALL: [Phase; 7] = [
        Phase::Connecting,
        Phase::WaitingForTheOthers,
        Phase::Sending,
        Phase::Draining,
        Phase::Pinging,
        Phase::Closing,
        Phase::Done,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Phase::Connecting => "connecting",
            Phase::WaitingForTheOthers => "waiting for the other threads' ramps",
            Phase::Sending => "sending",
            Phase::Draining => "draining",
            Phase::Pinging => "pinging",
            Phase::Closing => "closing",
            Phase::Done => "done",
        }
    }
}

impl Shared {
    pub fn new(groups: u64, threads: usize) -> Shared {
        Shared {
            pongs: AtomicU64::new(0),
            phases: (0..threads)
                .map(|_| AtomicU8::new(Phase::Connecting as u8))
                .collect(),
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

    /// Thread `index` is now at `phase`.
    pub fn enter(&self, index: usize, phase: Phase) {
        if let Some(p) = self.phases.get(index) {
            p.store(phase as u8, Ordering::Relaxed);
        }
    }

    /// Where thread `index` is.
    pub fn phase(&self, index: usize) -> Phase {
        let byte = self
            .phases
            .get(index)
            .map_or(0, |p| p.load(Ordering::Relaxed));
        Phase::ALL[usize::from(byte).min(Phase::ALL.len() - 1)]
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
