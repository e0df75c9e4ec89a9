//! Dead-peer detection for the inner links (gateway ↔ worker, both ↔ register). A worker host
//! whose network is cut neither closes nor resets its connections: without help the kernel
//! retransmits for about 15 minutes, and the gateway keeps routing events into a link nobody
//! reads. `link_timeout` bounds that, and tells a dead peer from a slow one:
//!
//! - an idle link probes its peer (TCP keepalive): probes unanswered for `link_timeout` fail it;
//! - a link with data waiting is watched by this thread's sweep: when the peer has acknowledged
//!   nothing for `link_timeout` *and* the kernel has segments or window probes out unanswered,
//!   on two sweeps in a row, the link is shut down.
//!
//! A peer that answers but reads slowly (its receive window closed: a worker thread starved of
//! CPU in a connect storm) is alive: its link stays, and what queued for it waits under the
//! link's output cap. The kernel's `TCP_USER_TIMEOUT`, used here before, cannot tell the two
//! apart: it aborts a connection whose window stays closed that long even while the peer answers
//! every probe, and a million clients connecting at 22,000/s on two cores cost every shard its
//! worker link that way.

use std::cell::RefCell;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::time::{Duration, Instant};

use socket2::{SockRef, TcpKeepalive};

use crate::log_limit::warn_limited;
use crate::rt;

/// Arms dead-peer detection on a connected TCP socket: a peer that acknowledges nothing for
/// `seconds` (sent data, window probes or keepalive probes alike) fails it. 0 leaves the
/// kernel's defaults (minutes). Call on the executor thread that owns the socket.
pub fn fail_dead_peer_after(socket: &impl AsRawFd, seconds: f64) {
    if seconds <= 0.0 {
        return;
    }
    let fd = socket.as_raw_fd();
    // SAFETY: the fd belongs to `socket`, which outlives this borrow.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    let sock = SockRef::from(&borrowed);
    // Probe an idle link after half the timeout, then three probes over the other half.
    let idle = Duration::from_secs_f64((seconds / 2.0).max(1.0));
    let interval = Duration::from_secs_f64((seconds / 6.0).max(1.0));
    let keepalive = TcpKeepalive::new()
        .with_time(idle)
        .with_interval(interval)
        .with_retries(3);
    let _ = sock.set_tcp_keepalive(&keepalive);
    let Some(identity) = socket_identity(fd) else {
        return;
    };
    let timeout = Duration::from_secs_f64(seconds);
    let start_sweep = WATCHED.with_borrow_mut(|watched| {
        watched.links.push(Watched {
            fd,
            identity,
            timeout,
            waiting_since: None,
            suspect: false,
        });
        let period = sweep_period(timeout);
        let start = watched.period.is_none();
        if watched.period.is_none_or(|p| period < p) {
            watched.period = Some(period);
        }
        start
    });
    if start_sweep {
        rt::spawn(sweep_forever());
    }
}

/// One watched link.
struct Watched {
    fd: RawFd,
    /// The socket's (device, inode): a closed link's fd number may be reused by another socket.
    identity: (u64, u64),
    timeout: Duration,
    /// Since when the socket has had data not yet acknowledged, as far as the sweeps saw.
    waiting_since: Option<Instant>,
    /// The last sweep found the peer silent: a second one in a row shuts the link down (a
    /// window probe just sent and not yet answered looks silent for one round trip).
    suspect: bool,
}

/// This executor thread's watched links and how often they are swept.
#[derive(Default)]
struct WatchedLinks {
    links: Vec<Watched>,
    /// `None` until the first link: then the sweep task runs.
    period: Option<Duration>,
}

thread_local! {
    static WATCHED: RefCell<WatchedLinks> = RefCell::default();
}

/// A quarter of the timeout, between 100 ms and 1 s.
fn sweep_period(timeout: Duration) -> Duration {
    (timeout / 4).clamp(Duration::from_millis(100), Duration::from_secs(1))
}

async fn sweep_forever() {
    loop {
        let period = WATCHED
            .with_borrow(|w| w.period)
            .unwrap_or(Duration::from_secs(1));
        rt::sleep(period).await;
        let now = Instant::now();
        WATCHED.with_borrow_mut(|w| w.links.retain_mut(|link| link.check(now)));
    }
}

impl Watched {
    /// Looks at the link once; false when it is no longer watched (gone, or shut down here).
    fn check(&mut self, now: Instant) -> bool {
        if socket_identity(self.fd) != Some(self.identity) {
            return false; // closed (and maybe its number reused)
        }
        if unacknowledged_bytes(self.fd).unwrap_or(0) == 0 {
            self.waiting_since = None;
            self.suspect = false;
            return true;
        }
        let since = *self.waiting_since.get_or_insert(now);
        let silent = now.duration_since(since) >= self.timeout
            && peer_silent_for(self.fd).is_some_and(|silence| silence >= self.timeout);
        if !silent {
            self.suspect = false;
            return true;
        }
        if !self.suspect {
            self.suspect = true;
            return true;
        }
        // SAFETY: the link's socket, open (checked above) for the duration of this borrow.
        let borrowed = unsafe { BorrowedFd::borrow_raw(self.fd) };
        let peer = SockRef::from(&borrowed)
            .peer_addr()
            .ok()
            .and_then(|a| a.as_socket())
            .map_or_else(|| "?".to_owned(), |a| a.to_string());
        warn_limited(
            "inner link peer silent",
            &format!(
                "inner link to {peer}: nothing acknowledged for {:.1}s with data waiting \
                 (link_timeout); dropping the link",
                self.timeout.as_secs_f64()
            ),
        );
        // SAFETY: shutdown of a socket this thread's link task owns (its identity checked just
        // above); the task sees the end of the stream and closes the link as usual.
        unsafe { libc::shutdown(self.fd, libc::SHUT_RDWR) };
        false
    }
}

/// The socket's (device, inode), or `None` when `fd` is not open.
fn socket_identity(fd: RawFd) -> Option<(u64, u64)> {
    // SAFETY: fstat only writes the struct we pass.
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::fstat(fd, &mut stat) } != 0 {
        return None;
    }
    Some((stat.st_dev, stat.st_ino))
}

/// Bytes written to the socket that the peer has not acknowledged yet (sent or not).
fn unacknowledged_bytes(fd: RawFd) -> Option<usize> {
    let mut queued: libc::c_int = 0;
    // SAFETY: TIOCOUTQ (SIOCOUTQ) writes one int.
    if unsafe { libc::ioctl(fd, libc::TIOCOUTQ, &mut queued) } != 0 {
        return None;
    }
    Some(queued.max(0) as usize)
}

/// How long the peer has acknowledged nothing, when the kernel has segments or window probes
/// out unanswered; `None` while it answers.
fn peer_silent_for(fd: RawFd) -> Option<Duration> {
    // SAFETY: a zeroed tcp_info is valid; getsockopt writes at most `len` bytes of it.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: as above.
    let got = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    if got != 0 || (info.tcpi_retransmits == 0 && info.tcpi_probes == 0) {
        return None;
    }
    Some(Duration::from_millis(u64::from(info.tcpi_last_ack_recv)))
}
