//! Register lines (protocol §3): JSON documents, one per `\n`-terminated line, between gateways,
//! workers, GatewayClients and the Register. Parsing accepts what PHP peers send; the `*_line`
//! functions emit exactly the bytes PHP emits (newline included).

use simd_json::prelude::*;

use crate::json_in;
use crate::json_out;

/// One register message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegisterMessage {
    /// A gateway shard announces its inner address.
    GatewayConnect { address: String, secret_key: String },
    /// A worker (or a GatewayClient impersonating one) asks for the address list.
    WorkerConnect { secret_key: String },
    /// The Register's current gateway address list.
    BroadcastAddresses { addresses: Vec<String> },
    /// Keepalive; ignored.
    Ping,
}

/// Why a line is not a register message. The Register answers with this text and closes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegisterError {
    #[error("register line is not valid JSON")]
    NotJson,
    #[error("register line has no \"event\"")]
    NoEvent,
    #[error("unknown register event {0:?}")]
    UnknownEvent(String),
    #[error("gateway_connect without an address")]
    MissingAddress,
    #[error("broadcast_addresses must carry a list of address strings")]
    BadAddresses,
    #[error("\"secret_key\" must be a string")]
    BadSecretKey,
}

impl RegisterMessage {
    /// Parses one line (without its newline).
    pub fn parse(line: &[u8]) -> Result<RegisterMessage, RegisterError> {
        json_in::parse(line, |doc| {
            let event = doc
                .get("event")
                .and_then(|e| e.as_str().map(str::to_owned))
                .ok_or(RegisterError::NoEvent)?;
            let secret_key = || match doc.get("secret_key") {
                None => Ok(String::new()),
                Some(v) if v.is_null() => Ok(String::new()),
                Some(v) => v
                    .as_str()
                    .map(str::to_owned)
                    .ok_or(RegisterError::BadSecretKey),
            };
            match event.as_str() {
                "gateway_connect" => {
                    let address = doc
                        .get("address")
                        .and_then(|a| a.as_str().map(str::to_owned))
                        .filter(|a| !a.is_empty())
                        .ok_or(RegisterError::MissingAddress)?;
                    Ok(RegisterMessage::GatewayConnect {
                        address,
                        secret_key: secret_key()?,
                    })
                }
                "worker_connect" => Ok(RegisterMessage::WorkerConnect {
                    secret_key: secret_key()?,
                }),
                "broadcast_addresses" => {
                    let list = doc.get("addresses").ok_or(RegisterError::BadAddresses)?;
                    let addresses = json_in::values(&list)
                        .ok_or(RegisterError::BadAddresses)?
                        .iter()
                        .map(|v| v.as_str().map(str::to_owned))
                        .collect::<Option<Vec<_>>>()
                        .ok_or(RegisterError::BadAddresses)?;
                    Ok(RegisterMessage::BroadcastAddresses { addresses })
                }
                "ping" => Ok(RegisterMessage::Ping),
                _ => Err(RegisterError::UnknownEvent(event)),
            }
        })
        .map_err(|e| e.unwrap_or(RegisterError::NotJson))
    }

    /// The line PHP would send for this message, newline included.
    pub fn to_line(&self) -> String {
        match self {
            RegisterMessage::GatewayConnect {
                address,
                secret_key,
            } => gateway_connect_line(address, secret_key),
            RegisterMessage::WorkerConnect { secret_key } => worker_connect_line(secret_key),
            RegisterMessage::BroadcastAddresses { addresses } => {
                broadcast_addresses_line(addresses)
            }
            RegisterMessage::Ping => ping_line().to_owned(),
        }
    }
}

/// `{"event":"gateway_connect", "address":"…", "secret_key":"…"}\n` with PHP's spaces after the
/// commas. PHP concatenates the values unescaped; we escape them, which only differs from PHP
/// for values PHP would turn into invalid JSON (a `"` or `\` in the secret).
pub fn gateway_connect_line(address: &str, secret_key: &str) -> String {
    let mut out = String::from("{\"event\":\"gateway_connect\", \"address\":");
    push_unescaped_where_php_does(&mut out, address);
    out.push_str(", \"secret_key\":");
    push_unescaped_where_php_does(&mut out, secret_key);
    out.push_str("}\n");
    out
}

/// PHP writes these raw between quotes; identical to ours unless escaping is needed for validity.
fn push_unescaped_where_php_does(out: &mut String, s: &str) {
    if s.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20) {
        json_out::push_str(out, s);
    } else {
        out.push('"');
        out.push_str(s);
        out.push('"');
    }
}

/// `{"event":"worker_connect","secret_key":"…"}\n` (PHP `json_encode`).
pub fn worker_connect_line(secret_key: &str) -> String {
    let mut out = String::from("{\"event\":\"worker_connect\",\"secret_key\":");
    json_out::push_str(&mut out, secret_key);
    out.push_str("}\n");
    out
}

/// `{"event":"broadcast_addresses","addresses":[…]}\n` (PHP `json_encode`).
pub fn broadcast_addresses_line<S: AsRef<str>>(addresses: &[S]) -> String {
    let mut out = String::from("{\"event\":\"broadcast_addresses\",\"addresses\":");
    json_out::push_str_list(&mut out, addresses);
    out.push_str("}\n");
    out
}

/// `{"event":"ping"}\n`.
pub fn ping_line() -> &'static str {
    "{\"event\":\"ping\"}\n"
}
