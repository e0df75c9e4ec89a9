//! The schema of `gatewire.toml`: every section, every key with its type, its default and what
//! it means. Every default lives here and only here.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

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
    /// permessage-deflate (RFC 7692) with clients that offer it: each message is compressed on
    /// its own (no per-socket compressor state), a broadcast once per shard for every client
    /// that negotiated it.
    pub compression: bool,
    /// Messages shorter than this many bytes go uncompressed (compression on).
    pub compression_min_size: usize,
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
    /// Bytes queued for all of one shard's clients and not yet written, at most; over it a message
    /// is not queued for a client that still has output waiting (counted), so an overloaded
    /// shard sheds instead of growing its memory. Clients with nothing queued still get it.
    pub max_pending_output_bytes: usize,
    /// Seconds a client has to finish a message once its first byte arrived; 0 waits forever.
    pub message_timeout: f64,
    /// Largest inner packet (bytes); when unset, at least `max_message_size` plus room for the
    /// header and a session.
    pub max_packet_size: usize,
    pub router: RouterMode,
    /// `[gateway.auth]`: token authentication at the WebSocket handshake (off unless a key is
    /// set).
    pub auth: AuthConfig,
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
            compression: false,
            compression_min_size: 256,
            max_connections: 0,
            worker_stall_timeout: 0.0,
            max_pending_input_bytes: 128 << 20,
            max_pending_output_bytes: 256 << 20,
            message_timeout: 30.0,
            auth: AuthConfig::default(),
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

/// `[gateway.auth]`: a JSON Web Token verified before the 101. Off unless `secret` or
/// `public_key` is set; on, every WebSocket client must present a valid token (from the
/// `Authorization: Bearer` header, a `bearer.<token>` entry of `Sec-WebSocket-Protocol`, or the
/// `token` query parameter, in that order), or is answered 401 and never reaches a worker.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// `HS256`, `RS256` or `ES256`; when unset, `HS256` with `secret`, and with `public_key`
    /// what the key is (an RSA key: `RS256`, a P-256 key: `ES256`).
    pub algorithm: Option<String>,
    /// The shared secret of `HS256` tokens.
    pub secret: String,
    /// A PEM file with the public key of `RS256` or `ES256` tokens.
    pub public_key: Option<PathBuf>,
    /// When set, a token's `iss` must be this.
    pub issuer: Option<String>,
    /// When set, a token's `aud` must be (or contain) this.
    pub audience: Option<String>,
    /// Seconds of clock difference allowed when checking `exp` and `nbf`.
    pub leeway: u64,
    /// The WebSocket close code a client gets when its token expires unrefreshed (4000-4999).
    pub expired_close_code: Option<u16>,
}

impl AuthConfig {
    /// Whether tokens are checked.
    pub fn enabled(&self) -> bool {
        !self.secret.is_empty() || self.public_key.is_some()
    }

    /// The close code for an expired token (default 4001).
    pub fn close_code(&self) -> u16 {
        self.expired_close_code.unwrap_or(4001)
    }

    /// The verifier this section describes (`None` when off); the error names the key.
    pub fn verifier(&self) -> Result<Option<crate::net::jwt::TokenVerifier>, String> {
        use crate::net::jwt::{TokenKey, TokenVerifier};
        if !self.enabled() {
            return Ok(None);
        }
        let (key, name) = match &self.public_key {
            Some(path) => (TokenKey::PublicKey(path), "gateway.auth.public_key"),
            None => (TokenKey::Secret(&self.secret), "gateway.auth.secret"),
        };
        TokenVerifier::new(
            self.algorithm.as_deref(),
            key,
            self.issuer.as_deref(),
            self.audience.as_deref(),
            self.leeway,
        )
        .map(Some)
        .map_err(|e| format!("{name}: {e}"))
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
    /// The events posted: `connect` (every TCP connection, before any handshake),
    /// `websocket_connect`, `message`, `close` by default; `group_join` and `group_leave`
    /// (group presence) when named. Leaving `connect` out spares a WebSocket backend one POST
    /// per client.
    pub events: Vec<String>,
}

/// Every event kind the `http` app can post.
pub const HOOK_EVENTS: [&str; 6] = [
    "connect",
    "websocket_connect",
    "message",
    "close",
    "group_join",
    "group_leave",
];

/// The events posted unless `worker.http.events` says otherwise: all but group presence, which
/// costs the gateways an event per member change and is asked for by name.
pub const DEFAULT_HOOK_EVENTS: [&str; 4] = ["connect", "websocket_connect", "message", "close"];

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
            events: DEFAULT_HOOK_EVENTS
                .iter()
                .map(|e| (*e).to_owned())
                .collect(),
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
