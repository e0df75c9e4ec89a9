//! The HTTP upgrade request: parsing (httparse), workerman's validation rules and its exact 101
//! response. A plain GET without `Upgrade: websocket` parses fine and is left to the caller (the
//! gateway serves static files for it).

use bytes::Bytes;

/// Bound on the request head; a larger one is refused with 400 (browsers send < 8 KiB).
pub const DEFAULT_MAX_HANDSHAKE_LEN: usize = 64 * 1024;
const MAX_HEADERS: usize = 96;

/// Why an upgrade request is refused; [`HandshakeError::response`] is the answer to send before
/// closing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    #[error("request does not start with GET")]
    NotGet,
    #[error("malformed HTTP request: {0}")]
    Malformed(&'static str),
    #[error("request head exceeds {0} bytes")]
    TooLarge(usize),
    #[error("missing Sec-WebSocket-Version")]
    MissingVersion,
    #[error("unsupported Sec-WebSocket-Version {0:?} (only 13)")]
    UnsupportedVersion(String),
    #[error("missing Sec-WebSocket-Key")]
    MissingKey,
}

impl HandshakeError {
    /// The HTTP status workerman answers with.
    pub fn status(&self) -> u16 {
        match self {
            HandshakeError::UnsupportedVersion(_) => 426,
            _ => 400,
        }
    }

    /// The full response to write before closing.
    pub fn response(&self) -> &'static [u8] {
        match self {
            HandshakeError::UnsupportedVersion(_) => {
                b"HTTP/1.1 426 Upgrade Required\r\nSec-WebSocket-Version: 13\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            }
            HandshakeError::MissingVersion => {
                b"HTTP/1.1 400 Bad Request\r\nSec-WebSocket-Version: 13\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            }
            _ => b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        }
    }
}

/// A parsed request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandshakeRequest {
    pub method: String,
    /// The raw request target, e.g. `/path?a=1`.
    pub target: String,
    /// `HTTP/1.0` or `HTTP/1.1`.
    pub protocol: &'static str,
    /// Headers in request order: the name as sent, the value with surrounding spaces and tabs
    /// removed.
    pub headers: Vec<(String, Bytes)>,
}

/// Parses the request head at the start of `buf`. Returns the request and the length of its head
/// (bytes after it belong to the WebSocket stream), or `Ok(None)` until `\r\n\r\n` has arrived.
pub fn parse_request(
    buf: &[u8],
    max_len: usize,
) -> Result<Option<(HandshakeRequest, usize)>, HandshakeError> {
    let prefix = &buf[..buf.len().min(3)];
    if prefix != &b"GET"[..prefix.len()] {
        return Err(HandshakeError::NotGet);
    }
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    let head_len = match request.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            if buf.len() >= max_len {
                return Err(HandshakeError::TooLarge(max_len));
            }
            return Ok(None);
        }
        Err(httparse::Error::TooManyHeaders) => {
            return Err(HandshakeError::Malformed("too many headers"));
        }
        Err(_) => return Err(HandshakeError::Malformed("not an HTTP/1.x request head")),
    };
    if head_len > max_len {
        return Err(HandshakeError::TooLarge(max_len));
    }
    let method = request.method.unwrap_or_default();
    if method != "GET" {
        return Err(HandshakeError::NotGet);
    }
    let protocol = match request.version {
        Some(0) => "HTTP/1.0",
        _ => "HTTP/1.1",
    };
    let parsed = HandshakeRequest {
        method: method.to_owned(),
        target: request.path.unwrap_or_default().to_owned(),
        protocol,
        headers: request
            .headers
            .iter()
            .map(|h| (h.name.to_owned(), Bytes::copy_from_slice(trim(h.value))))
            .collect(),
    };
    Ok(Some((parsed, head_len)))
}

fn trim(value: &[u8]) -> &[u8] {
    let is_blank = |b: &u8| *b == b' ' || *b == b'\t';
    let start = value
        .iter()
        .position(|b| !is_blank(b))
        .unwrap_or(value.len());
    let end = value
        .iter()
        .rposition(|b| !is_blank(b))
        .map_or(start, |i| i + 1);
    &value[start..end]
}

impl HandshakeRequest {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_ref())
    }

    /// Whether the client asks for a WebSocket (`Upgrade: websocket`). A GET without it is a
    /// plain HTTP request.
    pub fn is_websocket_upgrade(&self) -> bool {
        self.header("upgrade").is_some_and(|v| {
            v.split(|&b| b == b',')
                .any(|token| trim(token).eq_ignore_ascii_case(b"websocket"))
        })
    }

    /// Validates the upgrade as workerman does (version 13 required, key present) and returns
    /// the `Sec-WebSocket-Accept` value.
    pub fn accept_key(&self) -> Result<String, HandshakeError> {
        match self.header("sec-websocket-version") {
            None => return Err(HandshakeError::MissingVersion),
            Some(b"13") => {}
            Some(other) => {
                return Err(HandshakeError::UnsupportedVersion(
                    String::from_utf8_lossy(other).into_owned(),
                ));
            }
        }
        match self.header("sec-websocket-key") {
            Some(key) if !key.is_empty() => Ok(tungstenite::handshake::derive_accept_key(key)),
            _ => Err(HandshakeError::MissingKey),
        }
    }

    /// The query string: what follows the first `?` of the target, up to a `#`.
    pub fn query_string(&self) -> &str {
        let Some((_, query)) = self.target.split_once('?') else {
            return "";
        };
        query.split('#').next().unwrap_or_default()
    }

    /// The target's path (before `?` or `#`).
    pub fn path(&self) -> &str {
        let end = self.target.find(['?', '#']).unwrap_or(self.target.len());
        &self.target[..end]
    }
}

/// workerman 5.2.2's 101 response, byte for byte, with `extra_headers` (each ending in `\r\n`)
/// inserted before the blank line.
pub fn response_101(accept_key: &str, extra_headers: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 101 Switching Protocol\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept_key}\r\n{extra_headers}\r\n"
    )
    .into_bytes()
}
