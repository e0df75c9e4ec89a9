//! What the rest of the process sees of the worker threads: a stop or drain request going in,
//! counters and readiness coming out. Each thread writes only its own [`ThreadStats`] (atomics,
//! uncontended); the status and metrics endpoints read them.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds (seconds) of the event latency histogram's buckets; the last bucket is +Inf.
pub const LATENCY_BOUNDS: [f64; 14] = [
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// One worker thread's published state.
#[derive(Debug, Default)]
pub struct ThreadStats {
    pub worker_key: std::sync::OnceLock<String>,
    /// Events handled (ON_CONNECT, ON_WEBSOCKET_CONNECT, ON_MESSAGE, ON_CLOSE).
    pub events: AtomicU64,
    /// Gateway addresses in the newest list from a register.
    pub listed: AtomicU64,
    /// Links the gateway has confirmed (or that stayed up past the confirmation wait).
    pub linked: AtomicU64,
    /// Addresses of the newest list beyond `worker.max_gateways` (not linked).
    pub gateways_over_cap: AtomicU64,
    /// Lists that named more gateway shards than `worker.max_gateways`.
    pub gateway_cap_hits: AtomicU64,
    /// Links dropped because their gateway left more than `send_to_gateway_buffer_size` unread.
    pub link_overflows: AtomicU64,
    /// A register has sent this thread a gateway list.
    pub has_list: AtomicBool,
    /// The thread has finished (`on_worker_stop` ran).
    pub finished: AtomicBool,
    /// Event latency: per-bucket counts (not cumulative) and the sum in microseconds.
    pub latency_buckets: [AtomicU64; LATENCY_BOUNDS.len() + 1],
    pub latency_sum_micros: AtomicU64,
    /// Each listed gateway's link: up or down, and since when (rewritten on every change).
    pub links: std::sync::Mutex<Vec<LinkState>>,
}

/// One worker thread's link to one gateway shard, for `gatewire status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkState {
    pub gateway: String,
    /// Linked and confirmed by the gateway (or up past the confirmation wait).
    pub up: bool,
    /// When it last went up or down.
    pub since: std::time::SystemTime,
}

impl ThreadStats {
    /// Records one handled event.
    pub fn observe(&self, took: Duration) {
        self.events.fetch_add(1, Ordering::Relaxed);
        let seconds = took.as_secs_f64();
        let bucket = LATENCY_BOUNDS
            .iter()
            .position(|&b| seconds <= b)
            .unwrap_or(LATENCY_BOUNDS.len());
        self.latency_buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.latency_sum_micros
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    }

    /// Linked to every gateway shard the registers list.
    pub fn ready(&self) -> bool {
        self.has_list.load(Ordering::SeqCst)
            && self.linked.load(Ordering::SeqCst) >= self.listed.load(Ordering::SeqCst)
    }
}

/// Requests to the worker threads and their published state.
#[derive(Debug)]
pub struct WorkerControl {
    stop: AtomicBool,
    drain: AtomicBool,
    pub threads: Vec<Arc<ThreadStats>>,
}

impl WorkerControl {
    pub fn new(threads: usize) -> WorkerControl {
        WorkerControl {
            stop: AtomicBool::new(false),
            drain: AtomicBool::new(false),
            threads: (0..threads).map(|_| Arc::default()).collect(),
        }
    }

    /// Every thread calls `on_worker_stop` and ends, without waiting for the gateways.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    /// Every thread asks each gateway to route it nothing new, handles what was already sent to
    /// it, then calls `on_worker_stop` and ends.
    pub fn drain(&self) {
        self.drain.store(true, Ordering::SeqCst);
    }

    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    pub fn draining(&self) -> bool {
        self.drain.load(Ordering::SeqCst)
    }

    /// Every thread is linked to every listed gateway shard.
    pub fn ready(&self) -> bool {
        self.threads.iter().all(|t| t.ready())
    }

    pub fn events(&self) -> u64 {
        self.threads
            .iter()
            .map(|t| t.events.load(Ordering::Relaxed))
            .sum()
    }

    /// Every thread's links: `(worker key, link)`.
    pub fn link_states(&self) -> Vec<(String, LinkState)> {
        self.threads
            .iter()
            .flat_map(|t| {
                let key = t.worker_key.get().cloned().unwrap_or_default();
                let links = t.links.lock().map(|l| l.clone()).unwrap_or_default();
                links.into_iter().map(move |l| (key.clone(), l))
            })
            .collect()
    }

    pub fn links(&self) -> u64 {
        self.threads
            .iter()
            .map(|t| t.linked.load(Ordering::Relaxed))
            .sum()
    }
}
