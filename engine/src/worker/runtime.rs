//! Worker threads: each learns gateway addresses from every register, keeps a link to every
//! gateway shard (retrying a lost one every second while it is listed), and runs the app's
//! callbacks for the events that arrive, with GatewayWorker's session rules (§6.3).

use std::cell::{Cell, RefCell};
use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::net::{SocketAddr, SocketAddrV4};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use gatewire_proto::auth::worker_connect_body;
use gatewire_proto::command::{Command, Control};
use gatewire_proto::packet::{CMD_WORKER_CONFIRM, CMD_WORKER_DRAIN};
use gatewire_proto::php::{Value, serialize, unserialize};
use gatewire_proto::register::{RegisterMessage, worker_connect_line};
use gatewire_proto::{ClientId, Cmd, Flags, Header, Packet, PacketDecoder};
use tracing::{debug, info, warn};

use super::context::Context;
use super::control::{LinkState, ThreadStats, WorkerControl};
use super::events::{Events, WorkerInfo};
use crate::api::{Gateway, Links};
use crate::config::{StoreConfig, WorkerConfig};
use crate::net::{self, Outbox};
use crate::register::{RegisterLink, keep_registered};
use crate::rt::{self, CloseReason, Peer};

const RETRY_AFTER: Duration = Duration::from_secs(1);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How often a worker thread looks at the stop and drain requests.
const STOP_POLL: Duration = Duration::from_millis(50);

/// A link the gateway has not confirmed within this time counts as linked anyway (PHP gateways
/// do not answer the confirmation request).
const CONFIRM_WAIT: Duration = Duration::from_secs(1);

/// How long a stopping thread lets its links flush what its callbacks queued.
const FLUSH_WAIT: Duration = Duration::from_secs(2);

/// Running worker threads and the handle to steer and watch them.
#[derive(Debug)]
pub struct Workers {
    pub threads: Vec<std::thread::JoinHandle<()>>,
    pub control: Arc<WorkerControl>,
}

/// Starts `config.count` worker threads running clones of `app`; with `store` on, their uid and
/// group commands go only to the gateways holding them.
pub fn start<A: Events>(
    config: &WorkerConfig,
    store: &StoreConfig,
    app: A,
) -> Result<Workers, rt::ExecutorError> {
    let count = config.thread_count();
    let control = Arc::new(WorkerControl::new(count));
    let mut threads = Vec::with_capacity(count);
    for index in 0..count {
        let (config, app, control) = (config.clone(), app.clone(), control.clone());
        let store = store.clone();
        let spec = rt::ExecutorSpec::new(
            format!("worker-{index}"),
            crate::placement::worker(&config.cpus, index),
        );
        let handle = rt::start(spec, move || async move {
            run_thread(config, store, index, app, control).await
        })?;
        threads.push(std::thread::spawn(move || {
            let _ = handle.join();
        }));
    }
    info!(count, name = %config.name, generation = config.generation, "business workers started");
    Ok(Workers { threads, control })
}

/// One worker thread's state.
struct Worker<A> {
    app: RefCell<A>,
    gateway: Gateway,
    links: Rc<RefCell<Links>>,
    /// Addresses with a link task (connected, connecting or waiting to retry).
    linking: RefCell<HashSet<String>>,
    /// Links whose gateway confirmed our WORKER_CONNECT (or that outlived [`CONFIRM_WAIT`]).
    confirmed: RefCell<HashSet<String>>,
    /// Links whose gateway has not yet confirmed our drain request.
    drain_pending: RefCell<HashSet<String>>,
    /// Retiring: no new links, no reconnects.
    retiring: Cell<bool>,
    /// Per client: which session the gateway should have (GatewayWorker's crc32 check).
    versions: RefCell<HashMap<ClientId, SessionVersion>>,
    worker_key: String,
    secret: String,
    max_packet_size: usize,
    /// `worker.link_timeout`: a gateway silent for this long counts as gone.
    link_timeout: f64,
    stats: Arc<ThreadStats>,
}

impl<A> Worker<A> {
    fn publish_links(&self) {
        let listed = self.links.borrow().known.len() as u64;
        self.stats.listed.store(listed, Ordering::SeqCst);
        let confirmed = self.confirmed.borrow().len() as u64;
        self.stats.linked.store(confirmed, Ordering::SeqCst);
        let overflows = self.links.borrow().overflows;
        self.stats.link_overflows.store(overflows, Ordering::SeqCst);
        let (known, confirmed) = (self.links.borrow().known.clone(), self.confirmed.borrow());
        if let Ok(mut published) = self.stats.links.lock() {
            let now = std::time::SystemTime::now();
            let states: Vec<LinkState> = known
                .into_iter()
                .map(|gateway| {
                    let up = confirmed.contains(&gateway);
                    let since = published
                        .iter()
                        .find(|l| l.gateway == gateway && l.up == up)
                        .map_or(now, |l| l.since);
                    LinkState { gateway, up, since }
                })
                .collect();
            *published = states;
        }
    }

    fn confirm(&self, address: &str) {
        if self.links.borrow().connected.contains_key(address) {
            self.confirmed.borrow_mut().insert(address.to_owned());
            self.publish_links();
        }
    }

    fn link_lost(&self, address: &str) {
        self.links.borrow_mut().connected.remove(address);
        self.confirmed.borrow_mut().remove(address);
        self.drain_pending.borrow_mut().remove(address);
        self.publish_links();
    }
}

async fn run_thread<A: Events>(
    config: WorkerConfig,
    store: StoreConfig,
    index: usize,
    app: A,
    control: Arc<WorkerControl>,
) {
    let links = Rc::new(RefCell::new(Links {
        output_cap: config.send_to_gateway_buffer_size,
        ..Links::default()
    }));
    let stats = control.threads[index].clone();
    let worker_key = config.worker_key(index);
    let _ = stats.worker_key.set(worker_key.clone());
    let worker = Rc::new(Worker {
        app: RefCell::new(app),
        gateway: Gateway::new(links.clone(), &config.secret_key)
            .with_store(crate::store::Resolver::new(&store)),
        links,
        linking: RefCell::new(HashSet::new()),
        confirmed: RefCell::new(HashSet::new()),
        drain_pending: RefCell::new(HashSet::new()),
        retiring: Cell::new(false),
        versions: RefCell::new(HashMap::new()),
        worker_key,
        secret: config.secret_key.clone(),
        max_packet_size: config.max_packet_size,
        link_timeout: config.link_timeout,
        stats,
    });
    let info = WorkerInfo {
        worker_key: worker.worker_key.clone(),
        index,
    };
    worker.app.borrow_mut().on_worker_start(&info);
    let listener = Rc::new(RefCell::new(AddressBook {
        worker: worker.clone(),
    }));
    for register in &config.register_address {
        rt::spawn(keep_registered(
            *register,
            listener.clone(),
            config.link_timeout,
        ));
    }
    while !control.stopping() && !control.draining() {
        rt::sleep(STOP_POLL).await;
    }
    worker.retiring.set(true);
    if control.draining() && !control.stopping() {
        drain(
            &worker,
            Duration::from_secs_f64(config.drain_timeout),
            &control,
        )
        .await;
    }
    worker.app.borrow_mut().on_worker_stop(&info);
    // What the callbacks queued goes out before the links close.
    for link in worker.links.borrow().connected.values() {
        link.outbox.borrow_mut().close(net::Closing::AfterFlush);
    }
    let deadline = Instant::now() + FLUSH_WAIT;
    while !worker.links.borrow().connected.is_empty() && Instant::now() < deadline {
        rt::sleep(Duration::from_millis(10)).await;
    }
    worker.stats.finished.store(true, Ordering::SeqCst);
    info!(worker = %worker.worker_key, "worker stopped");
}

/// Asks every linked gateway to route nothing new to this thread and handles events until each
/// has confirmed (its confirmation follows the last event it sent us), a link is lost, the
/// timeout passes, or a plain stop is requested.
async fn drain<A: Events>(worker: &Worker<A>, timeout: Duration, control: &WorkerControl) {
    let request = Command::Control(Control::Drain).to_packet();
    let Ok(request) = request.to_bytes() else {
        return;
    };
    {
        let links = worker.links.borrow();
        let mut pending = worker.drain_pending.borrow_mut();
        for (address, link) in &links.connected {
            pending.insert(address.clone());
            link.outbox.borrow_mut().push(request.clone());
        }
    }
    let deadline = Instant::now() + timeout;
    while !worker.drain_pending.borrow().is_empty()
        && Instant::now() < deadline
        && !control.stopping()
    {
        rt::sleep(Duration::from_millis(5)).await;
    }
    let left = worker.drain_pending.borrow();
    if left.is_empty() {
        info!(worker = %worker.worker_key, "drained: every gateway confirmed");
    } else {
        warn!(
            worker = %worker.worker_key,
            gateways = ?left,
            "drain not confirmed (a PHP gateway does not answer it); stopping anyway"
        );
    }
}

/// The worker side of a register link: follow the gateway list.
struct AddressBook<A> {
    worker: Rc<Worker<A>>,
}

impl<A: Events> RegisterLink for AddressBook<A> {
    fn hello(&self) -> String {
        worker_connect_line(&self.worker.secret)
    }

    fn on_message(&mut self, message: RegisterMessage) {
        let RegisterMessage::BroadcastAddresses { addresses } = message else {
            return;
        };
        debug!(?addresses, "gateway list");
        self.worker.links.borrow_mut().known = addresses.clone();
        self.worker.stats.has_list.store(true, Ordering::SeqCst);
        self.worker.publish_links();
        if self.worker.retiring.get() {
            return;
        }
        for address in addresses {
            if self.worker.linking.borrow_mut().insert(address.clone()) {
                rt::spawn(keep_linked(self.worker.clone(), address));
            }
        }
    }
}

/// Keeps a link to the gateway at `address` while the registers list it.
async fn keep_linked<A: Events>(worker: Rc<Worker<A>>, address: String) {
    let mut backoff = net::Backoff::default();
    loop {
        let mut delay = RETRY_AFTER;
        if !worker.links.borrow().known.contains(&address) || worker.retiring.get() {
            worker.linking.borrow_mut().remove(&address);
            return;
        }
        let target: Option<SocketAddr> = address.parse().ok();
        let connected = match target {
            Some(t) => rt::connect(t, CONNECT_TIMEOUT).await.ok(),
            None => {
                warn!(%address, "gateway address is not ip:port");
                None
            }
        };
        if let Some(stream) = connected {
            let _ = stream.set_nodelay(true);
            rt::fail_dead_peer_after(&stream, worker.link_timeout);
            let outbox = Rc::new(RefCell::new(Outbox::default()));
            let hello = Packet::new(
                Header::for_connection(Cmd::WorkerConnect, 0, Flags::SCALAR),
                "",
                worker_connect_body(&worker.worker_key, &worker.secret),
            );
            // The gateway echoes the confirmation request once it has handled the hello.
            let confirm = Command::Control(Control::Confirm).to_packet();
            for packet in [hello, confirm] {
                if let Ok(bytes) = packet.to_bytes() {
                    outbox.borrow_mut().push(bytes);
                }
            }
            let fd = std::os::fd::AsRawFd::as_raw_fd(&stream);
            worker.links.borrow_mut().connected.insert(
                address.clone(),
                crate::api::LinkHandle {
                    outbox: outbox.clone(),
                    fd,
                },
            );
            info!(%address, worker = %worker.worker_key, "linked to gateway");
            let (late, late_address) = (worker.clone(), address.clone());
            rt::spawn(async move {
                rt::sleep(CONFIRM_WAIT).await;
                late.confirm(&late_address);
            });
            let ended = Rc::new(RefCell::new(None));
            let peer = LinkPeer {
                worker: worker.clone(),
                address: address.clone(),
                outbox,
                decoder: PacketDecoder::new(worker.max_packet_size),
                ended: ended.clone(),
            };
            let opened = Instant::now();
            rt::drive(stream, peer).await;
            let was_confirmed = worker.confirmed.borrow().contains(&address);
            worker.link_lost(&address);
            if worker.retiring.get() {
                worker.linking.borrow_mut().remove(&address);
                return;
            }
            let accepted = was_confirmed || opened.elapsed() >= CONFIRM_WAIT;
            if let Some(refused) = backoff.after_connection(accepted) {
                delay = refused;
                crate::log_limit::warn_limited(
                    "gateway refused the link",
                    &format!(
                        "gateway {address} closed the link right after our hello: its secret_key \
                         differs, or worker key {} is held there by another live link; \
                         retrying in {}s",
                        worker.worker_key,
                        delay.as_secs()
                    ),
                );
            } else {
                let reason = ended.borrow_mut().take().map_or_else(
                    || "unknown".to_owned(),
                    |r: CloseReason| r.describe().into_owned(),
                );
                warn!(%address, %reason, "gateway link lost; retrying every second while listed");
            }
        }
        rt::sleep(delay).await;
    }
}

struct LinkPeer<A> {
    worker: Rc<Worker<A>>,
    address: String,
    outbox: Rc<RefCell<Outbox>>,
    decoder: PacketDecoder,
    /// Why the link ended, for the log line.
    ended: Rc<RefCell<Option<CloseReason>>>,
}

impl<A: Events> Peer for LinkPeer<A> {
    fn with_outbox<R>(&mut self, f: impl FnOnce(&mut Outbox) -> R) -> Option<R> {
        Some(f(&mut self.outbox.borrow_mut()))
    }

    fn on_input(&mut self, input: &mut BytesMut) {
        loop {
            match self.decoder.decode(input) {
                Ok(Some(packet)) => match packet.header.cmd {
                    CMD_WORKER_CONFIRM => self.worker.confirm(&self.address),
                    CMD_WORKER_DRAIN => {
                        self.worker.drain_pending.borrow_mut().remove(&self.address);
                    }
                    _ => {
                        let started = Instant::now();
                        if handle_event(&self.worker, packet) {
                            self.worker.stats.observe(started.elapsed());
                        }
                    }
                },
                Ok(None) => return,
                Err(e) => {
                    warn!(error = %e, "bad packet from a gateway; dropping the link");
                    input.clear();
                    self.outbox.borrow_mut().close(net::Closing::Now);
                    return;
                }
            }
        }
    }

    fn on_closed(&mut self, reason: CloseReason) {
        *self.ended.borrow_mut() = Some(reason);
    }
}

/// What this worker knows about a client's stored session.
#[derive(Debug, Default)]
struct SessionVersion {
    /// Hash of the newest session bytes seen in an event or written by us.
    current: u64,
    /// Hashes of sessions our own writes replaced, not yet confirmed by an event from the
    /// gateway: an event carrying one of them was sent before our write arrived.
    superseded: Vec<u64>,
    /// Our newest write, used for such events.
    written: Option<Vec<u8>>,
}

/// At most this many of our own writes are remembered as superseding older sessions.
const MAX_SUPERSEDED: usize = 8;

/// Which session an event should see.
enum Known {
    /// The one the event carries.
    Event,
    /// The one we wrote last.
    Written(Vec<u8>),
    /// Neither is known to be current: ask the gateway.
    Unknown,
}

impl SessionVersion {
    fn resolve(&mut self, seen: u64) -> Known {
        if seen == self.current {
            self.superseded.clear();
            return Known::Event;
        }
        if self.superseded.contains(&seen) {
            if let Some(bytes) = &self.written {
                return Known::Written(bytes.clone());
            }
        }
        self.current = seen;
        self.superseded.clear();
        self.written = None;
        Known::Unknown
    }

    fn wrote(&mut self, bytes: &[u8]) {
        if self.superseded.len() == MAX_SUPERSEDED {
            self.superseded.remove(0);
        }
        self.superseded.push(self.current);
        self.current = version(bytes);
        self.written = Some(bytes.to_vec());
    }
}

fn version(bytes: &[u8]) -> u64 {
    let mut h = DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
}

fn session_of(bytes: &[u8]) -> Option<gatewire_proto::php::Array> {
    if bytes.is_empty() {
        return None;
    }
    match unserialize(bytes) {
        Ok(Value::Array(a)) => Some(a),
        _ => None,
    }
}

/// Runs the callback for one event, then saves a changed session (protocol §6.3). False when
/// the packet was not an event.
fn handle_event<A: Events>(worker: &Worker<A>, packet: Packet) -> bool {
    let cmd = packet.header.cmd;
    if !matches!(
        cmd,
        Cmd::OnConnect | Cmd::OnMessage | Cmd::OnClose | Cmd::OnWebSocketConnect
    ) {
        return false;
    }
    let h = packet.header;
    let client_id = ClientId::new(h.local_ip, h.local_port, h.connection_id);
    let seen = version(&packet.ext);
    let session = if cmd == Cmd::OnClose {
        worker.versions.borrow_mut().remove(&client_id);
        session_of(&packet.ext)
    } else {
        let known = worker
            .versions
            .borrow_mut()
            .entry(client_id)
            .or_insert_with(|| SessionVersion {
                current: seen,
                ..SessionVersion::default()
            })
            .resolve(seen);
        match known {
            Known::Event => session_of(&packet.ext),
            // Sent before our own write reached the gateway: our write is the truth.
            Known::Written(bytes) => session_of(&bytes),
            // Changed elsewhere (another worker or a GatewayClient): ask the gateway.
            Known::Unknown => match worker.gateway.get_session(client_id) {
                Ok(fresh) => fresh,
                Err(e) => {
                    warn!(error = %e, "stale session could not be refreshed; using the event's");
                    session_of(&packet.ext)
                }
            },
        }
    };
    let old = session.clone();
    let mut ctx = Context {
        client_id,
        client_addr: SocketAddr::V4(SocketAddrV4::new(h.client_ip, h.client_port)),
        gateway_port: h.gateway_port,
        session,
        binary: h.flag.binary(),
        gateway: &worker.gateway,
    };
    {
        let mut app = worker.app.borrow_mut();
        match cmd {
            Cmd::OnConnect => app.on_connect(&mut ctx),
            Cmd::OnMessage => app.on_message(&mut ctx, &packet.body),
            Cmd::OnWebSocketConnect => {
                let data = gatewire_proto::packet::decode_body(h.flag, &packet.body);
                app.on_websocket_connect(&mut ctx, &data);
            }
            Cmd::OnClose => app.on_close(&mut ctx),
            _ => {}
        }
    }
    if cmd != Cmd::OnClose && ctx.session != old {
        let bytes = ctx
            .session
            .take()
            .map(|s| serialize(&Value::Array(s)))
            .unwrap_or_default();
        worker
            .versions
            .borrow_mut()
            .entry(client_id)
            .or_default()
            .wrote(&bytes);
        worker.gateway.set_session_bytes(client_id, bytes);
    }
    true
}
