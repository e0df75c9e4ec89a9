//! The io_uring reactor: a multishot poll per descriptor reports its readiness edges, and the
//! thread parks in one `io_uring_enter` that waits with a timeout argument (no timer request to
//! arm and cancel around every park, no `membarrier`). Reads and writes stay plain non-blocking
//! system calls, as the epoll reactor does them, so both run the same I/O code.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use io_uring::{IoUring, cqueue, opcode, squeue, types};

use super::edge::Readiness;
use super::epoll::Epoll;

/// `user_data` of requests whose completion means nothing to us (poll removals).
const IGNORED: u64 = 0;

/// `user_data` of the poll on the listeners' epoll set (no token has slot `u32::MAX`).
const LISTENERS: u64 = u64::MAX;

/// The events a descriptor's poll asks for.
const MASK: u32 =
    (libc::POLLIN | libc::POLLOUT | libc::POLLRDHUP | libc::POLLERR | libc::POLLHUP) as u32;

/// A ring, and the descriptors whose polls it keeps armed.
#[allow(missing_debug_implementations)]
pub struct Uring {
    ring: IoUring,
    /// Registered descriptors, by the slot half of their token: `(generation, fd)`, so a poll
    /// that ends (the kernel may end a multishot poll) is armed again. 8 bytes a slot; a
    /// generation of 0 marks a free one.
    armed: Vec<(u32, RawFd)>,
    rearm: Vec<u64>,
    /// Listening sockets are watched through an epoll set, and the ring polls only that set.
    /// A poll request holds a reference to its file, and a ring is torn down in the background
    /// after its process dies: a listener the ring held outlived a killed gateway and took
    /// connections nobody would accept, reset once the ring was gone (the clients that
    /// reconnected at once after a `kill -9`). An epoll set holds no reference, so the
    /// listener closes with the process and connections wait for the next one instead.
    listeners: Option<Epoll>,
    listener_tokens: Vec<u64>,
    listeners_ready: bool,
    /// Edges taken off the completion queue while submitting (a full queue), for the next wait.
    held: Vec<(u64, Readiness)>,
}

impl Uring {
    /// A ring of `entries` submission slots; fails where io_uring is refused, or lacks the
    /// timeout argument of `io_uring_enter` (kernels before 5.11).
    pub fn new(entries: u32) -> io::Result<Uring> {
        // Completions wait for our next look at the ring (coop task run) instead of interrupting
        // whatever system call the thread is in; the flag tells a look that some are pending.
        // Kernels before 5.19 know neither: a plain ring there.
        let ring = match IoUring::builder()
            .setup_coop_taskrun()
            .setup_taskrun_flag()
            .build(entries)
        {
            Ok(ring) => ring,
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                IoUring::builder().build(entries)?
            }
            Err(e) => return Err(e),
        };
        if !ring.params().is_feature_ext_arg() {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "this kernel's io_uring_enter takes no timeout argument (Linux 5.11 or later \
                 needed)",
            ));
        }
        Ok(Uring {
            ring,
            armed: Vec::new(),
            rearm: Vec::new(),
            listeners: None,
            listener_tokens: Vec::new(),
            listeners_ready: false,
            held: Vec::new(),
        })
    }

    fn push(&mut self, entry: squeue::Entry) -> io::Result<()> {
        loop {
            // SAFETY: poll and poll-remove requests reference no user memory.
            if unsafe { self.ring.submission().push(&entry) }.is_ok() {
                return Ok(());
            }
            // The submission queue is full: hand it to the kernel and try again.
            match self.ring.submit() {
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                    let mut held = std::mem::take(&mut self.held);
                    self.drain(&mut held);
                    self.held = held;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    fn arm(&mut self, fd: RawFd, token: u64) -> io::Result<()> {
        let poll = opcode::PollAdd::new(types::Fd(fd), MASK)
            .multi(true)
            .build()
            .user_data(token);
        self.push(poll)
    }

    pub fn register(&mut self, fd: RawFd, token: u64) -> io::Result<()> {
        let slot = token as u32 as usize;
        if self.armed.len() <= slot {
            self.armed.resize(slot + 1, (0, -1));
        }
        self.armed[slot] = ((token >> 32) as u32, fd);
        self.arm(fd, token)
    }

    /// Watches listening socket `fd` without the ring holding it (see `listeners`).
    pub fn register_listener(&mut self, fd: RawFd, token: u64) -> io::Result<()> {
        let set = match &mut self.listeners {
            Some(set) => set,
            None => {
                let set = Epoll::new()?;
                self.arm(set.as_raw_fd(), LISTENERS)?;
                self.listeners.insert(set)
            }
        };
        set.register(fd, token)?;
        self.listener_tokens.push(token);
        Ok(())
    }

    /// Forgets the slots from `len` on (all deregistered: the sources' free tail) and gives
    /// back their capacity.
    pub fn forget_from(&mut self, len: usize) {
        if self.armed.len() > len {
            self.armed.truncate(len);
            self.armed.shrink_to_fit();
        }
    }

    /// The descriptor registered under `token`, if it still is.
    fn armed_fd(&self, token: u64) -> Option<RawFd> {
        if token == LISTENERS {
            return self.listeners.as_ref().map(AsRawFd::as_raw_fd);
        }
        match self.armed.get(token as u32 as usize) {
            Some(&(generation, fd)) if generation != 0 && generation == (token >> 32) as u32 => {
                Some(fd)
            }
            _ => None,
        }
    }

    /// Stops watching the descriptor registered under `token`; call while it is still open.
    /// The removal is submitted at once: a poll still armed holds a reference to the socket,
    /// and one removed only at the next look at the ring kept the socket open after it was
    /// closed here, with its peer never told (found with Autobahn's close cases).
    ///
    /// Cancelled by `user_data` (the token is this registration's own), never by descriptor:
    /// the kernel finds a poll by descriptor by walking every armed poll of the ring, so with
    /// 10,000 clients connected each close cost 35–46 µs there (70 % of the shard's CPU while a
    /// crowd closed and reconnected; a turn of 350–460 ms for 10,000 closes).
    pub fn deregister(&mut self, fd: RawFd, token: u64) {
        if let Some(at) = self.listener_tokens.iter().position(|&t| t == token) {
            self.listener_tokens.swap_remove(at);
            if let Some(set) = &mut self.listeners {
                set.deregister(fd);
            }
            return;
        }
        if self.armed_fd(token).is_some() {
            self.armed[token as u32 as usize] = (0, -1);
            // The poll, then every request left under the token (kernels before 5.19 refuse
            // the second: the first is what they need).
            let remove = opcode::PollRemove::new(token).build().user_data(IGNORED);
            let cancel = opcode::AsyncCancel2::new(types::CancelBuilder::user_data(token).all())
                .build()
                .user_data(IGNORED);
            if self.push(remove).is_ok() && self.push(cancel).is_ok() {
                let _ = self.ring.submit();
            }
        }
    }

    fn drain(&mut self, out: &mut Vec<(u64, Readiness)>) {
        for cqe in self.ring.completion() {
            let token = cqe.user_data();
            if token == IGNORED {
                continue;
            }
            let result = cqe.result();
            if !cqueue::more(cqe.flags()) {
                // The poll ended (cancelled, or ended by the kernel): armed again if still ours.
                self.rearm.push(token);
            }
            if token == LISTENERS {
                self.listeners_ready = true;
                continue;
            }
            let readiness = if result < 0 {
                // The poll failed or was cancelled: let the owner find out with a system call.
                Readiness {
                    readable: true,
                    writable: true,
                }
            } else {
                let mask = result as u32;
                let failed = mask & (libc::POLLERR | libc::POLLHUP) as u32 != 0;
                Readiness {
                    readable: mask & (libc::POLLIN | libc::POLLRDHUP) as u32 != 0 || failed,
                    writable: mask & libc::POLLOUT as u32 != 0 || failed,
                }
            };
            out.push((token, readiness));
        }
    }

    pub fn wait(
        &mut self,
        timeout: Option<Duration>,
        out: &mut Vec<(u64, Readiness)>,
    ) -> io::Result<()> {
        let waited = match timeout {
            Some(t) if t.is_zero() => {
                // A look without waiting needs a system call only for submissions, or for
                // completions the kernel holds until we ask (the task-run flag).
                let submission = self.ring.submission();
                if submission.is_empty() && !submission.taskrun() {
                    Ok(0)
                } else {
                    drop(submission);
                    self.ring.submitter().submit_and_wait(0)
                }
            }
            Some(t) => {
                let ts = types::Timespec::new()
                    .sec(t.as_secs())
                    .nsec(t.subsec_nanos());
                let args = types::SubmitArgs::new().timespec(&ts);
                self.ring.submitter().submit_with_args(1, &args)
            }
            None => self.ring.submitter().submit_and_wait(1),
        };
        match waited {
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ETIME | libc::EINTR | libc::EBUSY)
                ) => {}
            Err(e) => return Err(e),
        }
        out.append(&mut self.held);
        self.drain(out);
        if std::mem::take(&mut self.listeners_ready)
            && let Some(set) = &mut self.listeners
        {
            set.wait(Some(Duration::ZERO), out)?;
        }
        for token in std::mem::take(&mut self.rearm) {
            if let Some(fd) = self.armed_fd(token) {
                self.arm(fd, token)?;
            }
        }
        Ok(())
    }
}
