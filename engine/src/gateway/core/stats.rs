//! A shard's counters. Plain integers owned by the shard; the status and metrics endpoints read
//! snapshots of them.

/// Why a client connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseCause {
    /// The client closed, or its socket failed.
    Peer,
    /// A worker kicked or destroyed it.
    Worker,
    /// Silent for too long.
    Heartbeat,
    /// No worker was connected to take its event.
    NoWorker,
    /// Its output queue overflowed under the `close` policy.
    SlowClient,
    /// It broke the client protocol (bad handshake, bad frame, oversize, bad UTF-8).
    BadInput,
    /// The gateway is stopping.
    Shutdown,
    /// Its token was refused at the handshake, or expired unrefreshed (`[gateway.auth]`).
    Auth,
}

/// Counters of one shard since start.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub accepted: u64,
    pub closed_by_peer: u64,
    pub closed_by_worker: u64,
    pub closed_by_heartbeat: u64,
    pub closed_no_worker: u64,
    pub closed_slow_client: u64,
    pub closed_bad_input: u64,
    pub closed_shutdown: u64,
    pub closed_auth: u64,
    /// Handshakes refused for their token, by [`crate::net::jwt::Refusal`] (its order).
    pub auth_refusals: [u64; 4],
    /// Clients closed because a compressed message of theirs inflated past `max_message_size`.
    pub inflated_too_large: u64,
    /// Messages compressed (permessage-deflate): once per fanout per shard, once per message to
    /// one client.
    pub compressions: u64,
    /// Deliveries that went out compressed.
    pub compressed_deliveries: u64,
    /// Clients closed because their token expired unrefreshed.
    pub auth_expired_closes: u64,
    /// Tokens refreshed by clients.
    pub auth_refreshes: u64,
    pub messages_in: u64,
    pub bytes_in: u64,
    pub messages_out: u64,
    pub bytes_out: u64,
    pub events_to_workers: u64,
    /// Group join/leave events sent to workers that asked for them (`presence.rs`).
    pub presence_events: u64,
    pub no_worker: u64,
    pub slow_client_drops: u64,
    pub slow_client_closes: u64,
    /// Messages not queued for clients already behind because the shard's client output went
    /// over `max_pending_output_bytes`.
    pub shard_output_drops: u64,
    pub worker_buffer_drops: u64,
    pub bad_inner_packets: u64,
    pub unauthorized_links: u64,
    /// Worker links closed because a newcomer claimed their worker key (it takes it over).
    pub worker_key_takeovers: u64,
    /// Pongs not queued for clients whose output was over its cap.
    pub pongs_dropped: u64,
    /// Inner links closed because their unread query replies went over the cap.
    pub inner_reply_overflows: u64,
    /// Clients closed for not finishing their handshake in time.
    pub handshake_timeouts: u64,
    /// Inner connections closed for sending no hello in time.
    pub inner_hello_timeouts: u64,
    /// Clients closed because the shard's incomplete messages went over their budget.
    pub pending_input_closes: u64,
    /// Clients closed for not finishing a message in time.
    pub message_timeouts: u64,
    /// Client messages refused (their client closed) because the packet would exceed what the
    /// worker said it accepts.
    pub worker_packet_refusals: u64,
    /// Connections refused at accept because the shard held `max_clients`.
    pub connection_limit_refusals: u64,
    /// Accepts that failed because descriptors ran out (EMFILE, ENFILE).
    pub accepts_without_fd: u64,
    /// Workers taken out of routing for not reading their link (`gateway.worker_stall_timeout`).
    pub worker_stalls: u64,
    /// Clients bound to those workers when they were taken out (they move on their next event).
    pub clients_moved_from_stalled: u64,
    /// Idle clients handed to the parking lot, and woken from it.
    pub parked: u64,
    pub unparked: u64,
}

/// How many bounds [`Stats::limit_hits`] reports.
pub const LIMITS: usize = 15;

/// One bound a peer can run into: its label in `gatewire_limit_hits_total{limit=…}`, the key that
/// sets it, and what a hit means.
#[derive(Debug, Clone, Copy)]
pub struct Limit {
    pub label: &'static str,
    pub key: &'static str,
    pub what: &'static str,
}

/// Reads one bound's hit count.
type HitCounter = fn(&Stats) -> u64;

/// Every bound, with where its hits are counted: the metrics family and the periodic warnings
/// both read this one table.
const LIMIT_TABLE: [(Limit, HitCounter); LIMITS] = [
    (
        Limit {
            label: "client_output",
            key: "gateway.send_to_client_buffer_size",
            what: "messages dropped for clients whose output queue is full (slow_client_policy = drop)",
        },
        |s| s.slow_client_drops,
    ),
    (
        Limit {
            label: "client_output_close",
            key: "gateway.send_to_client_buffer_size",
            what: "clients closed because their output queue is full (slow_client_policy = close)",
        },
        |s| s.slow_client_closes,
    ),
    (
        Limit {
            label: "shard_output",
            key: "gateway.max_pending_output_bytes",
            what: "messages dropped for clients with output queued because the shard's client output is over its budget",
        },
        |s| s.shard_output_drops,
    ),
    (
        Limit {
            label: "inflated_message",
            key: "gateway.max_message_size",
            what: "clients closed because a compressed message inflated past the maximum (WebSocket 1009)",
        },
        |s| s.inflated_too_large,
    ),
    (
        Limit {
            label: "pong",
            key: "gateway.send_to_client_buffer_size",
            what: "pongs not sent to clients whose output queue is full",
        },
        |s| s.pongs_dropped,
    ),
    (
        Limit {
            label: "worker_link",
            key: "gateway.send_to_worker_buffer_size",
            what: "events dropped because a worker link's output queue is full",
        },
        |s| s.worker_buffer_drops,
    ),
    (
        Limit {
            label: "inner_reply",
            key: "gateway.send_to_worker_buffer_size",
            what: "inner links closed because they left too many query replies unread",
        },
        |s| s.inner_reply_overflows,
    ),
    (
        Limit {
            label: "handshake_timeout",
            key: "gateway.handshake_timeout",
            what: "clients closed for not finishing their handshake in time",
        },
        |s| s.handshake_timeouts,
    ),
    (
        Limit {
            label: "inner_hello_timeout",
            key: "(fixed: 5 s)",
            what: "inner connections closed for sending no hello within 5 s",
        },
        |s| s.inner_hello_timeouts,
    ),
    (
        Limit {
            label: "pending_input",
            key: "gateway.max_pending_input_bytes",
            what: "clients closed because the shard's incomplete messages went over their budget",
        },
        |s| s.pending_input_closes,
    ),
    (
        Limit {
            label: "message_timeout",
            key: "gateway.message_timeout",
            what: "clients closed for not finishing a message in time",
        },
        |s| s.message_timeouts,
    ),
    (
        Limit {
            label: "worker_packet",
            key: "worker.max_packet_size (on the worker's host)",
            what: "clients closed because their message was larger than their worker accepts",
        },
        |s| s.worker_packet_refusals,
    ),
    (
        Limit {
            label: "max_connections",
            key: "gateway.max_connections",
            what: "connections refused at accept because the shard holds its share of gateway.max_connections",
        },
        |s| s.connection_limit_refusals,
    ),
    (
        Limit {
            label: "accept_no_fd",
            key: "RLIMIT_NOFILE (see gatewire tune check)",
            what: "accepts that failed because descriptors ran out; the shard backs off",
        },
        |s| s.accepts_without_fd,
    ),
    (
        Limit {
            label: "worker_stall",
            key: "gateway.worker_stall_timeout",
            what: "workers taken out of routing for not reading their link (their clients move)",
        },
        |s| s.worker_stalls,
    ),
];

impl Stats {
    /// Every bound with its hit count.
    pub fn limit_hits(&self) -> [(Limit, u64); LIMITS] {
        LIMIT_TABLE.map(|(limit, hits)| (limit, hits(self)))
    }

    pub fn closed(&mut self, cause: CloseCause) {
        let counter = match cause {
            CloseCause::Peer => &mut self.closed_by_peer,
            CloseCause::Worker => &mut self.closed_by_worker,
            CloseCause::Heartbeat => &mut self.closed_by_heartbeat,
            CloseCause::NoWorker => &mut self.closed_no_worker,
            CloseCause::SlowClient => &mut self.closed_slow_client,
            CloseCause::BadInput => &mut self.closed_bad_input,
            CloseCause::Shutdown => &mut self.closed_shutdown,
            CloseCause::Auth => &mut self.closed_auth,
        };
        *counter += 1;
    }
}

/// At most one warning per bound per this interval.
const WARN_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// Turns the bound counters into log lines: the first hit of a bound is logged at once, later
/// ones are summed into one line per bound per interval (read on the shard's publishing tick, so
/// the hot path only counts).
#[derive(Debug, Default)]
pub struct LimitWarnings {
    reported: [u64; LIMITS],
    logged_at: [Option<std::time::Instant>; LIMITS],
}

impl LimitWarnings {
    pub fn check(&mut self, stats: &Stats, shard: usize, now: std::time::Instant) {
        for (i, (limit, count)) in stats.limit_hits().into_iter().enumerate() {
            let new = count - self.reported[i];
            let due = self.logged_at[i].is_none_or(|at| now.duration_since(at) >= WARN_EVERY);
            if new == 0 || !due {
                continue;
            }
            tracing::warn!(
                shard,
                limit = limit.label,
                key = limit.key,
                "{new} {} (counted in gatewire_limit_hits_total{{limit=\"{}\"}})",
                limit.what,
                limit.label
            );
            self.reported[i] = count;
            self.logged_at[i] = Some(now);
        }
    }
}

/// What a shard publishes for the status and metrics endpoints (a copy, refreshed on a timer: the
/// shard's own state is never shared).
#[derive(Debug, Default, Clone)]
pub struct ShardSnapshot {
    pub index: usize,
    pub stats: Stats,
    pub connections: u64,
    pub worker_links: u64,
    /// The keys of the workers linked to this shard (`ip:name:index`).
    pub worker_keys: Vec<String>,
    /// The I/O side's: pauses of the shard's fanout writers for its I/O (`rt::pacing`), and
    /// those ended by the timer because the runtime did not report the pause's read.
    pub fanout_pauses: u64,
    pub overdue_fanout_pauses: u64,
    /// The shard has told its clients it is going away (`connections` counts after that).
    pub leaving: bool,
}

/// A question for a running shard, answered on its next publishing tick (at most
/// `PUBLISH_EVERY` later): nothing outside the shard reads its state directly.
#[derive(Debug)]
pub struct Inspect {
    /// Also list every client (`gatewire connections`); otherwise only the totals.
    pub clients: bool,
    pub reply: std::sync::mpsc::Sender<Inspection>,
}

/// A shard's answer to [`Inspect`].
#[derive(Debug, Default)]
pub struct Inspection {
    pub index: usize,
    /// Bytes waiting in client output queues.
    pub client_queue_bytes: u64,
    /// Bytes waiting in worker link output queues.
    pub link_queue_bytes: u64,
    pub clients: Vec<ClientRow>,
}

/// One line of `gatewire connections`.
#[derive(Debug, Clone)]
pub struct ClientRow {
    pub client_id: gatewire_proto::ClientId,
    pub remote: core::net::SocketAddr,
    pub uid: Option<String>,
    pub groups: Vec<String>,
    pub messages_in: u64,
    pub bytes_in: u64,
    pub queued_out: u64,
    pub worker: Option<String>,
}
