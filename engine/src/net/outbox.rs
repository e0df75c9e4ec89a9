//! A connection's output queue: frames waiting to be written (see [`Frame`]), a byte count for
//! backpressure (and optionally a tally shared by many outboxes, for a bound over all of them),
//! the waker of the task that writes them, and how the connection should end.
//!
//! A frame may also be written by someone other than the connection's task, straight to its
//! socket, within the run of the code that queued it (a direct write: see [`Outbox::push_direct`]):
//! a reply to one client then costs no wake-up of that client's task. The task records its
//! socket here while it runs ([`Outbox::set_socket`]) and takes it back when it ends.

use std::cell::Cell;
use std::collections::VecDeque;
use std::os::fd::RawFd;
use std::rc::Rc;
use std::task::Waker;

use crate::net::Frame;

/// Bytes queued and not yet written over every outbox counted into it (a shard's clients), for a
/// bound over all of them; each outbox keeps it up to date as it queues, writes and drops.
#[derive(Debug, Clone, Default)]
pub struct QueuedTally(Rc<Cell<usize>>);

impl QueuedTally {
    pub fn get(&self) -> usize {
        self.0.get()
    }

    fn add(&self, n: usize) {
        self.0.set(self.0.get() + n);
    }

    fn sub(&self, n: usize) {
        self.0.set(self.0.get().saturating_sub(n));
    }
}

/// How a connection ends once asked to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closing {
    /// Write what is queued, then close (a kick).
    AfterFlush,
    /// Close now, dropping what is queued (a destroy).
    Now,
}

/// Frames queued for one connection.
#[derive(Debug, Default)]
pub struct Outbox {
    queue: VecDeque<Frame>,
    queued_bytes: usize,
    /// Bytes of the front frame already written.
    front_offset: usize,
    waker: Option<Waker>,
    closing: Option<Closing>,
    /// While held, frames queue up but are not written (a WebSocket before its 101).
    held: bool,
    /// The owner asks the connection's task to park it (see [`crate::net::Peer::parkable`]).
    park_requested: bool,
    /// The writer waits for its turn to write (`rt::pacing`) and is woken when it comes: a new
    /// frame need not wake it (every message of a broadcast would poll it for nothing).
    awaiting_turn: bool,
    /// Where this outbox's unwritten bytes are also counted, if anywhere.
    tally: Option<QueuedTally>,
    /// The socket the writer's task writes to, while that task runs (plain TCP only: a TLS
    /// connection's bytes go through its task's rustls state).
    socket: Option<RawFd>,
    /// Frames were queued for a direct write that has not happened yet: the writer is not woken
    /// for them; [`Outbox::end_direct`] wakes it if anything is left after the write.
    direct: bool,
}

impl Outbox {
    /// An outbox whose frames wait until [`Outbox::release`].
    pub fn held() -> Outbox {
        let mut outbox = Outbox::default();
        outbox.held = true;
        outbox
    }

    /// Counts this outbox's unwritten bytes into `tally` too (from now on).
    pub fn counted_in(mut self, tally: &QueuedTally) -> Outbox {
        tally.add(self.queued_bytes());
        self.tally = Some(tally.clone());
        self
    }

    /// Queues `frame` and wakes the writer. Shared frames are not copied.
    pub fn push(&mut self, frame: impl Into<Frame>) {
        let frame = frame.into();
        if frame.is_empty() || self.closing.is_some() {
            return;
        }
        self.queued_bytes += frame.len();
        if let Some(tally) = &self.tally {
            tally.add(frame.len());
        }
        self.queue.push_back(frame);
        if !self.awaiting_turn && !self.direct {
            self.wake();
        }
    }

    /// Queues `frame` for a direct write: the caller writes the queue to [`Outbox::socket`]
    /// before it yields and then calls [`Outbox::end_direct`]; the writer is not woken meanwhile.
    /// Only when [`Outbox::takes_direct`]. True for the first frame since the last
    /// `end_direct` (the caller notes the outbox then).
    pub fn push_direct(&mut self, frame: impl Into<Frame>) -> bool {
        let first = !std::mem::replace(&mut self.direct, true);
        self.push(frame);
        first
    }

    /// Whether a frame may be queued for a direct write now: the writer's task runs on a plain
    /// socket, nothing is held, and nothing is queued but frames for a direct write (whatever
    /// else is queued is the task's to write, in order).
    pub fn takes_direct(&self) -> bool {
        self.socket.is_some()
            && !self.held
            && self.closing.is_none()
            && (self.direct || self.queue.is_empty())
    }

    /// Frames wait for a direct write.
    pub fn is_direct(&self) -> bool {
        self.direct
    }

    /// The direct write is done (or could not be made): the writer's task is woken if anything
    /// is left, to write it and wait for the socket (or find its error).
    pub fn end_direct(&mut self) {
        self.direct = false;
        if !self.queue.is_empty() {
            self.wake();
        }
    }

    /// Whether the writer waits for its turn to write (then new frames do not wake it).
    pub fn set_awaiting_turn(&mut self, awaiting: bool) {
        self.awaiting_turn = awaiting;
    }

    /// Puts `frame` before everything queued (the 101 response ahead of early messages).
    pub fn push_front(&mut self, frame: impl Into<Frame>) {
        let frame = frame.into();
        self.queued_bytes += frame.len();
        if let Some(tally) = &self.tally {
            tally.add(frame.len());
        }
        self.queue.push_front(frame);
        self.wake();
    }

    /// Asks the connection's task to park the connection if it can (idle, nothing queued).
    pub fn request_park(&mut self) {
        self.park_requested = true;
        self.wake();
    }

    /// Takes a pending park request.
    pub fn take_park_request(&mut self) -> bool {
        std::mem::take(&mut self.park_requested)
    }

    /// Drops everything queued (frames meant for a protocol the connection never reached).
    pub fn discard(&mut self) {
        self.drop_queued();
    }

    /// Empties the queue, taking its unwritten bytes off the tally.
    fn drop_queued(&mut self) {
        if let Some(tally) = &self.tally {
            tally.sub(self.queued_bytes());
        }
        self.queue.clear();
        self.queued_bytes = 0;
        self.front_offset = 0;
    }

    /// Lets held frames go out.
    pub fn release(&mut self) {
        self.held = false;
        self.wake();
    }

    pub fn is_held(&self) -> bool {
        self.held
    }

    /// Bytes queued and not yet written.
    pub fn queued_bytes(&self) -> usize {
        self.queued_bytes - self.front_offset
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Asks the connection to end; the stronger request wins.
    pub fn close(&mut self, how: Closing) {
        if self.closing != Some(Closing::Now) {
            self.closing = Some(how);
        }
        if how == Closing::Now {
            self.drop_queued();
        }
        self.wake();
    }

    pub fn closing(&self) -> Option<Closing> {
        self.closing
    }

    pub fn set_waker(&mut self, waker: &Waker) {
        if !self.waker.as_ref().is_some_and(|w| w.will_wake(waker)) {
            self.waker = Some(waker.clone());
        }
    }

    /// Records the socket of the writer's task, for direct writes (see [`Outbox::push_direct`]).
    pub fn set_socket(&mut self, fd: RawFd) {
        self.socket = Some(fd);
    }

    /// The writer's socket, while its task runs on a plain socket.
    pub fn socket(&self) -> Option<RawFd> {
        self.socket
    }

    /// Forgets the writer's task: its waker (a stale one would keep the task's memory) and its
    /// socket (which the task closes or hands on as it ends).
    pub fn forget_writer(&mut self) {
        self.waker = None;
        self.socket = None;
    }

    fn wake(&mut self) {
        if let Some(w) = &self.waker {
            w.wake_by_ref();
        }
    }

    /// Up to `max` slices of what is to be written next (none while held).
    pub fn pending_slices(&self, max: usize) -> impl Iterator<Item = &[u8]> {
        let skip = if self.held { self.queue.len() } else { 0 };
        self.queue
            .iter()
            .skip(skip)
            .take(max)
            .enumerate()
            .map(|(i, f)| {
                if i == 0 {
                    &f[self.front_offset..]
                } else {
                    &f[..]
                }
            })
    }

    /// Records that `n` bytes from the front were written.
    pub fn consume(&mut self, mut n: usize) {
        if let Some(tally) = &self.tally {
            tally.sub(n.min(self.queued_bytes()));
        }
        while n > 0 {
            let Some(front) = self.queue.front() else {
                break;
            };
            let left = front.len() - self.front_offset;
            if n >= left {
                n -= left;
                self.queued_bytes -= front.len();
                self.front_offset = 0;
                self.queue.pop_front();
            } else {
                self.front_offset += n;
                n = 0;
            }
        }
    }

    /// Frees the queue's allocation when nothing is queued: a parked (idle) connection keeps
    /// none. A connection with a task keeps it between writes, so a delivery to it does not
    /// allocate and free the queue every time (the fanout hot path).
    pub fn shrink_if_empty(&mut self) {
        if self.queue.is_empty() && self.queue.capacity() > 0 {
            self.queue = VecDeque::new();
        }
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        if let Some(tally) = &self.tally {
            tally.sub(self.queued_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tally_follows_every_outbox_counted_in_it() {
        let tally = QueuedTally::default();
        let mut a = Outbox::default().counted_in(&tally);
        let mut b = Outbox::held().counted_in(&tally);
        a.push(vec![1u8; 10]);
        a.push(Frame::shared(&[2u8; 5]));
        b.push_front(vec![3u8; 7]);
        assert_eq!(tally.get(), 22);
        a.consume(12); // the first frame and 2 bytes of the second
        assert_eq!(tally.get(), 10);
        assert_eq!(a.queued_bytes(), 3);
        b.close(Closing::Now);
        assert_eq!(tally.get(), 3);
        b.push(vec![4u8; 9]); // closing: not queued
        assert_eq!(tally.get(), 3);
        drop(a);
        assert_eq!(tally.get(), 0);
        let mut c = Outbox::default().counted_in(&tally);
        c.push(vec![5u8; 4]);
        c.discard();
        assert_eq!(tally.get(), 0);
    }
}
