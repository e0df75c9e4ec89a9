//! The reactor: which descriptors are ready. Both kinds report readiness edges for every
//! registered descriptor (epoll edge-triggered, io_uring a multishot poll per descriptor), so
//! the I/O above them is the same: try the system call, and on `EAGAIN` wait for the next edge.
//!
//! [`Sources`] keeps, per registered descriptor, what is known ready and who waits for it.

use std::io;
use std::os::fd::RawFd;
use std::task::Waker;
use std::time::Duration;

pub use super::edge::Readiness;
use super::slab::FreePlaces;
use super::{epoll::Epoll, uring::Uring};

/// One of the two reactors; chosen when the executor starts.
#[allow(missing_debug_implementations)]
pub enum Reactor {
    Uring(Box<Uring>),
    Epoll(Epoll),
}

impl Reactor {
    /// Watches `fd` for both directions, reporting its edges under `token`.
    pub fn register(&mut self, fd: RawFd, token: u64) -> io::Result<()> {
        match self {
            Reactor::Uring(r) => r.register(fd, token),
            Reactor::Epoll(r) => r.register(fd, token),
        }
    }

    /// Watches listening socket `fd`, reporting its edges under `token`, so that nothing but
    /// the descriptor keeps it open: it closes with its process however that process ends.
    pub fn register_listener(&mut self, fd: RawFd, token: u64) -> io::Result<()> {
        match self {
            Reactor::Uring(r) => r.register_listener(fd, token),
            Reactor::Epoll(r) => r.register(fd, token),
        }
    }

    /// Stops watching `fd` (registered under `token`); call before it is closed.
    pub fn deregister(&mut self, fd: RawFd, token: u64) {
        match self {
            Reactor::Uring(r) => r.deregister(fd, token),
            Reactor::Epoll(r) => r.deregister(fd),
        }
    }

    /// Tokens from slot `len` on are gone (the sources cut their free tail off).
    pub fn forget_from(&mut self, len: usize) {
        if let Reactor::Uring(r) = self {
            r.forget_from(len);
        }
    }

    /// Waits up to `timeout` (`None`: no limit) for edges, appended to `events`.
    pub fn wait(
        &mut self,
        timeout: Option<Duration>,
        events: &mut Vec<(u64, Readiness)>,
    ) -> io::Result<()> {
        match self {
            Reactor::Uring(r) => r.wait(timeout, events),
            Reactor::Epoll(r) => r.wait(timeout, events),
        }
    }
}

/// What is known of one registered descriptor.
#[derive(Default)]
struct Source {
    generation: u32,
    live: bool,
    readiness: Readiness,
    reader: Option<Waker>,
    writer: Option<Waker>,
}

/// The registered descriptors of one executor, by token (generation in the high half, slot in
/// the low half: a late edge for a closed descriptor does not reach the slot's next owner).
#[derive(Default)]
#[allow(missing_debug_implementations)]
pub struct Sources {
    slots: Vec<Source>,
    free: FreePlaces,
}

/// Which side of a descriptor a task waits on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Read,
    Write,
}

impl Sources {
    /// A token for a new descriptor, assumed ready both ways until a system call says not.
    pub fn insert(&mut self) -> u64 {
        let generation = self.free.generation();
        let index = self.free.take().unwrap_or_else(|| {
            self.slots.push(Source::default());
            (self.slots.len() - 1) as u32
        });
        let source = &mut self.slots[index as usize];
        source.generation = generation;
        source.live = true;
        source.readiness = Readiness {
            readable: true,
            writable: true,
        };
        token(index, source.generation)
    }

    pub fn remove(&mut self, token: u64) {
        if let Some(source) = self.get(token) {
            source.live = false;
            source.reader = None;
            source.writer = None;
            self.free.put(token as u32);
        }
    }

    /// Slots held, free ones included.
    #[cfg(test)]
    pub fn slot_count(&self) -> usize {
        self.slots.len()
    }

    /// Cuts the free tail off when enough sources are free; the new count of slots, if it did.
    pub fn shrink_if_worth(&mut self) -> Option<usize> {
        if !self.free.worth_shrinking() {
            return None;
        }
        self.free.shrink(&mut self.slots);
        Some(self.slots.len())
    }

    fn get(&mut self, token: u64) -> Option<&mut Source> {
        let source = self.slots.get_mut(token as u32 as usize)?;
        (source.live && source.generation == (token >> 32) as u32).then_some(source)
    }

    /// Whether the descriptor may be ready for `direction` (a system call will tell).
    pub fn is_ready(&mut self, token: u64, direction: Direction) -> bool {
        self.get(token).is_some_and(|s| match direction {
            Direction::Read => s.readiness.readable,
            Direction::Write => s.readiness.writable,
        })
    }

    /// A system call found the descriptor not ready: wait for its next edge, waking `waker`.
    pub fn wait_for(&mut self, token: u64, direction: Direction, waker: &Waker) {
        let Some(source) = self.get(token) else {
            waker.wake_by_ref();
            return;
        };
        let (flag, slot) = match direction {
            Direction::Read => (&mut source.readiness.readable, &mut source.reader),
            Direction::Write => (&mut source.readiness.writable, &mut source.writer),
        };
        *flag = false;
        match slot {
            Some(w) if w.will_wake(waker) => {}
            _ => *slot = Some(waker.clone()),
        }
    }

    /// A system call showed the descriptor empty (or full) without failing: the next attempt
    /// waits for an edge.
    pub fn drained(&mut self, token: u64, direction: Direction) {
        if let Some(source) = self.get(token) {
            match direction {
                Direction::Read => source.readiness.readable = false,
                Direction::Write => source.readiness.writable = false,
            }
        }
    }

    /// An edge came: the wakers to call (after the borrow ends).
    pub fn ready(&mut self, token: u64, readiness: Readiness) -> [Option<Waker>; 2] {
        let Some(source) = self.get(token) else {
            return [None, None];
        };
        let mut woken = [None, None];
        if readiness.readable {
            source.readiness.readable = true;
            woken[0] = source.reader.take();
        }
        if readiness.writable {
            source.readiness.writable = true;
            woken[1] = source.writer.take();
        }
        woken
    }
}

fn token(index: u32, generation: u32) -> u64 {
    (u64::from(generation) << 32) | u64::from(index)
}
