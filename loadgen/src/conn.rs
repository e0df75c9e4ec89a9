//! One WebSocket client connection: a socket bound to the (address, port) the plan chose, a
//! non-blocking connect and the upgrade handshake on the load thread's executor (`rt::`, any
//! backend); then the executor lets go of the socket: the load thread writes on it with plain
//! non-blocking sends and the thread's receiver reads it (see `receive`).

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::rc::Rc;
use std::time::Duration;

use bytes::BytesMut;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use gatewire::rt;
use socket2::{Domain, Protocol, Socket, Type};

/// How long a sender waits before trying a full socket again. A socket is full only while the
/// server is not reading it; the message is timed from its intended send time all the same.
const FULL_SOCKET_RETRY: Duration = Duration::from_millis(1);

/// A connected, upgraded client (clones share the socket, closed with the last one).
#[derive(Clone)]
pub struct Conn {
    socket: Rc<OwnedFd>,
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
    deflate: bool,
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
    let mut stream = rt::tcp_stream(OwnedFd::from(socket)).map_err(|_| ConnectFailure::Connect)?;
    // With `deflate`, permessage-deflate is offered: the server may compress what it sends
    // (loadgen itself sends plain).
    let offer = match deflate {
        true => "Sec-WebSocket-Extensions: permessage-deflate\r\n",
        false => "",
    };
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{offer}\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|_| ConnectFailure::Connect)?;
    let mut head = BytesMut::new();
    loop {
        let mut chunk = [0u8; 512];
        let n = stream
            .read(&mut chunk)
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
            // From here the receiver reads the socket: the executor stops watching it, so an
            // arrival wakes only the receiver (a watched socket would wake the load thread too,
            // for every delivery).
            let socket = stream.into_fd().map_err(|_| ConnectFailure::Handshake)?;
            let conn = Conn {
                socket: Rc::new(socket),
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
        unsafe { libc::shutdown(self.fd(), libc::SHUT_RDWR) };
    }

    /// The socket's descriptor (in the load thread's fd table).
    pub fn fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }

    /// Sends what the socket takes of `data` now: the bytes taken (0 when it is full).
    fn send_now(&self, data: &[u8]) -> io::Result<usize> {
        // SAFETY: sends from a live buffer on this connection's open socket.
        let n = unsafe {
            libc::send(
                self.fd(),
                data.as_ptr().cast(),
                data.len(),
                libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            )
        };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(0),
            _ => Err(e),
        }
    }

    /// Writes all of `data` at once if the socket takes it now; false otherwise (nothing or part
    /// written, or an error).
    pub fn try_write(&self, data: &[u8]) -> bool {
        matches!(self.send_now(data), Ok(n) if n == data.len())
    }

    /// Writes all of `data`, waiting while the socket is full.
    pub async fn write_all(&self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            match self.send_now(data)? {
                0 => rt::sleep(FULL_SOCKET_RETRY).await,
                n => data = &data[n..],
            }
        }
        Ok(())
    }
}
