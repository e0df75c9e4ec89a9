//! The gateway's families: one sample per shard, read from the snapshots the shards publish.

use super::Exposition;
use crate::gateway::{Inspection, ShardSnapshot};
use crate::net::jwt::Refusal;

/// A per-shard family: name, type, help, and how to read it from a snapshot.
type ShardFamily = (
    &'static str,
    &'static str,
    &'static str,
    fn(&ShardSnapshot) -> u64,
);

/// Every family with one unlabelled (but for `shard`) sample per shard.
const SHARD_FAMILIES: [ShardFamily; 23] = [
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
    (
        "auth_expired_closes_total",
        "counter",
        "Clients closed because their token expired unrefreshed.",
        |s| s.stats.auth_expired_closes,
    ),
    (
        "auth_refreshes_total",
        "counter",
        "Tokens refreshed by clients.",
        |s| s.stats.auth_refreshes,
    ),
    (
        "compressions_total",
        "counter",
        "Messages compressed (permessage-deflate): once per fanout per shard, once per message to one client.",
        |s| s.stats.compressions,
    ),
    (
        "compressed_deliveries_total",
        "counter",
        "Deliveries that went out compressed.",
        |s| s.stats.compressed_deliveries,
    ),
];

/// The gateway's shards: the per-shard table, then the families labelled by a reason or a bound.
pub fn gateway(text: &mut Exposition, snapshots: &[ShardSnapshot], queues: &[Inspection]) {
    for (name, kind, help, value) in SHARD_FAMILIES {
        let samples = snapshots
            .iter()
            .map(|s| (format!("shard=\"{}\"", s.index), value(s)));
        text.family(name, kind, help, samples);
    }
    closes(text, snapshots);
    auth_refusals(text, snapshots);
    limit_hits(text, snapshots);
    output_queues(text, queues);
}

fn closes(text: &mut Exposition, snapshots: &[ShardSnapshot]) {
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
}

fn auth_refusals(text: &mut Exposition, snapshots: &[ShardSnapshot]) {
    let refusals = snapshots.iter().flat_map(|s| {
        Refusal::ALL.map(|r| {
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
}

fn limit_hits(text: &mut Exposition, snapshots: &[ShardSnapshot]) {
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
}

fn output_queues(text: &mut Exposition, queues: &[Inspection]) {
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
}
