//! The hook's HTTP/1.1 client on the worker thread's executor: POST a JSON body to the backend
//! and read its answer, keeping connections alive in a small pool (one per event in flight at
//! most). Answers may be sized by `Content-Length`, chunked, or end with the connection.

use std::net::SocketAddr;
use std::time::Duration;

use futures_lite::{AsyncReadExt, AsyncWriteExt};

use crate::net::HttpUrl as Url;
use crate::rt;

/// Why an attempt failed.
#[derive(Debug)]
pub enum PostError {
    /// Connecting, writing or reading failed, or the answer did not come in time: worth another
    /// attempt.
    Transport(String),
    /// Not an HTTP answer.
    Bad(String),
}

impl std::fmt::Display for PostError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PostError::Transport(e) => write!(f, "{e}"),
            PostError::Bad(e) => write!(f, "not an HTTP answer: {e}"),
        }
    }
}

/// Largest answer body taken.
const MAX_ANSWER: usize = 16 << 20;

/// Connections to one backend, kept alive between events.
#[derive(Debug)]
pub struct Pool {
    addr: SocketAddr,
    url: Url,
    authorization: Option<String>,
    idle: Vec<rt::TcpStream>,
    max_idle: usize,
}

impl Pool {
    pub fn new(addr: SocketAddr, url: Url, api_key: &str, max_idle: usize) -> Pool {
        Pool {
            addr,
            url,
            authorization: (!api_key.is_empty()).then(|| format!("Bearer {api_key}")),
            idle: Vec::new(),
            max_idle,
        }
    }

    fn request(&self, body: &[u8]) -> Vec<u8> {
        let mut head = format!(
            "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n",
            self.url.path,
            self.url.authority,
            body.len()
        );
        if let Some(auth) = &self.authorization {
            head.push_str(&format!("Authorization: {auth}\r\n"));
        }
        head.push_str("\r\n");
        let mut out = head.into_bytes();
        out.extend_from_slice(body);
        out
    }

    /// Takes a kept connection, or `None`.
    pub fn take(&mut self) -> Option<rt::TcpStream> {
        self.idle.pop()
    }

    /// Gives a connection back after a complete answer that keeps it open.
    pub fn put(&mut self, stream: rt::TcpStream) {
        if self.idle.len() < self.max_idle {
            self.idle.push(stream);
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

/// One attempt: POST `body` on `stream` (a kept or a new connection) and read the answer.
/// Returns the status, the body, and whether the connection may be kept.
pub async fn post_on(
    pool_request: Vec<u8>,
    stream: &mut rt::TcpStream,
) -> Result<(u16, Vec<u8>, bool), PostError> {
    stream
        .write_all(&pool_request)
        .await
        .map_err(|e| PostError::Transport(format!("write: {e}")))?;
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 16 * 1024];
    let head = loop {
        let n = read_some(stream, &mut chunk).await?;
        if n == 0 {
            return Err(PostError::Transport(
                "the backend closed the connection before answering".into(),
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(head) = parse_head(&buf)? {
            break head;
        }
    };
    let body = buf.split_off(head.len);
    let body = read_body(stream, head.length, body, &mut chunk).await?;
    Ok((head.status, body, head.keep))
}

/// What an answer's head says: its status, its length, how to read the body, whether the
/// connection may be kept.
struct Head {
    status: u16,
    len: usize,
    length: Length,
    keep: bool,
}

/// The head at the start of `buf`, or `None` while it is incomplete (up to 64 KiB).
fn parse_head(buf: &[u8]) -> Result<Option<Head>, PostError> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut response = httparse::Response::new(&mut headers);
    let len = match response.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() < 64 * 1024 => return Ok(None),
        Ok(httparse::Status::Partial) => return Err(PostError::Bad("a head over 64 KiB".into())),
        Err(e) => return Err(PostError::Bad(e.to_string())),
    };
    let header = |name: &str| {
        response
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).trim().to_ascii_lowercase())
    };
    let chunked = header("transfer-encoding").is_some_and(|v| v.contains("chunked"));
    let length = match (chunked, header("content-length")) {
        (true, _) => Length::Chunked,
        (false, Some(v)) => Length::Exactly(
            v.parse()
                .map_err(|_| PostError::Bad(format!("Content-Length {v:?}")))?,
        ),
        (false, None) => Length::ToClose,
    };
    let close = header("connection").as_deref() == Some("close") || response.version == Some(0);
    Ok(Some(Head {
        status: response.code.unwrap_or(0),
        len,
        length,
        keep: !close && length != Length::ToClose,
    }))
}

/// Reads the rest of a body of `length` that starts with `body`, bounded by [`MAX_ANSWER`].
async fn read_body(
    stream: &mut rt::TcpStream,
    length: Length,
    mut body: Vec<u8>,
    chunk: &mut [u8],
) -> Result<Vec<u8>, PostError> {
    match length {
        Length::Exactly(n) => {
            if n > MAX_ANSWER {
                return Err(PostError::Bad(format!("an answer of {n} bytes")));
            }
            while body.len() < n {
                let read = read_some(stream, chunk).await?;
                if read == 0 {
                    return Err(PostError::Transport("the answer ended early".into()));
                }
                body.extend_from_slice(&chunk[..read]);
            }
            body.truncate(n);
        }
        Length::ToClose => loop {
            let read = read_some(stream, chunk).await?;
            if read == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..read]);
            if body.len() > MAX_ANSWER {
                return Err(PostError::Bad("an answer over 16 MiB".into()));
            }
        },
        Length::Chunked => loop {
            if let Some(decoded) = dechunk(&body)? {
                body = decoded;
                break;
            }
            if body.len() > MAX_ANSWER {
                return Err(PostError::Bad("an answer over 16 MiB".into()));
            }
            let read = read_some(stream, chunk).await?;
            if read == 0 {
                return Err(PostError::Transport(
                    "the chunked answer ended early".into(),
                ));
            }
            body.extend_from_slice(&chunk[..read]);
        },
    }
    Ok(body)
}

async fn read_some(stream: &mut rt::TcpStream, chunk: &mut [u8]) -> Result<usize, PostError> {
    stream
        .read(chunk)
        .await
        .map_err(|e| PostError::Transport(format!("read: {e}")))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Length {
    Exactly(usize),
    Chunked,
    ToClose,
}

/// The body of a complete chunked encoding, or `None` while more is needed.
fn dechunk(raw: &[u8]) -> Result<Option<Vec<u8>>, PostError> {
    let mut out = Vec::new();
    let mut at = 0;
    loop {
        let Some(line_end) = raw[at..].windows(2).position(|w| w == b"\r\n") else {
            return Ok(None);
        };
        let line = String::from_utf8_lossy(&raw[at..at + line_end]);
        let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| PostError::Bad(format!("a chunk size {line:?}")))?;
        at += line_end + 2;
        if size == 0 {
            // The last chunk; trailers (if any) end with an empty line.
            return Ok(raw[at..].windows(2).any(|w| w == b"\r\n").then_some(out));
        }
        if raw.len() < at + size + 2 {
            return Ok(None);
        }
        out.extend_from_slice(&raw[at..at + size]);
        at += size + 2;
    }
}

/// POSTs `body` once: on a kept connection if there is one (a kept connection the backend has
/// closed meanwhile is replaced by a new one at once, not counted as an attempt), within
/// `timeout`.
pub async fn post(
    pool: &std::cell::RefCell<Pool>,
    body: &[u8],
    timeout: Duration,
) -> Result<(u16, Vec<u8>), PostError> {
    let attempt = async {
        let request = pool.borrow().request(body);
        let kept = pool.borrow_mut().take();
        let fresh = kept.is_none();
        let mut stream = match kept {
            Some(s) => s,
            None => connect(pool).await?,
        };
        let result = match post_on(request.clone(), &mut stream).await {
            Err(PostError::Transport(_)) if !fresh => {
                stream = connect(pool).await?;
                post_on(request, &mut stream).await
            }
            other => other,
        };
        let (status, answer, keep) = result?;
        if keep {
            pool.borrow_mut().put(stream);
        }
        Ok((status, answer))
    };
    let expired = async {
        rt::sleep(timeout).await;
        Err(PostError::Transport(format!(
            "no answer within {:.1} s (worker.http.timeout)",
            timeout.as_secs_f64()
        )))
    };
    futures_lite::future::or(attempt, expired).await
}

async fn connect(pool: &std::cell::RefCell<Pool>) -> Result<rt::TcpStream, PostError> {
    let addr = pool.borrow().addr();
    let stream = rt::connect(addr, Duration::from_secs(5))
        .await
        .map_err(|e| PostError::Transport(format!("connect to {addr}: {e}")))?;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_answers_are_put_back_together() {
        let raw = b"4\r\n{\"co\r\n6\r\nmmands\r\n0\r\n\r\n";
        assert_eq!(dechunk(raw).unwrap().unwrap(), b"{\"commands");
        assert!(dechunk(b"4\r\n{\"co\r\n").unwrap().is_none());
        assert!(dechunk(b"zz\r\n").is_err());
    }
}
