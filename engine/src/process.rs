//! One process running some roles: the register executor, the gateway shards, the worker
//! threads. [`Running`] starts them, reports on them (status, metrics, the client list) and
//! stops them — plainly, or draining the workers first.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracing::info;

use crate::apps::Builtin;
use crate::config::{self, Config, Role};
use crate::gateway::{self, ClientRow, Inspect, Inspection, ShardHandle};
use crate::register::{self, RegisterStats};
use crate::rt;
use crate::system;
use crate::worker::{self, Events, WorkerControl, Workers};

/// How long a status or metrics request waits for a shard's answer.
const INSPECT_WAIT: Duration = Duration::from_secs(2);

/// The roles of this process, running.
#[derive(Debug)]
pub struct Running {
    pub roles: Vec<Role>,
    register: Option<Arc<RegisterStats>>,
    shards: Vec<ShardHandle>,
    /// The gateway's store thread, with the store on.
    store: Option<crate::store::Publisher>,
    /// `store.redis_url`, with the store on.
    store_url: Option<String>,
    workers: Option<Arc<WorkerControl>>,
    worker_threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
    /// The HTTP API, with the api role.
    api: Option<crate::http_api::Api>,
    /// The workers run the `http` app (their counters go to `/metrics`).
    http_hook: bool,
    threads: Vec<std::thread::JoinHandle<()>>,
}

/// Counters of one process for `gatewire status`.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProcessStatus {
    pub connections: u64,
    pub messages_in: u64,
    pub messages_out: u64,
    /// Worker links: held by a gateway, or made by a worker process.
    pub worker_links: u64,
    /// Messages dropped for slow clients plus events dropped for full worker links.
    pub dropped: u64,
    /// Events handled by a worker process.
    pub events: u64,
    /// Register membership.
    pub gateways: u64,
    pub workers: u64,
}

/// What a process does with the store (with it on).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreSummary {
    /// A gateway's store thread.
    Gateway {
        redis_url: String,
        connected: bool,
        entries: u64,
        errors: u64,
    },
    /// A worker's routing of uid and group commands.
    Worker {
        redis_url: String,
        routed: u64,
        packets: u64,
        fallbacks: u64,
    },
}

/// Why a process could not start its roles.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("no role to run (roles: register, gateway, worker, api)")]
    NoRole,
    #[error("register: cannot listen on {listen} (register.listen): {source}")]
    RegisterListen {
        listen: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("api: cannot listen on {listen:?} (api.listen): {source}")]
    ApiListen {
        listen: Option<std::net::SocketAddr>,
        source: std::io::Error,
    },
    #[error("store: cannot start the store thread: {0}")]
    Store(std::io::Error),
    #[error("register: its thread ended before listening")]
    RegisterEnded,
    #[error(transparent)]
    Gateway(#[from] gateway::StartError),
    #[error(transparent)]
    Executor(#[from] rt::ExecutorError),
}

/// How long a stopping gateway waits for its clients' goodbyes to be written.
const GOODBYE_WAIT: Duration = Duration::from_secs(2);

/// How long a stopping gateway lets its store thread withdraw its entries.
const STORE_STOP_WAIT: Duration = Duration::from_secs(2);

impl Running {
    /// Starts `roles` (register first, then the gateway, then the workers). `custom` is a
    /// `gatewire::run` binary's app; the stock binary runs `[worker] app`.
    pub fn start<A: Events>(
        config: &Config,
        roles: &[Role],
        custom: Option<A>,
    ) -> Result<Running, StartError> {
        match system::raise_fd_limit() {
            Ok(limit) => info!(nofile = limit, "fd limit"),
            Err(e) => info!(error = %e, "could not raise the fd limit"),
        }
        if let Err(e) = system::set_transparent_huge_pages(config.run.transparent_huge_pages) {
            info!(error = %e, "could not set run.transparent_huge_pages");
        }
        let mut running = Running {
            roles: roles.to_vec(),
            register: None,
            shards: Vec::new(),
            store: None,
            store_url: config
                .store
                .enabled()
                .then(|| config.store.redis_url.clone()),
            workers: None,
            worker_threads: Mutex::new(Vec::new()),
            threads: Vec::new(),
            api: None,
            http_hook: false,
        };
        if roles.contains(&Role::Register) {
            let stats = Arc::new(RegisterStats::default());
            running
                .threads
                .push(start_register(config.register.clone(), stats.clone())?);
            running.register = Some(stats);
        }
        if roles.contains(&Role::Gateway) {
            if config.store.enabled() {
                let shards = gateway::inner_addresses(&config.gateway);
                let publisher = crate::store::Publisher::start(&config.store, shards)
                    .map_err(StartError::Store)?;
                running.store = Some(publisher);
            }
            running.shards = gateway::start(&config.gateway, running.store.as_ref())?;
        }
        if roles.contains(&Role::Worker) {
            running.http_hook = custom.is_none() && config.worker.app == config::AppName::Http;
            let Workers { threads, control } = match custom {
                Some(app) => worker::start(&config.worker, &config.store, app)?,
                None => worker::start(&config.worker, &config.store, Builtin::new(&config.worker))?,
            };
            running.workers = Some(control);
            running.worker_threads = Mutex::new(threads);
        }
        if roles.contains(&Role::Api) {
            let api = crate::http_api::start(&config.api, &config.store).map_err(|source| {
                StartError::ApiListen {
                    listen: config.api.listen,
                    source,
                }
            })?;
            running.api = Some(api);
        }
        if roles.is_empty() {
            return Err(StartError::NoRole);
        }
        Ok(running)
    }

    /// Waits until the workers (if any) are linked to every listed gateway shard.
    pub fn wait_ready(&self, timeout: Duration) -> bool {
        let Some(workers) = &self.workers else {
            return true;
        };
        let deadline = Instant::now() + timeout;
        while !workers.ready() {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        true
    }

    /// Stops every role. With `drain`, each worker thread first has the gateways route it
    /// nothing new and handles what they already sent (a reload or `stop -g`). Then the
    /// gateway shards tell their clients they are going away (WebSocket close 1001) and close
    /// them, for up to [`GOODBYE_WAIT`]. The register ends with the process.
    pub fn stop(&self, drain: bool) {
        self.stop_workers(drain);
        if self.shards.is_empty() {
            return;
        }
        for shard in &self.shards {
            shard.stopping.store(true, Ordering::SeqCst);
        }
        let deadline = Instant::now() + GOODBYE_WAIT;
        while Instant::now() < deadline {
            // Only snapshots taken after a shard told its clients count: an older one may miss
            // a client that connected a moment before the stop.
            let left: Option<u64> = self
                .shards
                .iter()
                .map(|s| {
                    let snapshot = s.snapshot.lock().ok()?;
                    snapshot.leaving.then_some(snapshot.connections)
                })
                .sum();
            if left == Some(0) {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if let Some(store) = &self.store {
            // Withdraws every entry the store thread knows of this process, whether or not the
            // closed clients' removals reached it.
            store.stop(STORE_STOP_WAIT);
        }
    }

    fn stop_workers(&self, drain: bool) {
        if let Some(workers) = &self.workers {
            if drain {
                workers.drain();
            } else {
                workers.stop();
            }
            let threads = std::mem::take(&mut *self.worker_threads.lock().expect("not poisoned"));
            for t in threads {
                let _ = t.join();
            }
        }
    }

    /// Asks every shard; the answers come within one publishing tick.
    fn inspect(&self, clients: bool) -> Vec<Inspection> {
        let (reply, answers) = std::sync::mpsc::channel();
        let asked = self
            .shards
            .iter()
            .filter(|s| {
                s.inspect
                    .send(Inspect {
                        clients,
                        reply: reply.clone(),
                    })
                    .is_ok()
            })
            .count();
        drop(reply);
        let deadline = Instant::now() + INSPECT_WAIT;
        let mut out = Vec::with_capacity(asked);
        while out.len() < asked {
            let left = deadline.saturating_duration_since(Instant::now());
            match answers.recv_timeout(left) {
                Ok(a) => out.push(a),
                Err(_) => break,
            }
        }
        out.sort_by_key(|a| a.index);
        out
    }

    pub fn status(&self) -> ProcessStatus {
        let mut s = ProcessStatus::default();
        for shard in &self.shards {
            if let Ok(snap) = shard.snapshot.lock() {
                s.connections += snap.connections;
                s.messages_in += snap.stats.messages_in;
                s.messages_out += snap.stats.messages_out;
                s.worker_links += snap.worker_links;
                s.dropped += snap.stats.slow_client_drops + snap.stats.worker_buffer_drops;
            }
        }
        if let Some(workers) = &self.workers {
            s.events = workers.events();
            s.worker_links += workers.links();
        }
        if let Some(r) = &self.register {
            s.gateways = r.gateways.load(Ordering::Relaxed);
            s.workers = r.workers.load(Ordering::Relaxed);
        }
        if let Some(api) = &self.api {
            // HTTP connections, requests in, and the gateway methods they ran as events.
            s.connections += api.stats.connections.load(Ordering::Relaxed);
            s.messages_in += api.stats.requests.load(Ordering::Relaxed);
            s.events += api.stats.calls.load(Ordering::Relaxed);
        }
        s
    }

    /// Reads the gateway's `tls_cert` / `tls_key` again (`gatewire reload --tls`, SIGHUP): new
    /// handshakes use the new pair; a pair that does not load is refused and the old one stays.
    pub fn reload_tls(&self) -> Result<String, String> {
        match self.shards.first().and_then(|s| s.tls.as_ref()) {
            Some(slot) => slot.reload(),
            None => Err("no wss:// gateway runs in this process".into()),
        }
    }

    /// Whether this process runs a `wss://` gateway.
    pub fn has_tls(&self) -> bool {
        self.shards.first().is_some_and(|s| s.tls.is_some())
    }

    /// This process's worker links: `(worker key, link)`.
    pub fn links(&self) -> Vec<(String, crate::worker::LinkState)> {
        self.workers
            .as_ref()
            .map(|w| w.link_states())
            .unwrap_or_default()
    }

    /// The hosts whose workers link to this process's gateway shards, with their link counts.
    pub fn worker_hosts(&self) -> Vec<(String, u64)> {
        let mut hosts: std::collections::BTreeMap<String, u64> = Default::default();
        for shard in &self.shards {
            if let Ok(snap) = shard.snapshot.lock() {
                for key in &snap.worker_keys {
                    let host = key.split(':').next().unwrap_or(key);
                    *hosts.entry(host.to_owned()).or_default() += 1;
                }
            }
        }
        hosts.into_iter().collect()
    }

    /// What this process does with the store (with it on): a gateway's store thread and a
    /// worker's routing.
    pub fn store_summary(&self) -> Vec<StoreSummary> {
        let Some(url) = &self.store_url else {
            return Vec::new();
        };
        let mut out = Vec::new();
        if let Some(store) = &self.store {
            let s = &store.stats;
            out.push(StoreSummary::Gateway {
                redis_url: url.clone(),
                connected: s.connected.load(Ordering::Relaxed) == 1,
                entries: s.entries.load(Ordering::Relaxed),
                errors: s.errors.load(Ordering::Relaxed),
            });
        }
        if self.workers.is_some() {
            let r = &crate::store::ROUTING;
            out.push(StoreSummary::Worker {
                redis_url: url.clone(),
                routed: r.sends.load(Ordering::Relaxed),
                packets: r.packets.load(Ordering::Relaxed),
                fallbacks: r.fallbacks.load(Ordering::Relaxed),
            });
        }
        out
    }

    /// The register's members (gateways and workers), when this process runs it.
    pub fn members(&self) -> Vec<crate::register::Member> {
        self.register
            .as_ref()
            .and_then(|r| r.members.lock().ok().map(|m| m.clone()))
            .unwrap_or_default()
    }

    /// Every client of this process's gateway shards.
    pub fn connections(&self) -> Vec<ClientRow> {
        self.inspect(true)
            .into_iter()
            .flat_map(|a| a.clients)
            .collect()
    }

    /// The Prometheus exposition of this process.
    pub fn metrics(&self) -> String {
        let mut text = crate::metrics::Exposition::default();
        if let Some(r) = &self.register {
            crate::metrics::register(&mut text, r);
        }
        if !self.shards.is_empty() {
            let snapshots: Vec<_> = self
                .shards
                .iter()
                .filter_map(|s| s.snapshot.lock().ok().map(|s| s.clone()))
                .collect();
            crate::metrics::gateway(&mut text, &snapshots, &self.inspect(false));
        }
        if let Some(store) = &self.store {
            crate::metrics::store(&mut text, &store.stats);
        }
        if let Some(w) = &self.workers {
            crate::metrics::worker(&mut text, w);
            crate::metrics::routing(&mut text);
        }
        if let Some(api) = &self.api {
            crate::metrics::api(&mut text, &api.stats);
        }
        if self.http_hook {
            crate::metrics::http_hook(&mut text, &crate::apps::http_hook::STATS);
        }
        text.finish()
    }
}

/// Blocks the signals a process running `roles` waits for, before it starts any thread (every
/// thread inherits the mask, so only the waiting ones receive them): SIGINT and SIGTERM, and
/// SIGHUP when it runs a `wss://` gateway (see [`reload_tls_on_sighup`]).
pub fn block_signals_for(config: &Config, roles: &[Role]) {
    system::block_stop_signals();
    if roles.contains(&Role::Gateway)
        && config.gateway.listen.protocol == config::ClientProtocol::SecureWebSocket
    {
        system::block_signals(&[libc::SIGHUP]);
    }
}

/// With a `wss://` gateway here, SIGHUP reloads its certificate (as `gatewire reload --tls`),
/// logged either way; other processes keep SIGHUP's default.
pub fn reload_tls_on_sighup(running: &Arc<Running>) {
    if !running.has_tls() {
        return;
    }
    let running = running.clone();
    std::thread::spawn(move || {
        loop {
            system::wait_signal(&[libc::SIGHUP]);
            match running.reload_tls() {
                Ok(done) => info!("{done} (SIGHUP)"),
                Err(why) => {
                    tracing::error!("tls reload refused, the certificate in use stays: {why}")
                }
            }
        }
    });
}

fn start_register(
    config: config::RegisterConfig,
    stats: Arc<RegisterStats>,
) -> Result<std::thread::JoinHandle<()>, StartError> {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), StartError>>();
    let listen = config.listen;
    let spec = rt::ExecutorSpec::new("register", rt::Cpu::Any);
    let handle = rt::start(spec, move || async move {
        match rt::listen_after_restart(listen, false).await {
            Ok(listener) => {
                let _ = ready_tx.send(Ok(()));
                register::serve(listener, config, stats).await;
            }
            Err(source) => {
                let _ = ready_tx.send(Err(StartError::RegisterListen { listen, source }));
            }
        }
    })?;
    ready_rx.recv().map_err(|_| StartError::RegisterEnded)??;
    Ok(std::thread::spawn(move || {
        let _ = handle.join();
    }))
}
