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

impl Stats {
    /// Every bound with its hit count: the metrics family and the periodic warnings both read
    /// this one table.
    pub fn limit_hits(&self) -> [(Limit, u64); LIMITS] {
        let limit = |label, key, what| Limit { label, key, what };
        [
            (
                limit(
                    "client_output",
                    "gateway.send_to_client_buffer_size",
                    "messages dropped for clients whose output queue is full (slow_client_policy = drop)",
                ),
                self.slow_client_drops,
            ),
            (
                limit(
                    "client_output_close",
                    "gateway.send_to_client_buffer_size",
                    "clients closed because their output queue is full (slow_client_policy = close)",
                ),
                self.slow_client_closes,
            ),
            (
                limit(
                    "shard_output",
                    "gateway.max_pending_output_bytes",
                    "messages dropped for clients with output queued because the shard's client output is over its budget",
                ),
                self.shard_output_drops,
            ),
            (
                limit(
                    "inflated_message",
                    "gateway.max_message_size",
                    "clients closed because a compressed message inflated past the maximum (WebSocket 1009)",
                ),
                self.inflated_too_large,
            ),
            (
                limit(
                    "pong",
                    "gateway.send_to_client_buffer_size",
                    "pongs not sent to clients whose output queue is full",
                ),
                self.pongs_dropped,
            ),
            (
                limit(
                    "worker_link",
                    "gateway.send_to_worker_buffer_size",
                    "events dropped because a worker link's output queue is full",
                ),
                self.worker_buffer_drops,
            ),
            (
                limit(
                    "inner_reply",
                    "gateway.send_to_worker_buffer_size",
                    "inner links closed because they left too many query replies unread",
                ),
                self.inner_reply_overflows,
            ),
            (
                limit(
                    "handshake_timeout",
                    "gateway.handshake_timeout",
                    "clients closed for not finishing their handshake in time",
                ),
                self.handshake_timeouts,
            ),
            (
                limit(
                    "inner_hello_timeout",
                    "(fixed: 5 s)",
                    "inner connections closed for sending no hello within 5 s",
                ),
                self.inner_hello_timeouts,
            ),
            (
                limit(
                    "pending_input",
                    "gateway.max_pending_input_bytes",
                    "clients closed because the shard's incomplete messages went over their budget",
                ),
                self.pending_input_closes,
            ),
            (
                limit(
                    "message_timeout",
                    "gateway.message_timeout",
                    "clients closed for not finishing a message in time",
                ),
                self.message_timeouts,
            ),
            (
                limit(
                    "worker_packet",
                    "worker.max_packet_size (on the worker's host)",
                    "clients closed because their message was larger than their worker accepts",
                ),
                self.worker_packet_refusals,
            ),
            (
                limit(
                    "max_connections",
                    "gateway.max_connections",
                    "connections refused at accept because the shard holds its share of gateway.max_connections",
                ),
                self.connection_limit_refusals,
            ),
            (
                limit(
                    "accept_no_fd",
                    "RLIMIT_NOFILE (see gatewire tune check)",
                    "accepts that failed because descriptors ran out; the shard backs off",
                ),
                self.accepts_without_fd,
            ),
            (
                limit(
                    "worker_stall",
                    "gateway.worker_stall_timeout",
                    "workers taken out of routing for not reading their link (their clients move)",
                ),
                self.worker_stalls,
            ),
        ]
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
