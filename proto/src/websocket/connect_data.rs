//! The body of `CMD_ON_WEBSOCKET_CONNECT` (protocol §10.1, §12): `['get' => …, 'server' => …,
//! 'cookie' => …]` exactly as workerman 5.2.2 builds it from the upgrade request.

use std::net::SocketAddr;

use bytes::Bytes;
use indexmap::IndexMap;

use super::handshake::HandshakeRequest;
use super::parse_str::parse_str;
use crate::php::{Array, Key, Value};

/// Builds the array for a request received from `remote` on the gateway's public `local_port`.
pub fn connect_data(request: &HandshakeRequest, remote: SocketAddr, local_port: u16) -> Value {
    let headers = merged_headers(request);
    let header = |name: &str| headers.get(name).map(|v| Value::Str(v.clone()));

    let mut server = Array::with_capacity(9 + headers.len());
    server.insert("QUERY_STRING", request.query_string());
    server.insert("REQUEST_METHOD", request.method.as_str());
    server.insert("REQUEST_URI", request.target.as_str());
    server.insert("SERVER_PROTOCOL", request.protocol);
    server.insert("SERVER_NAME", header("host").unwrap_or(Value::Null));
    server.insert(
        "CONTENT_TYPE",
        header("content-type").unwrap_or(Value::Null),
    );
    server.insert("REMOTE_ADDR", remote.ip().to_string());
    server.insert("REMOTE_PORT", i64::from(remote.port()));
    server.insert("SERVER_PORT", i64::from(local_port));
    for (name, value) in &headers {
        let key = format!("HTTP_{}", name.to_ascii_uppercase().replace('-', "_"));
        server.insert(key, value.clone());
    }

    let cookie = headers
        .get("cookie")
        .map(|c| parse_cookie(c))
        .unwrap_or_default();

    let mut data = Array::with_capacity(3);
    data.insert("get", parse_str(request.query_string().as_bytes()));
    data.insert("server", server);
    data.insert("cookie", cookie);
    Value::Array(data)
}

/// Headers by lowercased name in first-seen order; repeats joined with `,` (workerman's Request).
fn merged_headers(request: &HandshakeRequest) -> IndexMap<String, Bytes> {
    let mut merged: IndexMap<String, Bytes> = IndexMap::with_capacity(request.headers.len());
    for (name, value) in &request.headers {
        let name = name.to_ascii_lowercase();
        match merged.get_mut(&name) {
            Some(existing) => {
                let mut joined = Vec::with_capacity(existing.len() + 1 + value.len());
                joined.extend_from_slice(existing);
                joined.push(b',');
                joined.extend_from_slice(value);
                *existing = Bytes::from(joined);
            }
            None => {
                merged.insert(name, value.clone());
            }
        }
    }
    merged
}

/// `;`-separated `name=value` parts: names trimmed, values kept raw (not url-decoded, not
/// trimmed), parts without `=` skipped, later names win.
fn parse_cookie(header: &[u8]) -> Array {
    let mut cookies = Array::new();
    for part in header.split(|&b| b == b';') {
        let Some(eq) = part.iter().position(|&b| b == b'=') else {
            continue;
        };
        let name = part[..eq].trim_ascii();
        cookies.insert(
            Key::from(name),
            Value::Str(Bytes::copy_from_slice(&part[eq + 1..])),
        );
    }
    cookies
}
