//! Connections to a gateway's inner port outside a worker's event links: each query (protocol
//! §2.4, §6.4) gets a short-lived one, and a GatewayClient's commands go on one connection kept
//! per gateway (as PHP's GatewayClient with `persistentConnection`), opened with the 202 auth
//! packet, with connect and read timeouts. A gateway that does not answer makes the answer
//! partial; it never hangs.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use gatewire_proto::auth::gateway_client_connect_body;
use gatewire_proto::query_reply::QueryReplyDecoder;
use gatewire_proto::{Cmd, Flags, Header, Packet};

/// Connect and collection timeout, as GatewayWorker's defaults.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(5);

/// Why one gateway gave no answer.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("gateway {addr}: {source}")]
    Io {
        addr: String,
        source: std::io::Error,
    },
    #[error("gateway {addr}: bad reply: {detail}")]
    BadReply { addr: String, detail: String },
}

/// A kept command connection and the secret its hello carried.
struct Kept {
    secret: String,
    stream: TcpStream,
}

thread_local! {
    /// This thread's command connections, by gateway address.
    static KEPT: std::cell::RefCell<std::collections::HashMap<String, Kept>> =
        std::cell::RefCell::default();
}

/// Sends a command (a GatewayClient's fire-and-forget) on this thread's connection to `addr`,
/// opened (202-prefixed) when there is none, the gateway closed it, or it was opened with
/// another secret. A command that did not go out whole on a kept connection goes again on a
/// new one, so it is sent once.
pub fn send(addr: &str, secret: &str, packet: &[u8]) -> Result<(), QueryError> {
    // The common case — a live connection with this secret — touches no allocation.
    let sent = KEPT.with(|k| {
        let mut kept = k.borrow_mut();
        match kept.get_mut(addr) {
            Some(c) if c.secret == secret && still_open(&c.stream) => {
                c.stream.write_all(packet).is_ok()
            }
            _ => false,
        }
    });
    if sent {
        return Ok(());
    }
    let mut stream = open(addr)?;
    let mut request = auth_prefix(secret);
    request.extend_from_slice(packet);
    stream
        .write_all(&request)
        .map_err(|source| QueryError::Io {
            addr: addr.to_owned(),
            source,
        })?;
    let kept = Kept {
        secret: secret.to_owned(),
        stream,
    };
    KEPT.with(|k| k.borrow_mut().insert(addr.to_owned(), kept));
    Ok(())
}

/// Whether a kept connection is still open: the gateway sends nothing on a command connection,
/// so a readable end is its close (or an error).
fn still_open(stream: &TcpStream) -> bool {
    let mut byte = [0u8; 1];
    // SAFETY: peeks at most one byte into a live buffer on a socket we own, without waiting.
    let n = unsafe {
        libc::recv(
            std::os::fd::AsRawFd::as_raw_fd(stream),
            byte.as_mut_ptr().cast(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::WouldBlock
}

/// A gateway's `ip:port`, as the registers announce it.
fn target(addr: &str) -> Result<SocketAddr, QueryError> {
    addr.parse().map_err(|_| QueryError::BadReply {
        addr: addr.to_owned(),
        detail: "not an ip:port address".into(),
    })
}

fn open(addr: &str) -> Result<TcpStream, QueryError> {
    let io = |source| QueryError::Io {
        addr: addr.to_owned(),
        source,
    };
    let stream = TcpStream::connect_timeout(&target(addr)?, QUERY_TIMEOUT).map_err(io)?;
    stream.set_read_timeout(Some(QUERY_TIMEOUT)).map_err(io)?;
    stream.set_write_timeout(Some(QUERY_TIMEOUT)).map_err(io)?;
    stream.set_nodelay(true).map_err(io)?;
    Ok(stream)
}

/// `packet` as a query connection sends it: after the 202 auth packet when a secret is set.
fn request_bytes(addr: &str, secret: &str, packet: &Packet) -> Result<BytesMut, QueryError> {
    let mut request = auth_prefix(secret);
    packet
        .encode(&mut request)
        .map_err(|e| QueryError::BadReply {
            addr: addr.to_owned(),
            detail: e.to_string(),
        })?;
    Ok(request)
}

/// The hello every request starts with, secret or not: a gateway bounds what a connection sends
/// before its hello to 64 KiB (PHP gateways take an empty secret's hello too).
fn auth_prefix(secret: &str) -> BytesMut {
    let mut request = BytesMut::new();
    let auth = Packet::new(
        Header::for_connection(Cmd::GatewayClientConnect, 0, Flags::SCALAR),
        "",
        gateway_client_connect_body(secret),
    );
    let _ = auth.encode(&mut request);
    request
}

/// [`ask`] on the current executor: the thread serves other tasks while the gateway answers.
pub async fn ask_async(addr: &str, secret: &str, packet: &Packet) -> Result<Bytes, QueryError> {
    let io = |source| QueryError::Io {
        addr: addr.to_owned(),
        source,
    };
    let target = target(addr)?;
    let request = request_bytes(addr, secret, packet)?;
    let exchange = async {
        let mut stream = crate::rt::connect(target, QUERY_TIMEOUT).await?;
        let _ = stream.set_nodelay(true);
        futures_lite::AsyncWriteExt::write_all(&mut stream, &request).await?;
        let mut decoder = QueryReplyDecoder::default();
        let mut buf = BytesMut::new();
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(reply)) => return Ok(Ok(reply)),
                Ok(None) => {}
                Err(e) => return Ok(Err(e.to_string())),
            }
            let n = futures_lite::AsyncReadExt::read(&mut stream, &mut chunk).await?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    };
    let deadline = async {
        crate::rt::sleep(QUERY_TIMEOUT).await;
        Err(std::io::ErrorKind::TimedOut.into())
    };
    match futures_lite::future::or(exchange, deadline).await {
        Ok(Ok(reply)) => Ok(reply),
        Ok(Err(detail)) => Err(QueryError::BadReply {
            addr: addr.to_owned(),
            detail,
        }),
        Err(e) => Err(io(e)),
    }
}

/// Sends `packet` to the gateway at `addr` and returns the reply payload.
pub fn ask(addr: &str, secret: &str, packet: &Packet) -> Result<Bytes, QueryError> {
    let io = |source| QueryError::Io {
        addr: addr.to_owned(),
        source,
    };
    let deadline = Instant::now() + QUERY_TIMEOUT;
    let mut stream = open(addr)?;
    let request = request_bytes(addr, secret, packet)?;
    stream.write_all(&request).map_err(io)?;
    let mut decoder = QueryReplyDecoder::default();
    let mut buf = BytesMut::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        match decoder.decode(&mut buf) {
            Ok(Some(reply)) => return Ok(reply),
            Ok(None) => {}
            Err(e) => {
                return Err(QueryError::BadReply {
                    addr: addr.to_owned(),
                    detail: e.to_string(),
                });
            }
        }
        // The runtime's timers interrupt blocking calls on an executor thread (EINTR): retry
        // until the reply or the deadline, whichever comes first.
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io(std::io::ErrorKind::TimedOut.into()));
        }
        stream.set_read_timeout(Some(left)).map_err(io)?;
        let n = match stream.read(&mut chunk) {
            Ok(0) => return Err(io(std::io::ErrorKind::UnexpectedEof.into())),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io(e)),
        };
        buf.extend_from_slice(&chunk[..n]);
    }
}
