//! The families of the roles other than the gateway: register, workers, store, HTTP API and
//! hook, each read from the atomics its role publishes.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use super::Exposition;
use crate::register::RegisterStats;
use crate::worker::{LATENCY_BOUNDS, WorkerControl};

/// The HTTP API's counters.
pub fn api(text: &mut Exposition, stats: &crate::http_api::ApiStats) {
    let one = |v: &std::sync::atomic::AtomicU64| [(String::new(), v.load(Ordering::Relaxed))];
    for (name, kind, help, value) in [
        (
            "api_connections",
            "gauge",
            "HTTP API connections open.",
            &stats.connections,
        ),
        (
            "api_requests_total",
            "counter",
            "HTTP API requests answered.",
            &stats.requests,
        ),
        (
            "api_calls_total",
            "counter",
            "Gateway methods the HTTP API ran (each call of a batch counts).",
            &stats.calls,
        ),
        (
            "api_errors_total",
            "counter",
            "HTTP API requests answered with an error, and failed calls inside batches.",
            &stats.errors,
        ),
        (
            "api_refused_total",
            "counter",
            "HTTP API connections refused at api.max_connections.",
            &stats.refused,
        ),
    ] {
        text.family(name, kind, help, one(value));
    }
}

/// The `http` app's counters (events POSTed to the backend).
pub fn http_hook(text: &mut Exposition, stats: &crate::apps::http_hook::HookStats) {
    let one = |v: &std::sync::atomic::AtomicU64| [(String::new(), v.load(Ordering::Relaxed))];
    for (name, help, value) in [
        (
            "hook_events_delivered_total",
            "Events POSTed to worker.http.url and answered with 2xx.",
            &stats.delivered,
        ),
        (
            "hook_attempts_retried_total",
            "Failed attempts tried again (refused or reset connections, timeouts, 5xx).",
            &stats.retried,
        ),
        (
            "hook_events_failed_total",
            "Events not delivered after every attempt, or refused with 4xx (their clients closed).",
            &stats.failed,
        ),
        (
            "hook_queue_overflows_total",
            "Clients closed for having worker.http.max_queued_per_client events waiting.",
            &stats.overflows,
        ),
        (
            "hook_command_errors_total",
            "Commands in the backend's answers that could not run.",
            &stats.command_errors,
        ),
    ] {
        text.family(name, "counter", help, one(value));
    }
}

/// The register's membership.
pub fn register(text: &mut Exposition, stats: &RegisterStats) {
    let one = |v: u64| [(String::new(), v)];
    text.family(
        "register_gateways",
        "gauge",
        "Gateway shards announced to the register.",
        one(stats.gateways.load(Ordering::Relaxed)),
    );
    text.family(
        "register_workers",
        "gauge",
        "Workers and GatewayClients following the register's list.",
        one(stats.workers.load(Ordering::Relaxed)),
    );
    text.family(
        "register_refused_total",
        "counter",
        "Register connections refused (bad line, wrong key, first-line timeout).",
        one(stats.refused.load(Ordering::Relaxed)),
    );
    text.family(
        "register_member_cap_hits_total",
        "counter",
        "Register connections closed at accept because register.max_members were open.",
        one(stats.member_cap_hits.load(Ordering::Relaxed)),
    );
}

/// The worker threads: events handled, links, and the event latency histogram (from an event's
/// arrival at the worker to the end of its callback, session save included).
pub fn worker(text: &mut Exposition, control: &WorkerControl) {
    let key = |t: &crate::worker::ThreadStats| {
        t.worker_key
            .get()
            .map_or_else(String::new, |k| format!("worker=\"{k}\""))
    };
    text.family(
        "worker_events_total",
        "counter",
        "Events handled by each worker.",
        control
            .threads
            .iter()
            .map(|t| (key(t), t.events.load(Ordering::Relaxed))),
    );
    text.family(
        "worker_gateway_links",
        "gauge",
        "Gateway shards each worker is linked to.",
        control
            .threads
            .iter()
            .map(|t| (key(t), t.linked.load(Ordering::Relaxed))),
    );
    text.family(
        "worker_link_overflows_total",
        "counter",
        "Gateway links dropped because the gateway left more than worker.send_to_gateway_buffer_size unread.",
        control
            .threads
            .iter()
            .map(|t| (key(t), t.link_overflows.load(Ordering::Relaxed))),
    );
    text.family(
        "worker_gateways_over_cap",
        "gauge",
        "Gateway shards of the newest register list each worker ignores (beyond worker.max_gateways).",
        control
            .threads
            .iter()
            .map(|t| (key(t), t.gateways_over_cap.load(Ordering::Relaxed))),
    );
    text.family(
        "worker_gateway_cap_hits_total",
        "counter",
        "Register lists that named more gateway shards than worker.max_gateways.",
        control
            .threads
            .iter()
            .map(|t| (key(t), t.gateway_cap_hits.load(Ordering::Relaxed))),
    );
    let mut samples = Vec::new();
    for t in &control.threads {
        let labels = key(t);
        let mut cumulative = 0u64;
        for (i, bucket) in t.latency_buckets.iter().enumerate() {
            cumulative += bucket.load(Ordering::Relaxed);
            let le = LATENCY_BOUNDS
                .get(i)
                .map_or_else(|| "+Inf".to_owned(), |b| b.to_string());
            samples.push((
                format!("_bucket{{{labels},le=\"{le}\"}}"),
                cumulative.to_string(),
            ));
        }
        let sum = t.latency_sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        samples.push((format!("_sum{{{labels}}}"), sum.to_string()));
        samples.push((format!("_count{{{labels}}}"), cumulative.to_string()));
    }
    let _ = writeln!(
        text.out,
        "# HELP gatewire_worker_event_seconds Time from an event's arrival at the worker to the end of its callback."
    );
    let _ = writeln!(text.out, "# TYPE gatewire_worker_event_seconds histogram");
    for (suffix, value) in samples {
        let _ = writeln!(text.out, "gatewire_worker_event_seconds{suffix} {value}");
    }
}

/// The gateway's store thread (with the store on).
pub fn store(text: &mut Exposition, stats: &crate::store::PublisherStats) {
    let one = |v: &std::sync::atomic::AtomicU64| [(String::new(), v.load(Ordering::Relaxed))];
    for (name, kind, help, value) in [
        (
            "store_connected",
            "gauge",
            "1 while the gateway's store thread is connected to Redis.",
            &stats.connected,
        ),
        (
            "store_entries",
            "gauge",
            "uid and group entries this gateway's shards hold in the store.",
            &stats.entries,
        ),
        (
            "store_changes_written_total",
            "counter",
            "Holder changes written to the store.",
            &stats.changes_written,
        ),
        (
            "store_resyncs_total",
            "counter",
            "Whole-state writes after connecting to Redis.",
            &stats.resyncs,
        ),
        (
            "store_errors_total",
            "counter",
            "Failed store connections and writes.",
            &stats.errors,
        ),
        (
            "store_queue_full_total",
            "counter",
            "Times a shard found the store queue full and kept its changes for the next try.",
            &stats.queue_full,
        ),
    ] {
        text.family(name, kind, help, one(value));
    }
}

/// How this process routed uid and group commands and queries (labelled with its pid: workers
/// of several processes are merged).
pub fn routing(text: &mut Exposition) {
    let routing = &crate::store::ROUTING;
    let label = format!("process=\"{}\"", std::process::id());
    for (name, help, value) in [
        (
            "routed_commands_total",
            "uid and group commands and queries sent.",
            &routing.sends,
        ),
        (
            "routed_packets_total",
            "Gateway packets those commands and queries took (store off: one per gateway).",
            &routing.packets,
        ),
        (
            "store_lookups_total",
            "Store lookups answered.",
            &routing.lookups,
        ),
        (
            "store_fallbacks_total",
            "uid and group commands sent to every gateway because the store did not answer.",
            &routing.fallbacks,
        ),
        (
            "unencodable_commands_total",
            "Commands not sent because their packet could not be built.",
            &routing.unencodable,
        ),
    ] {
        text.family(
            name,
            "counter",
            help,
            [(label.clone(), value.load(Ordering::Relaxed))],
        );
    }
}
