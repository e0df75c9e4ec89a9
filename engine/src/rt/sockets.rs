//! Sockets of the runtime: listeners built with socket2 (so the backlog is the kernel's
//! `somaxconn`, not glommio's 1024), outgoing connections, and adopting a descriptor (a parked
//! client's socket, the parking helper's pipe).

use std::net::SocketAddr;
use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd};
use std::time::Duration;

pub use glommio::net::{TcpListener, TcpStream, UnixStream};
use socket2::{Domain, Protocol, Socket, Type};

use crate::net::port_owner;

/// Connects to `addr`, giving up after `timeout`.
pub async fn connect(addr: SocketAddr, timeout: Duration) -> std::io::Result<TcpStream> {
    TcpStream::connect_timeout(addr, timeout)
        .await
        .map_err(std::io::Error::from)
}

/// A connected TCP socket adopted by this thread's executor.
pub fn tcp_stream(socket: OwnedFd) -> TcpStream {
    // SAFETY: the descriptor is a connected TCP socket whose ownership passes to the stream.
    unsafe { TcpStream::from_raw_fd(socket.into_raw_fd()) }
}

/// A connected, non-blocking unix socket adopted by this thread's executor.
pub fn unix_stream(socket: OwnedFd) -> UnixStream {
    // SAFETY: the descriptor is a connected unix socket whose ownership passes to the stream.
    unsafe { UnixStream::from_raw_fd(socket.into_raw_fd()) }
}

/// The kernel's accept backlog cap (`net.core.somaxconn`), used as the listen backlog.
pub fn somaxconn() -> i32 {
    std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(4096)
}

/// A listener on `addr` for the current glommio executor; `reuse_port` lets every shard open its
/// own on the same address.
pub fn listen(addr: SocketAddr, reuse_port: bool) -> std::io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    socket.bind(&addr.into())?;
    socket.listen(somaxconn())?;
    // SAFETY: the fd is a freshly created, bound, listening TCP socket that we own and hand over.
    Ok(unsafe { TcpListener::from_raw_fd(socket.into_raw_fd()) })
}

/// How long a listener keeps trying an address still held by its previous owner's connections.
const PORT_RELEASE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// [`listen`], retried for a few seconds while the address is in use by what a previous process
/// left: right after a restart its connections linger (FIN_WAIT) and, while its io_uring is torn
/// down, its listener too. A listener held by a live process fails at once, naming the process.
pub async fn listen_after_restart(
    addr: SocketAddr,
    reuse_port: bool,
) -> std::io::Result<TcpListener> {
    let deadline = std::time::Instant::now() + PORT_RELEASE_WAIT;
    loop {
        match listen(addr, reuse_port) {
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                if let Some(pid) = port_owner::listener_on(addr).and_then(|l| l.pid) {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::AddrInUse,
                        format!("address in use: process {pid} listens on it"),
                    ));
                }
                if std::time::Instant::now() >= deadline {
                    return Err(e);
                }
                super::sleep(std::time::Duration::from_millis(50)).await;
            }
            result => return result,
        }
    }
}
