//! The HTTP API (the `api` role): GatewayWorker's `Gateway::` methods over HTTP, so a backend in
//! any language pushes to clients and asks about them as PHP's GatewayClient does —
//! `POST /api/<method>` with the method's arguments as a JSON object, `POST /api/batch` for many
//! calls in order. It talks to the gateways exactly as GatewayClient does (registers, then
//! gateways; the store when it is on), so it works against gatewire and PHP gateways alike.
//!
//! Why a small server here rather than an HTTP framework: the API is JSON over HTTP/1.1
//! keep-alive, one request at a time per connection, and every call blocks on gateway round
//! trips through the blocking GatewayClient; a thread per connection (bounded by
//! `api.max_connections`) with `httparse` for the head is all it needs, and it adds no async
//! runtime beside the engine's.
//!
//! - [`http`]: reading requests and writing answers on one connection;
//! - the calls themselves: [`crate::api::json`] (a method name and its JSON arguments → a
//!   Gateway call → JSON).

pub mod http;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{Value as Json, json};
use tracing::info;

use crate::api::json::{self as methods, Failure, answer_json};
use crate::client::GatewayClient;
use crate::config::{ApiConfig, StoreConfig};
use crate::log_limit::warn_limited;

/// What the API has done, for `gatewire status` and `/metrics`.
#[derive(Debug, Default)]
pub struct ApiStats {
    /// HTTP connections open now.
    pub connections: AtomicU64,
    /// Requests answered.
    pub requests: AtomicU64,
    /// Method calls run (a batch counts each of its calls).
    pub calls: AtomicU64,
    /// Requests answered with an error (4xx, 5xx), and calls that failed inside a batch.
    pub errors: AtomicU64,
    /// Connections refused at `api.max_connections`.
    pub refused: AtomicU64,
}

/// The running API: its address and counters.
#[derive(Debug)]
pub struct Api {
    pub addr: SocketAddr,
    pub stats: Arc<ApiStats>,
}

/// Starts the listener and its accept thread; each connection gets a thread of its own.
pub fn start(config: &ApiConfig, store: &StoreConfig) -> std::io::Result<Api> {
    let listen = config
        .listen
        .ok_or_else(|| std::io::Error::other("api.listen is unset"))?;
    let listener = TcpListener::bind(listen)?;
    let addr = listener.local_addr()?;
    let stats = Arc::new(ApiStats::default());
    let shared = Arc::new(Shared {
        config: config.clone(),
        store: store.clone(),
        stats: stats.clone(),
    });
    std::thread::Builder::new()
        .name("api-accept".into())
        .spawn(move || accept_loop(listener, shared))?;
    info!(listen = %addr, "http api listening");
    Ok(Api { addr, stats })
}

struct Shared {
    config: ApiConfig,
    store: StoreConfig,
    stats: Arc<ApiStats>,
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    for stream in listener.incoming() {
        let mut stream = match stream {
            Ok(s) => s,
            Err(e) => {
                warn_limited("api accept", &format!("api: accept failed: {e}"));
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        let open = shared.stats.connections.fetch_add(1, Ordering::SeqCst);
        if open >= shared.config.max_connections as u64 {
            shared.stats.connections.fetch_sub(1, Ordering::SeqCst);
            shared.stats.refused.fetch_add(1, Ordering::Relaxed);
            warn_limited(
                "api busy",
                &format!("api: {open} connections open (api.max_connections): refusing one more"),
            );
            let busy = Failure::new(503, "busy", "too many connections (api.max_connections)");
            let _ = http::respond(&mut stream, 503, &busy.to_json().to_string(), true);
            continue;
        }
        let shared = shared.clone();
        let spawned = std::thread::Builder::new()
            .name("api-conn".into())
            .spawn(move || {
                serve_connection(stream, &shared);
                shared.stats.connections.fetch_sub(1, Ordering::SeqCst);
            });
        if let Err(e) = spawned {
            warn_limited("api thread", &format!("api: cannot start a thread: {e}"));
        }
    }
}

/// Serves one connection's requests until it closes, goes idle, or sends something unreadable.
fn serve_connection(mut stream: TcpStream, shared: &Shared) {
    let idle = Duration::from_secs_f64(shared.config.idle_timeout);
    let _ = stream.set_read_timeout(Some(idle));
    let _ = stream.set_write_timeout(Some(idle));
    let _ = stream.set_nodelay(true);
    let client = GatewayClient::new(
        shared.config.register_address.clone(),
        &shared.config.secret_key,
    )
    .with_store(&shared.store);
    let mut reader = http::Reader::default();
    loop {
        let request = match reader.next(&mut stream, shared.config.max_body_size) {
            Ok(r) => r,
            Err(http::ReadError::Gone) => return,
            Err(http::ReadError::Refused {
                status,
                code,
                message,
            }) => {
                shared.stats.requests.fetch_add(1, Ordering::Relaxed);
                shared.stats.errors.fetch_add(1, Ordering::Relaxed);
                let failure = Failure::new(status, code, message);
                let _ = http::respond(&mut stream, status, &failure.to_json().to_string(), true);
                return;
            }
        };
        let (status, body) = handle(&request, &client, shared);
        shared.stats.requests.fetch_add(1, Ordering::Relaxed);
        if status >= 400 {
            shared.stats.errors.fetch_add(1, Ordering::Relaxed);
        }
        if http::respond(&mut stream, status, &body.to_string(), request.close).is_err()
            || request.close
        {
            return;
        }
    }
}

/// Whether the request carries `api.api_key` (none is needed when it is empty).
fn authorized(request: &http::Request, key: &str) -> bool {
    if key.is_empty() {
        return true;
    }
    let given = request
        .header("authorization")
        .and_then(|v| v.strip_prefix("Bearer "))
        .or_else(|| request.header("x-api-key"));
    given.is_some_and(|g| constant_time_eq(g.trim().as_bytes(), key.as_bytes()))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// One request → its status and JSON answer.
fn handle(request: &http::Request, client: &GatewayClient, shared: &Shared) -> (u16, Json) {
    let fail = |f: Failure| (f.status, f.to_json());
    let path = request.path.split('?').next().unwrap_or("");
    let Some(method) = path.strip_prefix("/api/").filter(|m| !m.is_empty()) else {
        return fail(Failure::new(
            404,
            "not_found",
            format!("{path}: the API is POST /api/<method> and POST /api/batch"),
        ));
    };
    if !authorized(request, &shared.config.api_key) {
        return fail(Failure::new(
            401,
            "unauthorized",
            "give api.api_key as Authorization: Bearer KEY or X-API-Key: KEY",
        ));
    }
    if request.method != "POST" {
        return fail(Failure::new(
            405,
            "method_not_allowed",
            format!("{} {path}: use POST", request.method),
        ));
    }
    let body: Json = if request.body.iter().all(u8::is_ascii_whitespace) {
        Json::Null
    } else {
        match serde_json::from_slice(&request.body) {
            Ok(v) => v,
            Err(e) => {
                return fail(Failure::new(
                    400,
                    "bad_json",
                    format!("the body is not JSON: {e}"),
                ));
            }
        }
    };
    // Nothing to reach is said once for the request, not as an empty answer.
    match client.gateways() {
        Err(why) => return fail(Failure::new(503, "no_gateway", why)),
        Ok(list) if list.is_empty() => {
            let registers: Vec<String> = shared
                .config
                .register_address
                .iter()
                .map(ToString::to_string)
                .collect();
            return fail(Failure::new(
                503,
                "no_gateway",
                format!(
                    "the register at {} (api.register_address) lists no gateway",
                    registers.join(", ")
                ),
            ));
        }
        Ok(_) => {}
    }
    if method == "batch" {
        return batch(&body, client, shared);
    }
    shared.stats.calls.fetch_add(1, Ordering::Relaxed);
    let outcome = methods::call(client, method, &body);
    let status = outcome.as_ref().map_or_else(|f| f.status, |_| 200);
    (status, answer_json(&outcome))
}

/// `POST /api/batch`: `{"calls": [{"method": …, "args": {…}}, …]}` (or the bare list), run in
/// order; the answer lists each call's answer object in the same order.
fn batch(body: &Json, client: &GatewayClient, shared: &Shared) -> (u16, Json) {
    let calls = match body {
        Json::Array(calls) => calls,
        Json::Object(o) => match o.get("calls") {
            Some(Json::Array(calls)) => calls,
            _ => return bad_batch("the body is {\"calls\": [...]} or a list of calls"),
        },
        _ => return bad_batch("the body is {\"calls\": [...]} or a list of calls"),
    };
    if calls.len() > shared.config.max_batch {
        return bad_batch(&format!(
            "{} calls; api.max_batch is {}",
            calls.len(),
            shared.config.max_batch
        ));
    }
    let answers: Vec<Json> = calls
        .iter()
        .map(|call| {
            shared.stats.calls.fetch_add(1, Ordering::Relaxed);
            let outcome = match call.get("method").and_then(Json::as_str) {
                Some(method) if method != "batch" => {
                    methods::call(client, method, call.get("args").unwrap_or(&Json::Null))
                }
                _ => Err(Failure::new(
                    400,
                    "bad_argument",
                    "each call is {\"method\": NAME, \"args\": {...}} (no batch inside a batch)",
                )),
            };
            if outcome.is_err() {
                shared.stats.errors.fetch_add(1, Ordering::Relaxed);
            }
            answer_json(&outcome)
        })
        .collect();
    (200, json!({"result": answers}))
}

fn bad_batch(message: &str) -> (u16, Json) {
    let f = Failure::new(400, "bad_argument", message);
    (f.status, f.to_json())
}
