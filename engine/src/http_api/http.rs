//! The HTTP/1.1 the API needs and no more, on a blocking socket: one request at a time per
//! connection (keep-alive by default, as HTTP/1.1 says), a head of at most [`MAX_HEAD`] bytes
//! parsed by `httparse`, a body of `Content-Length` bytes up to the configured bound (chunked
//! bodies are refused with 411: every common client sends a length for a JSON body), and answers
//! with a length. Each read waits at most the idle timeout, so a silent or slow peer costs one
//! thread for that long and no more.

use std::io::{self, Read, Write};
use std::net::TcpStream;

/// Largest request head (request line and headers).
pub const MAX_HEAD: usize = 16 * 1024;
const MAX_HEADERS: usize = 64;

/// One request.
#[derive(Debug)]
pub struct Request {
    pub method: String,
    pub path: String,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The client asked to close after this request (or spoke HTTP/1.0 without keep-alive).
    pub close: bool,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Why no request could be read.
#[derive(Debug)]
pub enum ReadError {
    /// The peer closed (or went silent past the timeout) between requests: not an error.
    Gone,
    /// The request cannot be served: answer `status` with `code` and `message`, then close.
    Refused {
        status: u16,
        code: &'static str,
        message: String,
    },
}

fn refused(status: u16, code: &'static str, message: impl Into<String>) -> ReadError {
    ReadError::Refused {
        status,
        code,
        message: message.into(),
    }
}

/// Reads from a connection, keeping what follows one request for the next.
#[derive(Debug, Default)]
pub struct Reader {
    buf: Vec<u8>,
}

impl Reader {
    /// The next request on `stream`, with a body of at most `max_body` bytes.
    pub fn next(&mut self, stream: &mut TcpStream, max_body: usize) -> Result<Request, ReadError> {
        let (request, head_len, length) = loop {
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut parsed = httparse::Request::new(&mut headers);
            match parsed.parse(&self.buf) {
                Ok(httparse::Status::Complete(head_len)) => {
                    let request = head(&parsed)?;
                    let length = body_length(&request, max_body)?;
                    break (request, head_len, length);
                }
                Ok(httparse::Status::Partial) => {
                    if self.buf.len() >= MAX_HEAD {
                        return Err(refused(
                            431,
                            "head_too_large",
                            format!("the request head is over {MAX_HEAD} bytes"),
                        ));
                    }
                    if self.fill(stream)? == 0 {
                        return Err(if self.buf.is_empty() {
                            ReadError::Gone
                        } else {
                            refused(400, "bad_request", "the request ended in its head")
                        });
                    }
                }
                Err(e) => {
                    return Err(refused(400, "bad_request", format!("not HTTP/1.1: {e}")));
                }
            }
        };
        while self.buf.len() < head_len + length {
            if self.fill(stream)? == 0 {
                return Err(refused(400, "bad_request", "the body ended early"));
            }
        }
        let mut request = request;
        request.body = self.buf[head_len..head_len + length].to_vec();
        self.buf.drain(..head_len + length);
        Ok(request)
    }

    fn fill(&mut self, stream: &mut TcpStream) -> Result<usize, ReadError> {
        let mut chunk = [0u8; 16 * 1024];
        let read = loop {
            // A stop and continue of the process (SIGSTOP/SIGCONT) interrupts a read with a
            // timeout even without a handler: it is not the client's doing.
            match stream.read(&mut chunk) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other,
            }
        };
        match read {
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(n)
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) && self.buf.is_empty() =>
            {
                Err(ReadError::Gone)
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                Err(refused(408, "timeout", "the request was not sent in time"))
            }
            Err(_) => Err(ReadError::Gone),
        }
    }
}

fn head(parsed: &httparse::Request<'_, '_>) -> Result<Request, ReadError> {
    let headers: Vec<(String, String)> = parsed
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_ascii_lowercase(),
                String::from_utf8_lossy(h.value).trim().to_owned(),
            )
        })
        .collect();
    let connection = headers
        .iter()
        .find(|(n, _)| n == "connection")
        .map(|(_, v)| v.to_ascii_lowercase());
    let close = match parsed.version {
        Some(0) => connection.as_deref() != Some("keep-alive"),
        _ => connection.as_deref() == Some("close"),
    };
    Ok(Request {
        method: parsed.method.unwrap_or("").to_owned(),
        path: parsed.path.unwrap_or("").to_owned(),
        headers,
        body: Vec::new(),
        close,
    })
}

fn body_length(request: &Request, max_body: usize) -> Result<usize, ReadError> {
    if request.header("transfer-encoding").is_some() {
        return Err(refused(
            411,
            "length_required",
            "send the body with a Content-Length (chunked bodies are not taken)",
        ));
    }
    let length = match request.header("content-length") {
        None => 0,
        Some(v) => v
            .parse::<usize>()
            .map_err(|_| refused(400, "bad_request", format!("Content-Length {v:?}")))?,
    };
    if length > max_body {
        return Err(refused(
            413,
            "body_too_large",
            format!("the body is {length} bytes; api.max_body_size is {max_body}"),
        ));
    }
    Ok(length)
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

/// Writes one JSON answer; `close` adds `Connection: close`.
pub fn respond(stream: &mut TcpStream, status: u16, body: &str, close: bool) -> io::Result<()> {
    let mut out = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        reason(status),
        body.len()
    );
    if status == 401 {
        out.push_str("WWW-Authenticate: Bearer\r\n");
    }
    if close {
        out.push_str("Connection: close\r\n");
    }
    out.push_str("\r\n");
    out.push_str(body);
    stream.write_all(out.as_bytes())
}
