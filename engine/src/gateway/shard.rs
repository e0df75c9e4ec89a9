//! Starting shards: one pinned glommio executor per shard, each calling `unshare(CLONE_FILES)`
//! before it opens a socket, then running its accept loops, register links and timers. `start`
//! returns only once every shard has its listeners (or reports the first that failed).

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use gatewire_proto::register::{RegisterMessage, gateway_connect_line};
use tracing::{info, warn};

use crate::config::{ClientProtocol, GatewayConfig};
use crate::gateway::client::ClientPeer;
use crate::gateway::core::router::Router;
use crate::gateway::core::shard::{INNER_HELLO_TIMEOUT, Shard, ShardSettings};
use crate::gateway::core::stats::{Inspect, ShardSnapshot};
use crate::gateway::holdings::Holdings;
use crate::gateway::link::LinkPeer;
use crate::gateway::parking::{self, ParkingLot};
use crate::net;
use crate::register::{RegisterLink, keep_registered};
use crate::rt;
use crate::system;

/// How often a shard without workers looks again before accepting clients.
const WORKER_WAIT_POLL: Duration = Duration::from_millis(20);

/// How often a shard publishes its counters.
const PUBLISH_EVERY: Duration = Duration::from_millis(250);

/// Freed input (large messages finished or abandoned) after which a shard gives its free pages
/// back to the OS on the next publishing tick.
const GIVE_BACK_AFTER: usize = 8 << 20;

/// A running shard's thread and its published counters.
#[derive(Debug)]
pub struct ShardHandle {
    pub index: usize,
    pub thread: std::thread::JoinHandle<()>,
    pub snapshot: Arc<Mutex<ShardSnapshot>>,
    /// Questions for the shard (answered on its publishing tick).
    pub inspect: mpsc::Sender<Inspect>,
    /// Set when the gateway stops: on its next publishing tick the shard tells every client it
    /// is going away and closes it (see `Shard::going_away`).
    pub stopping: Arc<std::sync::atomic::AtomicBool>,
    /// The `wss://` listener's certificate, shared by every shard (`gatewire reload --tls`).
    pub tls: Option<net::tls::TlsSlot>,
}

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("gateway shard {index}: {message}")]
    Shard { index: usize, message: String },
    #[error("gateway shard {index}: {source}")]
    ShardStart {
        index: usize,
        source: ShardStartError,
    },
    #[error("a gateway shard's thread ended before it reported")]
    ShardEnded,
}

/// Why one shard could not start (reported to [`start`] by the shard's thread).
#[derive(Debug, thiserror::Error)]
pub enum ShardStartError {
    #[error("unshare(CLONE_FILES): {0}")]
    FdTable(std::io::Error),
    #[error("cannot listen on {listen} (gateway.listen): {source}")]
    Public {
        listen: crate::config::ListenUrl,
        source: std::io::Error,
    },
    #[error("cannot listen on inner {addr} (gateway.lan_ip, gateway.start_port): {source}")]
    Inner {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot start its executor: {0}")]
    Executor(String),
}

/// What a shard's thread reports once: its listeners are open, or why not.
type Ready = mpsc::Sender<(usize, Result<(), ShardStartError>)>;

/// The inner address (`lan_ip:port`) of each shard of `config`: what workers dial, and what the
/// store lists as holder.
pub fn inner_addresses(config: &GatewayConfig) -> Vec<String> {
    (0..config.shard_count())
        .map(|i| format!("{}:{}", config.lan_ip, usize::from(config.start_port) + i))
        .collect()
}

/// Starts every shard of the gateway and waits until each has its listeners. With `store`,
/// each shard hands it the uids and groups it starts and stops holding.
pub fn start(
    config: &GatewayConfig,
    store: Option<&crate::store::Publisher>,
) -> Result<Vec<ShardHandle>, StartError> {
    let addresses = inner_addresses(config);
    let shards = config.shard_count();
    let public = resolve_port(config.listen.addr);
    refuse_taken_port(config, public)?;
    let tls = match (config.listen.protocol, &config.tls_cert, &config.tls_key) {
        (ClientProtocol::SecureWebSocket, Some(cert), Some(key)) => Some(
            net::tls::TlsSlot::load(cert, key)
                .map_err(|message| StartError::Shard { index: 0, message })?,
        ),
        _ => None,
    };
    let verifier = config
        .auth
        .verifier()
        .map_err(|message| StartError::Shard { index: 0, message })?
        .map(Arc::new);
    let (ready_tx, ready_rx) = mpsc::channel::<(usize, Result<(), ShardStartError>)>();
    let mut handles = Vec::with_capacity(shards);
    for (index, address) in addresses.iter().enumerate() {
        let feed = store.map(|s| s.feed(address));
        let shared = (tls.clone(), verifier.clone(), feed);
        match spawn_shard(config, index, public, shared, ready_tx.clone()) {
            Ok(handle) => handles.push(handle),
            Err(e) => {
                let _ = ready_tx.send((index, Err(ShardStartError::Executor(e.to_string()))));
            }
        }
    }
    drop(ready_tx);
    for _ in 0..shards {
        match ready_rx.recv() {
            Ok((_, Ok(()))) => {}
            Ok((index, Err(source))) => return Err(StartError::ShardStart { index, source }),
            Err(_) => return Err(StartError::ShardEnded),
        }
    }
    info!(
        shards,
        listen = %config.listen,
        inner = %format!("{}:{}-{}", config.lan_ip, config.start_port, config.start_port as usize + shards - 1),
        "gateway ready"
    );
    Ok(handles)
}

/// Every shard binds the public address with SO_REUSEPORT, which would silently share it with
/// any other process that does the same: a port someone already listens on is refused.
fn refuse_taken_port(config: &GatewayConfig, public: SocketAddr) -> Result<(), StartError> {
    let Some(other) = net::port_owner::other_listener_on(public) else {
        return Ok(());
    };
    let owner = other.pid.map_or_else(
        || "another process".to_owned(),
        |pid| format!("process {pid}"),
    );
    Err(StartError::Shard {
        index: 0,
        message: format!(
            "cannot listen on {} (gateway.listen): {owner} already listens on {}; two \
             gateways on one port would split its clients between them",
            config.listen, other.local
        ),
    })
}

/// What every shard shares (the TLS slot, the token verifier) and its own feed to the store.
type SharedParts = (
    Option<net::tls::TlsSlot>,
    Option<Arc<net::jwt::TokenVerifier>>,
    Option<crate::store::ShardFeed>,
);

/// Starts shard `index` on an executor of its own; it reports on `ready` once it listens (or
/// why it could not).
fn spawn_shard(
    config: &GatewayConfig,
    index: usize,
    public: SocketAddr,
    (tls, verifier, feed): SharedParts,
    ready: mpsc::Sender<(usize, Result<(), ShardStartError>)>,
) -> Result<ShardHandle, rt::ExecutorError> {
    let config = config.clone();
    let shared_tls = tls.clone();
    let snapshot = Arc::new(Mutex::new(ShardSnapshot {
        index,
        ..ShardSnapshot::default()
    }));
    let published = snapshot.clone();
    let (inspect, questions) = mpsc::channel::<Inspect>();
    let stopping = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let told = stopping.clone();
    let spec = rt::ExecutorSpec::new(
        format!("gw-shard-{index}"),
        crate::placement::shard(&config.cpus, index),
    )
    .ring_depth(4096);
    let handle = rt::start(spec, move || async move {
        let outside = Outside {
            published,
            questions,
            stopping: told,
            feed,
            verifier,
        };
        run_shard(config, index, public, tls, outside, ready).await;
    })?;
    Ok(ShardHandle {
        index,
        snapshot,
        inspect,
        stopping,
        tls: shared_tls,
        thread: std::thread::spawn(move || {
            if let Err(e) = handle.join() {
                warn!(index, error = %e, "shard executor ended with an error");
            }
        }),
    })
}

/// Port 0 would give every shard a different port; pick one free port for all of them.
fn resolve_port(addr: SocketAddr) -> SocketAddr {
    if addr.port() != 0 {
        return addr;
    }
    std::net::TcpListener::bind(addr)
        .and_then(|l| l.local_addr())
        .unwrap_or(addr)
}

/// What a shard shares with the rest of its process: the snapshot it publishes, the questions
/// it answers, the stop it obeys — all read or written on its publishing tick.
struct Outside {
    published: Arc<Mutex<ShardSnapshot>>,
    questions: mpsc::Receiver<Inspect>,
    stopping: Arc<std::sync::atomic::AtomicBool>,
    /// The store thread's queue, with the store on.
    feed: Option<crate::store::ShardFeed>,
    /// The token verifier, with `[gateway.auth]` on (one per process, read by every shard).
    verifier: Option<Arc<net::jwt::TokenVerifier>>,
}

/// One shard, for the life of its thread: its fd table and listeners, then its tasks — keeping
/// its inner address registered, accepting worker links, publishing its snapshot, its timers,
/// the parking lot — and the accept loop of its clients.
async fn run_shard(
    config: GatewayConfig,
    index: usize,
    public: SocketAddr,
    tls: Option<net::tls::TlsSlot>,
    outside: Outside,
    ready: Ready,
) {
    let own_fd_table = match own_fd_table(index) {
        Ok(own) => own,
        Err(e) => {
            let _ = ready.send((index, Err(e)));
            return;
        }
    };
    let mut settings = ShardSettings::new(&config, index, public.port());
    settings.record_holdings = outside.feed.is_some();
    settings.token_verifier = outside.verifier.clone();
    settings.max_clients = max_clients(&config, own_fd_table);
    let inner_addr = SocketAddr::from((settings.lan_ip, settings.inner_port));
    let (public_listener, inner_listener) = match listeners(&config, public, inner_addr).await {
        Ok(both) => both,
        Err(e) => {
            let _ = ready.send((index, Err(e)));
            return;
        }
    };
    let seed =
        (index as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ u64::from(std::process::id());
    let shard = Rc::new(RefCell::new(Shard::new(
        settings.clone(),
        Router::new(config.router, seed),
    )));

    let announced = Rc::new(RefCell::new(Announcement {
        line: gateway_connect_line(&inner_addr.to_string(), &config.secret_key),
    }));
    for register in &config.register_address {
        rt::spawn(keep_registered(
            *register,
            announced.clone(),
            config.link_timeout,
        ));
    }
    let mut outside = outside;
    let holdings = outside.feed.take().map(|feed| Rc::new(Holdings::new(feed)));
    rt::spawn(accept_links(
        shard.clone(),
        inner_listener,
        config.link_timeout,
        holdings.clone(),
    ));
    rt::spawn(publish(shard.clone(), index, outside, holdings));
    start_timers(&shard);
    let lot = start_parking(&shard, &config, index);
    // GatewayWorker pings its workers whenever lanIp is not exactly 127.0.0.1 (workers on other
    // machines: keeps NAT and firewall state alive).
    if settings.lan_ip != std::net::Ipv4Addr::LOCALHOST && config.worker_ping_interval > 0.0 {
        every(
            &shard,
            Duration::from_secs_f64(config.worker_ping_interval),
            Shard::ping_workers,
        );
    }
    let _ = ready.send((index, Ok(())));
    accept_clients(shard, public_listener, tls, lot, config.listen.protocol).await;
}

/// Gives the shard's thread its own fd table (`Ok(true)`), or keeps the process's where a
/// seccomp profile refuses `unshare` (`Ok(false)`: Docker's and containerd's defaults do
/// without CAP_SYS_ADMIN; the shards then share the process's RLIMIT_NOFILE).
fn own_fd_table(index: usize) -> Result<bool, ShardStartError> {
    match system::unshare_fd_table() {
        Ok(()) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
            if index == 0 {
                warn!(
                    "unshare(CLONE_FILES) is refused here (a seccomp profile): the shards share \
                     one fd table, so RLIMIT_NOFILE bounds the clients of all shards together \
                     (docs/deployment.md, Containers)"
                );
            }
            Ok(false)
        }
        Err(e) => Err(ShardStartError::FdTable(e)),
    }
}

/// The shard's public listener (shared by every shard through SO_REUSEPORT) and its inner one.
async fn listeners(
    config: &GatewayConfig,
    public: SocketAddr,
    inner: SocketAddr,
) -> Result<(rt::TcpListener, rt::TcpListener), ShardStartError> {
    let public_listener = rt::listen_after_restart(public, true)
        .await
        .map_err(|source| ShardStartError::Public {
            listen: config.listen,
            source,
        })?;
    let inner_listener = rt::listen_after_restart(inner, false)
        .await
        .map_err(|source| ShardStartError::Inner {
            addr: inner,
            source,
        })?;
    Ok((public_listener, inner_listener))
}

/// Accepts worker and GatewayClient links on the inner port; a link that sends no hello in
/// time is closed.
async fn accept_links(
    links: Rc<RefCell<Shard>>,
    inner_listener: rt::TcpListener,
    link_timeout: f64,
    holdings: Option<Rc<Holdings>>,
) {
    loop {
        match inner_listener.accept().await {
            Ok(stream) => {
                let Ok(peer) = stream.peer_addr() else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                rt::fail_dead_peer_after(&stream, link_timeout);
                let link_id = links.borrow_mut().link_opened(peer);
                let peer = LinkPeer::new(links.clone(), link_id, holdings.clone());
                rt::spawn(rt::drive(stream, peer));
                let hello_due = links.clone();
                rt::spawn(async move {
                    rt::sleep(INNER_HELLO_TIMEOUT).await;
                    hello_due.borrow_mut().link_hello_due(link_id);
                });
            }
            Err(e) => {
                crate::log_limit::warn_limited(
                    "inner accept failed",
                    &format!("inner accept failed: {e}"),
                );
                rt::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// Every [`PUBLISH_EVERY`]: tells clients the gateway is going away once it stops, hands the
/// store its holdings, gives freed memory back, publishes the snapshot and answers questions
/// (`outside`'s store feed is `holdings`' now).
async fn publish(
    publishing: Rc<RefCell<Shard>>,
    index: usize,
    outside: Outside,
    holdings: Option<Rc<Holdings>>,
) {
    let Outside {
        published,
        questions,
        stopping,
        ..
    } = outside;
    let mut warnings = crate::gateway::LimitWarnings::default();
    loop {
        rt::sleep(PUBLISH_EVERY).await;
        // Every tick while stopping: clients accepted or upgraded since the last one are told
        // too (a client is told once).
        if stopping.load(std::sync::atomic::Ordering::SeqCst) {
            publishing.borrow_mut().going_away();
        }
        if let Some(holdings) = &holdings {
            holdings.flush(&mut publishing.borrow_mut());
        }
        let released = publishing.borrow_mut().take_released_input();
        if released + rt::take_freed_input() >= GIVE_BACK_AFTER {
            crate::system::give_back_freed_memory();
        }
        let snapshot = {
            let s = publishing.borrow();
            warnings.check(s.stats(), index, std::time::Instant::now());
            let pacing = rt::pacing::counts();
            ShardSnapshot {
                fanout_pauses: pacing.pauses,
                overdue_fanout_pauses: pacing.overdue_pauses,
                ..s.snapshot(index)
            }
        };
        if let Ok(mut slot) = published.lock() {
            *slot = snapshot;
        }
        while let Ok(question) = questions.try_recv() {
            let answer = publishing.borrow().inspect(question.clients);
            let _ = question.reply.send(answer);
        }
    }
}

/// The core's timers: each runs only when its setting is on.
fn start_timers(shard: &Rc<RefCell<Shard>>) {
    let timers: [(Option<Duration>, Tick); 5] = {
        let s = shard.borrow();
        [
            (
                s.heartbeat_period().map(Duration::from_secs_f64),
                Shard::heartbeat_tick,
            ),
            (s.stall_check_period(), Shard::sweep_worker_stalls),
            (s.message_check_period(), Shard::sweep_messages),
            (s.handshake_check_period(), Shard::sweep_handshakes),
            (s.token_check_period(), Shard::sweep_token_expiry),
        ]
    };
    for (period, tick) in timers {
        if let Some(period) = period {
            every(shard, period, tick);
        }
    }
}

/// The parking lot for idle clients, with `gateway.park_after` on; a parked client's socket is
/// resumed into a client task when it speaks.
fn start_parking(
    shard: &Rc<RefCell<Shard>>,
    config: &GatewayConfig,
    index: usize,
) -> Option<Rc<RefCell<ParkingLot>>> {
    if config.park_after <= 0.0 {
        return None;
    }
    let every = Duration::from_secs_f64(config.park_after);
    match parking::start(shard, every) {
        Ok((lot, woken)) => {
            let (resuming, lot_for_resumed) = (shard.clone(), lot.clone());
            let resume = move |id, socket: std::os::fd::OwnedFd| {
                let stream = match rt::tcp_stream(socket) {
                    Ok(stream) => stream,
                    Err(e) => {
                        warn!(error = %e, "a parked client's socket could not be resumed");
                        resuming
                            .borrow_mut()
                            .destroy_client(id, crate::gateway::CloseCause::Peer);
                        return;
                    }
                };
                let peer = ClientPeer::resume(resuming.clone(), id);
                spawn_client(&resuming, Some(&lot_for_resumed), id, stream, peer);
            };
            rt::spawn(parking::serve(shard.clone(), lot.clone(), woken, resume));
            Some(lot)
        }
        Err(e) => {
            warn!(index, error = %e, "idle clients will not be parked");
            None
        }
    }
}

/// Accepts clients on the public port for the shard's life: none while no worker is linked
/// (they wait in the kernel's backlog), refused while going away or full, backing off when
/// descriptors run out.
async fn accept_clients(
    shard: Rc<RefCell<Shard>>,
    public_listener: rt::TcpListener,
    tls: Option<net::tls::TlsSlot>,
    lot: Option<Rc<RefCell<ParkingLot>>>,
    protocol: ClientProtocol,
) {
    let mut out_of_fds = Duration::ZERO;
    loop {
        // No worker, nobody to serve: connections wait in the kernel's backlog (after a restart,
        // until the workers relink) instead of being accepted and dropped unanswered.
        while !shard.borrow().has_workers() {
            rt::sleep(WORKER_WAIT_POLL).await;
        }
        match public_listener.accept().await {
            Ok(stream) => {
                out_of_fds = Duration::ZERO;
                if shard.borrow().leaving() {
                    // Going away: the restarted gateway (or another host) takes the client.
                    refuse_connection(stream, protocol);
                    continue;
                }
                if shard.borrow_mut().full() {
                    crate::log_limit::warn_limited(
                        "max_connections",
                        "the shard holds its share of gateway.max_connections: refusing new clients",
                    );
                    refuse_connection(stream, protocol);
                    continue;
                }
                let Ok(remote) = stream.peer_addr() else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let id = shard.borrow_mut().accept_client(remote);
                match id {
                    Some(id) => {
                        let peer = ClientPeer::new(shard.clone(), id, remote);
                        match &tls {
                            None => spawn_client(&shard, lot.as_ref(), id, stream, peer),
                            Some(slot) => match rustls::ServerConnection::new(slot.current()) {
                                Ok(conn) => {
                                    rt::spawn(rt::drive_tls(stream, peer, conn));
                                }
                                Err(e) => {
                                    crate::log_limit::warn_limited("tls", &format!("tls: {e}"));
                                    shard
                                        .borrow_mut()
                                        .destroy_client(id, crate::gateway::CloseCause::BadInput);
                                }
                            },
                        }
                    }
                    None => {
                        crate::log_limit::warn_limited(
                            "no worker",
                            "no business worker is connected: client refused",
                        );
                    }
                }
            }
            Err(e) if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) => {
                // The listener stays readable: accepting again at once would spin. Back off,
                // doubling up to a second, until a descriptor is free.
                shard.borrow_mut().accept_without_fd();
                out_of_fds =
                    (out_of_fds * 2).clamp(Duration::from_millis(50), Duration::from_secs(1));
                crate::log_limit::warn_limited(
                    "descriptors ran out",
                    &format!(
                        "accept failed: {e}; waiting {} ms (raise RLIMIT_NOFILE or lower \
                         gateway.max_connections; see gatewire tune check)",
                        out_of_fds.as_millis()
                    ),
                );
                rt::sleep(out_of_fds).await;
            }
            Err(e) => {
                crate::log_limit::warn_limited("accept failed", &format!("accept failed: {e}"));
                rt::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

type Tick = fn(&mut Shard);

/// Runs `tick` on the shard every `period`, for the shard's life.
fn every(shard: &Rc<RefCell<Shard>>, period: Duration, tick: Tick) {
    let shard = shard.clone();
    rt::spawn(async move {
        loop {
            rt::sleep(period).await;
            tick(&mut shard.borrow_mut());
        }
    });
}

/// How many clients one shard holds: its share of `gateway.max_connections`, or with 0 what
/// its descriptor table allows (its own, or its share of the process's), less a reserve.
fn max_clients(config: &GatewayConfig, own_fd_table: bool) -> usize {
    let shards = config.shard_count().max(1);
    if config.max_connections > 0 {
        return config.max_connections.div_ceil(shards);
    }
    let room = system::fd_limit().saturating_sub(system::FD_HEADROOM) as usize;
    if own_fd_table {
        room.max(1)
    } else {
        (room / shards).max(1)
    }
}

/// Refuses a connection over the limit: a 503 on WebSocket listeners (best effort, never
/// waiting), then close.
fn refuse_connection(stream: rt::TcpStream, protocol: crate::config::ClientProtocol) {
    if protocol == crate::config::ClientProtocol::WebSocket {
        const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\
                              Connection: close\r\nRetry-After: 5\r\n\r\n";
        let fd = std::os::fd::AsRawFd::as_raw_fd(&stream);
        // SAFETY: a non-blocking send of a static buffer on a socket we own.
        let _ = unsafe {
            libc::send(
                fd,
                BUSY.as_ptr().cast(),
                BUSY.len(),
                libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            )
        };
    }
    drop(stream);
}

/// Runs client `id`'s connection in a task of its own; when the task ends idle, the parking lot
/// takes its socket.
fn spawn_client(
    shard: &Rc<RefCell<Shard>>,
    lot: Option<&Rc<RefCell<ParkingLot>>>,
    id: u32,
    stream: rt::TcpStream,
    peer: ClientPeer,
) {
    let (shard, lot) = (shard.clone(), lot.cloned());
    rt::spawn(async move {
        if let (Some(socket), Some(lot)) = (rt::drive(stream, peer).await, lot) {
            lot.borrow_mut().park(&mut shard.borrow_mut(), id, socket);
        }
    });
}

/// The gateway side of a register link: announce the inner address, ignore the rest.
struct Announcement {
    line: String,
}

impl RegisterLink for Announcement {
    fn hello(&self) -> String {
        self.line.clone()
    }

    fn on_message(&mut self, _message: RegisterMessage) {}
}
