//! The Prometheus text endpoint (`[metrics] listen`, off by default). Each process renders its
//! own roles from what they publish (shard snapshots and answers, worker and register atomics);
//! the supervisor merges its children's texts family by family and serves `GET /metrics`.
//! Nothing here touches a shard's state.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::Ordering;
use std::time::Duration;

use indexmap::IndexMap;
use tracing::{info, warn};

use crate::gateway::{Inspection, ShardSnapshot};
use crate::register::RegisterStats;
use crate::worker::{LATENCY_BOUNDS, WorkerControl};

/// Exposition text under construction, one family at a time.
#[derive(Debug, Default)]
pub struct Exposition {
    out: String,
}

impl Exposition {
    /// A family: `samples` are `(labels, value)` with labels already formatted (`a="b",c="d"`).
    pub fn family<V: std::fmt::Display>(
        &mut self,
        name: &str,
        kind: &str,
        help: &str,
        samples: impl IntoIterator<Item = (String, V)>,
    ) {
        let _ = writeln!(self.out, "# HELP gatewire_{name} {help}");
        let _ = writeln!(self.out, "# TYPE gatewire_{name} {kind}");
        for (labels, value) in samples {
            if labels.is_empty() {
                let _ = writeln!(self.out, "gatewire_{name} {value}");
            } else {
                let _ = writeln!(self.out, "gatewire_{name}{{{labels}}} {value}");
            }
        }
    }

    pub fn finish(self) -> String {
        self.out
    }
}

/// The register's membership.
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

/// A per-shard family: name, type, help, and how to read it from a snapshot.
type ShardFamily = (
    &'static str,
    &'static str,
    &'static str,
    fn(&ShardSnapshot) -> u64,
);

/// The gateway's shards.
pub fn gateway(text: &mut Exposition, snapshots: &[ShardSnapshot], queues: &[Inspection]) {
    let per_shard = |value: fn(&ShardSnapshot) -> u64| -> Vec<(String, u64)> {
        snapshots
            .iter()
            .map(|s| (format!("shard=\"{}\"", s.index), value(s)))
            .collect()
    };
    let families: [ShardFamily; 19] = [
        ("connections", "gauge", "Client connections open.", |s| {
            s.connections
        }),
        ("worker_links", "gauge", "Business workers linked.", |s| {
            s.worker_links
        }),
        (
            "accepted_total",
            "counter",
            "Client connections accepted.",
            |s| s.stats.accepted,
        ),
        (
            "messages_in_total",
            "counter",
            "Messages received from clients.",
            |s| s.stats.messages_in,
        ),
        (
            "bytes_in_total",
            "counter",
            "Message bytes received from clients.",
            |s| s.stats.bytes_in,
        ),
        (
            "deliveries_total",
            "counter",
            "Messages queued to clients (fanout counts each recipient).",
            |s| s.stats.messages_out,
        ),
        (
            "bytes_out_total",
            "counter",
            "Bytes queued to clients.",
            |s| s.stats.bytes_out,
        ),
        (
            "events_to_workers_total",
            "counter",
            "Events sent to business workers.",
            |s| s.stats.events_to_workers,
        ),
        (
            "presence_events_total",
            "counter",
            "Group join and leave events sent to workers that asked for them (one per member change).",
            |s| s.stats.presence_events,
        ),
        (
            "no_worker_total",
            "counter",
            "Events no worker could take (the client was refused).",
            |s| s.stats.no_worker,
        ),
        (
            "slow_client_drops_total",
            "counter",
            "Messages dropped for clients over their output cap.",
            |s| s.stats.slow_client_drops,
        ),
        (
            "worker_buffer_drops_total",
            "counter",
            "Events dropped for worker links over their cap.",
            |s| s.stats.worker_buffer_drops,
        ),
        (
            "bad_inner_packets_total",
            "counter",
            "Malformed packets or ext payloads on inner links.",
            |s| s.stats.bad_inner_packets,
        ),
        (
            "unauthorized_links_total",
            "counter",
            "Inner links closed for a missing or wrong secret.",
            |s| s.stats.unauthorized_links,
        ),
        (
            "worker_key_takeovers_total",
            "counter",
            "Worker links closed because a newcomer claimed their worker key and took it over.",
            |s| s.stats.worker_key_takeovers,
        ),
        (
            "parked_total",
            "counter",
            "Idle clients parked (task and stream dropped, socket watched by epoll).",
            |s| s.stats.parked,
        ),
        (
            "unparked_total",
            "counter",
            "Parked clients given a task again (input, a full socket, a close).",
            |s| s.stats.unparked,
        ),
        (
            "fanout_pauses_total",
            "counter",
            "Pauses of the shard's fanout writers for its I/O (one per 2 ms of writing).",
            |s| s.fanout_pauses,
        ),
        (
            "overdue_fanout_pauses_total",
            "counter",
            "Fanout pauses ended by their 200 ms timer: the runtime did not report the pause's read.",
            |s| s.overdue_fanout_pauses,
        ),
    ];
    for (name, kind, help, value) in families {
        text.family(name, kind, help, per_shard(value));
    }
    let closes = snapshots.iter().flat_map(|s| {
        let st = &s.stats;
        [
            ("peer", st.closed_by_peer),
            ("worker", st.closed_by_worker),
            ("heartbeat", st.closed_by_heartbeat),
            ("no_worker", st.closed_no_worker),
            ("slow_client", st.closed_slow_client),
            ("bad_input", st.closed_bad_input),
            ("shutdown", st.closed_shutdown),
            ("auth", st.closed_auth),
        ]
        .map(|(reason, n)| (format!("shard=\"{}\",reason=\"{reason}\"", s.index), n))
    });
    text.family(
        "closed_total",
        "counter",
        "Client connections closed, by reason.",
        closes,
    );
    let refusals = snapshots.iter().flat_map(|s| {
        crate::net::jwt::Refusal::ALL.map(|r| {
            (
                format!("shard=\"{}\",reason=\"{}\"", s.index, r.label()),
                s.stats.auth_refusals[r as usize],
            )
        })
    });
    text.family(
        "auth_refusals_total",
        "counter",
        "WebSocket handshakes answered 401 for their token ([gateway.auth]), by reason.",
        refusals,
    );
    text.family(
        "auth_expired_closes_total",
        "counter",
        "Clients closed because their token expired unrefreshed.",
        per_shard(|s| s.stats.auth_expired_closes),
    );
    text.family(
        "auth_refreshes_total",
        "counter",
        "Tokens refreshed by clients.",
        per_shard(|s| s.stats.auth_refreshes),
    );
    text.family(
        "compressions_total",
        "counter",
        "Messages compressed (permessage-deflate): once per fanout per shard, once per message to one client.",
        per_shard(|s| s.stats.compressions),
    );
    text.family(
        "compressed_deliveries_total",
        "counter",
        "Deliveries that went out compressed.",
        per_shard(|s| s.stats.compressed_deliveries),
    );
    let limits = snapshots.iter().flat_map(|s| {
        s.stats.limit_hits().map(|(limit, n)| {
            (
                format!("shard=\"{}\",limit=\"{}\"", s.index, limit.label),
                n,
            )
        })
    });
    text.family(
        "limit_hits_total",
        "counter",
        "Times a bound was hit, by bound (see docs/operations.md, Limits).",
        limits,
    );
    let queued = queues.iter().flat_map(|q| {
        [
            (
                format!("shard=\"{}\",queue=\"clients\"", q.index),
                q.client_queue_bytes,
            ),
            (
                format!("shard=\"{}\",queue=\"workers\"", q.index),
                q.link_queue_bytes,
            ),
        ]
    });
    text.family(
        "output_queue_bytes",
        "gauge",
        "Bytes waiting in output queues, to clients and to workers.",
        queued,
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

/// Merges the expositions of several processes: one HELP/TYPE per family, every sample kept.
pub fn merge<'a>(texts: impl IntoIterator<Item = &'a str>) -> String {
    let mut families: IndexMap<String, (Vec<&str>, Vec<&str>)> = IndexMap::new();
    for text in texts {
        let mut current: Option<String> = None;
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let name = rest
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                let family = families.entry(name.clone()).or_default();
                if family.0.is_empty() {
                    family.0.push(line);
                }
                current = Some(name);
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let name = rest.split_whitespace().next().unwrap_or_default();
                let family = families.entry(name.to_owned()).or_default();
                if family.0.len() == 1 {
                    family.0.push(line);
                }
            } else if !line.is_empty()
                && let Some(name) = &current
            {
                families.entry(name.clone()).or_default().1.push(line);
            }
        }
    }
    let mut out = String::new();
    for (_, (head, samples)) in families {
        for line in head.into_iter().chain(samples) {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// Serves `GET /metrics` on `listen` from a thread of its own, rendering with `render`.
pub fn serve(
    listen: SocketAddr,
    render: impl Fn() -> String + Send + 'static,
) -> Result<std::thread::JoinHandle<()>, String> {
    let listener = TcpListener::bind(listen)
        .map_err(|e| format!("cannot listen on {listen} (metrics.listen): {e}"))?;
    info!(%listen, "metrics endpoint listening");
    Ok(std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let mut request = Vec::new();
            let mut chunk = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 16 * 1024 {
                match stream.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&chunk[..n]),
                }
            }
            let response = if request.starts_with(b"GET /metrics ") {
                let body = render();
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
            } else {
                "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    .to_owned()
            };
            if let Err(e) = stream.write_all(response.as_bytes()) {
                warn!(error = %e, "metrics response not written");
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shards_fanout_pauses_are_exported() {
        let snapshot = ShardSnapshot {
            index: 3,
            fanout_pauses: 120,
            overdue_fanout_pauses: 2,
            ..ShardSnapshot::default()
        };
        let mut text = Exposition::default();
        gateway(&mut text, &[snapshot], &[]);
        let text = text.finish();
        assert!(
            text.contains("gatewire_fanout_pauses_total{shard=\"3\"} 120\n"),
            "{text}"
        );
        assert!(
            text.contains("gatewire_overdue_fanout_pauses_total{shard=\"3\"} 2\n"),
            "{text}"
        );
    }

    #[test]
    fn merging_keeps_one_header_per_family_and_every_sample() {
        let a = "# HELP gatewire_x X.\n# TYPE gatewire_x gauge\ngatewire_x{worker=\"a\"} 1\n";
        let b = "# HELP gatewire_x X.\n# TYPE gatewire_x gauge\ngatewire_x{worker=\"b\"} 2\n# HELP gatewire_y Y.\n# TYPE gatewire_y counter\ngatewire_y 3\n";
        assert_eq!(
            merge([a, b]),
            "# HELP gatewire_x X.\n# TYPE gatewire_x gauge\ngatewire_x{worker=\"a\"} 1\ngatewire_x{worker=\"b\"} 2\n# HELP gatewire_y Y.\n# TYPE gatewire_y counter\ngatewire_y 3\n"
        );
    }
}
