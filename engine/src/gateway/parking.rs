//! Parking idle clients, the I/O side: a client that has sent nothing for a while costs only its
//! [`Client`](super::state::Client) record and its socket. Its task and glommio stream are
//! dropped, and the socket waits in the shard's epoll set, owned by the [`ParkingLot`]. A helper
//! thread — sharing the shard's fd table, blocked in `epoll_wait` — passes the ids of readable
//! parked clients to the shard through a socket pair; the shard gives each a new task. Output for
//! a parked client is written straight from the lot; only a full socket or a close request wakes
//! it up. What to park, flush and wake the core decides ([`super::idle`]), as ids.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::pin::Pin;
use std::rc::Rc;
use std::task::Poll;
use std::time::Duration;

use futures_lite::AsyncRead;
use tracing::warn;

use crate::gateway::core::state::Shard;
use crate::net;

/// Parks since the last heap collection that make the next one worth its cost.
const COLLECT_AFTER_PARKS: u64 = 1024;

/// A shard's parked sockets and the epoll set that watches them.
#[derive(Debug)]
pub struct ParkingLot {
    epoll: OwnedFd,
    sockets: HashMap<u32, OwnedFd>,
}

impl ParkingLot {
    /// Takes over the socket of client `id`, whose task just ended idle.
    pub fn park(&mut self, shard: &mut Shard, id: u32, socket: OwnedFd) {
        if !shard.parked(id) {
            return; // gone meanwhile: the socket closes here
        }
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
        if added != 0 {
            warn!(error = %std::io::Error::last_os_error(), "epoll_ctl: cannot park a client");
            shard.unpark_soon(id);
        }
    }

    /// Takes the socket of parked client `id` out of the epoll set.
    fn take(&mut self, id: u32) -> Option<OwnedFd> {
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

    /// Writes what parked client `id` has queued; asks for a task when its socket is full.
    fn flush(&mut self, shard: &mut Shard, id: u32) {
        let Some(socket) = self.sockets.get(&id) else {
            return;
        };
        let Some(outbox) = shard.client_outbox(id) else {
            return;
        };
        match net::send_parked(socket.as_raw_fd(), outbox) {
            Ok(true) => outbox.shrink_if_empty(),
            // Full, or failed: a task takes over (and finds the error itself).
            Ok(false) | Err(_) => shard.unpark_soon(id),
        }
    }
}

/// Sets up parking for a shard: the epoll set, the helper thread and the sweep of idle clients
/// every `every`. Call on the shard's thread, after its fd table is its own; then run
/// [`serve`] with the returned socket.
pub fn start(
    shard: &Rc<RefCell<Shard>>,
    every: Duration,
) -> std::io::Result<(Rc<RefCell<ParkingLot>>, glommio::net::UnixStream)> {
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
        .name(format!("park-{}", shard.borrow().settings().index))
        .spawn(move || watch(epoll_fd, &mut woken_tx))?;
    shard.borrow_mut().enable_parking();
    let lot = Rc::new(RefCell::new(ParkingLot {
        epoll,
        sockets: HashMap::new(),
    }));
    // SAFETY: the fd is a connected, non-blocking unix socket we own.
    let woken = unsafe { glommio::net::UnixStream::from_raw_fd(woken_rx.into_raw_fd()) };
    let sweeping = shard.clone();
    glommio::spawn_local(async move {
        let mut parked_before = 0;
        loop {
            glommio::timer::sleep(every).await;
            let parked = {
                let mut s = sweeping.borrow_mut();
                s.sweep_idle();
                s.stats().parked
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
    Ok((lot, woken))
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

/// The lot's task: writes parked clients' output, and gives a new task (through `resume`) to
/// those the helper found readable and those the core woke; the socket of a client that is gone
/// is closed.
pub async fn serve(
    shard: Rc<RefCell<Shard>>,
    lot: Rc<RefCell<ParkingLot>>,
    mut woken: glommio::net::UnixStream,
    resume: impl Fn(u32, OwnedFd),
) {
    let mut buf = [0u8; 4096];
    let mut held = 0usize;
    let wake_one = |id: u32| {
        let Some(socket) = lot.borrow_mut().take(id) else {
            return;
        };
        if shard.borrow_mut().unparked(id) {
            resume(id, socket);
        }
    };
    std::future::poll_fn(|cx| {
        loop {
            let Some(work) = shard.borrow_mut().take_parking_work(cx.waker()) else {
                return Poll::Ready(());
            };
            let idle = work.dirty.is_empty() && work.wake.is_empty();
            for id in work.dirty {
                lot.borrow_mut().flush(&mut shard.borrow_mut(), id);
            }
            for id in work.wake {
                wake_one(id);
            }
            match Pin::new(&mut woken).poll_read(cx, &mut buf[held..]) {
                Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => return Poll::Ready(()),
                Poll::Ready(Ok(n)) => {
                    held += n;
                    let whole = held / 4 * 4;
                    for chunk in buf[..whole].chunks_exact(4) {
                        wake_one(u32::from_le_bytes(chunk.try_into().expect("4 bytes")));
                    }
                    buf.copy_within(whole..held, 0);
                    held -= whole;
                }
                Poll::Pending if idle => return Poll::Pending,
                // Flushing may have asked for more work (a full socket): go round again.
                Poll::Pending => {}
            }
        }
    })
    .await;
    warn!("parking helper ended; parked clients are no longer watched");
}
