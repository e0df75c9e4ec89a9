//! One shard's state, driven without any I/O (the quinn-proto idea): clients with their sessions,
//! uids and groups, worker links, the router and the counters. The I/O tasks feed it events
//! (accept, client message, worker packet, close, heartbeat tick) and it queues bytes on outboxes
//! and wakes their tasks. Tests drive it directly.

use core::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::collections::HashMap;
use std::path::PathBuf;
use std::rc::Rc;

use bytes::{BufMut, Bytes, BytesMut};
use gatewire_proto::php::Key;
use gatewire_proto::{ClientId, Cmd, Flags, Header, packet::HEADER_LEN};
use indexmap::{IndexMap, IndexSet};

use crate::config::{ClientProtocol, GatewayConfig, SlowClientPolicy};
use crate::gateway::core::client_table::ClientTable;
use crate::gateway::core::direct_writes::DirectWrites;
use crate::gateway::core::member_index::MemberIndex;
use crate::gateway::core::parking_requests::ParkingRequests;
use crate::gateway::core::pending_input::PendingInput;
use crate::gateway::core::router::Router;
use crate::gateway::core::stats::{ClientRow, CloseCause, Inspection, ShardSnapshot, Stats};
use crate::gateway::core::token_expiry::TokenExpiry;

/// The largest packet an inner link may send before it authenticates: a hello or a query, never
/// a client's message, so an unauthenticated peer cannot make the shard buffer megabytes.
pub const MAX_PACKET_BEFORE_AUTH: usize = 64 * 1024;

/// An inner connection must identify itself (its first packet complete) within this time.
pub const INNER_HELLO_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
use crate::log_limit::warn_limited;
use crate::net::{Closing, Frame, Outbox, QueuedTally};
use crate::store::HoldingChanges;

/// What a shard needs to know about itself.
#[derive(Debug, Clone)]
pub struct ShardSettings {
    pub index: usize,
    pub lan_ip: Ipv4Addr,
    pub inner_port: u16,
    pub public_port: u16,
    pub protocol: ClientProtocol,
    pub secret_key: String,
    pub send_to_client_buffer_size: usize,
    pub send_to_worker_buffer_size: usize,
    pub slow_client_policy: SlowClientPolicy,
    pub max_message_size: usize,
    pub max_packet_size: usize,
    /// permessage-deflate offered to clients, and the smallest message compressed.
    pub compression: bool,
    pub compression_min_size: usize,
    pub max_pending_input_bytes: usize,
    pub max_pending_output_bytes: usize,
    pub message_timeout: f64,
    /// Most clients this shard holds (`gateway.max_connections` over the shards, or what its
    /// descriptor table allows); set by the I/O side once it knows its fd table.
    pub max_clients: usize,
    pub worker_stall_timeout: f64,
    pub ping_interval: f64,
    pub ping_not_response_limit: u32,
    pub ping_data: Bytes,
    pub handshake_timeout: f64,
    pub static_dir: Option<PathBuf>,
    pub builtin_page: Option<&'static str>,
    /// Record which uids and groups the shard starts and stops holding, for the store.
    pub record_holdings: bool,
    /// With `[gateway.auth]` on, the close code for an expired token; clients then reach
    /// workers only once their token is verified (`token_auth.rs`).
    pub auth_close_code: Option<u16>,
    /// The verifier of those tokens (read by the I/O side, `gateway/client.rs`).
    pub token_verifier: Option<std::sync::Arc<crate::net::jwt::TokenVerifier>>,
}

impl ShardSettings {
    pub fn new(config: &GatewayConfig, index: usize, public_port: u16) -> ShardSettings {
        ShardSettings {
            index,
            lan_ip: config.lan_ip,
            inner_port: config.start_port + index as u16,
            public_port,
            protocol: config.listen.protocol,
            secret_key: config.secret_key.clone(),
            send_to_client_buffer_size: config.send_to_client_buffer_size,
            send_to_worker_buffer_size: config.send_to_worker_buffer_size,
            slow_client_policy: config.slow_client_policy,
            max_message_size: config.max_message_size,
            max_packet_size: config.max_packet_size,
            compression: config.compression,
            compression_min_size: config.compression_min_size,
            max_pending_input_bytes: config.max_pending_input_bytes,
            max_pending_output_bytes: config.max_pending_output_bytes,
            message_timeout: config.message_timeout,
            max_clients: usize::MAX,
            worker_stall_timeout: config.worker_stall_timeout,
            ping_interval: config.ping_interval,
            ping_not_response_limit: config.ping_not_response_limit,
            ping_data: Bytes::from(config.ping_data.clone().into_bytes()),
            handshake_timeout: config.handshake_timeout,
            static_dir: config.static_dir.clone(),
            builtin_page: config.builtin_page,
            record_holdings: false,
            auth_close_code: config.auth.enabled().then(|| config.auth.close_code()),
            token_verifier: None,
        }
    }
}

/// One client connection's state.
#[derive(Debug)]
pub struct Client {
    /// The header every event for this client carries (cmd and flag are set per event).
    pub header: Header,
    /// The stored session: opaque serialized bytes, `""` when none.
    pub session: Bytes,
    /// uid and groups, boxed: most clients of a push service have neither, and an idle client
    /// should cost as little as possible.
    pub membership: Option<Box<Membership>>,
    /// Heartbeat counter: -1 right after a message.
    pub ping_count: i32,
    /// The worker key this client's events go to.
    pub worker: Option<Rc<str>>,
    pub outbox: Outbox,
    pub messages_in: u64,
    pub bytes_in: u64,
    /// Why a close was requested, for the counters once the connection is gone.
    pub close_cause: Option<CloseCause>,
    /// Sent something since the last idle sweep.
    pub active: bool,
    /// Parked: no task; the I/O layer's parking lot holds its socket (see `idle`).
    pub parked: bool,
    /// Parked, with output waiting for the parking lot's next flush.
    pub flush_pending: bool,
    /// Handshake sweeps this client has been through still in its handshake.
    pub handshake_sweeps: u8,
    /// Whether workers were told of this client (ON_CONNECT). With `[gateway.auth]` on, not
    /// before its token is verified; a client refused then closes without ON_CLOSE.
    pub announced: bool,
    /// permessage-deflate, when negotiated: the largest window (bits) the client accepts from
    /// us; 0 when not.
    pub deflate_window_bits: u8,
}

/// A client's uid and groups.
#[derive(Debug, Default)]
pub struct Membership {
    pub uid: Option<Key>,
    /// `None` until the client first joins a group (SELECT reports null then).
    pub groups: Option<IndexSet<Key>>,
}

impl Client {
    pub fn uid(&self) -> Option<&Key> {
        self.membership.as_ref()?.uid.as_ref()
    }

    pub fn groups(&self) -> Option<&IndexSet<Key>> {
        self.membership.as_ref()?.groups.as_ref()
    }

    /// The membership record, created on first use.
    pub fn membership_mut(&mut self) -> &mut Membership {
        self.membership.get_or_insert_default()
    }

    /// The client's address as the header carries it.
    pub fn remote(&self) -> SocketAddr {
        SocketAddr::from((self.header.client_ip, self.header.client_port))
    }
}

/// An inner connection: a worker, a GatewayClient, or not yet known.
#[derive(Debug)]
pub struct Link {
    pub peer: SocketAddr,
    pub authorized: bool,
    /// Sent its hello (or, with no secret, a first valid command: PHP's GatewayClient sends no
    /// hello then). Until then its packets are bounded by [`MAX_PACKET_BEFORE_AUTH`], and it is
    /// closed if that takes longer than [`INNER_HELLO_TIMEOUT`].
    pub identified: bool,
    /// The largest packet the worker on this link accepts, when it said (gatewire workers do).
    pub max_packet: Option<usize>,
    /// A gatewire worker: it answers `CMD_WORKER_ALIVE` (see `worker_stall.rs`).
    pub answers_probes: bool,
    /// A worker that asked for group presence events (`presence.rs`).
    pub presence: bool,
    /// The stall sweep that asked `CMD_WORKER_ALIVE`, while unanswered.
    pub asked_at: Option<u64>,
    /// Taken out of routing for leaving the question unanswered.
    pub stalled: bool,
    /// Set for workers (`"<ip>:<name>:<index>"`): a routing target.
    pub worker_key: Option<Rc<str>>,
    pub outbox: Outbox,
    /// Staging for packet headers, split off into `Bytes` without an allocation per event.
    staging: BytesMut,
}

/// The shard.
#[derive(Debug)]
pub struct Shard {
    pub(in crate::gateway::core) settings: ShardSettings,
    pub(in crate::gateway::core) clients: ClientTable<Client>,
    last_connection_id: u32,
    pub(in crate::gateway::core) uids: MemberIndex,
    pub(in crate::gateway::core) groups: MemberIndex,
    pub(in crate::gateway::core) links: HashMap<u64, Link>,
    next_link_id: u64,
    /// Workers by key, in connection order: the routing targets.
    pub(in crate::gateway::core) workers: IndexMap<Rc<str>, u64>,
    pub(in crate::gateway::core) router: Router,
    pub(in crate::gateway::core) stats: Stats,
    /// Set when idle clients are parked (`gateway.park_after` > 0).
    pub(in crate::gateway::core) parking: Option<ParkingRequests>,
    /// Incomplete client messages, against the shard's budget and time limit.
    pub(in crate::gateway::core) pending_input: PendingInput,
    /// Bytes queued for all this shard's clients and not yet written, against
    /// `max_pending_output_bytes`.
    pub(in crate::gateway::core) pending_output: QueuedTally,
    /// When admitted clients' tokens expire (`token_expiry.rs`).
    pub(in crate::gateway::core) token_expiry: TokenExpiry,
    /// Stall sweeps so far (`worker_stall.rs`).
    pub(in crate::gateway::core) stall_sweeps: u64,
    /// Going away: clients were told (close 1001) and new connections are refused.
    leaving: bool,
    /// Open worker links that asked for group presence events (`presence.rs`): none, and a
    /// member change costs nothing more.
    pub(in crate::gateway::core) presence_links: usize,
    /// Replies to single clients waiting for the end of the link batch (`direct_writes.rs`).
    pub(in crate::gateway::core) direct_writes: DirectWrites,
}

impl Shard {
    pub fn new(settings: ShardSettings, router: Router) -> Shard {
        let index = || {
            if settings.record_holdings {
                MemberIndex::recording()
            } else {
                MemberIndex::default()
            }
        };
        Shard {
            clients: ClientTable::default(),
            last_connection_id: 0,
            uids: index(),
            groups: index(),
            settings,
            links: HashMap::new(),
            next_link_id: 0,
            workers: IndexMap::new(),
            router,
            stats: Stats::default(),
            parking: None,
            pending_input: PendingInput::default(),
            pending_output: QueuedTally::default(),
            token_expiry: TokenExpiry::default(),
            stall_sweeps: 0,
            leaving: false,
            presence_links: 0,
            direct_writes: DirectWrites::default(),
        }
    }

    // ---- what the I/O side reads and writes --------------------------------------------------

    /// The uids and groups this shard started or stopped holding since the last call (with
    /// `record_holdings`), for the store.
    pub fn take_holding_changes(&mut self) -> HoldingChanges {
        HoldingChanges {
            uids: self.uids.take_changes(),
            groups: self.groups.take_changes(),
        }
    }

    /// Changes taken but not delivered (the store's queue was full): kept for the next try,
    /// under any newer change.
    pub fn put_back_holding_changes(&mut self, changes: HoldingChanges) {
        self.uids.put_back(changes.uids);
        self.groups.put_back(changes.groups);
    }

    /// Keys with holding changes not yet taken.
    pub fn holding_changes_pending(&self) -> usize {
        self.uids.changes_pending() + self.groups.changes_pending()
    }

    pub fn settings(&self) -> &ShardSettings {
        &self.settings
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The counters and sizes a shard publishes on its tick.
    pub fn snapshot(&self, index: usize) -> ShardSnapshot {
        ShardSnapshot {
            index,
            stats: self.stats.clone(),
            connections: self.clients.len() as u64,
            worker_links: self.workers.len() as u64,
            worker_keys: self.workers.keys().map(|k| k.to_string()).collect(),
            leaving: self.leaving,
            ..ShardSnapshot::default()
        }
    }

    /// Whether the shard is going away (new connections are refused).
    pub fn leaving(&self) -> bool {
        self.leaving
    }

    /// Whether the shard holds `max_clients` already: a new connection is then refused (counted
    /// here; the I/O side answers and closes it).
    pub fn full(&mut self) -> bool {
        let full = self.clients.len() >= self.settings.max_clients;
        if full {
            self.stats.connection_limit_refusals += 1;
        }
        full
    }

    /// An accept failed because descriptors ran out.
    pub fn accept_without_fd(&mut self) {
        self.stats.accepts_without_fd += 1;
    }

    /// Whether client `id` is gone or being closed: what it sends from then on is ignored (as
    /// workerman pauses reading a connection it closes).
    pub fn client_closing(&self, id: u32) -> bool {
        self.clients
            .get(&id)
            .is_none_or(|c| c.outbox.closing().is_some())
    }

    pub fn has_client(&self, id: u32) -> bool {
        self.clients.contains_key(&id)
    }

    pub fn client_remote(&self, id: u32) -> Option<SocketAddr> {
        self.clients.get(&id).map(Client::remote)
    }

    /// Client `id` negotiated permessage-deflate (before its 101 is queued).
    pub fn client_deflates(
        &mut self,
        id: u32,
        agreement: gatewire_proto::websocket::deflate::DeflateAgreement,
    ) {
        if let Some(client) = self.clients.get_mut(&id) {
            client.deflate_window_bits = agreement.server_window_bits;
        }
    }

    /// A compressed client message that inflated past `max_message_size` (counted; the I/O side
    /// closes the client).
    pub fn inflated_too_large(&mut self) {
        self.stats.inflated_too_large += 1;
    }

    /// The uid client `id` is bound to.
    pub fn client_uid(&self, id: u32) -> Option<Key> {
        self.clients.get(&id)?.uid().cloned()
    }

    /// What client `id` has queued: the driver writes from it.
    pub fn client_outbox(&mut self, id: u32) -> Option<&mut Outbox> {
        self.clients.get_mut(&id).map(|c| &mut c.outbox)
    }

    /// Why a close of client `id` was asked for, if one was.
    pub fn requested_close(&self, id: u32) -> Option<CloseCause> {
        self.clients.get(&id).and_then(|c| c.close_cause)
    }

    /// Ends client `id` with `last_words` (an HTTP answer, a close frame): output queued before
    /// its handshake finished is dropped (it was for a WebSocket that never opened), output
    /// queued after goes first; the connection closes once everything is written.
    pub fn close_client_with(&mut self, id: u32, last_words: Bytes, cause: CloseCause) {
        if let Some(client) = self.clients.get_mut(&id) {
            if client.outbox.is_held() {
                client.outbox.discard();
            }
            client.outbox.release();
            client.outbox.push(last_words);
        }
        self.close_client_after_flush(id, cause);
    }

    pub fn has_link(&self, link_id: u64) -> bool {
        self.links.contains_key(&link_id)
    }

    /// What inner link `link_id` has queued: the driver writes from it.
    pub fn link_outbox(&mut self, link_id: u64) -> Option<&mut Outbox> {
        self.links.get_mut(&link_id).map(|l| &mut l.outbox)
    }

    /// The largest packet inner link `link_id` may send now: `max_packet_size` once it has
    /// identified itself, at most [`MAX_PACKET_BEFORE_AUTH`] before, whatever the secret.
    pub fn link_max_packet(&self, link_id: u64) -> usize {
        match self.links.get(&link_id) {
            Some(link) if link.identified => self.settings.max_packet_size,
            _ => MAX_PACKET_BEFORE_AUTH.min(self.settings.max_packet_size),
        }
    }

    /// Whether inner link `link_id` has identified itself (see [`Link::identified`]).
    pub fn link_identified(&self, link_id: u64) -> bool {
        self.links.get(&link_id).is_some_and(|l| l.identified)
    }

    /// [`INNER_HELLO_TIMEOUT`] after inner link `link_id` opened: closed (and counted) if it has
    /// not identified itself yet.
    pub fn link_hello_due(&mut self, link_id: u64) {
        let Some(link) = self.links.get(&link_id) else {
            return;
        };
        if link.identified {
            return;
        }
        let peer = link.peer;
        self.stats.inner_hello_timeouts += 1;
        warn_limited(
            "inner hello timeout",
            &format!(
                "{peer} sent no hello on the inner port within {} s, closing",
                INNER_HELLO_TIMEOUT.as_secs()
            ),
        );
        self.close_link(link_id);
    }

    /// Inner link `link_id` sent bytes that are no packet: counted, and the link closed.
    pub fn bad_inner_stream(&mut self, link_id: u64) {
        self.stats.bad_inner_packets += 1;
        self.close_link(link_id);
    }

    // ---- clients -----------------------------------------------------------------------------

    /// Registers an accepted client and sends ON_CONNECT. Returns its connection id, or `None` when
    /// no worker could take the event (the client is then refused, as GatewayWorker does).
    pub fn accept_client(&mut self, remote: SocketAddr) -> Option<u32> {
        let id = self.allocate_connection_id();
        let client_ip = match remote.ip() {
            IpAddr::V4(ip) => ip,
            IpAddr::V6(ip) => ip.to_ipv4_mapped().unwrap_or(Ipv4Addr::UNSPECIFIED),
        };
        let header = Header {
            cmd: Cmd::OnConnect,
            local_ip: self.settings.lan_ip,
            local_port: self.settings.inner_port,
            client_ip,
            client_port: remote.port(),
            connection_id: id,
            flag: Flags::SCALAR,
            gateway_port: self.settings.public_port,
        };
        let outbox = match self.settings.protocol.has_handshake() {
            true => Outbox::held(),
            false => Outbox::default(),
        }
        .counted_in(&self.pending_output);
        self.clients.insert(
            id,
            Client {
                header,
                session: Bytes::new(),
                membership: None,
                ping_count: -1,
                worker: None,
                outbox,
                messages_in: 0,
                bytes_in: 0,
                close_cause: None,
                active: true,
                parked: false,
                flush_pending: false,
                handshake_sweeps: 0,
                announced: !self.token_auth(),
                deflate_window_bits: 0,
            },
        );
        self.stats.accepted += 1;
        if self.token_auth() {
            // ON_CONNECT waits for the token (token_auth.rs); a worker must be there to take it.
            if self.has_workers() {
                return Some(id);
            }
            self.stats.no_worker += 1;
            self.destroy_client(id, CloseCause::NoWorker);
            return None;
        }
        if self.send_event(id, Cmd::OnConnect, Flags::SCALAR, &Bytes::new()) {
            Some(id)
        } else {
            self.stats.no_worker += 1;
            self.destroy_client(id, CloseCause::NoWorker);
            None
        }
    }

    /// The next id not in use, starting at 1 and wrapping after u32::MAX (protocol §4).
    fn allocate_connection_id(&mut self) -> u32 {
        loop {
            self.last_connection_id = self.last_connection_id.checked_add(1).unwrap_or(1);
            if !self.clients.contains_key(&self.last_connection_id) {
                return self.last_connection_id;
            }
        }
    }

    /// A decoded client message: resets the heartbeat and forwards ON_MESSAGE (`binary` sets the
    /// gatewire `BINARY` flag bit, which PHP workers ignore).
    pub fn client_message(&mut self, id: u32, message: Bytes, binary: bool) {
        let Some(client) = self.clients.get_mut(&id) else {
            return;
        };
        client.ping_count = -1;
        client.active = true;
        client.messages_in += 1;
        client.bytes_in += message.len() as u64;
        self.stats.messages_in += 1;
        self.stats.bytes_in += message.len() as u64;
        let flag = Flags::SCALAR.with_binary(binary);
        if !self.send_event(id, Cmd::OnMessage, flag, &message) {
            self.stats.no_worker += 1;
            self.destroy_client(id, CloseCause::NoWorker);
        }
    }

    /// The WebSocket handshake's request data (serialized get/server/cookie). Returns false when
    /// no worker took it (the client is then destroyed).
    pub fn websocket_connect(&mut self, id: u32, data: Bytes, response_101: Bytes) -> bool {
        if self.send_event(id, Cmd::OnWebSocketConnect, Flags::default(), &data) {
            if let Some(client) = self.clients.get_mut(&id) {
                // The 101 goes before whatever workers queued meanwhile, which it releases.
                client.outbox.push_front(response_101);
                client.outbox.release();
            }
            true
        } else {
            self.stats.no_worker += 1;
            self.destroy_client(id, CloseCause::NoWorker);
            false
        }
    }

    /// The client's connection is gone: a group leave per group it was in (to a worker that asked
    /// for presence), then ON_CLOSE (with the last session), then the client leaves the router
    /// and every index.
    pub fn client_closed(&mut self, id: u32, cause: CloseCause) {
        let Some(client) = self.clients.get(&id) else {
            return;
        };
        if !client.announced {
            // Refused (or gone) before its token was verified: no worker knows of it.
            self.forget_client(id, cause);
            return;
        }
        if self.presence_links > 0
            && let Some(groups) = client.groups().filter(|g| !g.is_empty()).cloned()
        {
            for group in &groups {
                self.group_left(id, group);
            }
        }
        self.send_event(id, Cmd::OnClose, Flags::SCALAR, &Bytes::new());
        self.forget_client(id, cause);
    }

    fn forget_client(&mut self, id: u32, cause: CloseCause) {
        let Some(client) = self.clients.remove(&id) else {
            return;
        };
        self.forget_pending_input(id);
        if !self.token_expiry.is_empty() {
            self.token_expiry.remove(id);
        }
        if let Some(worker) = &client.worker {
            self.router.released(worker);
        }
        if client.parked {
            // The parking lot finds it gone and closes its socket.
            self.unpark_soon(id);
        }
        if let Some(uid) = client.uid() {
            self.uids.remove(uid, id);
        }
        for group in client.groups().into_iter().flatten() {
            self.groups.remove(group, id);
        }
        self.stats.closed(cause);
    }

    /// The gateway is stopping: every client is told so (a WebSocket client gets a close frame
    /// 1001 "going away", after what was queued to it) and closed once its output is written. A
    /// client still in its WebSocket handshake is closed at once.
    pub fn going_away(&mut self) {
        self.leaving = true;
        let websocket = matches!(
            self.settings.protocol,
            ClientProtocol::WebSocket | ClientProtocol::SecureWebSocket
        );
        let ids: Vec<u32> = self.clients.keys().copied().collect();
        for id in ids {
            let Some(client) = self.clients.get_mut(&id) else {
                continue;
            };
            if client.outbox.is_held() {
                self.destroy_client(id, CloseCause::Shutdown);
                continue;
            }
            if websocket && client.outbox.closing().is_none() {
                let close = gatewire_proto::websocket::close_frame(
                    gatewire_proto::websocket::CloseCode::GOING_AWAY,
                    "",
                );
                client.outbox.push(close);
            }
            self.close_client_after_flush(id, CloseCause::Shutdown);
        }
    }

    /// Ends a client at once, dropping its output (CMD_DESTROY, no worker, heartbeat).
    pub fn destroy_client(&mut self, id: u32, cause: CloseCause) {
        if let Some(client) = self.clients.get_mut(&id) {
            client.outbox.close(Closing::Now);
        }
        self.client_closed(id, cause);
    }

    /// Ends a client after its queued output is written (CMD_KICK, protocol errors).
    pub fn close_client_after_flush(&mut self, id: u32, cause: CloseCause) {
        if let Some(client) = self.clients.get_mut(&id) {
            client.outbox.close(Closing::AfterFlush);
            client.close_cause.get_or_insert(cause);
            if client.parked {
                self.unpark_soon(id);
            }
        }
    }

    /// Queues an encoded frame for a client, applying the slow-consumer policy and the shard's
    /// output budget: over `max_pending_output_bytes`, a client that still has output queued
    /// misses the frame (counted; it is behind anyway) while clients keeping up still get it,
    /// so an overloaded shard sheds instead of growing without bound.
    pub fn deliver(&mut self, id: u32, frame: impl Into<Frame>) {
        self.queue_frame(id, frame.into(), false);
    }

    /// [`Shard::deliver`]; with `direct`, a frame to a client that can take one is written at
    /// the end of the link batch instead of by the client's task (`direct_writes.rs`).
    pub(in crate::gateway::core) fn queue_frame(&mut self, id: u32, frame: Frame, direct: bool) {
        let cap = self.settings.send_to_client_buffer_size;
        let Some(client) = self.clients.get_mut(&id) else {
            return;
        };
        if client.outbox.is_empty() {
            // Nothing queued: the frame goes out whatever the budgets say.
        } else if client.outbox.queued_bytes() + frame.len() > cap {
            match self.settings.slow_client_policy {
                SlowClientPolicy::Drop => {
                    self.stats.slow_client_drops += 1;
                }
                SlowClientPolicy::Close => {
                    self.stats.slow_client_closes += 1;
                    self.destroy_client(id, CloseCause::SlowClient);
                }
            }
            return;
        } else if self.pending_output.get() + frame.len() > self.settings.max_pending_output_bytes {
            self.stats.shard_output_drops += 1;
            return;
        }
        self.stats.messages_out += 1;
        self.stats.bytes_out += frame.len() as u64;
        let frame = match direct {
            true => match self.direct_writes.queue(id, &mut client.outbox, frame) {
                None => return,
                Some(frame) => frame,
            },
            false => frame,
        };
        client.outbox.push(frame);
        if client.parked {
            self.parked_output(id);
        }
    }

    /// A worker link's input batch starts: replies to single clients wait for its end
    /// (`direct_writes.rs`).
    pub fn begin_direct_writes(&mut self) {
        self.direct_writes.begin();
    }

    /// The batch is applied: `write` writes each waiting outbox to its socket; whatever is left
    /// wakes the client's task.
    pub fn end_direct_writes(&mut self, mut write: impl FnMut(&mut Outbox)) {
        let waiting = self.direct_writes.end();
        for id in &waiting {
            if let Some(client) = self.clients.get_mut(id) {
                DirectWrites::write(&mut client.outbox, &mut write);
            }
        }
        self.direct_writes.recycle(waiting);
    }

    /// Queues a pong for a client unless its output is over the cap (a client that pings
    /// faster than it reads gets no more pongs than its queue holds).
    pub fn queue_pong(&mut self, id: u32, pong: Bytes) {
        let cap = self.settings.send_to_client_buffer_size;
        let Some(client) = self.clients.get_mut(&id) else {
            return;
        };
        if client.outbox.queued_bytes() + pong.len() > cap {
            self.stats.pongs_dropped += 1;
            return;
        }
        client.outbox.push(pong);
    }

    // ---- worker links ------------------------------------------------------------------------

    /// Whether a worker can take events (clients are accepted only then).
    pub fn has_workers(&self) -> bool {
        !self.workers.is_empty()
    }

    /// A new inner connection. Authorized at once when no secret is configured.
    pub fn link_opened(&mut self, peer: SocketAddr) -> u64 {
        self.next_link_id += 1;
        let id = self.next_link_id;
        self.links.insert(
            id,
            Link {
                peer,
                authorized: self.settings.secret_key.is_empty(),
                identified: false,
                max_packet: None,
                answers_probes: false,
                presence: false,
                asked_at: None,
                stalled: false,
                worker_key: None,
                outbox: Outbox::default(),
                staging: BytesMut::new(),
            },
        );
        id
    }

    /// The worker key link `link_id` registered, when it is a worker's.
    pub fn link_worker_key(&self, link_id: u64) -> Option<Rc<str>> {
        self.links.get(&link_id)?.worker_key.clone()
    }

    /// An inner connection is gone; a worker stops being a routing target.
    pub fn link_closed(&mut self, link_id: u64) {
        let Some(link) = self.links.remove(&link_id) else {
            return;
        };
        if link.presence {
            self.presence_links -= 1;
        }
        if let Some(key) = link.worker_key
            && self.workers.get(&key) == Some(&link_id)
        {
            self.workers.shift_remove(&key);
            self.router.worker_left(&key);
        }
    }

    /// Makes `link_id` the routing target for `key`. A key another open link holds is taken
    /// over, as GatewayWorker 4.0 does (a restarted worker's new link replaces the one its old
    /// process left half-open): the holder's link is closed once what was queued to it is
    /// written, and its clients go to the newcomer, which holds the key now. Returns the
    /// address of the link that lost the key, if one did.
    pub fn register_worker(&mut self, link_id: u64, key: Rc<str>) -> Option<SocketAddr> {
        let mut replaced = None;
        if let Some(old) = self.workers.get(&key).copied()
            && old != link_id
        {
            if let Some(holder) = self.links.get_mut(&old) {
                holder.worker_key = None;
                holder.outbox.close(Closing::AfterFlush);
                replaced = Some(holder.peer);
                self.stats.worker_key_takeovers += 1;
            }
            self.workers.shift_remove(&key);
            self.router.worker_left(&key);
        }
        if let Some(link) = self.links.get_mut(&link_id) {
            link.authorized = true;
            link.worker_key = Some(key.clone());
        }
        self.workers.insert(key.clone(), link_id);
        self.router.worker_joined(&key);
        replaced
    }

    /// Totals of the output queues and, when asked, one row per client.
    pub fn inspect(&self, clients: bool) -> Inspection {
        let text = |k: &Key| String::from_utf8_lossy(&k.to_bytes()).into_owned();
        let mut answer = Inspection {
            index: self.settings.index,
            client_queue_bytes: self.pending_output.get() as u64,
            link_queue_bytes: self
                .links
                .values()
                .map(|l| l.outbox.queued_bytes() as u64)
                .sum(),
            clients: Vec::new(),
        };
        if clients {
            let mut ids: Vec<u32> = self.clients.keys().copied().collect();
            ids.sort_unstable();
            answer.clients = ids
                .into_iter()
                .filter_map(|id| {
                    let c = self.clients.get(&id)?;
                    Some(ClientRow {
                        client_id: ClientId::new(
                            self.settings.lan_ip,
                            self.settings.inner_port,
                            id,
                        ),
                        remote: c.remote(),
                        uid: c.uid().map(text),
                        groups: c
                            .groups()
                            .map(|g| g.iter().map(text).collect())
                            .unwrap_or_default(),
                        messages_in: c.messages_in,
                        bytes_in: c.bytes_in,
                        queued_out: c.outbox.queued_bytes() as u64,
                        worker: c.worker.as_deref().map(str::to_owned),
                    })
                })
                .collect();
        }
        answer
    }

    /// Queues a query reply (`u32 length + payload`) on a link. A link that leaves replies
    /// unread past `send_to_worker_buffer_size` is closed (a GatewayClient that asks and never
    /// reads cannot grow the gateway).
    pub fn reply(&mut self, link_id: u64, payload: &[u8]) {
        let cap = self.settings.send_to_worker_buffer_size;
        if let Some(link) = self.links.get_mut(&link_id) {
            let queued = link.outbox.queued_bytes();
            if queued > 0 && queued + 4 + payload.len() > cap {
                if link.outbox.closing().is_none() {
                    self.stats.inner_reply_overflows += 1;
                    link.outbox.close(Closing::Now);
                }
                return;
            }
            let mut frame = BytesMut::with_capacity(4 + payload.len());
            frame.put_u32(payload.len() as u32);
            frame.put_slice(payload);
            link.outbox.push(frame.freeze());
        }
    }

    /// Sends an event about client `id` to its worker. False when no worker is connected.
    pub fn send_event(&mut self, id: u32, cmd: Cmd, flag: Flags, body: &Bytes) -> bool {
        self.send_event_if(id, cmd, flag, body, |_| true)
    }

    /// [`Self::send_event`] when the client's worker link passes `wanted` (else nothing is sent
    /// and `false` is returned).
    pub(super) fn send_event_if(
        &mut self,
        id: u32,
        cmd: Cmd,
        flag: Flags,
        body: &Bytes,
        wanted: impl FnOnce(&Link) -> bool,
    ) -> bool {
        let Some(client) = self.clients.get_mut(&id) else {
            return false;
        };
        let Some((_, link_id)) = self.router.route(&self.workers, &mut client.worker) else {
            return false;
        };
        if !self.links.get(&link_id).is_some_and(wanted) {
            return false;
        }
        let header = client.header.with_cmd(cmd, flag);
        let session = client.session.clone();
        let cap = self.settings.send_to_worker_buffer_size;
        let Some(link) = self.links.get_mut(&link_id) else {
            return false;
        };
        if link
            .max_packet
            .is_some_and(|max| HEADER_LEN + session.len() + body.len() > max)
        {
            // The worker would drop its link over it: refuse the message here, visibly.
            self.stats.worker_packet_refusals += 1;
            let last_words = if self.settings.protocol.has_handshake() {
                gatewire_proto::websocket::close_frame(
                    gatewire_proto::websocket::CloseCode::TOO_BIG,
                    "message larger than its worker accepts",
                )
            } else {
                Bytes::new()
            };
            self.close_client_with(id, last_words, CloseCause::BadInput);
            return true;
        }
        if link.outbox.queued_bytes() > cap {
            // Counted; logged per interval from the counter (LimitWarnings).
            self.stats.worker_buffer_drops += 1;
            return true;
        }
        let Ok(head) = header.encode(session.len(), body.len()) else {
            return true;
        };
        link.push_packet(&head, &session, body);
        self.stats.events_to_workers += 1;
        true
    }
}

impl Link {
    /// Queues one packet as header (+ small parts copied alongside) and shared large parts.
    fn push_packet(&mut self, head: &[u8; HEADER_LEN], ext: &Bytes, body: &Bytes) {
        const INLINE: usize = 512;
        self.staging.reserve(HEADER_LEN + INLINE * 2);
        self.staging.put_slice(head);
        let ext_inline = ext.len() <= INLINE;
        if ext_inline {
            self.staging.put_slice(ext);
        } else {
            self.outbox.push(self.staging.split().freeze());
            self.outbox.push(ext.clone());
        }
        if body.len() <= INLINE {
            self.staging.put_slice(body);
            self.outbox.push(self.staging.split().freeze());
        } else {
            if !self.staging.is_empty() {
                self.outbox.push(self.staging.split().freeze());
            }
            self.outbox.push(body.clone());
        }
    }
}
