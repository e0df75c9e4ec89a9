//! `http`: a BusinessWorker in any language. Each event — connect, WebSocket handshake, message,
//! close, and group joins and leaves when asked for — is POSTed as JSON to `worker.http.url`; the backend answers with the commands to run
//! (`{"commands": [{"method": "sendToCurrentClient", "args": {"message": "hi"}}, …]}`, the HTTP
//! API's method names and arguments, a missing `client_id` meaning the event's client). One round
//! trip per event; the backend needs no callback server.
//!
//! Order and bounds, per worker thread: one client's events are posted one after the other (its
//! next event waits for the previous answer and its commands); different clients' events go in
//! parallel, up to `max_in_flight` at once (the rest wait their turn in arrival order); a client
//! with `max_queued_per_client` events waiting is closed (counted). A failed attempt (connection
//! refused or reset, no answer within `timeout`, a 5xx) is tried again `retries` times, 100 ms
//! apart and doubling; when every attempt failed, or the backend refused the event (4xx), the
//! client is closed — after `failure_message`, when set — and counted: a client's message is
//! never dropped without the client knowing. A close event that cannot be delivered is counted
//! and logged (the client is gone already).

mod client;

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine;
use gatewire_proto::ClientId;
use gatewire_proto::php::Value;
use serde_json::{Value as Json, json};

use crate::net::HttpUrl as Url;

use crate::api::Gateway;
use crate::api::json::call_for_client;
use crate::config::HttpHookConfig;
use crate::log_limit::warn_limited;
use crate::php_json as php;
use crate::worker::{Context, Events};

/// The hook's counters (this process's worker threads together), for `/metrics`.
#[derive(Debug, Default)]
pub struct HookStats {
    /// Events POSTed and answered with 2xx.
    pub delivered: AtomicU64,
    /// Attempts that failed and were tried again.
    pub retried: AtomicU64,
    /// Events not delivered after every attempt, or refused (4xx): their clients were closed.
    pub failed: AtomicU64,
    /// Clients closed for having `max_queued_per_client` events waiting.
    pub overflows: AtomicU64,
    /// Commands in answers that could not run (unknown, bad arguments, a query).
    pub command_errors: AtomicU64,
}

/// This process's hook counters.
pub static STATS: HookStats = HookStats {
    delivered: AtomicU64::new(0),
    retried: AtomicU64::new(0),
    failed: AtomicU64::new(0),
    overflows: AtomicU64::new(0),
    command_errors: AtomicU64::new(0),
};

/// The app: its configuration; each worker thread builds its own [`Hook`] on first use.
#[derive(Debug, Clone)]
pub struct HttpHook {
    config: HttpHookConfig,
}

impl HttpHook {
    pub fn new(config: &HttpHookConfig) -> HttpHook {
        HttpHook {
            config: config.clone(),
        }
    }
}

thread_local! {
    static HOOK: RefCell<Option<Rc<Hook>>> = const { RefCell::new(None) };
}

/// One worker thread's hook: the connection pool, each client's waiting events, the clients
/// waiting for a turn.
struct Hook {
    config: HttpHookConfig,
    gateway: Gateway,
    pool: RefCell<client::Pool>,
    clients: RefCell<HashMap<ClientId, Queue>>,
    in_flight: Cell<usize>,
    turns: RefCell<VecDeque<ClientId>>,
}

#[derive(Default)]
struct Queue {
    events: VecDeque<Event>,
    /// A task is posting this client's events (or it waits for a turn to).
    busy: bool,
    /// An answer changed the client's session after its next events were taken: they carry the
    /// session read again from its gateway.
    session_stale: bool,
}

struct Event {
    kind: &'static str,
    json: Json,
}

impl HttpHook {
    fn hook(&self, ctx: &Context<'_>) -> Option<Rc<Hook>> {
        HOOK.with(|slot| {
            if let Some(hook) = slot.borrow().as_ref() {
                return Some(hook.clone());
            }
            let url = Url::parse(&self.config.url).ok()?;
            let addr = match std::net::ToSocketAddrs::to_socket_addrs(&url.authority)
                .ok()
                .and_then(|mut a| a.next())
            {
                Some(addr) => addr,
                None => {
                    warn_limited(
                        "hook address",
                        &format!("worker.http.url: cannot resolve {}", url.authority),
                    );
                    return None;
                }
            };
            let pool =
                client::Pool::new(addr, url, &self.config.api_key, self.config.max_in_flight);
            let hook = Rc::new(Hook {
                config: self.config.clone(),
                gateway: ctx.gateway().clone(),
                pool: RefCell::new(pool),
                clients: RefCell::default(),
                in_flight: Cell::new(0),
                turns: RefCell::default(),
            });
            *slot.borrow_mut() = Some(hook.clone());
            Some(hook)
        })
    }

    fn post(&self, ctx: &Context<'_>, kind: &'static str, extra: Json) {
        if !self.config.events.iter().any(|e| e == kind) {
            return;
        }
        let mut event = json!({
            "event": kind,
            "client_id": ctx.client_id.to_string(),
            "client_addr": ctx.client_addr.to_string(),
            "gateway_addr": ctx.gateway_addr().to_string(),
            "session": ctx.session.as_ref().map_or(Json::Null, php::array_to_json),
        });
        if let (Json::Object(event), Json::Object(extra)) = (&mut event, extra) {
            event.extend(extra);
        }
        let event = Event { kind, json: event };
        match self.hook(ctx) {
            Some(hook) => hook.enqueue(ctx.client_id, event),
            None => {
                STATS.failed.fetch_add(1, Ordering::Relaxed);
                if kind != "close" {
                    ctx.gateway().destroy_client(ctx.client_id);
                }
            }
        }
    }
}

impl Events for HttpHook {
    fn on_connect(&mut self, ctx: &mut Context<'_>) {
        self.post(ctx, "connect", json!({}));
    }

    fn on_websocket_connect(&mut self, ctx: &mut Context<'_>, data: &Value) {
        self.post(
            ctx,
            "websocket_connect",
            json!({"request": php::to_json(data)}),
        );
    }

    fn on_message(&mut self, ctx: &mut Context<'_>, message: &[u8]) {
        let extra = match (ctx.binary, std::str::from_utf8(message)) {
            (false, Ok(text)) => json!({"message": text}),
            _ => json!({
                "message_base64": base64::engine::general_purpose::STANDARD.encode(message)
            }),
        };
        self.post(ctx, "message", extra);
    }

    fn on_close(&mut self, ctx: &mut Context<'_>) {
        self.post(ctx, "close", json!({}));
    }

    /// Group presence is asked of the gateways only when the backend wants it.
    fn presence(&self) -> bool {
        self.config
            .events
            .iter()
            .any(|e| e == "group_join" || e == "group_leave")
    }

    fn on_group_join(&mut self, ctx: &mut Context<'_>, group: &str) {
        self.post(ctx, "group_join", json!({"group": group}));
    }

    fn on_group_leave(&mut self, ctx: &mut Context<'_>, group: &str) {
        self.post(ctx, "group_leave", json!({"group": group}));
    }
}

impl Hook {
    fn enqueue(self: &Rc<Hook>, client: ClientId, event: Event) {
        let start = {
            let mut clients = self.clients.borrow_mut();
            let queue = clients.entry(client).or_default();
            if queue.events.len() >= self.config.max_queued_per_client && event.kind != "close" {
                queue.events.clear();
                drop(clients);
                STATS.overflows.fetch_add(1, Ordering::Relaxed);
                warn_limited(
                    "hook queue full",
                    &format!(
                        "worker.http: client {client} has {} events waiting for the backend \
                         (worker.http.max_queued_per_client): closing it",
                        self.config.max_queued_per_client
                    ),
                );
                self.gateway.destroy_client(client);
                return;
            }
            queue.events.push_back(event);
            !std::mem::replace(&mut queue.busy, true)
        };
        if start {
            if self.in_flight.get() < self.config.max_in_flight {
                self.start(client);
            } else {
                self.turns.borrow_mut().push_back(client);
            }
        }
    }

    fn start(self: &Rc<Hook>, client: ClientId) {
        self.in_flight.set(self.in_flight.get() + 1);
        let hook = self.clone();
        crate::rt::spawn(async move {
            hook.drain(client).await;
            hook.in_flight.set(hook.in_flight.get() - 1);
            let next = hook.turns.borrow_mut().pop_front();
            if let Some(next) = next {
                hook.start(next);
            }
        });
    }

    /// Posts `client`'s events in order until none is left.
    async fn drain(self: &Rc<Hook>, client: ClientId) {
        loop {
            let event = {
                let mut clients = self.clients.borrow_mut();
                let Some(queue) = clients.get_mut(&client) else {
                    return;
                };
                match queue.events.pop_front() {
                    Some(event) => event,
                    None => {
                        clients.remove(&client);
                        return;
                    }
                }
            };
            self.deliver(client, event).await;
        }
    }

    async fn deliver(&self, client: ClientId, mut event: Event) {
        let stale = self
            .clients
            .borrow_mut()
            .get_mut(&client)
            .is_some_and(|q| std::mem::take(&mut q.session_stale));
        if stale && event.kind != "close" {
            // The previous answer wrote the session after this event was taken: send what the
            // gateway holds now.
            if let Ok(session) = self.gateway.nonblocking().get_session(client).await {
                event.json["session"] = session.as_ref().map_or(Json::Null, php::array_to_json);
            }
        }
        let body = event.json.to_string().into_bytes();
        let timeout = Duration::from_secs_f64(self.config.timeout);
        let mut wait = Duration::from_millis(100);
        let mut attempt = 0;
        let failure = loop {
            match client::post(&self.pool, &body, timeout).await {
                Ok((status, answer)) if (200..300).contains(&status) => {
                    STATS.delivered.fetch_add(1, Ordering::Relaxed);
                    self.run_commands(client, &answer);
                    return;
                }
                Ok((status, answer)) if status < 500 => {
                    break format!(
                        "refused it with {status}: {}",
                        String::from_utf8_lossy(&answer[..answer.len().min(200)])
                    );
                }
                Ok((status, _)) if attempt >= self.config.retries => {
                    break format!("answered {status}, {} attempts", attempt + 1);
                }
                Err(e) if attempt >= self.config.retries => {
                    break format!("{e}, {} attempts", attempt + 1);
                }
                _ => {}
            }
            attempt += 1;
            STATS.retried.fetch_add(1, Ordering::Relaxed);
            crate::rt::sleep(wait).await;
            wait *= 2;
        };
        STATS.failed.fetch_add(1, Ordering::Relaxed);
        warn_limited(
            "hook failed",
            &format!(
                "worker.http: the {} event of client {client} was not delivered to {}: the \
                 backend {failure}; {}",
                event.kind,
                self.config.url,
                if event.kind == "close" {
                    "the client is gone already"
                } else {
                    "closing the client"
                }
            ),
        );
        if event.kind != "close" {
            // Its later events go nowhere either: the client is closed and hears why first.
            if let Some(queue) = self.clients.borrow_mut().get_mut(&client) {
                queue.events.retain(|e| e.kind == "close");
            }
            let last = (!self.config.failure_message.is_empty())
                .then_some(self.config.failure_message.as_bytes());
            self.gateway.close_client(client, last);
        }
    }

    /// Runs the commands of an answer, in order.
    fn run_commands(&self, client: ClientId, answer: &[u8]) {
        if answer.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        let commands = match serde_json::from_slice::<Json>(answer) {
            Ok(Json::Object(o)) => match o.get("commands") {
                Some(Json::Array(list)) => list.clone(),
                None => Vec::new(),
                Some(_) => return self.command_error("\"commands\" is not a list"),
            },
            Ok(_) => return self.command_error("the answer is not a JSON object"),
            Err(e) => return self.command_error(&format!("the answer is not JSON: {e}")),
        };
        let me = client.to_string();
        for command in commands {
            let method = command.get("method").and_then(Json::as_str).unwrap_or("");
            let args = command.get("args").unwrap_or(&Json::Null);
            if let Err(f) = call_for_client(&self.gateway, client, method, args) {
                self.command_error(&format!("{method:?}: {}", f.message));
            }
            let own_session = matches!(
                method.to_ascii_lowercase().as_str(),
                "setsession" | "updatesession"
            ) && args
                .get("client_id")
                .and_then(Json::as_str)
                .is_none_or(|id| id == me);
            if own_session && let Some(q) = self.clients.borrow_mut().get_mut(&client) {
                q.session_stale = true;
            }
        }
    }

    fn command_error(&self, why: &str) {
        STATS.command_errors.fetch_add(1, Ordering::Relaxed);
        warn_limited(
            "hook command",
            &format!("worker.http: a command in the backend's answer did not run: {why}"),
        );
    }
}
