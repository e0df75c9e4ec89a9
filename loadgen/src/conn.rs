//! One WebSocket client connection: a socket bound to the (address, port) the plan chose, a
//! non-blocking connect handed to glommio, the upgrade handshake; then the load thread writes on
//! it (its sender tasks share the stream through a `RefCell`) and the thread's receiver reads it
//! (see `receive`).

use std::cell::RefCell;
use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{FromRawFd, IntoRawFd};
use std::pin::Pin;
use std::rc::Rc;

use bytes::BytesMut;
use futures_lite::AsyncWrite;
use glommio::net::TcpStream;
use socket2::{Domain, Protocol, Socket, Type};

/// A connected, upgraded client.
#[derive(Clone)]
pub struct Conn {
    stream: Rc<RefCell<TcpStream>>,
    fd: std::os::fd::RawFd,
}

/// Why a client could not connect, for the failure counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ConnectFailure {
    Bind,
    Connect,
    Handshake,
    Timeout,
}

impl ConnectFailure {
    pub fn name(self) -> &'static str {
        match self {
            ConnectFailure::Bind => "bind",
            ConnectFailure::Connect => "connect",
            ConnectFailure::Handshake => "handshake",
            ConnectFailure::Timeout => "timeout",
        }
    }
}

/// Opens a connection to `server` from `source` (`None`: the kernel picks) and upgrades it.
/// Returns the connection and any bytes that followed the 101 response.
pub async fn connect(
    server: SocketAddr,
    source: Option<SocketAddr>,
    host: &str,
    path: &str,
) -> Result<(Conn, BytesMut), ConnectFailure> {
    let socket = Socket::new(
        Domain::for_address(server),
        Type::STREAM,
        Some(Protocol::TCP),
    )
    .map_err(|_| ConnectFailure::Bind)?;
    socket
        .set_nonblocking(true)
        .map_err(|_| ConnectFailure::Bind)?;
    let _ = socket.set_tcp_nodelay(true);
    if let Some(source) = source {
        let _ = socket.set_reuse_address(true);
        socket
            .bind(&source.into())
            .map_err(|_| ConnectFailure::Bind)?;
    }
    match socket.connect(&server.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(_) => return Err(ConnectFailure::Connect),
    }
    let fd = socket.into_raw_fd();
    // SAFETY: a TCP socket we own, connecting; glommio takes ownership of the fd.
    let mut stream = unsafe { TcpStream::from_raw_fd(fd) };
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    futures_lite::AsyncWriteExt::write_all(&mut stream, request.as_bytes())
        .await
        .map_err(|_| ConnectFailure::Connect)?;
    let mut head = BytesMut::new();
    loop {
        let mut chunk = [0u8; 512];
        let n = read_once(&stream, fd, &mut chunk)
            .await
            .map_err(|_| ConnectFailure::Handshake)?;
        if n == 0 {
            return Err(ConnectFailure::Handshake);
        }
        head.extend_from_slice(&chunk[..n]);
        if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            if !head.starts_with(b"HTTP/1.1 101") {
                return Err(ConnectFailure::Handshake);
            }
            // Frames the server queued before the upgrade may follow the head at once.
            let leftover = head.split_off(end + 4);
            let conn = Conn {
                stream: Rc::new(RefCell::new(stream)),
                fd,
            };
            return Ok((conn, leftover));
        }
        if head.len() > 8192 {
            return Err(ConnectFailure::Handshake);
        }
    }
}

impl Conn {
    /// Ends the connection (both directions); its reader sees the end of the stream.
    pub fn shutdown(&self) {
        // SAFETY: shutdown on a socket fd this connection owns; it stays open until dropped.
        unsafe { libc::shutdown(self.fd, libc::SHUT_RDWR) };
    }

    /// The socket's descriptor (in the load thread's fd table).
    pub fn fd(&self) -> std::os::fd::RawFd {
        self.fd
    }

    /// Writes all of `data` at once if the socket takes it now; false otherwise (nothing or part
    /// written, or an error).
    pub fn try_write(&self, data: &[u8]) -> bool {
        // SAFETY: sends from a live buffer on this connection's open socket.
        let n = unsafe {
            libc::send(
                self.fd,
                data.as_ptr().cast(),
                data.len(),
                libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            )
        };
        n == data.len() as isize
    }

    /// Writes all of `data`.
    pub async fn write_all(&self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            let n =
                poll_fn(|cx| Pin::new(&mut *self.stream.borrow_mut()).poll_write(cx, data)).await?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            data = &data[n..];
        }
        Ok(())
    }
}

/// Reads what is available (at least one byte, 0 at end of stream), leaving nothing armed
/// behind: glommio's own read, when it gets less than the buffer holds, arms a readiness poll on
/// the socket for the next read. A connection's next reads are the receiver's, so that poll would
/// only complete, at a cost on both sides, on each delivery (in a broadcast to 300,000 clients,
/// loadgen's executors took 31 % of the samples with it, 1.4 % without). A one-shot peek waits
/// for the data instead, and a plain `recv` takes what it saw.
async fn read_once(
    stream: &TcpStream,
    fd: std::os::fd::RawFd,
    buf: &mut [u8],
) -> io::Result<usize> {
    let n = stream.peek(buf).await?;
    if n == 0 {
        return Ok(0);
    }
    // SAFETY: reads at most `n` bytes into `buf` from this connection's open socket.
    let taken = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), n, libc::MSG_DONTWAIT) };
    match taken {
        t if t >= 0 => Ok(t as usize),
        _ => Err(io::Error::last_os_error()),
    }
}
