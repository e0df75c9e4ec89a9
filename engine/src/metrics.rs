//! The Prometheus text endpoint (`[metrics] listen`, off by default): one small thread serving
//! `GET /metrics` from the snapshots the shards publish. Nothing here touches a shard's state.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tracing::{info, warn};

use crate::gateway::ShardSnapshot;

/// Renders the exposition text for these shards.
pub fn render(shards: &[Arc<Mutex<ShardSnapshot>>]) -> String {
    let snapshots: Vec<ShardSnapshot> = shards
        .iter()
        .filter_map(|s| s.lock().ok().map(|s| s.clone()))
        .collect();
    let mut out = String::new();
    let mut family = |name: &str, kind: &str, help: &str, value: &dyn Fn(&ShardSnapshot) -> u64| {
        let _ = writeln!(out, "# HELP gatewire_{name} {help}");
        let _ = writeln!(out, "# TYPE gatewire_{name} {kind}");
        for s in &snapshots {
            let _ = writeln!(out, "gatewire_{name}{{shard=\"{}\"}} {}", s.index, value(s));
        }
    };
    family("connections", "gauge", "Client connections open.", &|s| {
        s.connections
    });
    family("worker_links", "gauge", "Business workers linked.", &|s| {
        s.worker_links
    });
    family(
        "accepted_total",
        "counter",
        "Client connections accepted.",
        &|s| s.stats.accepted,
    );
    family(
        "messages_in_total",
        "counter",
        "Messages received from clients.",
        &|s| s.stats.messages_in,
    );
    family(
        "bytes_in_total",
        "counter",
        "Message bytes received from clients.",
        &|s| s.stats.bytes_in,
    );
    family(
        "deliveries_total",
        "counter",
        "Messages queued to clients (fanout counts each recipient).",
        &|s| s.stats.messages_out,
    );
    family(
        "bytes_out_total",
        "counter",
        "Bytes queued to clients.",
        &|s| s.stats.bytes_out,
    );
    family(
        "events_to_workers_total",
        "counter",
        "Events sent to business workers.",
        &|s| s.stats.events_to_workers,
    );
    family(
        "no_worker_total",
        "counter",
        "Events no worker could take (the client was refused).",
        &|s| s.stats.no_worker,
    );
    family(
        "slow_client_drops_total",
        "counter",
        "Messages dropped for clients over their output cap.",
        &|s| s.stats.slow_client_drops,
    );
    family(
        "worker_buffer_drops_total",
        "counter",
        "Events dropped for worker links over their cap.",
        &|s| s.stats.worker_buffer_drops,
    );
    family(
        "bad_inner_packets_total",
        "counter",
        "Malformed packets or ext payloads on inner links.",
        &|s| s.stats.bad_inner_packets,
    );
    family(
        "unauthorized_links_total",
        "counter",
        "Inner links closed for a missing or wrong secret.",
        &|s| s.stats.unauthorized_links,
    );
    let _ = writeln!(
        out,
        "# HELP gatewire_closed_total Client connections closed, by reason."
    );
    let _ = writeln!(out, "# TYPE gatewire_closed_total counter");
    for s in &snapshots {
        let st = &s.stats;
        for (reason, n) in [
            ("peer", st.closed_by_peer),
            ("worker", st.closed_by_worker),
            ("heartbeat", st.closed_by_heartbeat),
            ("no_worker", st.closed_no_worker),
            ("slow_client", st.closed_slow_client),
            ("bad_input", st.closed_bad_input),
        ] {
            let _ = writeln!(
                out,
                "gatewire_closed_total{{shard=\"{}\",reason=\"{reason}\"}} {n}",
                s.index
            );
        }
    }
    out
}

/// Serves `GET /metrics` on `listen` from a thread of its own.
pub fn serve(
    listen: SocketAddr,
    shards: Vec<Arc<Mutex<ShardSnapshot>>>,
) -> Result<std::thread::JoinHandle<()>, String> {
    let listener =
        TcpListener::bind(listen).map_err(|e| format!("metrics.listen {listen}: {e}"))?;
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
                let body = render(&shards);
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
