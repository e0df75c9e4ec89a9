//! gatewire's own executor: one per thread, tasks in a FIFO, timers in an ordered map, and a
//! [`Reactor`] (io_uring or epoll) that it asks for I/O between batches of tasks.
//!
//! One turn of the loop:
//! 1. run the tasks the last look at the I/O woke, then the tasks that were ready when the turn
//!    began (at most [`BATCH`]); what they wake waits for the next turn, so a wave of writers
//!    cannot keep the loop from its I/O, and what the I/O woke does not queue behind the wave
//!    (not even a task that waits in the wave already: it takes a place in both queues);
//! 2. wake the timers that are due;
//! 3. reap I/O: without waiting when tasks are ready, else parked in the reactor until the next
//!    timer (one system call: `epoll_wait`, or `io_uring_enter` with its timeout argument);
//! 4. take the tasks other threads woke.
//!
//! So the loop looks at its I/O after every batch by design: no preempt timer, no pacing, no
//! nudge. A task's waker may be used from any thread: a foreign wake queues the task on its
//! home's remote list and writes the home's eventfd, which the reactor watches.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use super::reactor::{Reactor, Readiness, Sources};
use super::slab::FreePlaces;

/// Tasks run in one turn before the loop looks at its I/O again. 256 against 1,024 at 10,000
/// clients and 1M–2M deliveries/s: a broadcast's first delivery after ~5 ms instead of ~15 ms,
/// p50 a quarter lower (docs/benchmarks.md, the runtime backends); 128 spread the wave wider.
pub(super) const BATCH: usize = 256;

/// What other threads see of an executor: where they queue the tasks they wake.
struct Home {
    remote: Mutex<Vec<Arc<Header>>>,
    /// The eventfd has been written and not yet read.
    notified: AtomicBool,
    eventfd: OwnedFd,
}

impl Home {
    fn notify(&self) {
        if !self.notified.swap(true, Ordering::AcqRel) {
            let one = 1u64.to_ne_bytes();
            // SAFETY: writing 8 bytes from a live buffer to our eventfd.
            unsafe { libc::write(self.eventfd.as_raw_fd(), one.as_ptr().cast(), 8) };
        }
    }
}

/// A task as its wakers know it: where it lives, and in which queues it waits already.
struct Header {
    slot: u32,
    generation: u32,
    /// Waits in the ordinary queue (or on its way there from another thread).
    queued: AtomicBool,
    /// Waits in the I/O queue. A task may wait in both: a connection queued behind a
    /// broadcast's wave of writers whose socket turns readable is run first for that edge (its
    /// request is read now, not after the wave), and polled again, needlessly, where it stood.
    io_queued: AtomicBool,
    /// Runs before the ordinary queue when woken ([`prefer_current`]: inner links).
    urgent: AtomicBool,
    home: Arc<Home>,
}

impl Wake for Header {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let at_home = HOME.with(|h| std::ptr::eq(h.get(), Arc::as_ptr(&self.home)));
        if at_home {
            with_local(|local| {
                if local.reaping.get() || self.urgent.load(Ordering::Relaxed) {
                    if !self.io_queued.swap(true, Ordering::AcqRel) {
                        local.io_ready.borrow_mut().push_back(self.clone());
                    }
                } else if !self.io_queued.load(Ordering::Acquire)
                    && !self.queued.swap(true, Ordering::AcqRel)
                {
                    local.ready.borrow_mut().push_back(self.clone());
                }
            });
        } else if !self.queued.swap(true, Ordering::AcqRel) {
            self.home
                .remote
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(self.clone());
            self.home.notify();
        }
    }
}

type BoxedFuture = Pin<Box<dyn Future<Output = ()>>>;

/// A task's place in the executor.
struct Slot {
    generation: u32,
    /// `None` while the task is being polled, and after it ended.
    future: Option<BoxedFuture>,
    waker: Option<Waker>,
    /// Cancelled while it was being polled: dropped when the poll returns.
    cancelled: bool,
}

/// One thread's executor state.
pub(super) struct Local {
    home: Arc<Home>,
    slots: RefCell<Vec<Slot>>,
    free: RefCell<FreePlaces>,
    ready: RefCell<VecDeque<Arc<Header>>>,
    /// Tasks woken by the last look at the I/O, and urgent tasks ([`prefer_current`]): they
    /// run first in the next turn, so a link's next message is read (and a link's queued events
    /// are written) after at most one batch of a broadcast's writers, not all of them.
    io_ready: RefCell<VecDeque<Arc<Header>>>,
    /// The task being polled.
    running: Cell<*const Header>,
    /// The loop is handing out I/O edges (wakes go to `io_ready`).
    reaping: Cell<bool>,
    timers: RefCell<BTreeMap<(Instant, u64), Waker>>,
    timer_seq: Cell<u64>,
    pub(super) reactor: RefCell<Reactor>,
    pub(super) sources: RefCell<Sources>,
    /// The reactor token of the home's eventfd (a source like any other).
    notify_token: u64,
}

thread_local! {
    static LOCAL: Cell<*const Local> = const { Cell::new(std::ptr::null()) };
    static HOME: Cell<*const Home> = const { Cell::new(std::ptr::null()) };
}

/// Whether this thread runs gatewire's own executor now.
pub(super) fn on_executor() -> bool {
    !LOCAL.with(Cell::get).is_null()
}

/// Runs `f` on this thread's executor. Panics off an executor thread of this backend (the
/// callers are `rt::` functions, which dispatch by the thread's backend first).
pub(super) fn with_local<R>(f: impl FnOnce(&Local) -> R) -> R {
    let local = LOCAL.with(Cell::get);
    assert!(
        !local.is_null(),
        "not on a thread of gatewire's own executor"
    );
    // SAFETY: the pointer is set by `run` to an `Rc<Local>` that outlives every task and is
    // reset before that `Rc` is dropped; only this thread reads it.
    f(unsafe { &*local })
}

/// A task that can be cancelled; awaiting it gives its result.
pub struct Task<T> {
    header: Arc<Header>,
    state: Rc<RefCell<JoinState<T>>>,
}

impl<T> std::fmt::Debug for Task<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Task")
            .field("slot", &self.header.slot)
            .finish()
    }
}

struct JoinState<T> {
    result: Option<T>,
    waiter: Option<Waker>,
    detached: bool,
}

impl<T> Task<T> {
    /// Stops the task: its future is dropped now (or when its current poll returns).
    pub fn cancel(self) {
        // Drop does it.
    }

    /// Lets the task run on unwatched; its result is dropped.
    pub fn detach(self) {
        self.state.borrow_mut().detached = true;
    }
}

impl<T> Drop for Task<T> {
    fn drop(&mut self) {
        let state = self.state.borrow();
        if state.detached || state.result.is_some() {
            return;
        }
        drop(state);
        if on_executor() {
            cancel(&self.header);
        }
    }
}

impl<T> Future for Task<T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let mut state = self.state.borrow_mut();
        match state.result.take() {
            Some(result) => {
                // Ended: nothing left to cancel on drop.
                state.detached = true;
                Poll::Ready(result)
            }
            None => {
                state.waiter = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

/// Runs `future` on this thread's executor.
pub fn spawn<T: 'static>(future: impl Future<Output = T> + 'static) -> Task<T> {
    let state = Rc::new(RefCell::new(JoinState {
        result: None,
        waiter: None,
        detached: false,
    }));
    let filled = state.clone();
    let wrapped = async move {
        let result = future.await;
        let mut state = filled.borrow_mut();
        if !state.detached {
            state.result = Some(result);
        }
        if let Some(waiter) = state.waiter.take() {
            drop(state);
            waiter.wake();
        }
    };
    let header = with_local(|local| local.insert(Box::pin(wrapped)));
    Task { header, state }
}

fn cancel(header: &Arc<Header>) {
    let dropped = with_local(|local| {
        let mut slots = local.slots.borrow_mut();
        let slot = &mut slots[header.slot as usize];
        if slot.generation != header.generation {
            return None;
        }
        match slot.future.take() {
            Some(future) => {
                slot.waker = None;
                slot.generation = 0;
                local.free.borrow_mut().put(header.slot);
                Some(future)
            }
            None => {
                slot.cancelled = true;
                None
            }
        }
    });
    // Dropped outside the borrow: its destructors may spawn or cancel.
    drop(dropped);
}

/// Marks the task being polled as urgent: from now on, when woken it runs before the ordinary
/// queue (with the tasks the I/O woke). For tasks that feed many others (an inner link: its
/// events, and the commands that start a broadcast's wave), never for the wave's writers.
pub fn prefer_current() {
    with_local(|local| {
        let running = local.running.get();
        if !running.is_null() {
            // SAFETY: `running` points at the header of the task being polled, which the
            // executor holds (its `Arc`) for the whole poll.
            unsafe { &*running }.urgent.store(true, Ordering::Relaxed);
        }
    });
}

/// This thread's task slots and reactor sources (free ones included): what its slabs hold.
#[cfg(test)]
pub(super) fn slab_lengths() -> (usize, usize) {
    with_local(|local| {
        (
            local.slots.borrow().len(),
            local.sources.borrow().slot_count(),
        )
    })
}

/// Resolves after `duration`.
pub async fn sleep(duration: Duration) {
    Sleep {
        deadline: Instant::now() + duration,
        key: None,
    }
    .await
}

struct Sleep {
    deadline: Instant,
    key: Option<(Instant, u64)>,
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if Instant::now() >= self.deadline {
            if let Some(key) = self.key.take() {
                with_local(|local| local.timers.borrow_mut().remove(&key));
            }
            return Poll::Ready(());
        }
        let deadline = self.deadline;
        let key = *self.key.get_or_insert_with(|| {
            with_local(|local| {
                let seq = local.timer_seq.get();
                local.timer_seq.set(seq + 1);
                (deadline, seq)
            })
        });
        with_local(|local| {
            let mut timers = local.timers.borrow_mut();
            match timers.get_mut(&key) {
                Some(waker) if waker.will_wake(cx.waker()) => {}
                Some(waker) => *waker = cx.waker().clone(),
                None => {
                    timers.insert(key, cx.waker().clone());
                }
            }
        });
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            // A thread that is tearing down its executor may drop sleeps after it is gone.
            if !LOCAL.with(Cell::get).is_null() {
                with_local(|local| local.timers.borrow_mut().remove(&key));
            }
        }
    }
}

impl Local {
    fn insert(&self, future: BoxedFuture) -> Arc<Header> {
        let mut slots = self.slots.borrow_mut();
        let mut free = self.free.borrow_mut();
        let generation = free.generation();
        let index = match free.take() {
            Some(index) => index,
            None => {
                slots.push(Slot {
                    generation: 0,
                    future: None,
                    waker: None,
                    cancelled: false,
                });
                (slots.len() - 1) as u32
            }
        };
        drop(free);
        let slot = &mut slots[index as usize];
        slot.generation = generation;
        let header = Arc::new(Header {
            slot: index,
            generation,
            queued: AtomicBool::new(true),
            io_queued: AtomicBool::new(false),
            urgent: AtomicBool::new(false),
            home: self.home.clone(),
        });
        slot.future = Some(future);
        slot.waker = Some(Waker::from(header.clone()));
        slot.cancelled = false;
        self.ready.borrow_mut().push_back(header.clone());
        header
    }

    /// Polls one task taken from the ordinary queue (`io`: from the I/O queue).
    fn run(&self, header: &Arc<Header>, io: bool) {
        let flag = if io {
            &header.io_queued
        } else {
            &header.queued
        };
        flag.store(false, Ordering::Release);
        let taken = {
            let mut slots = self.slots.borrow_mut();
            let slot = &mut slots[header.slot as usize];
            if slot.generation != header.generation {
                return;
            }
            slot.future.take().zip(slot.waker.clone())
        };
        let Some((mut future, waker)) = taken else {
            return;
        };
        self.running.set(Arc::as_ptr(header));
        let done = future
            .as_mut()
            .poll(&mut Context::from_waker(&waker))
            .is_ready();
        self.running.set(std::ptr::null());
        let mut slots = self.slots.borrow_mut();
        let slot = &mut slots[header.slot as usize];
        if done || slot.cancelled {
            slot.generation = 0;
            slot.waker = None;
            slot.cancelled = false;
            self.free.borrow_mut().put(header.slot);
            drop(slots);
            drop(future);
        } else {
            slot.future = Some(future);
        }
    }

    /// Before a park: the task slots and the sources cut their free tails off when enough of
    /// them are free (after a crowd of clients parked or left), so their high-water capacity
    /// is not kept for good.
    fn give_back_capacity(&self) {
        let mut free = self.free.borrow_mut();
        if free.worth_shrinking() {
            free.shrink(&mut self.slots.borrow_mut());
        }
        drop(free);
        if let Some(len) = self.sources.borrow_mut().shrink_if_worth() {
            self.reactor.borrow_mut().forget_from(len);
        }
    }

    /// Wakes the timers that are due; the time until the next one.
    fn fire_timers(&self) -> Option<Duration> {
        let now = Instant::now();
        loop {
            let due = {
                let mut timers = self.timers.borrow_mut();
                match timers.first_key_value() {
                    Some((&(at, _), _)) if at <= now => timers.pop_first().map(|(_, w)| w),
                    Some((&(at, _), _)) => return Some(at - now),
                    None => return None,
                }
            };
            if let Some(waker) = due {
                waker.wake();
            }
        }
    }

    fn take_remote(&self) {
        self.home.notified.store(false, Ordering::Release);
        let mut buf = [0u8; 8];
        // SAFETY: reading 8 bytes into a live buffer from our non-blocking eventfd.
        unsafe { libc::read(self.home.eventfd.as_raw_fd(), buf.as_mut_ptr().cast(), 8) };
        let woken =
            std::mem::take(&mut *self.home.remote.lock().unwrap_or_else(|e| e.into_inner()));
        self.ready.borrow_mut().extend(woken);
    }

    /// Reaps I/O, waiting at most `timeout` (`None`: until something happens).
    fn reap(&self, timeout: Option<Duration>, events: &mut Vec<(u64, Readiness)>) {
        events.clear();
        if let Err(e) = self.reactor.borrow_mut().wait(timeout, events) {
            crate::log_limit::warn_limited("reactor", &format!("waiting for I/O failed: {e}"));
            std::thread::sleep(Duration::from_millis(1));
        }
        let mut remote = false;
        self.reaping.set(true);
        for &(token, readiness) in events.iter() {
            if token == self.notify_token {
                remote = true;
                continue;
            }
            let wakers = self.sources.borrow_mut().ready(token, readiness);
            for waker in wakers.into_iter().flatten() {
                waker.wake();
            }
        }
        self.reaping.set(false);
        if remote {
            self.take_remote();
        }
    }
}

/// Runs `main` (and what it spawns) on this thread with `reactor` until `main` ends.
pub fn block_on<T: 'static>(
    reactor: Reactor,
    main: impl Future<Output = T> + 'static,
) -> std::io::Result<T> {
    // SAFETY: a plain syscall creating a descriptor we own at once.
    let eventfd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
    if eventfd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `eventfd` is a fresh descriptor.
    let eventfd = unsafe { OwnedFd::from_raw_fd(eventfd) };
    let mut reactor = reactor;
    let mut sources = Sources::default();
    let notify_token = sources.insert();
    reactor.register(eventfd.as_raw_fd(), notify_token)?;
    let home = Arc::new(Home {
        remote: Mutex::new(Vec::new()),
        notified: AtomicBool::new(false),
        eventfd,
    });
    let local = Rc::new(Local {
        home: home.clone(),
        slots: RefCell::new(Vec::new()),
        free: RefCell::new(FreePlaces::default()),
        ready: RefCell::new(VecDeque::new()),
        io_ready: RefCell::new(VecDeque::new()),
        reaping: Cell::new(false),
        running: Cell::new(std::ptr::null()),
        timers: RefCell::new(BTreeMap::new()),
        timer_seq: Cell::new(0),
        reactor: RefCell::new(reactor),
        sources: RefCell::new(sources),
        notify_token,
    });
    LOCAL.with(|l| l.set(Rc::as_ptr(&local)));
    HOME.with(|h| h.set(Arc::as_ptr(&home)));
    let output = Rc::new(RefCell::new(None));
    let out = output.clone();
    spawn(async move {
        let result = main.await;
        *out.borrow_mut() = Some(result);
    })
    .detach();
    let mut events = Vec::with_capacity(1024);
    let result = loop {
        loop {
            let Some(header) = local.io_ready.borrow_mut().pop_front() else {
                break;
            };
            local.run(&header, true);
        }
        let batch = local.ready.borrow().len().min(BATCH);
        for _ in 0..batch {
            let Some(header) = local.ready.borrow_mut().pop_front() else {
                break;
            };
            local.run(&header, false);
        }
        if let Some(result) = output.borrow_mut().take() {
            break result;
        }
        let next_timer = local.fire_timers();
        let timeout = if local.ready.borrow().is_empty() && local.io_ready.borrow().is_empty() {
            local.give_back_capacity();
            next_timer
        } else {
            Some(Duration::ZERO)
        };
        local.reap(timeout, &mut events);
    };
    // Drop every task while the executor is still reachable (their sockets deregister).
    let futures: Vec<_> = local
        .slots
        .borrow_mut()
        .iter_mut()
        .filter_map(|s| s.future.take())
        .collect();
    drop(futures);
    local.ready.borrow_mut().clear();
    local.io_ready.borrow_mut().clear();
    local.timers.borrow_mut().clear();
    LOCAL.with(|l| l.set(std::ptr::null()));
    HOME.with(|h| h.set(std::ptr::null()));
    Ok(result)
}
