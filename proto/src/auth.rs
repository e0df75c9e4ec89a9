//! Bodies of the two authentication packets on a gateway's inner port (protocol §2.5):
//! `CMD_WORKER_CONNECT` (`{"worker_key":…,"secret_key":…}`) and `CMD_GATEWAY_CLIENT_CONNECT`
//! (`{"secret_key":…}`). Neither is answered.

use simd_json::prelude::*;

use crate::json_in;
use crate::json_out;

/// An authentication body that cannot be read; the gateway closes the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("authentication body is not a JSON object")]
    NotJson,
    #[error("worker_connect body has no \"worker_key\" string")]
    MissingWorkerKey,
}

/// A decoded authentication body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Auth {
    /// `"<name>:<index>"` for workers; `None` for GatewayClients.
    pub worker_key: Option<String>,
    /// The secret (missing counts as `""`; a non-string never matches a configured key).
    pub secret_key: Option<String>,
    /// The largest packet the worker accepts (`"max_packet_size"`, a gatewire extension PHP
    /// workers do not send and PHP gateways ignore).
    pub max_packet_size: Option<u64>,
    /// The worker wants group presence events (`"presence": true`, a gatewire extension:
    /// `CMD_ON_GROUP_JOIN` / `CMD_ON_GROUP_LEAVE`). PHP workers do not send it.
    pub presence: bool,
}

impl Auth {
    /// Reads the body of a 200 (`worker = true`) or 202 packet.
    pub fn parse(body: &[u8], worker: bool) -> Result<Auth, AuthError> {
        json_in::parse(body, |doc| {
            if doc.as_object().is_none() {
                return Err(AuthError::NotJson);
            }
            let text = |name: &str| doc.get(name).and_then(|v| v.as_str().map(str::to_owned));
            let worker_key = text("worker_key");
            if worker && worker_key.is_none() {
                return Err(AuthError::MissingWorkerKey);
            }
            let secret_key = match doc.get("secret_key") {
                None => Some(String::new()),
                Some(v) => v.as_str().map(str::to_owned),
            };
            let max_packet_size = doc.get("max_packet_size").and_then(|v| v.as_u64());
            let presence = doc
                .get("presence")
                .and_then(|v| v.as_bool())
                .unwrap_or(false);
            Ok(Auth {
                worker_key,
                secret_key,
                max_packet_size,
                presence,
            })
        })
        .map_err(|e| e.unwrap_or(AuthError::NotJson))
    }

    /// Whether this body carries the gateway's `secret` (PHP compares with `!==`).
    pub fn secret_matches(&self, secret: &str) -> bool {
        self.secret_key.as_deref() == Some(secret)
    }
}

/// The body a BusinessWorker sends with `CMD_WORKER_CONNECT` (PHP `json_encode`).
pub fn worker_connect_body(worker_key: &str, secret_key: &str) -> String {
    let mut out = String::from("{\"worker_key\":");
    json_out::push_str(&mut out, worker_key);
    out.push_str(",\"secret_key\":");
    json_out::push_str(&mut out, secret_key);
    out.push('}');
    out
}

/// [`worker_connect_body`] with the largest packet the worker accepts: a gatewire gateway then
/// forwards nothing larger to it (the client is closed with 1009 instead of the packet being
/// lost at the worker); a PHP gateway ignores the extra member.
pub fn worker_connect_body_with_limit(
    worker_key: &str,
    secret_key: &str,
    max_packet_size: usize,
) -> String {
    gatewire_worker_connect_body(worker_key, secret_key, max_packet_size, false)
}

/// The hello a gatewire worker sends: [`worker_connect_body_with_limit`], and `"presence":true`
/// when its app wants group presence events. A PHP gateway ignores both members.
pub fn gatewire_worker_connect_body(
    worker_key: &str,
    secret_key: &str,
    max_packet_size: usize,
    presence: bool,
) -> String {
    let mut out = worker_connect_body(worker_key, secret_key);
    out.pop();
    out.push_str(&format!(",\"max_packet_size\":{max_packet_size}"));
    if presence {
        out.push_str(",\"presence\":true");
    }
    out.push('}');
    out
}

/// The body a GatewayClient sends with `CMD_GATEWAY_CLIENT_CONNECT`.
pub fn gateway_client_connect_body(secret_key: &str) -> String {
    let mut out = String::from("{\"secret_key\":");
    json_out::push_str(&mut out, secret_key);
    out.push('}');
    out
}
