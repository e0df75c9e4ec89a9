//! The receiving side of a load thread: one plain thread per load thread, blocked in
//! `epoll_wait` on all of that thread's sockets (it shares the load thread's fd table), reading
//! each ready socket into one 64 KiB buffer and counting what arrives with a [`Scan`] per client.
//! No task, no read buffer and no decoder per client: a million receiving clients cost the
//! loadgen a [`Client`] record each (under 100 bytes) besides their sockets, and a wake-up
//! drains every ready socket at once.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::scan::{Frame, Scan};
use crate::shared::{Shared, confirm_join};
use crate::stats::{Live, ThreadStats, thread_cpu_seconds};

/// Starts every loadgen payload: `lg:<sender>:<seq>:<intended ns>:` then padding.
pub const MARK: &str = "lg:";
/// The payload of the pings sent to check every client is alive at the end.
pub const ALIVE: &[u8] = b"lg-alive";

/// Bytes read from a socket per call.
const READ_BUFFER: usize = 64 * 1024;
/// Events taken per `epoll_wait`.
const EVENTS: usize = 1024;
/// How often the thread looks for new clients and for the end of the run when nothing arrives.
const TICK: Duration = Duration::from_millis(50);
/// The least time between two waits that found something: a broadcast to many clients then
/// wakes each receiver once per millisecond for a batch, not once per socket (a wake-up per
/// delivery across 67 receivers held a million-client broadcast to 49k deliveries/s). Arrival
/// times are taken at the read, so up to this much of a measured latency is loadgen's.
const COALESCE: Duration = Duration::from_millis(1);

/// A load thread's handle on its receiver.
#[derive(Debug)]
pub struct Receiver {
    epoll: Arc<OwnedFd>,
    news: mpsc::Sender<News>,
    stop: Arc<AtomicBool>,
    /// Pongs with the [`ALIVE`] payload received so far.
    pub alive: Arc<AtomicU64>,
    thread: Option<JoinHandle<ThreadStats>>,
}

/// What the load thread tells its receiver. Clients are filed under their descriptor, unique
/// in the shared fd table while the load thread keeps the socket open.
#[derive(Debug)]
enum News {
    /// A new client, with the bytes that came with its handshake (counted first; usually none).
    Watch(Client, Vec<u8>),
    /// The load thread is closing this client itself: not a disconnection.
    Forget(RawFd),
}

/// One watched socket.
#[derive(Debug)]
pub struct Client {
    fd: RawFd,
    scan: Scan,
    /// The last sequence number heard from the one sender a client usually hears.
    last: Option<(u64, u64)>,
    /// Senders beyond the first (a client of the group scenario may hear several).
    #[expect(
        clippy::box_collection,
        reason = "8 bytes in every record instead of a map's 48, for a map few clients need"
    )]
    more: Option<Box<HashMap<u64, u64>>>,
}

impl Receiver {
    /// Starts the receiving thread for the calling thread's fd table.
    pub fn start(index: usize, shared: Arc<Shared>) -> std::io::Result<Receiver> {
        // SAFETY: a plain syscall creating a descriptor we take ownership of at once.
        let epoll = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if epoll < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `epoll` is a fresh descriptor.
        let epoll = Arc::new(unsafe { OwnedFd::from_raw_fd(epoll) });
        let (news, arrivals) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let alive = Arc::new(AtomicU64::new(0));
        let thread = {
            let (epoll, stop, alive) = (epoll.clone(), stop.clone(), alive.clone());
            std::thread::Builder::new()
                .name(format!("loadgen-rx-{index}"))
                .spawn(move || receive(&epoll, &arrivals, &stop, &alive, &shared))?
        };
        Ok(Receiver {
            epoll,
            news,
            stop,
            alive,
            thread: Some(thread),
        })
    }

    /// Watches `fd` from now on, after counting `leftover` (bytes read with the handshake).
    /// The socket stays owned by the caller, which keeps it open until [`Receiver::finish`].
    pub fn watch(&mut self, fd: RawFd, leftover: &[u8]) -> std::io::Result<()> {
        let client = Client {
            fd,
            scan: Scan::default(),
            last: None,
            more: None,
        };
        // Sent before the socket is added, so no event can come for a client not yet filed.
        self.news
            .send(News::Watch(client, leftover.to_vec()))
            .map_err(|_| std::io::Error::other("the receiving thread is gone"))?;
        let mut event = libc::epoll_event {
            events: (libc::EPOLLIN | libc::EPOLLRDHUP) as u32,
            u64: fd as u64,
        };
        // SAFETY: both descriptors are open; the event lives for the call.
        match unsafe {
            libc::epoll_ctl(self.epoll.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut event)
        } {
            0 => Ok(()),
            _ => Err(std::io::Error::last_os_error()),
        }
    }

    /// Stops watching `fd` before the load thread closes it (churn): its end is not counted as
    /// a disconnection.
    pub fn forget(&mut self, fd: RawFd) {
        // SAFETY: both descriptors are open (the caller closes `fd` after this).
        unsafe {
            libc::epoll_ctl(
                self.epoll.as_raw_fd(),
                libc::EPOLL_CTL_DEL,
                fd,
                std::ptr::null_mut(),
            )
        };
        let _ = self.news.send(News::Forget(fd));
    }

    /// Stops the thread and returns what it counted (its CPU time included).
    pub fn finish(mut self) -> ThreadStats {
        self.stop.store(true, Ordering::SeqCst);
        self.thread
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default()
    }
}

impl Drop for Receiver {
    /// A load thread that ends without [`Receiver::finish`] (a panic) still stops its receiver.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// The receiving thread's loop.
fn receive(
    epoll: &OwnedFd,
    arrivals: &mpsc::Receiver<News>,
    stop: &AtomicBool,
    alive: &AtomicU64,
    shared: &Shared,
) -> ThreadStats {
    let mut stats = ThreadStats::default();
    let mut clients: Vec<Option<Client>> = Vec::new();
    let mut buf = vec![0u8; READ_BUFFER];
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; EVENTS];
    let mut counter = Counter {
        shared,
        alive,
        stats: &mut stats,
        now_ns: 0,
    };
    let mut woke = std::time::Instant::now();
    let mut busy = false;
    while !stop.load(Ordering::SeqCst) {
        if busy {
            // The last wait found something: let more arrive, up to COALESCE after that wake.
            let since = woke.elapsed();
            if since < COALESCE {
                std::thread::sleep(COALESCE - since);
            }
        }
        // SAFETY: `events` is a valid buffer of its length for the kernel to fill.
        let n = unsafe {
            libc::epoll_wait(
                epoll.as_raw_fd(),
                events.as_mut_ptr(),
                EVENTS as i32,
                TICK.as_millis() as i32,
            )
        };
        if n < 0 {
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            break;
        }
        busy = n > 0;
        woke = std::time::Instant::now();
        // News after the wait: whatever an event is for was sent before it was added.
        while let Ok(news) = arrivals.try_recv() {
            match news {
                News::Watch(mut client, leftover) => {
                    let slot = client.fd as usize;
                    if clients.len() <= slot {
                        clients.resize_with(slot + 1, || None);
                    }
                    if !leftover.is_empty() {
                        counter.now_ns = shared.now_ns();
                        counter.scan(&mut client, &leftover);
                    }
                    clients[slot] = Some(client);
                }
                News::Forget(fd) => {
                    if let Some(slot) = clients.get_mut(fd as usize) {
                        *slot = None;
                    }
                }
            }
        }
        for event in &events[..n as usize] {
            let slot = event.u64 as usize;
            let Some(Some(client)) = clients.get_mut(slot) else {
                continue;
            };
            if !drain(client, &mut buf, &mut counter) {
                // Ended: stop watching (the load thread still owns and later closes it).
                // SAFETY: both descriptors are open.
                unsafe {
                    libc::epoll_ctl(
                        epoll.as_raw_fd(),
                        libc::EPOLL_CTL_DEL,
                        client.fd,
                        std::ptr::null_mut(),
                    )
                };
                counter.stats.disconnected += 1;
                Live::bump(&shared.live.disconnected, 1);
                clients[slot] = None;
            }
        }
    }
    stats.alive = alive.load(Ordering::Relaxed);
    stats.cpu_seconds = thread_cpu_seconds();
    stats
}

/// Reads what `client`'s socket holds; false once its stream has ended.
fn drain(client: &mut Client, buf: &mut [u8], counter: &mut Counter<'_>) -> bool {
    loop {
        // SAFETY: reads into a buffer of its length from a socket the load thread keeps open.
        let n = unsafe {
            libc::recv(
                client.fd,
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            return matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
            );
        }
        if n == 0 {
            return false;
        }
        counter.now_ns = counter.shared.now_ns();
        if !counter.scan(client, &buf[..n as usize]) {
            return false;
        }
        if (n as usize) < buf.len() {
            return true;
        }
    }
}

/// Turns frames into the thread's counts.
struct Counter<'a> {
    shared: &'a Shared,
    alive: &'a AtomicU64,
    stats: &'a mut ThreadStats,
    /// When the bytes being scanned arrived (ns since the run's epoch).
    now_ns: u64,
}

impl Counter<'_> {
    /// Counts the frames `bytes` completes for `client`; false once its stream has ended.
    fn scan(&mut self, client: &mut Client, bytes: &[u8]) -> bool {
        let mut scan = std::mem::take(&mut client.scan);
        scan.feed(bytes, &mut |frame| self.frame(client, frame));
        let open = !scan.is_closed();
        client.scan = scan;
        open
    }

    fn frame(&mut self, client: &mut Client, frame: Frame<'_>) {
        match frame {
            Frame::Data(message) => {
                confirm_join(message, self.shared);
                self.delivery(client, message);
            }
            Frame::Pong(payload) if payload == ALIVE => {
                self.alive.fetch_add(1, Ordering::Relaxed);
                self.shared.pongs.fetch_add(1, Ordering::Relaxed);
            }
            Frame::Pong(_) | Frame::Close | Frame::Other => {}
        }
    }

    /// Accounts one delivery: latency from its intended send time, duplicates by sequence.
    fn delivery(&mut self, client: &mut Client, message: &[u8]) {
        // The chat's confirmation to a sender ("You whisper to uN: …") is not a delivery.
        if message.starts_with(b"You whisper") {
            return;
        }
        // The marker may follow a prefix the app added (the chat's "<name> said ").
        let Some(at) = message
            .windows(MARK.len())
            .position(|w| w == MARK.as_bytes())
        else {
            return;
        };
        let mut fields = message[at + MARK.len()..].splitn(4, |&b| b == b':');
        let number =
            |f: Option<&[u8]>| -> Option<u64> { std::str::from_utf8(f?).ok()?.parse().ok() };
        let (Some(sender), Some(seq), Some(intended)) = (
            number(fields.next()),
            number(fields.next()),
            number(fields.next()),
        ) else {
            // Not one of ours (a greeting from the app, say): not a delivery.
            return;
        };
        let now = self.now_ns;
        self.shared
            .last_delivery_ns
            .fetch_max(now, Ordering::Relaxed);
        let s = &mut *self.stats;
        s.deliveries += 1;
        Live::bump(&self.shared.live.deliveries, 1);
        let second = self
            .shared
            .measure_start
            .get()
            .map_or(0, |start| start.elapsed().as_secs() as usize);
        s.record_latency(second, (now.saturating_sub(intended) / 1000).max(1));
        let duplicate = match client.last {
            None => {
                client.last = Some((sender, seq));
                false
            }
            Some((first, last)) if first == sender => {
                client.last = Some((sender, seq.max(last)));
                seq <= last
            }
            Some(_) => match client.more.get_or_insert_default().entry(sender) {
                Entry::Occupied(last) if seq <= *last.get() => true,
                Entry::Occupied(mut last) => {
                    last.insert(seq);
                    false
                }
                Entry::Vacant(first) => {
                    first.insert(seq);
                    false
                }
            },
        };
        if duplicate {
            s.duplicates += 1;
        }
    }
}
