//! gatewire's own runtime backend: a small executor per thread ([`executor`]) over one of two
//! reactors ([`reactor`]): io_uring ([`uring`]) where the kernel allows it, epoll ([`epoll`])
//! where it does not. Sockets are [`io::Registered`] descriptors; reads and writes are plain
//! non-blocking system calls in both.

pub mod edge;
pub mod epoll;
pub mod executor;
pub mod io;
pub mod reactor;
pub mod slab;
pub mod uring;

#[cfg(test)]
mod tests;

use std::future::Future;

pub use executor::{Task, prefer_current, sleep, spawn};
use reactor::Reactor;

/// Which reactor an executor thread runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReactorKind {
    Uring,
    Epoll,
}

/// Submission entries of an io_uring reactor when the spec names none.
const DEFAULT_RING: u32 = 256;

/// Makes the reactor of `kind` for the calling thread.
pub fn reactor(kind: ReactorKind, ring_depth: Option<usize>) -> std::io::Result<Reactor> {
    Ok(match kind {
        ReactorKind::Uring => Reactor::Uring(Box::new(uring::Uring::new(
            ring_depth.map_or(DEFAULT_RING, |d| d as u32),
        )?)),
        ReactorKind::Epoll => Reactor::Epoll(epoll::Epoll::new()?),
    })
}

/// Runs `main` on the calling thread's new executor with a reactor of `kind` until it ends.
pub fn run<T: 'static>(
    kind: ReactorKind,
    ring_depth: Option<usize>,
    main: impl Future<Output = T> + 'static,
) -> std::io::Result<T> {
    executor::block_on(reactor(kind, ring_depth)?, main)
}
