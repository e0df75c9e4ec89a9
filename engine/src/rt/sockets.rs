//! Sockets of the runtime, the same types on every backend: listeners built with socket2 (so
//! the backlog is the kernel's `somaxconn`, not glommio's 1024), outgoing connections, and
//! adopting a descriptor (a parked client's socket, the parking helper's pipe). Reads and writes
//! go through `futures_lite`'s `AsyncRead` / `AsyncWrite`.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_lite::{AsyncRead, AsyncWrite};
use socket2::{Domain, Protocol, SockRef, Socket, Type};

use super::backend::{self, Backend};
use super::own::io::{self as own_io, Registered};
use crate::net::port_owner;

/// A connected TCP socket on the current executor thread.
#[derive(Debug)]
pub struct TcpStream(Stream<glommio::net::TcpStream>);

/// A connected unix socket on the current executor thread.
#[derive(Debug)]
pub struct UnixStream(Stream<glommio::net::UnixStream>);

/// A listening TCP socket on the current executor thread.
#[derive(Debug)]
pub struct TcpListener(Stream<glommio::net::TcpListener>);

#[derive(Debug)]
enum Stream<G> {
    /// glommio's socket, and its descriptor (not every glommio type gives it out).
    Glommio(G, RawFd),
    Own(Registered),
}

impl<G> AsRawFd for Stream<G> {
    fn as_raw_fd(&self) -> RawFd {
        match self {
            Stream::Glommio(_, fd) => *fd,
            Stream::Own(r) => r.as_raw_fd(),
        }
    }
}

impl<G> AsFd for Stream<G> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        // SAFETY: the descriptor is open for as long as `self` is borrowed.
        unsafe { BorrowedFd::borrow_raw(self.as_raw_fd()) }
    }
}

impl<G> Stream<G> {
    fn sock(&self) -> SockRef<'_> {
        SockRef::from(self)
    }
}

fn adopt<G: FromRawFd>(socket: OwnedFd) -> io::Result<Stream<G>> {
    adopt_as(socket, Registered::new)
}

/// [`adopt`] for a listening socket: the own reactors watch it so that it closes with its
/// process, however that ends (glommio's accept request holds it until its ring is gone).
fn adopt_listener(socket: OwnedFd) -> io::Result<Stream<glommio::net::TcpListener>> {
    adopt_as(socket, Registered::listener)
}

fn adopt_as<G: FromRawFd>(
    socket: OwnedFd,
    own: fn(OwnedFd) -> io::Result<Registered>,
) -> io::Result<Stream<G>> {
    Ok(match backend::current() {
        // SAFETY: the descriptor's ownership passes to glommio's type.
        Backend::Glommio => {
            let fd = socket.into_raw_fd();
            // SAFETY: as above.
            Stream::Glommio(unsafe { G::from_raw_fd(fd) }, fd)
        }
        Backend::IoUring | Backend::Epoll => Stream::Own(own(socket)?),
    })
}

macro_rules! async_io {
    ($type:ty) => {
        impl AsRawFd for $type {
            fn as_raw_fd(&self) -> RawFd {
                self.0.as_raw_fd()
            }
        }

        impl AsyncRead for $type {
            fn poll_read(
                mut self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &mut [u8],
            ) -> Poll<io::Result<usize>> {
                match &mut self.0 {
                    Stream::Glommio(g, _) => Pin::new(g).poll_read(cx, buf),
                    Stream::Own(r) => r.poll_read(cx, buf),
                }
            }
        }

        impl AsyncWrite for $type {
            fn poll_write(
                mut self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &[u8],
            ) -> Poll<io::Result<usize>> {
                match &mut self.0 {
                    Stream::Glommio(g, _) => Pin::new(g).poll_write(cx, buf),
                    Stream::Own(r) => r.poll_write(cx, buf),
                }
            }

            fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                match &mut self.0 {
                    Stream::Glommio(g, _) => Pin::new(g).poll_flush(cx),
                    Stream::Own(_) => Poll::Ready(Ok(())),
                }
            }

            fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                match &mut self.0 {
                    Stream::Glommio(g, _) => Pin::new(g).poll_close(cx),
                    Stream::Own(_) => {
                        Poll::Ready(self.0.sock().shutdown(std::net::Shutdown::Write))
                    }
                }
            }
        }
    };
}

async_io!(TcpStream);
async_io!(UnixStream);

impl TcpStream {
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.0.sock().peer_addr()?.as_socket().ok_or_else(not_inet)
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.sock().local_addr()?.as_socket().ok_or_else(not_inet)
    }

    pub fn set_nodelay(&self, on: bool) -> io::Result<()> {
        self.0.sock().set_tcp_nodelay(on)
    }

    /// The socket, no longer watched by the executor (to park it).
    pub fn into_fd(self) -> io::Result<OwnedFd> {
        match self.0 {
            // glommio's stream cannot give its descriptor away: keep a duplicate.
            Stream::Glommio(g, _) => {
                // SAFETY: dup of a descriptor we own; the result is owned by the OwnedFd.
                let copy = unsafe { libc::dup(g.as_raw_fd()) };
                drop(g);
                if copy < 0 {
                    return Err(io::Error::last_os_error());
                }
                // SAFETY: `copy` is a fresh descriptor nobody else owns.
                Ok(unsafe { OwnedFd::from_raw_fd(copy) })
            }
            Stream::Own(r) => Ok(r.into_fd()),
        }
    }
}

fn not_inet() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, "not an internet socket")
}

impl TcpListener {
    /// The next connection.
    pub async fn accept(&self) -> io::Result<TcpStream> {
        match &self.0 {
            Stream::Glommio(g, _) => g
                .accept()
                .await
                .map(|s| {
                    let fd = s.as_raw_fd();
                    TcpStream(Stream::Glommio(s, fd))
                })
                .map_err(io::Error::from),
            Stream::Own(r) => {
                let fd = std::future::poll_fn(|cx| r.poll_accept(cx)).await?;
                Ok(TcpStream(Stream::Own(Registered::new(fd)?)))
            }
        }
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.sock().local_addr()?.as_socket().ok_or_else(not_inet)
    }
}

impl AsRawFd for TcpListener {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

/// Connects to `addr`, giving up after `timeout`.
pub async fn connect(addr: SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
    match backend::current() {
        Backend::Glommio => glommio::net::TcpStream::connect_timeout(addr, timeout)
            .await
            .map(|s| {
                let fd = s.as_raw_fd();
                TcpStream(Stream::Glommio(s, fd))
            })
            .map_err(io::Error::from),
        Backend::IoUring | Backend::Epoll => own_io::connect(addr, timeout)
            .await
            .map(|r| TcpStream(Stream::Own(r))),
    }
}

/// A connected TCP socket adopted by this thread's executor.
pub fn tcp_stream(socket: OwnedFd) -> io::Result<TcpStream> {
    adopt(socket).map(TcpStream)
}

/// A connected, non-blocking unix socket adopted by this thread's executor.
pub fn unix_stream(socket: OwnedFd) -> io::Result<UnixStream> {
    adopt(socket).map(UnixStream)
}

/// A bound, listening TCP socket adopted by this thread's executor.
pub fn tcp_listener(socket: OwnedFd) -> io::Result<TcpListener> {
    adopt_listener(socket).map(TcpListener)
}

/// The kernel's accept backlog cap (`net.core.somaxconn`), used as the listen backlog.
pub fn somaxconn() -> i32 {
    std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(4096)
}

/// A listener on `addr` for the current executor; `reuse_port` lets every shard open its own
/// on the same address.
pub fn listen(addr: SocketAddr, reuse_port: bool) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    socket.bind(&addr.into())?;
    socket.listen(somaxconn())?;
    adopt_listener(OwnedFd::from(socket)).map(TcpListener)
}

/// How long a listener keeps trying an address still held by its previous owner's connections.
const PORT_RELEASE_WAIT: Duration = Duration::from_secs(5);

/// [`listen`], retried for a few seconds while the address is in use by what a previous process
/// left: right after a restart its connections linger (FIN_WAIT) and, while a glommio process's
/// io_uring is torn down, its listener too. A listener held by a live process fails at once,
/// naming the process.
pub async fn listen_after_restart(addr: SocketAddr, reuse_port: bool) -> io::Result<TcpListener> {
    let deadline = std::time::Instant::now() + PORT_RELEASE_WAIT;
    loop {
        match listen(addr, reuse_port) {
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
                if let Some(pid) = port_owner::listener_on(addr).and_then(|l| l.pid) {
                    return Err(io::Error::new(
                        io::ErrorKind::AddrInUse,
                        format!("address in use: process {pid} listens on it"),
                    ));
                }
                if std::time::Instant::now() >= deadline {
                    return Err(e);
                }
                super::sleep(Duration::from_millis(50)).await;
            }
            result => return result,
        }
    }
}
