//! Dead-peer detection for the inner links (gateway ↔ worker, both ↔ register). A worker host
//! whose network is cut neither closes nor resets its connections: without help the kernel
//! retransmits for about 15 minutes, and the gateway keeps routing events into a link nobody
//! reads. `link_timeout` bounds that: data unacknowledged for that long (TCP_USER_TIMEOUT), or an
//! idle link whose keepalive probes go unanswered for that long, fails the connection, so the
//! gateway routes the link's clients to other workers and the worker dials again.

use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::Duration;

use socket2::{SockRef, TcpKeepalive};

/// Arms the kernel's dead-peer detection on a connected TCP socket: a peer that acknowledges
/// nothing for `seconds` (sent data or keepalive probes alike) fails it. 0 leaves the kernel's
/// defaults (minutes).
pub fn fail_dead_peer_after(socket: &impl AsRawFd, seconds: f64) {
    if seconds <= 0.0 {
        return;
    }
    // SAFETY: the fd belongs to `socket`, which outlives this borrow.
    let fd = unsafe { BorrowedFd::borrow_raw(socket.as_raw_fd()) };
    let sock = SockRef::from(&fd);
    let timeout = Duration::from_secs_f64(seconds);
    // Probe an idle link after half the timeout, then three probes over the other half.
    let idle = Duration::from_secs_f64((seconds / 2.0).max(1.0));
    let interval = Duration::from_secs_f64((seconds / 6.0).max(1.0));
    let keepalive = TcpKeepalive::new()
        .with_time(idle)
        .with_interval(interval)
        .with_retries(3);
    let _ = sock.set_tcp_keepalive(&keepalive);
    let _ = sock.set_tcp_user_timeout(Some(timeout));
}
