//! Watching idle sockets without a task each: an epoll set, a helper thread blocked in
//! `epoll_wait` (it shares the executor thread's fd table: threads are spawned with CLONE_FILES),
//! and a socket pair on which the helper passes the ids of sockets that became readable, 4 bytes
//! each. A socket is reported once per [`ReadinessSet::add`] (one-shot).

use std::collections::HashMap;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_lite::AsyncRead;

use super::sockets::{UnixStream, unix_stream};

/// Sockets being watched, by id.
#[derive(Debug)]
pub struct ReadinessSet {
    epoll: OwnedFd,
    sockets: HashMap<u32, OwnedFd>,
}

/// The ids the helper reports readable, read on the executor thread.
#[allow(missing_debug_implementations)]
pub struct ReadyIds {
    stream: UnixStream,
    buf: [u8; 4096],
    held: usize,
}

impl ReadinessSet {
    /// An empty set, its helper thread (named `name`) and the stream of ids it reports. Call on
    /// the executor thread whose fd table the sockets live in.
    pub fn new(name: String) -> std::io::Result<(ReadinessSet, ReadyIds)> {
        // SAFETY: a plain syscall creating a descriptor we take ownership of at once.
        let epoll = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if epoll < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `epoll` is a fresh descriptor.
        let epoll = unsafe { OwnedFd::from_raw_fd(epoll) };
        let (ready_rx, mut ready_tx) = std::os::unix::net::UnixStream::pair()?;
        ready_rx.set_nonblocking(true)?;
        let epoll_fd = epoll.as_raw_fd();
        std::thread::Builder::new()
            .name(name)
            .spawn(move || watch(epoll_fd, &mut ready_tx))?;
        let set = ReadinessSet {
            epoll,
            sockets: HashMap::new(),
        };
        let ids = ReadyIds {
            stream: unix_stream(OwnedFd::from(ready_rx))?,
            buf: [0; 4096],
            held: 0,
        };
        Ok((set, ids))
    }

    /// Holds `socket` under `id` and watches it until it is readable or hung up. On an error
    /// the socket is held anyway (take it back with [`ReadinessSet::take`]).
    pub fn add(&mut self, id: u32, socket: OwnedFd) -> std::io::Result<()> {
        let mut event = libc::epoll_event {
            events: (libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLONESHOT) as u32,
            u64: u64::from(id),
        };
        // SAFETY: both descriptors are open; the event struct lives for the call.
        let added = unsafe {
            libc::epoll_ctl(
                self.epoll.as_raw_fd(),
                libc::EPOLL_CTL_ADD,
                socket.as_raw_fd(),
                &mut event,
            )
        };
        self.sockets.insert(id, socket);
        match added {
            0 => Ok(()),
            _ => Err(std::io::Error::last_os_error()),
        }
    }

    /// Stops watching `id` and gives its socket back.
    pub fn take(&mut self, id: u32) -> Option<OwnedFd> {
        let socket = self.sockets.remove(&id)?;
        // SAFETY: both descriptors are open.
        unsafe {
            libc::epoll_ctl(
                self.epoll.as_raw_fd(),
                libc::EPOLL_CTL_DEL,
                socket.as_raw_fd(),
                std::ptr::null_mut(),
            )
        };
        Some(socket)
    }

    /// The descriptor held under `id`, to write to it in place.
    pub fn fd(&self, id: u32) -> Option<RawFd> {
        self.sockets.get(&id).map(AsRawFd::as_raw_fd)
    }
}

impl ReadyIds {
    /// Appends the ids reported since the last call to `out`; `Ready(false)` once the helper is
    /// gone, `Ready(true)` when some were read, `Pending` (waking `cx` later) when none.
    pub fn poll_ids(&mut self, cx: &mut Context<'_>, out: &mut Vec<u32>) -> Poll<bool> {
        match Pin::new(&mut self.stream).poll_read(cx, &mut self.buf[self.held..]) {
            Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => Poll::Ready(false),
            Poll::Ready(Ok(n)) => {
                self.held += n;
                let whole = self.held / 4 * 4;
                for chunk in self.buf[..whole].chunks_exact(4) {
                    out.push(u32::from_le_bytes(chunk.try_into().expect("4 bytes")));
                }
                self.buf.copy_within(whole..self.held, 0);
                self.held -= whole;
                Poll::Ready(true)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

/// The helper thread: readable sockets' ids go to the executor, 4 bytes each.
fn watch(epoll: RawFd, ready: &mut std::os::unix::net::UnixStream) {
    let mut events = [libc::epoll_event { events: 0, u64: 0 }; 256];
    let mut ids = Vec::with_capacity(events.len() * 4);
    loop {
        // SAFETY: `events` is a valid buffer of its length for the kernel to fill.
        let n = unsafe { libc::epoll_wait(epoll, events.as_mut_ptr(), events.len() as i32, -1) };
        if n < 0 {
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return;
        }
        ids.clear();
        for e in &events[..n as usize] {
            ids.extend_from_slice(&(e.u64 as u32).to_le_bytes());
        }
        if ready.write_all(&ids).is_err() {
            return; // the executor thread is gone
        }
    }
}
