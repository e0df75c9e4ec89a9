//! A connection's output queue: shared `Bytes` frames waiting to be written, a byte count for
//! backpressure, the waker of the task that writes them, and how the connection should end.

use std::collections::VecDeque;
use std::task::Waker;

use bytes::Bytes;

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
    queue: VecDeque<Bytes>,
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
}

impl Outbox {
    /// An outbox whose frames wait until [`Outbox::release`].
    pub fn held() -> Outbox {
        Outbox {
            held: true,
            ..Outbox::default()
        }
    }

    /// Queues `frame` and wakes the writer. Shared frames are not copied.
    pub fn push(&mut self, frame: Bytes) {
        if frame.is_empty() || self.closing.is_some() {
            return;
        }
        self.queued_bytes += frame.len();
        self.queue.push_back(frame);
        if !self.awaiting_turn {
            self.wake();
        }
    }

    /// Whether the writer waits for its turn to write (then new frames do not wake it).
    pub fn set_awaiting_turn(&mut self, awaiting: bool) {
        self.awaiting_turn = awaiting;
    }

    /// Puts `frame` before everything queued (the 101 response ahead of early messages).
    pub fn push_front(&mut self, frame: Bytes) {
        self.queued_bytes += frame.len();
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
            self.queue.clear();
            self.queued_bytes = 0;
            self.front_offset = 0;
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

    /// Drops the writer's waker (its task ended; a stale waker would keep the task's memory).
    pub fn forget_waker(&mut self) {
        self.waker = None;
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
