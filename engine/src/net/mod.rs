//! Sockets and the one connection driver every role uses: listeners built with socket2 (so the
//! backlog is the kernel's `somaxconn`, not glommio's 1024), and [`drive`], which moves bytes
//! between a glommio `TcpStream`, a protocol handler and an [`Outbox`].

mod driver;
mod outbox;
pub mod tls;

use std::net::SocketAddr;
use std::os::fd::{FromRawFd, IntoRawFd};

use glommio::net::TcpListener;
use socket2::{Domain, Protocol, Socket, Type};

pub use driver::{CloseReason, Peer, drive, drive_tls, send_parked, write_now};
pub use outbox::{Closing, Outbox};

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
