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
    pub messages_in: u64,
    pub bytes_in: u64,
    pub messages_out: u64,
    pub bytes_out: u64,
    pub events_to_workers: u64,
    pub no_worker: u64,
    pub slow_client_drops: u64,
    pub slow_client_closes: u64,
    pub worker_buffer_drops: u64,
    pub bad_inner_packets: u64,
    pub unauthorized_links: u64,
    /// Idle clients handed to the parking lot, and woken from it.
    pub parked: u64,
    pub unparked: u64,
}

impl Stats {
    pub fn closed(&mut self, cause: CloseCause) {
        let counter = match cause {
            CloseCause::Peer => &mut self.closed_by_peer,
            CloseCause::Worker => &mut self.closed_by_worker,
            CloseCause::Heartbeat => &mut self.closed_by_heartbeat,
            CloseCause::NoWorker => &mut self.closed_no_worker,
            CloseCause::SlowClient => &mut self.closed_slow_client,
            CloseCause::BadInput => &mut self.closed_bad_input,
        };
        *counter += 1;
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
    pub remote: std::net::SocketAddr,
    pub uid: Option<String>,
    pub groups: Vec<String>,
    pub messages_in: u64,
    pub bytes_in: u64,
    pub queued_out: u64,
    pub worker: Option<String>,
}
