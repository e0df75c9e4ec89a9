//! The runtime seam: everything that depends on the async runtime (glommio: one io_uring
//! executor per thread) is in this folder, and the roles use only these names.
//!
//! - [`executor`]: [`start`] an executor thread from an [`ExecutorSpec`] (name, [`Cpu`], locked
//!   I/O memory, ring depth) and [`Executor::join`] it;
//! - [`task`]: [`spawn`] and [`spawn_cancellable`] tasks on the current executor, [`sleep`];
//! - [`sockets`]: [`TcpListener`] / [`TcpStream`] / [`UnixStream`], [`listen`] (with the kernel's
//!   backlog) and [`listen_after_restart`], [`connect`] with a timeout, adopting a descriptor
//!   ([`tcp_stream`], [`unix_stream`], [`tcp_listener`]);
//! - [`driver`]: the connection driver — [`drive`] (and [`drive_tls`]) move bytes between a
//!   socket, a protocol [`Peer`] and its [`Outbox`](crate::net::Outbox); [`send_parked`] and
//!   [`write_now`] write an outbox to a bare descriptor;
//! - [`readiness`]: a [`ReadinessSet`] of idle sockets watched without a task each (epoll and a
//!   helper thread), reporting [`ReadyIds`];
//! - [`yield_to_io`]: [`YieldToIo`], for a long-running task to step aside until the executor
//!   has looked at its I/O (and run the tasks it woke);
//! - [`pacing`]: [`poll_turn`], how writers of fanout (client tasks, the parking lot) take turns
//!   with the executor's I/O, so a link's next message is read while a broadcast is written;
//! - [`liveness`]: [`fail_dead_peer_after`], dead-peer detection on inner links (keepalive, and
//!   a sweep task per thread that tells a dead peer from a slow one).
//!
//! The write path owns what it writes: an outbox holds reference-counted frames
//! ([`crate::net::Frame`]), and a frame leaves it only once the kernel took it. A completion-based backend (raw io_uring with
//! `send`/`send_zc` and provided-buffer multishot receives) would clone the frames it submits
//! and consume them on completion; an epoll backend (where io_uring is blocked) would keep the
//! readiness loop and `sendmsg`. Either is a sibling of this folder with the same names; see
//! docs/architecture.md.

pub mod backend;
pub mod driver;
pub mod executor;
pub mod liveness;
pub mod own;
pub mod pacing;
pub mod readiness;
pub mod sockets;
pub mod task;
pub mod yield_to_io;

pub use backend::{Backend, BackendChoice, Selection, Unavailable, select};
pub use driver::{
    CloseReason, Peer, drive, drive_tls, send_parked, take_freed_input, write_direct, write_now,
};
pub use executor::{Cpu, Executor, ExecutorError, ExecutorSpec, start};
pub use liveness::fail_dead_peer_after;
pub use pacing::{Turn, poll_turn};
pub use readiness::{ReadinessSet, ReadyIds};
pub use sockets::{
    TcpListener, TcpStream, UnixStream, connect, listen, listen_after_restart, somaxconn,
    tcp_listener, tcp_stream, unix_stream,
};
pub use task::{Task, sleep, spawn, spawn_cancellable};
pub use yield_to_io::YieldToIo;

/// Held by the runtime's unit tests that measure a thread's CPU time (pacing) or run busy
/// executors (the own backend's waves): run side by side on two cores, they would take each
/// other's CPU and a pacer would see an idle gap where there was none.
#[cfg(test)]
pub(crate) static EXCLUSIVE_TEST: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[cfg(test)]
pub(crate) fn exclusive_test() -> std::sync::MutexGuard<'static, ()> {
    EXCLUSIVE_TEST.lock().unwrap_or_else(|e| e.into_inner())
}
