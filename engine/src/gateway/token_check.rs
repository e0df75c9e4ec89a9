//! `[gateway.auth]` on the I/O side: the token of a WebSocket upgrade request verified (with
//! `net::jwt`) into what the core admits the client with, or the 401 it is refused with; and a
//! client's token refresh, a text message the gateway answers itself.
//!
//! Refresh: the client sends the text message `{"gatewire":"refresh","token":"<jwt>"}`. A token
//! that verifies, for the same `sub`, replaces the old one's expiry and is answered
//! `{"gatewire":"refreshed","exp":<exp or null>}`; any other is answered
//! `{"gatewire":"refresh_refused","reason":"<reason>"}` and the old expiry stays. Neither reaches
//! the worker.

use bytes::Bytes;
use gatewire_proto::php::{Array, Key, Value, serialize};
use gatewire_proto::websocket::HandshakeRequest;
use serde_json::{Value as Json, json};

use crate::gateway::core::token_auth::Admission;
use crate::net::jwt::{Claims, Refusal, TokenVerifier, selected_protocol, token_in_request};
use crate::php_json;

/// What the handshake does with the request's token.
pub enum Outcome {
    /// Admitted: the core's admission, and the handshake data (with `auth`: the claims).
    Admitted {
        admission: Admission,
        data: Value,
        protocol: Option<String>,
    },
    /// Refused, with the 401 to answer.
    Refused(Refusal, Bytes),
}

/// Checks the request's token and builds what follows from it. `data` is the handshake data
/// (`get`/`server`/`cookie`) the worker will get; the claims are added to it as `auth`.
pub fn check(verifier: &TokenVerifier, request: &HandshakeRequest, data: Value) -> Outcome {
    // `?token=` as the handshake data already has it parsed (`get`, PHP's `$_GET`).
    let query_token = match &data {
        Value::Array(a) => match a.get(&Key::from("get")) {
            Some(Value::Array(get)) => match get.get(&Key::from("token")) {
                Some(Value::Str(token)) => Some(String::from_utf8_lossy(token).into_owned()),
                _ => None,
            },
            _ => None,
        },
        _ => None,
    };
    let token = token_in_request(|name| request.header(name), query_token);
    let claims = match token.as_deref() {
        None => Err(Refusal::Missing),
        Some(token) => verifier.verify(token),
    };
    match claims {
        Ok(claims) => Outcome::Admitted {
            admission: admission(&claims),
            data: with_claims(data, &claims),
            protocol: selected_protocol(request.header("sec-websocket-protocol"))
                .map(str::to_owned),
        },
        Err(refusal) => Outcome::Refused(refusal, unauthorized(refusal)),
    }
}

fn admission(claims: &Claims) -> Admission {
    Admission {
        uid: claims.sub.as_deref().map(Key::from),
        groups: claims
            .groups
            .iter()
            .map(|g| Key::from(g.as_str()))
            .collect(),
        // A session is an array: `info` that is an object or a list becomes the session; a
        // scalar is kept as `['info' => value]`.
        session: claims.info.as_ref().map(|info| {
            let array = php_json::object_to_array(info).unwrap_or_else(|| {
                let mut a = Array::with_capacity(1);
                a.insert("info", php_json::from_json(info));
                a
            });
            Bytes::from(serialize(&Value::Array(array)))
        }),
        expires: claims.exp,
    }
}

/// `data` with `auth` => the claims (a PHP array, as `$data['auth']` in a PHP worker).
fn with_claims(data: Value, claims: &Claims) -> Value {
    match data {
        Value::Array(mut array) => {
            array.insert("auth", php_json::from_json(&claims.all));
            Value::Array(array)
        }
        other => other,
    }
}

/// The 401 a refused handshake gets: the reason in the body and in `WWW-Authenticate`.
fn unauthorized(refusal: Refusal) -> Bytes {
    let error = match refusal {
        Refusal::Missing => "",
        Refusal::Invalid | Refusal::Claims => ", error=\"invalid_token\"",
        Refusal::Expired => ", error=\"invalid_token\", error_description=\"expired\"",
    };
    let body = format!("token {}\n", refusal.label());
    Bytes::from(format!(
        "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer realm=\"gatewire\"{error}\r\n\
         Content-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    ))
}

/// Whether a client's text message is a refresh request (checked before parsing: every other
/// message costs one prefix comparison).
pub fn is_refresh(message: &[u8]) -> bool {
    message.starts_with(b"{\"gatewire\":\"refresh\"")
}

/// A refresh request checked against the client's uid: the new expiry, and the answer.
pub fn refresh(
    verifier: &TokenVerifier,
    message: &[u8],
    uid: Option<&Key>,
) -> (Result<Option<u64>, Refusal>, Bytes) {
    let token = serde_json::from_slice::<Json>(message)
        .ok()
        .and_then(|m| m.get("token")?.as_str().map(str::to_owned));
    let outcome = match token {
        None => Err(Refusal::Missing),
        Some(token) => verifier.verify(&token).and_then(|claims| {
            // The token must be for the same user: a refresh cannot change who the client is.
            let same = claims.sub.as_deref().map(Key::from).as_ref() == uid;
            if same {
                Ok(claims.exp)
            } else {
                Err(Refusal::Claims)
            }
        }),
    };
    let answer = match &outcome {
        Ok(exp) => json!({"gatewire": "refreshed", "exp": exp}),
        Err(refusal) => json!({"gatewire": "refresh_refused", "reason": refusal.label()}),
    };
    (outcome, Bytes::from(answer.to_string()))
}
