//! The one configuration file (`gatewire.toml`): every role's section, its defaults, and
//! `--set section.key=value` overrides. Every default lives here and only here. Errors name the
//! key and the file.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The whole configuration.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub run: RunConfig,
    pub register: RegisterConfig,
    pub gateway: GatewayConfig,
    pub worker: WorkerConfig,
    pub metrics: MetricsConfig,
    pub store: StoreConfig,
    pub api: ApiConfig,
    /// Where each key that is not at its default got its value (`section.key` → `FILE:LINE`,
    /// an environment variable, a `--set` flag, or derived from another key).
    #[serde(skip)]
    pub origins: std::collections::BTreeMap<String, String>,
}

/// `[api]`: the HTTP API, GatewayClient's methods over HTTP for backends in any language (the
/// `api` role; see docs/http-api.md).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Address of the HTTP listener; unset means off. Setting it adds the `api` role to the
    /// default roles.
    pub listen: Option<SocketAddr>,
    /// Required of every request (`Authorization: Bearer KEY` or `X-API-Key: KEY`); may be empty
    /// only on a loopback listener.
    pub api_key: String,
    /// The registers that list the gateways (as a GatewayClient's `registerAddress`).
    #[serde(deserialize_with = "address_list")]
    pub register_address: Vec<SocketAddr>,
    /// The gateways' `secret_key`.
    pub secret_key: String,
    /// Open HTTP connections at most; one more is answered 503 and closed.
    pub max_connections: usize,
    /// Largest request body (bytes); larger ones are answered 413.
    pub max_body_size: usize,
    /// Most calls in one `/api/batch` request.
    pub max_batch: usize,
    /// Seconds an idle keep-alive connection (or a slow request) is kept.
    pub idle_timeout: f64,
    /// Log level of the api role (default: `[run] log`).
    pub log: Option<String>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            listen: None,
            api_key: String::new(),
            register_address: vec![SocketAddr::from(([127, 0, 0, 1], 1236))],
            secret_key: String::new(),
            max_connections: 256,
            max_body_size: 8 << 20,
            max_batch: 1000,
            idle_timeout: 60.0,
            log: None,
        }
    }
}

/// `[metrics]`: the Prometheus text endpoint.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Address of the endpoint (`GET /metrics`); unset means off.
    pub listen: Option<SocketAddr>,
}

/// `[store]`: where gateways record which uids and groups each shard holds, so that sends and
/// queries for a uid or group go only to the shards that hold it (see docs/deployment.md, "When
/// to turn the store on"). Off by default: every uid or group send goes to every gateway, as in
/// GatewayWorker.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// `"none"` (GatewayWorker's behaviour) or `"redis"`.
    pub backend: StoreBackend,
    /// The Redis server: `redis://host:port/db`, `rediss://…` for TLS (system roots), or
    /// `redis+unix:///path/to/socket`.
    pub redis_url: String,
    /// Redis password (AUTH), kept out of the URL so `config check` can mask it; empty: the
    /// URL's, if any.
    pub password: String,
    /// Prefix of every key gatewire writes, so deployments can share one Redis.
    pub prefix: String,
    /// Seconds a shard's entries live without being refreshed: the bound on what a dead
    /// gateway leaves behind in Redis (routing never trusts a shard that is not linked and
    /// listed as a writer). Refreshed every third of it, spread out; a shorter TTL costs Redis
    /// more refresh work (entries ÷ TTL × 3 per second).
    pub ttl: f64,
    /// Seconds a worker or GatewayClient waits on Redis before sending to every gateway
    /// instead (counted as a fallback).
    pub timeout: f64,
}

/// The store's backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreBackend {
    None,
    Redis,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            backend: StoreBackend::None,
            redis_url: "redis://127.0.0.1:6379/0".into(),
            password: String::new(),
            prefix: "gatewire:".into(),
            ttl: 120.0,
            timeout: 0.2,
        }
    }
}

impl StoreConfig {
    /// Whether the store is on.
    pub fn enabled(&self) -> bool {
        self.backend != StoreBackend::None
    }
}

/// `[run]`: what this machine runs.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunConfig {
    /// Roles started by `gatewire start` (GatewayWorker's machine type).
    pub roles: Vec<Role>,
    /// Holds the pid file, the log file of `start -d` and the supervisor's control socket. Unset:
    /// the well-known directory for this deployment's `name` (see [`Config::run_dir`]); a
    /// relative path is taken from the configuration file's directory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dir: Option<PathBuf>,
    /// The deployment's name: several deployments on one host differ by name (`--name`).
    pub name: String,
    /// Log filter for every role without its own `log` key (`error`..`trace`, or tracing
    /// directives). The `GATEWIRE_LOG` environment variable wins over every `log` key.
    pub log: String,
    /// Start a register or gateway that other hosts can reach without a `secret_key` (refused
    /// otherwise: anyone reaching it could join the cluster).
    pub allow_insecure: bool,
    /// Let the kernel back this process's memory with transparent huge pages. Off by default: an
    /// idle client then costs its bytes, not its share of a 2 MiB page (see
    /// [`crate::system::set_transparent_huge_pages`]).
    pub transparent_huge_pages: bool,
    /// The runtime backend of every executor thread: `auto` (io_uring where the kernel allows
    /// it, else epoll, with one log line saying why), `io_uring`, `epoll` or `glommio`.
    pub backend: crate::rt::BackendChoice,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            roles: vec![Role::Register, Role::Gateway, Role::Worker],
            dir: None,
            name: "default".into(),
            log: "info".into(),
            allow_insecure: false,
            transparent_huge_pages: false,
            backend: crate::rt::BackendChoice::Auto,
        }
    }
}

/// A process role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Register,
    Gateway,
    Worker,
    Api,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Register => "register",
            Role::Gateway => "gateway",
            Role::Worker => "worker",
            Role::Api => "api",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Role, String> {
        match s {
            "register" => Ok(Role::Register),
            "gateway" => Ok(Role::Gateway),
            "worker" => Ok(Role::Worker),
            "api" => Ok(Role::Api),
            other => Err(format!(
                "unknown role {other:?} (roles: register, gateway, worker, api)"
            )),
        }
    }
}

/// `[register]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegisterConfig {
    /// Address the Register listens on.
    pub listen: SocketAddr,
    /// Shared secret; empty disables the check.
    pub secret_key: String,
    /// Seconds a member's connection may go unacknowledged (data or keepalive probes) before
    /// it is dropped, with the gateways it announced; 0 leaves the kernel's defaults.
    pub link_timeout: f64,
    /// Most connections (gateway shards, worker threads, GatewayClients, not yet identified)
    /// the register holds at once; one more is closed at accept and counted.
    pub max_members: usize,
    /// Log level of the register role (default: `[run] log`).
    pub log: Option<String>,
}

impl Default for RegisterConfig {
    fn default() -> Self {
        RegisterConfig {
            listen: "127.0.0.1:1236".parse().expect("literal address"),
            secret_key: String::new(),
            link_timeout: 10.0,
            max_members: 10_000,
            log: None,
        }
    }
}

/// The client-facing protocol, from the scheme of `gateway.listen`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientProtocol {
    WebSocket,
    /// WebSocket over TLS (`wss://`).
    SecureWebSocket,
    Text,
    Frame,
    /// `tcp://`: every read is one message, sends are raw.
    Raw,
}

impl ClientProtocol {
    /// Whether clients open with a handshake (WebSocket upgrade, TLS) before any message.
    pub fn has_handshake(self) -> bool {
        matches!(
            self,
            ClientProtocol::WebSocket | ClientProtocol::SecureWebSocket
        )
    }
}

/// A parsed `scheme://ip:port` listen URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenUrl {
    pub protocol: ClientProtocol,
    pub addr: SocketAddr,
}

impl fmt::Display for ListenUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.protocol {
            ClientProtocol::WebSocket => "websocket",
            ClientProtocol::SecureWebSocket => "wss",
            ClientProtocol::Text => "text",
            ClientProtocol::Frame => "frame",
            ClientProtocol::Raw => "tcp",
        };
        write!(f, "{scheme}://{}", self.addr)
    }
}

impl std::str::FromStr for ListenUrl {
    type Err = String;
    fn from_str(s: &str) -> Result<ListenUrl, String> {
        let (scheme, addr) = s
            .split_once("://")
            .ok_or_else(|| format!("{s:?} is not scheme://ip:port"))?;
        let protocol = match scheme.to_ascii_lowercase().as_str() {
            "websocket" | "ws" => ClientProtocol::WebSocket,
            "wss" => ClientProtocol::SecureWebSocket,
            "text" => ClientProtocol::Text,
            "frame" => ClientProtocol::Frame,
            "tcp" => ClientProtocol::Raw,
            other => {
                return Err(format!(
                    "unknown protocol {other:?} (websocket, wss, text, frame, tcp)"
                ));
            }
        };
        let addr = addr
            .parse()
            .map_err(|_| format!("{addr:?} is not an ip:port address"))?;
        Ok(ListenUrl { protocol, addr })
    }
}

impl Serialize for ListenUrl {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ListenUrl {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// One register address or a list of them.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
enum AddressList {
    One(SocketAddr),
    Many(Vec<SocketAddr>),
}

fn address_list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<SocketAddr>, D::Error> {
    Ok(match AddressList::deserialize(d)? {
        AddressList::One(a) => vec![a],
        AddressList::Many(v) => v,
    })
}

/// What happens when a client's output queue is over `send_to_client_buffer_size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SlowClientPolicy {
    /// Drop the message for that client and count it (GatewayWorker's behaviour).
    Drop,
    /// Close the client and count it.
    Close,
}

/// How a client's first event picks a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RouterMode {
    LeastConnections,
    Random,
}

/// Room an inner packet needs beyond the client message it carries: the 28-byte header and a
/// session of up to 64 KiB.
pub const MESSAGE_PACKET_OVERHEAD: usize = 28 + 64 * 1024;

/// `[gateway]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewayConfig {
    /// Client-facing listener: `websocket://`, `wss://`, `text://`, `frame://` or `tcp://`.
    pub listen: ListenUrl,
    /// The IPv4 address workers dial; encoded into every client id.
    pub lan_ip: Ipv4Addr,
    /// Shard `i` listens for workers on `lan_ip:(start_port + i)`.
    pub start_port: u16,
    /// Shard count; 0 means one per CPU core. Any number works (shards are pinned round-robin).
    pub shards: usize,
    /// CPUs the shards are pinned to (shard i on `cpus[i % len]`); empty: shard i on the i-th
    /// CPU this process may use, round-robin.
    pub cpus: Vec<usize>,
    #[serde(deserialize_with = "address_list")]
    pub register_address: Vec<SocketAddr>,
    pub secret_key: String,
    /// Seconds between heartbeat ticks; 0 disables the heartbeat.
    pub ping_interval: f64,
    /// Silent intervals tolerated before a client is dropped; 0 never drops.
    pub ping_not_response_limit: u32,
    /// Message sent to silent clients each interval (protocol-encoded); empty sends nothing.
    pub ping_data: String,
    /// Seconds between CMD_PING packets to workers when `lan_ip` is not 127.0.0.1; 0 disables.
    pub worker_ping_interval: f64,
    /// Seconds between idle sweeps: a client that sent nothing for a whole period is parked
    /// (its task and stream dropped, its socket watched by epoll); 0 never parks.
    pub park_after: f64,
    /// Seconds a client has to finish its WebSocket (and TLS) handshake before it is closed;
    /// 0 waits forever.
    pub handshake_timeout: f64,
    /// Seconds a worker or register link may go unacknowledged (data or keepalive probes) before
    /// it is dropped; 0 leaves the kernel's defaults (about 15 minutes).
    pub link_timeout: f64,
    /// Files served to plain HTTP GETs on a WebSocket listener.
    pub static_dir: Option<PathBuf>,
    /// Serve the chat app's built-in page at `/`: unset, when the chat app runs in the same
    /// `gatewire start` (and `static_dir` is unset); `true` on a gateway-only host of a chat
    /// deployment too; `false` never.
    pub chat_page: Option<bool>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Per-client output cap in bytes.
    pub send_to_client_buffer_size: usize,
    /// Per-worker-link output cap in bytes.
    pub send_to_worker_buffer_size: usize,
    pub slow_client_policy: SlowClientPolicy,
    /// Largest client message (bytes).
    pub max_message_size: usize,
    /// Most clients this gateway process holds, spread evenly over its shards; one more is
    /// refused at accept (503 on WebSocket listeners) and counted. 0: as many as each shard's
    /// descriptor limit allows, less a reserve for links and files.
    pub max_connections: usize,
    /// Seconds a gatewire worker may leave the shard's "are you reading?" unanswered before it
    /// stops being a routing target and its clients move to live workers; 0 (the default) keeps
    /// GatewayWorker's behaviour: clients wait for their worker.
    pub worker_stall_timeout: f64,
    /// Bytes of incomplete client messages one shard holds at most; over it the client with
    /// the largest incomplete message is closed (WebSocket 1009) and counted.
    pub max_pending_input_bytes: usize,
    /// Seconds a client has to finish a message once its first byte arrived; 0 waits forever.
    pub message_timeout: f64,
    /// Largest inner packet (bytes); when unset, at least `max_message_size` plus room for the
    /// header and a session.
    pub max_packet_size: usize,
    pub router: RouterMode,
    /// Log level of the gateway role (default: `[run] log`).
    pub log: Option<String>,
    /// A page served at `/` when `static_dir` is unset: set by `gatewire start` to the chat app's
    /// page when the chat app runs in the same process (not a config key).
    #[serde(skip)]
    pub builtin_page: Option<&'static str>,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            listen: "websocket://127.0.0.1:8282".parse().expect("literal url"),
            lan_ip: Ipv4Addr::LOCALHOST,
            start_port: 2900,
            shards: 0,
            cpus: Vec::new(),
            register_address: vec!["127.0.0.1:1236".parse().expect("literal address")],
            secret_key: String::new(),
            ping_interval: 0.0,
            ping_not_response_limit: 0,
            ping_data: String::new(),
            worker_ping_interval: 25.0,
            park_after: 5.0,
            handshake_timeout: 10.0,
            link_timeout: 10.0,
            static_dir: None,
            chat_page: None,
            tls_cert: None,
            tls_key: None,
            send_to_client_buffer_size: 1 << 20,
            send_to_worker_buffer_size: 10_240_000,
            slow_client_policy: SlowClientPolicy::Drop,
            max_message_size: gatewire_proto::DEFAULT_MAX_PACKAGE_SIZE,
            max_connections: 0,
            worker_stall_timeout: 0.0,
            max_pending_input_bytes: 128 << 20,
            message_timeout: 30.0,
            max_packet_size: gatewire_proto::DEFAULT_MAX_PACKAGE_SIZE,
            router: RouterMode::LeastConnections,
            log: None,
            builtin_page: None,
        }
    }
}

impl GatewayConfig {
    /// The shard count with 0 resolved to the number of cores.
    pub fn shard_count(&self) -> usize {
        if self.shards == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            self.shards
        }
    }
}

/// The built-in business logic a stock `gatewire` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum AppName {
    /// The chat room; the gateway serves its web page at / (unless `gateway.static_dir` is set).
    Chat,
    /// Every message back to its sender.
    Echo,
    /// Every message to every client.
    Broadcast,
    /// Each event POSTed to an HTTP backend (`[worker.http]`), which answers with the commands
    /// to run: business logic in any language (docs/http-api.md).
    Http,
}

/// `[worker]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkerConfig {
    /// Worker keys are `name:index`; keep names unique per host.
    pub name: String,
    /// Worker threads; 0 means one per core.
    pub count: usize,
    /// CPUs the worker threads are pinned to (thread i on `cpus[i % len]`); empty: not pinned,
    /// the kernel places them (beside pinned gateway shards on the same host).
    pub cpus: Vec<usize>,
    #[serde(deserialize_with = "address_list")]
    pub register_address: Vec<SocketAddr>,
    pub secret_key: String,
    /// Built-in app run by the stock binary (`gatewire::run` binaries run their own).
    pub app: AppName,
    /// Largest packet accepted from a gateway (bytes); a larger one drops that link.
    pub max_packet_size: usize,
    /// Bytes a worker thread may queue for one gateway link; a gateway that does not read past
    /// this has its link dropped (and re-established), as GatewayWorker's
    /// `sendToGatewayBufferSize`.
    pub send_to_gateway_buffer_size: usize,
    /// The most gateway shards one worker thread links to: a register's list beyond this is
    /// ignored (logged, counted in `gatewire_worker_gateway_cap_hits_total`).
    pub max_gateways: usize,
    /// Seconds a retiring worker waits for every gateway to confirm it takes no new events
    /// (reload, `stop -g`) before it stops anyway.
    pub drain_timeout: f64,
    /// Seconds a new worker process (reload, restart) has to link to every gateway shard.
    pub ready_timeout: f64,
    /// Seconds a gateway or register link may go unacknowledged (data or keepalive probes)
    /// before it is dropped and dialled again; 0 leaves the kernel's defaults.
    pub link_timeout: f64,
    /// Log level of the worker role (default: `[run] log`).
    pub log: Option<String>,
    /// The HTTP backend of `app = "http"`.
    pub http: HttpHookConfig,
    /// Distinguishes worker processes of one supervisor: worker keys of generation `g > 0` are
    /// `name:index.g`, so a replacement can link while the process it replaces still holds
    /// `name:index` (set by the supervisor, not a config key).
    #[serde(skip)]
    pub generation: u64,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            name: "BusinessWorker".into(),
            count: 0,
            cpus: Vec::new(),
            register_address: vec!["127.0.0.1:1236".parse().expect("literal address")],
            secret_key: String::new(),
            app: AppName::Chat,
            max_packet_size: gatewire_proto::DEFAULT_MAX_PACKAGE_SIZE,
            send_to_gateway_buffer_size: 10_240_000,
            max_gateways: 1024,
            drain_timeout: 10.0,
            ready_timeout: 30.0,
            link_timeout: 10.0,
            log: None,
            http: HttpHookConfig::default(),
            generation: 0,
        }
    }
}

/// `[worker.http]`: where `app = "http"` POSTs each event, and what it does when the backend
/// does not answer.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpHookConfig {
    /// The backend's URL, `http://host:port/path` (plain HTTP: the backend is on the cluster's
    /// network, or on loopback).
    pub url: String,
    /// Sent as `Authorization: Bearer KEY` with every event when not empty.
    pub api_key: String,
    /// Seconds an answer may take before the attempt counts as failed.
    pub timeout: f64,
    /// Attempts after a failed one (a connection refused or reset, a timeout, a 5xx answer),
    /// 100 ms apart, doubling.
    pub retries: u32,
    /// Events posted at once per worker thread (different clients; one client's events go one
    /// after the other).
    pub max_in_flight: usize,
    /// Events one client may have waiting behind the one being posted; one more closes the
    /// client (counted), as a slow consumer.
    pub max_queued_per_client: usize,
    /// Sent to a client, before it is closed, when one of its messages could not be delivered
    /// to the backend (every attempt failed); empty: closed without it.
    pub failure_message: String,
}

impl Default for HttpHookConfig {
    fn default() -> Self {
        HttpHookConfig {
            url: String::new(),
            api_key: String::new(),
            timeout: 5.0,
            retries: 2,
            max_in_flight: 64,
            max_queued_per_client: 256,
            failure_message: String::new(),
        }
    }
}

impl WorkerConfig {
    /// The worker key of thread `index` (GatewayWorker's `name:index`).
    pub fn worker_key(&self, index: usize) -> String {
        if self.generation == 0 {
            format!("{}:{index}", self.name)
        } else {
            format!("{}:{index}.{}", self.name, self.generation)
        }
    }

    /// The thread count with 0 resolved to the number of cores.
    pub fn thread_count(&self) -> usize {
        if self.count == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            self.count
        }
    }
}

/// A configuration that cannot be used; the message names the key and the file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{origin}: {message}")]
    Invalid { origin: String, message: String },
}

/// Loads `path` (or the defaults when `None`), then applies `GATEWIRE_<SECTION>_<KEY>`
/// environment variables, then `overrides` (`section.key=value`, the command line wins).
pub fn load(path: Option<&Path>, overrides: &[String]) -> Result<Config, ConfigError> {
    let from_env: Vec<String> = std::env::vars()
        .filter_map(|(name, value)| env_override(&name, &value))
        .collect();
    load_with(path, &from_env, overrides)
}

/// Keys whose values are never shown (`config check`, error messages).
const SECRET_KEYS: [&str; 7] = [
    "worker.http.api_key",
    "register.secret_key",
    "gateway.secret_key",
    "worker.secret_key",
    "store.password",
    "api.api_key",
    "api.secret_key",
];

/// `value` of `key` as it may be shown: secrets masked, a URL's password masked.
fn shown_value(key: &str, value: &str) -> String {
    if SECRET_KEYS.contains(&key) {
        "********".to_owned()
    } else if key == "store.redis_url" {
        url_password_masked(value)
    } else {
        value.to_owned()
    }
}

/// `scheme://user:password@host/…` with the password replaced by `********`.
fn url_password_masked(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_owned();
    };
    match rest[..at].split_once(':') {
        Some((user, password)) if !password.is_empty() => {
            format!("{scheme}://{user}:********{}", &rest[at..])
        }
        _ => url.to_owned(),
    }
}

/// The sections of `gatewire.toml`.
const SECTIONS: [&str; 7] = [
    "run", "register", "gateway", "worker", "metrics", "store", "api",
];

/// `GATEWIRE_GATEWAY_START_PORT=3000` → `gateway.start_port=3000`. Every `GATEWIRE_<A>_<B>`
/// is configuration, so a misspelled section (`GATEWIRE_GATWAY_SHARDS`) is refused like a
/// misspelled key; only `GATEWIRE_LOG` (the log filter) is not.
fn env_override(name: &str, value: &str) -> Option<String> {
    let rest = name.strip_prefix("GATEWIRE_")?;
    let (section, key) = rest.split_once('_')?;
    Some(format!(
        "{}.{}={value}",
        section.to_ascii_lowercase(),
        key.to_ascii_lowercase()
    ))
}

fn load_with(
    path: Option<&Path>,
    from_env: &[String],
    overrides: &[String],
) -> Result<Config, ConfigError> {
    let (text, origin) = match path {
        Some(p) => (
            std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                path: p.to_owned(),
                source,
            })?,
            p.display().to_string(),
        ),
        None => (String::new(), "built-in defaults".to_owned()),
    };
    let invalid = |origin: &str, message: String| ConfigError::Invalid {
        origin: origin.to_owned(),
        message,
    };
    let mut table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| invalid(&origin, e.to_string()))?;
    let sourced = from_env
        .iter()
        .map(|o| ("environment (GATEWIRE_*)", o))
        .chain(overrides.iter().map(|o| ("--set", o)));
    let mut overridden = false;
    // Where each overridden key's value came from, for error messages.
    let mut sources: std::collections::HashMap<String, String> = std::collections::HashMap::new();
    for (source, item) in sourced {
        overridden = true;
        let (key, value) = item
            .split_once('=')
            .ok_or_else(|| invalid(source, format!("{item:?} is not section.key=value")))?;
        let (section, field) = key
            .split_once('.')
            .ok_or_else(|| invalid(source, format!("{key:?} is not section.key")))?;
        let described = if source == "--set" {
            format!("--set {key}={}", shown_value(key, value))
        } else {
            format!(
                "environment variable GATEWIRE_{}_{}",
                section.to_ascii_uppercase(),
                field.to_ascii_uppercase()
            )
        };
        if !SECTIONS.contains(&section) {
            return Err(invalid(
                &described,
                format!(
                    "unknown section {section:?} (sections: {})",
                    SECTIONS.join(", ")
                ),
            ));
        }
        sources.insert(key.to_owned(), described.clone());
        // A value that parses as TOML keeps its type (numbers, arrays); anything else is a string.
        let value = format!("v = {value}")
            .parse::<toml::Table>()
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(value.to_owned()));
        // `worker.http.url`: the key of a sub-table (`[worker.http]`).
        let mut path: Vec<&str> = std::iter::once(section).chain(field.split('.')).collect();
        let last = path.pop().unwrap_or(field);
        let mut place = &mut table;
        for name in path {
            let entry = place
                .entry(name.to_owned())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            place = match entry {
                toml::Value::Table(t) => t,
                _ => {
                    return Err(invalid(
                        &described,
                        format!("{key}: {name} is not a section"),
                    ));
                }
            };
        }
        place.insert(last.to_owned(), value);
    }
    let origin = if overridden {
        format!("{origin} with overrides (GATEWIRE_* / --set)")
    } else {
        origin
    };
    let set = |section: &str, key: &str| {
        table
            .get(section)
            .and_then(|s| s.as_table())
            .is_some_and(|t| t.contains_key(key))
    };
    let packet_sizes_set = (
        set("gateway", "max_packet_size"),
        set("worker", "max_packet_size"),
    );
    let name = table
        .get("run")
        .and_then(|r| r.get("name"))
        .and_then(|n| n.as_str())
        .unwrap_or("default");
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return Err(invalid(
            &origin,
            format!("run.name = {name:?}: a deployment name is one path component, like \"chat\""),
        ));
    }
    let mut origins = std::collections::BTreeMap::new();
    // Every key set, by its full name (`worker.http.url` for a sub-table's).
    let mut keys: Vec<(String, &toml::Value)> = table.iter().map(|(k, v)| (k.clone(), v)).collect();
    while let Some((name, value)) = keys.pop() {
        match value.as_table() {
            Some(t) => keys.extend(t.iter().map(|(k, v)| (format!("{name}.{k}"), v))),
            None if name.contains('.') => {
                let origin = sources.get(&name).cloned().or_else(|| {
                    path.map(|p| {
                        key_location(p, &text, &name).unwrap_or_else(|| p.display().to_string())
                    })
                });
                if let Some(origin) = origin {
                    origins.insert(name, origin);
                }
            }
            None => {}
        }
    }
    let mut config: Config =
        toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| {
                let raw = e.to_string();
                let (detail, key) = match raw.trim_end().rsplit_once("\nin `") {
                    Some((detail, key)) => (detail.trim(), key.trim_end_matches('`')),
                    None => return invalid(&origin, raw.trim_end().to_owned()),
                };
                // An unknown key: name it in full, with the keys its section has.
                let unknown = detail
                    .strip_prefix("unknown field `")
                    .and_then(|rest| rest.split_once('`'))
                    .map(|(field, rest)| (format!("{key}.{field}"), rest));
                let (key, detail) = match &unknown {
                    Some((full, rest)) => {
                        let known = rest
                            .trim_start_matches(", expected one of ")
                            .replace('`', "");
                        (
                            full.as_str(),
                            format!("unknown key (the section has: {known})"),
                        )
                    }
                    None => (key, detail.to_owned()),
                };
                let place = sources
                    .get(key)
                    .cloned()
                    .or_else(|| path.and_then(|p| key_location(p, &text, key)))
                    .unwrap_or_else(|| origin.clone());
                invalid(&place, in_words(key, &detail))
            })?;
    // A relative run directory is the configuration file's, wherever the command runs from.
    if let (Some(dir), Some(file)) = (&config.run.dir, path)
        && dir.is_relative()
    {
        let base = file.parent().filter(|p| !p.as_os_str().is_empty());
        let base = base.map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        config.run.dir = Some(std::path::absolute(base.join(dir)).unwrap_or(base.join(dir)));
    }
    // Unset packet bounds follow the message bound, so raising max_message_size alone works.
    let derived = config.gateway.max_message_size + MESSAGE_PACKET_OVERHEAD;
    for (set, section, bound) in [
        (
            packet_sizes_set.0,
            "gateway",
            &mut config.gateway.max_packet_size,
        ),
        (
            packet_sizes_set.1,
            "worker",
            &mut config.worker.max_packet_size,
        ),
    ] {
        if !set {
            *bound = (*bound).max(derived);
            origins.insert(
                format!("{section}.max_packet_size"),
                "derived: gateway.max_message_size + 65564".into(),
            );
        }
    }
    // An API listener turns the api role on beside the default roles; named roles are as named.
    if config.api.listen.is_some()
        && !origins.contains_key("run.roles")
        && !config.run.roles.contains(&Role::Api)
    {
        config.run.roles.push(Role::Api);
        origins.insert("run.roles".into(), "derived: api.listen is set".into());
    }
    config.origins = origins;
    config
        .validate()
        .map_err(|message| invalid(&origin, message))?;
    Ok(config)
}

/// `FILE:LINE` of `section.key` in a configuration file's text, when it is set there.
fn key_location(file: &Path, text: &str, key: &str) -> Option<String> {
    let (section, field) = key.rsplit_once('.')?;
    let mut current = "";
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = name.trim();
        } else if current == section
            && line
                .strip_prefix(field)
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        {
            return Some(format!("{}:{}", file.display(), n + 1));
        }
    }
    None
}

/// A value error in words: "gateway.start_port must be a port number (1-65535), got 70000"
/// rather than the parser's "invalid value: integer `70000`, expected u16".
fn in_words(key: &str, detail: &str) -> String {
    let expected = detail.rsplit_once("expected ").map(|(_, e)| e.trim());
    let got = detail
        .split_once('`')
        .and_then(|(_, rest)| rest.split_once('`'))
        .map(|(v, _)| v.to_owned())
        .or_else(|| {
            let (_, rest) = detail.split_once("invalid type: ")?;
            Some(rest.split_once(", expected")?.0.to_owned())
        });
    let wanted = match expected {
        Some("u16") if key.ends_with("port") => "a port number (1-65535)",
        Some("u16") => "a whole number from 0 to 65535",
        Some("u32") => "a whole number from 0 to 4294967295",
        Some("u64" | "usize") => "a whole number (0 or more)",
        Some("f64") => "a number",
        Some("a boolean") => "true or false",
        Some("a string") => "text in quotes",
        _ => return format!("{key}: {detail}"),
    };
    match got {
        Some(got) => format!("{key} must be {wanted}, got {got}"),
        None => format!("{key} must be {wanted}"),
    }
}

/// Where run directories live when `[run] dir` is unset: `$XDG_RUNTIME_DIR/gatewire`, else
/// `/run/gatewire` for root, else `/tmp/gatewire-<uid>`.
pub fn run_dir_base() -> PathBuf {
    if let Some(runtime) = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(runtime).join("gatewire");
    }
    // SAFETY: geteuid has no preconditions.
    match unsafe { libc::geteuid() } {
        0 => PathBuf::from("/run/gatewire"),
        uid => PathBuf::from(format!("/tmp/gatewire-{uid}")),
    }
}

impl Config {
    /// The run directory: `[run] dir`, or the well-known one for `[run] name`.
    pub fn run_dir(&self) -> PathBuf {
        self.run
            .dir
            .clone()
            .unwrap_or_else(|| run_dir_base().join(&self.run.name))
    }

    /// The log filter of a process running `roles`: `[run] log`, refined per role module.
    pub fn log_filter(&self, roles: &[Role]) -> String {
        let mut filter = self.run.log.clone();
        for (role, module, level) in [
            (Role::Register, "register", &self.register.log),
            (Role::Gateway, "gateway", &self.gateway.log),
            (Role::Worker, "worker", &self.worker.log),
            (Role::Api, "http_api", &self.api.log),
        ] {
            if let Some(level) = level.as_ref().filter(|_| roles.contains(&role)) {
                if roles.len() == 1 {
                    // A process of one role: everything it logs is that role's.
                    filter = level.clone();
                } else {
                    filter.push_str(&format!(",gatewire::{module}={level}"));
                }
            }
        }
        filter
    }

    /// A copy to show people: every non-empty secret replaced by `********`, also a password
    /// inside `store.redis_url`.
    pub fn with_secrets_masked(&self) -> Config {
        let mut shown = self.clone();
        shown.store.redis_url = url_password_masked(&shown.store.redis_url);
        for secret in [
            &mut shown.register.secret_key,
            &mut shown.gateway.secret_key,
            &mut shown.worker.secret_key,
            &mut shown.store.password,
            &mut shown.api.api_key,
            &mut shown.api.secret_key,
            &mut shown.worker.http.api_key,
        ] {
            if !secret.is_empty() {
                *secret = "********".into();
            }
        }
        shown
    }

    /// Why a gateway started here could not be reached by the workers the registers send to it:
    /// `lan_ip` is not an address of this host, or is loopback while a register is remote.
    pub fn unreachable_gateway(&self, roles: &[Role]) -> Option<String> {
        if !roles.contains(&Role::Gateway) {
            return None;
        }
        let g = &self.gateway;
        if g.lan_ip.is_loopback() {
            let remote = g.register_address.iter().find(|a| !a.ip().is_loopback())?;
            return Some(format!(
                "gateway.lan_ip is {} but the register at {remote} (gateway.register_address) is \
                 on another host: workers there would dial {}. Set gateway.lan_ip to this \
                 host's address on the cluster network",
                g.lan_ip, g.lan_ip
            ));
        }
        match std::net::TcpListener::bind((g.lan_ip, 0)) {
            Err(e) if e.kind() == std::io::ErrorKind::AddrNotAvailable => Some(format!(
                "gateway.lan_ip is {}, which is not an address of this host: workers dial it to \
                 reach this gateway. Set it to this host's address on the cluster network (see \
                 `ip -4 addr`)",
                g.lan_ip
            )),
            _ => None,
        }
    }

    /// Why starting `roles` would expose an unauthenticated cluster port to other hosts: a
    /// register or a gateway's inner ports on a non-loopback address with an empty secret, unless
    /// `run.allow_insecure` is set.
    pub fn insecure_exposure(&self, roles: &[Role]) -> Option<String> {
        if self.run.allow_insecure {
            return None;
        }
        let register = roles.contains(&Role::Register)
            && !self.register.listen.ip().is_loopback()
            && self.register.secret_key.is_empty();
        let gateway = roles.contains(&Role::Gateway)
            && !self.gateway.lan_ip.is_loopback()
            && self.gateway.secret_key.is_empty();
        let (what, key) = match (register, gateway) {
            (true, _) => (
                format!("register.listen is {}", self.register.listen),
                "register.secret_key",
            ),
            (_, true) => (
                format!(
                    "the gateway's inner ports listen on gateway.lan_ip {}",
                    self.gateway.lan_ip
                ),
                "gateway.secret_key",
            ),
            _ => return None,
        };
        Some(format!(
            "{what}, reachable from other hosts, and {key} is empty: anyone who reaches it could \
             announce gateways to your workers or take over a worker's clients. Set the same \
             secret_key in [register], [gateway] and [worker] on every host (see \
             docs/operations.md, Security), or set run.allow_insecure = true to run without one"
        ))
    }

    fn validate(&self) -> Result<(), String> {
        let g = &self.gateway;
        let w = &self.worker;
        for (key, seconds) in [
            ("gateway.ping_interval", g.ping_interval),
            ("gateway.worker_ping_interval", g.worker_ping_interval),
            ("gateway.park_after", g.park_after),
            ("gateway.handshake_timeout", g.handshake_timeout),
            ("gateway.message_timeout", g.message_timeout),
            ("gateway.worker_stall_timeout", g.worker_stall_timeout),
            ("gateway.link_timeout", g.link_timeout),
            ("register.link_timeout", self.register.link_timeout),
            ("worker.link_timeout", w.link_timeout),
            ("worker.drain_timeout", w.drain_timeout),
            ("worker.ready_timeout", w.ready_timeout),
            ("store.ttl", self.store.ttl),
            ("store.timeout", self.store.timeout),
        ] {
            if !(seconds >= 0.0 && seconds.is_finite()) {
                return Err(format!("{key} must be a non-negative number of seconds"));
            }
        }
        let api = &self.api;
        match api.listen {
            None if self.run.roles.contains(&Role::Api) => {
                return Err(
                    "run.roles has \"api\" but api.listen is unset: give the HTTP API \
                            an address, e.g. api.listen = \"127.0.0.1:8080\""
                        .into(),
                );
            }
            Some(listen) if !listen.ip().is_loopback() && api.api_key.is_empty() => {
                return Err(format!(
                    "api.listen = \"{listen}\" is not a loopback address and api.api_key is \
                     empty: anyone reaching it could push to every client; set api.api_key"
                ));
            }
            _ => {}
        }
        if api.max_connections == 0 || api.max_body_size == 0 || api.max_batch == 0 {
            return Err(
                "api.max_connections, api.max_body_size and api.max_batch must be at least 1"
                    .into(),
            );
        }
        if !(api.idle_timeout > 0.0 && api.idle_timeout.is_finite()) {
            return Err("api.idle_timeout must be a positive number of seconds".into());
        }
        if w.app == AppName::Http {
            let h = &w.http;
            if let Err(why) = crate::apps::http_hook::Url::parse(&h.url) {
                return Err(format!(
                    "worker.app = \"http\" posts events to worker.http.url: {why}"
                ));
            }
            if !(h.timeout > 0.0 && h.timeout.is_finite()) {
                return Err("worker.http.timeout must be a positive number of seconds".into());
            }
            if h.max_in_flight == 0 || h.max_queued_per_client == 0 {
                return Err(
                    "worker.http.max_in_flight and max_queued_per_client must be at least 1".into(),
                );
            }
        }
        if g.chat_page == Some(true) && g.static_dir.is_some() {
            return Err(
                "gateway.chat_page = true and gateway.static_dir are both set: the page at / is \
                 either the built-in chat page or index.html from the directory; unset one"
                    .into(),
            );
        }
        if self.store.enabled() {
            if self.store.ttl < 3.0 {
                return Err(format!(
                    "store.ttl must be at least 3 seconds (it is refreshed every third of it), \
                     got {}",
                    self.store.ttl
                ));
            }
            if self.store.timeout <= 0.0 {
                return Err("store.timeout must be more than 0 seconds".into());
            }
            if let Err(e) =
                redis::IntoConnectionInfo::into_connection_info(self.store.redis_url.as_str())
            {
                return Err(format!(
                    "store.redis_url {:?} is not a Redis URL ({e}); use redis://host:port/db, \
                     rediss://… or redis+unix:///path",
                    self.store.redis_url
                ));
            }
        }
        crate::placement::check("gateway.cpus", &g.cpus)?;
        crate::placement::check("worker.cpus", &w.cpus)?;
        // A client message travels to a worker in one inner packet (header, session, message):
        // a gateway that accepts messages the packets cannot carry would lose them.
        for (key, max_packet) in [
            ("gateway.max_packet_size", g.max_packet_size),
            ("worker.max_packet_size", w.max_packet_size),
        ] {
            if g.max_message_size + MESSAGE_PACKET_OVERHEAD > max_packet {
                return Err(format!(
                    "gateway.max_message_size ({}) does not fit in {key} ({max_packet}): a \
                     client message travels to its worker in one inner packet with a header \
                     and the session, so {key} must be at least max_message_size + {} \
                     (set {key} = {} or lower gateway.max_message_size)",
                    g.max_message_size,
                    MESSAGE_PACKET_OVERHEAD,
                    g.max_message_size + MESSAGE_PACKET_OVERHEAD,
                ));
            }
        }
        let shards = g.shard_count();
        if usize::from(g.start_port) + shards > usize::from(u16::MAX) + 1 {
            return Err(format!(
                "gateway.start_port {} + {shards} shards runs past port 65535",
                g.start_port
            ));
        }
        if g.listen.protocol == ClientProtocol::SecureWebSocket
            && (g.tls_cert.is_none() || g.tls_key.is_none())
        {
            return Err(
                "gateway.listen is wss:// but gateway.tls_cert or gateway.tls_key is not set"
                    .into(),
            );
        }
        if g.register_address.is_empty() {
            return Err("gateway.register_address is empty".into());
        }
        if g.max_pending_input_bytes < g.max_message_size.min(1 << 20) {
            return Err(format!(
                "gateway.max_pending_input_bytes ({}) must hold at least one message of 1 MiB \
                 (or max_message_size, if smaller)",
                g.max_pending_input_bytes
            ));
        }
        if self.register.max_members == 0 {
            return Err("register.max_members must be at least 1".into());
        }
        if w.max_gateways == 0 {
            return Err("worker.max_gateways must be at least 1".into());
        }
        for (key, level) in [
            ("run.log", Some(&self.run.log)),
            ("register.log", self.register.log.as_ref()),
            ("gateway.log", self.gateway.log.as_ref()),
            ("worker.log", self.worker.log.as_ref()),
        ] {
            if let Some(level) = level {
                tracing_subscriber::EnvFilter::try_new(level)
                    .map_err(|e| format!("{key} = {level:?}: {e}"))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_loopback_lan_ip_with_a_remote_register_is_unreachable() {
        let mut config = Config::default();
        config.gateway.register_address = vec!["10.1.2.4:1236".parse().unwrap()];
        let why = config.unreachable_gateway(&[Role::Gateway]).unwrap();
        assert!(why.contains("gateway.lan_ip is 127.0.0.1 but the register at 10.1.2.4:1236"));
        assert!(config.unreachable_gateway(&[Role::Worker]).is_none());
        config.gateway.register_address = vec!["127.0.0.1:1236".parse().unwrap()];
        assert!(config.unreachable_gateway(&[Role::Gateway]).is_none());
    }

    #[test]
    fn secrets_are_masked_in_values_and_in_where_they_came_from() {
        let c = load_with(
            None,
            &[],
            &[
                "store.password=hunter2".into(),
                "store.redis_url=redis://app:sekrit@10.0.0.5:6379/0".into(),
            ],
        )
        .unwrap();
        let shown =
            format!("{:?}", c.origins) + &toml::to_string(&c.with_secrets_masked()).unwrap();
        assert!(
            !shown.contains("hunter2") && !shown.contains("sekrit"),
            "{shown}"
        );
        assert!(
            shown.contains("redis://app:********@10.0.0.5:6379/0"),
            "{shown}"
        );
        assert_eq!(
            url_password_masked("redis://127.0.0.1:6379"),
            "redis://127.0.0.1:6379"
        );
        assert_eq!(
            url_password_masked("redis://:pw@h/0"),
            "redis://:********@h/0"
        );
    }

    #[test]
    fn environment_names_map_to_keys() {
        assert_eq!(
            env_override("GATEWIRE_GATEWAY_START_PORT", "3000").as_deref(),
            Some("gateway.start_port=3000")
        );
        assert_eq!(env_override("GATEWIRE_LOG", "debug"), None);
        assert_eq!(env_override("PATH", "/bin"), None);
        // A misspelled section is configuration too, and refused naming the variable.
        let typo = env_override("GATEWIRE_GATWAY_SHARDS", "3").unwrap();
        let err = load_with(None, &[typo], &[]).unwrap_err().to_string();
        assert!(
            err.contains("environment variable GATEWIRE_GATWAY_SHARDS")
                && err.contains("\"gatway\""),
            "{err}"
        );
        let err = load_with(None, &[], &["gatway.shards=3".into()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("--set gatway.shards=3"), "{err}");
    }

    #[test]
    fn each_role_gets_its_log_level() {
        let c = load_with(
            None,
            &[],
            &["run.log=warn".into(), "gateway.log=debug".into()],
        )
        .unwrap();
        assert_eq!(c.log_filter(&[Role::Gateway]), "debug");
        assert_eq!(c.log_filter(&[Role::Worker]), "warn");
        assert_eq!(
            c.log_filter(&[Role::Register, Role::Gateway]),
            "warn,gatewire::gateway=debug"
        );
        let bad = load_with(None, &[], &["worker.log=lots[".into()]).unwrap_err();
        assert!(bad.to_string().contains("worker.log"), "{bad}");
    }

    #[test]
    fn the_command_line_wins_over_the_environment() {
        let env = ["gateway.shards=3".to_owned()];
        let cli = ["gateway.shards=5".to_owned()];
        assert_eq!(load_with(None, &env, &cli).unwrap().gateway.shards, 5);
        assert_eq!(load_with(None, &env, &[]).unwrap().gateway.shards, 3);
        let bad = ["gateway.shards=many".to_owned()];
        let err = load_with(None, &bad, &[]).unwrap_err().to_string();
        assert!(err.contains("gateway.shards"), "{err}");
    }
}
