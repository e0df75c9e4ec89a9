//! Parking idle clients: a WebSocket (or text, frame, raw) client that has sent nothing for a
//! while costs only its [`Client`](super::state::Client) record and its socket. Its task and
//! glommio stream (poll source, timers, future) are dropped, and the socket waits in the shard's
//! epoll set. A helper thread — sharing the shard's fd table, blocked in `epoll_wait` — passes
//! the ids of readable parked clients to the shard through a socket pair; the shard gives each a
//! new task. Output for a parked client is written straight from the shard; only a full socket
//! or a close request wakes it up.

use std::cell::RefCell;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::Duration;

use futures_lite::AsyncRead;
use tracing::warn;

use crate::gateway::client::ClientPeer;
use crate::gateway::state::Shard;
use crate::net;

/// Parks since the last heap collection that make the next one worth its cost.
const COLLECT_AFTER_PARKS: u64 = 1024;

/// A shard's parking lot.
#[derive(Debug)]
pub struct Parking {
    epoll: OwnedFd,
    /// Parked clients the shard itself wants woken (socket full, close after flush).
    wake: Vec<u32>,
    /// Parked clients with output queued since the parking task last ran: written together,
    /// so a burst of messages leaves in one `sendmsg` per client, as it would from a task.
    dirty: Vec<u32>,
    waker: Option<Waker>,
}

impl Shard {
    /// Takes over the socket of client `id`, whose task just ended idle.
    pub fn park(&mut self, id: u32, socket: OwnedFd) {
        let Some(parking) = self.parking.as_ref() else {
            return;
        };
        let Some(client) = self.clients.get_mut(&id) else {
            return;
        };
        let mut event = libc::epoll_event {
            events: (libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLONESHOT) as u32,
            u64: u64::from(id),
        };
        // SAFETY: both descriptors are open; the event struct lives for the call.
        let added = unsafe {
            libc::epoll_ctl(
                parking.epoll.as_raw_fd(),
                libc::EPOLL_CTL_ADD,
                socket.as_raw_fd(),
                &mut event,
            )
        };
        client.outbox.forget_waker();
        client.parked = Some(socket);
        self.stats.parked += 1;
        if added != 0 {
            warn!(error = %std::io::Error::last_os_error(), "epoll_ctl: cannot park a client");
            self.unpark_soon(id);
        }
    }

    /// A parked client has new output: it is written when the parking task next runs.
    pub(super) fn parked_output(&mut self, id: u32) {
        let Some(client) = self.clients.get_mut(&id) else {
            return;
        };
        if std::mem::replace(&mut client.flush_pending, true) {
            return;
        }
        if let Some(parking) = self.parking.as_mut() {
            parking.dirty.push(id);
            if let Some(w) = parking.waker.take() {
                w.wake();
            }
        }
    }

    /// Writes what a parked client has queued; wakes it when its socket is full.
    fn flush_parked(&mut self, id: u32) {
        let Some(client) = self.clients.get_mut(&id) else {
            return;
        };
        client.flush_pending = false;
        let Some(socket) = client.parked.as_ref() else {
            return;
        };
        match net::send_parked(socket.as_raw_fd(), &mut client.outbox) {
            Ok(true) => {}
            // Full, or failed: a task takes over (and finds the error itself).
            Ok(false) | Err(_) => self.unpark_soon(id),
        }
    }

    /// Queues a parked client for a new task.
    pub(super) fn unpark_soon(&mut self, id: u32) {
        if let Some(parking) = self.parking.as_mut() {
            parking.wake.push(id);
            if let Some(w) = parking.waker.take() {
                w.wake();
            }
        }
    }

    /// Takes the socket of parked client `id` out of the epoll set.
    fn unpark(&mut self, id: u32) -> Option<OwnedFd> {
        let socket = self.clients.get_mut(&id)?.parked.take()?;
        if let Some(parking) = self.parking.as_ref() {
            // SAFETY: both descriptors are open.
            unsafe {
                libc::epoll_ctl(
                    parking.epoll.as_raw_fd(),
                    libc::EPOLL_CTL_DEL,
                    socket.as_raw_fd(),
                    std::ptr::null_mut(),
                )
            };
        }
        self.stats.unparked += 1;
        Some(socket)
    }

    /// Asks every attached client that sent nothing since the previous sweep to park.
    fn sweep_idle(&mut self) {
        for client in self.clients.values_mut() {
            if !client.active
                && client.parked.is_none()
                && client.outbox.is_empty()
                && client.outbox.closing().is_none()
                && !client.outbox.is_held()
            {
                client.outbox.request_park();
            }
            client.active = false;
        }
    }
}

/// Sets up parking for a shard: the epoll set, the helper thread and the shard's two tasks
/// (sweeping idle clients every `every`, giving woken ones a new task). Call on the shard's
/// thread, after its fd table is its own.
pub fn start(shard: &Rc<RefCell<Shard>>, every: Duration) -> std::io::Result<()> {
    // SAFETY: plain syscalls creating descriptors we take ownership of at once.
    let epoll = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if epoll < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `epoll` is a fresh descriptor.
    let epoll = unsafe { OwnedFd::from_raw_fd(epoll) };
    let (woken_rx, mut woken_tx) = std::os::unix::net::UnixStream::pair()?;
    woken_rx.set_nonblocking(true)?;
    let epoll_fd = epoll.as_raw_fd();
    // The helper shares this thread's fd table (threads are spawned with CLONE_FILES).
    std::thread::Builder::new()
        .name(format!("park-{}", shard.borrow().settings.index))
        .spawn(move || watch(epoll_fd, &mut woken_tx))?;
    shard.borrow_mut().parking = Some(Parking {
        epoll,
        wake: Vec::new(),
        dirty: Vec::new(),
        waker: None,
    });
    // SAFETY: the fd is a connected, non-blocking unix socket we own.
    let woken = unsafe { glommio::net::UnixStream::from_raw_fd(woken_rx.into_raw_fd()) };
    glommio::spawn_local(wake_parked(shard.clone(), woken)).detach();
    let sweeping = shard.clone();
    glommio::spawn_local(async move {
        let mut parked_before = 0;
        loop {
            glommio::timer::sleep(every).await;
            let parked = {
                let mut s = sweeping.borrow_mut();
                s.sweep_idle();
                s.stats.parked
            };
            if parked >= parked_before + COLLECT_AFTER_PARKS {
                // The tasks and streams of the clients parked since the last sweep are freed:
                // give their pages back to the OS instead of keeping them in this thread's heap.
                // SAFETY: mi_collect only walks and purges the calling thread's heap.
                unsafe { libmimalloc_sys::mi_collect(true) };
                parked_before = parked;
            }
        }
    })
    .detach();
    Ok(())
}

/// The helper thread: readable parked sockets' ids go to the shard, 4 bytes each.
fn watch(epoll: RawFd, woken: &mut std::os::unix::net::UnixStream) {
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
        if woken.write_all(&ids).is_err() {
            return; // the shard is gone
        }
    }
}

/// Gives parked clients a new task: those the helper found readable, and those the shard woke.
async fn wake_parked(shard: Rc<RefCell<Shard>>, mut woken: glommio::net::UnixStream) {
    let mut buf = [0u8; 4096];
    let mut held = 0usize;
    std::future::poll_fn(|cx| {
        loop {
            let queued = {
                let mut s = shard.borrow_mut();
                let Some(parking) = s.parking.as_mut() else {
                    return Poll::Ready(());
                };
                parking.waker = Some(cx.waker().clone());
                let dirty = std::mem::take(&mut parking.dirty);
                for id in dirty {
                    s.flush_parked(id);
                }
                let Some(parking) = s.parking.as_mut() else {
                    return Poll::Ready(());
                };
                std::mem::take(&mut parking.wake)
            };
            for id in queued {
                resume(&shard, id);
            }
            match Pin::new(&mut woken).poll_read(cx, &mut buf[held..]) {
                Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => return Poll::Ready(()),
                Poll::Ready(Ok(n)) => {
                    held += n;
                    let whole = held / 4 * 4;
                    for chunk in buf[..whole].chunks_exact(4) {
                        let id = u32::from_le_bytes(chunk.try_into().expect("4 bytes"));
                        resume(&shard, id);
                    }
                    buf.copy_within(whole..held, 0);
                    held -= whole;
                }
                Poll::Pending => {
                    if shard
                        .borrow()
                        .parking
                        .as_ref()
                        .is_some_and(|p| p.wake.is_empty() && p.dirty.is_empty())
                    {
                        return Poll::Pending;
                    }
                }
            }
        }
    })
    .await;
    warn!("parking helper ended; parked clients are no longer watched");
}

/// A parked client gets a task again (nothing happens if it is no longer parked).
fn resume(shard: &Rc<RefCell<Shard>>, id: u32) {
    let Some(socket) = shard.borrow_mut().unpark(id) else {
        return;
    };
    // SAFETY: the descriptor is a connected TCP socket we own and hand over.
    let stream = unsafe { glommio::net::TcpStream::from_raw_fd(socket.into_raw_fd()) };
    let peer = ClientPeer::resume(shard.clone(), id);
    glommio::spawn_local(net::drive(stream, peer)).detach();
}
