//! Taking turns with the executor's I/O. A broadcast wakes the task of every client it reaches
//! (or gives the parking lot a round of thousands of writes); glommio runs ready tasks for up to
//! 100 ms before it reaps its ring, so without a pause the inner link that carries the next
//! message waits until the whole wave has written. Every writer of fanout output asks for its
//! turn here first: after [`RUN_FOR`] of the thread's CPU time spent writing, the turns stop,
//! one task steps aside with [`YieldToIo`] until the executor has reaped its completions and run
//! the tasks they woke (the link), and then the writers that waited are let go again in the
//! order they came, a batch at a time. A writer that came while others wait queues behind them,
//! so a pause does not reorder a broadcast's round.
//!
//! One pacer per executor thread, shared by every writer on it; a thread that never writes
//! fanout never makes one.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::poll_fn;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use tracing::warn;

use super::YieldToIo;
use crate::system;

/// How long writers run before the executor looks at its I/O: CPU time of the thread, so a
/// thread that shares its core with many (64 shards on two cores for a million clients) is not
/// paused for the time others ran.
const RUN_FOR: Duration = Duration::from_millis(2);
/// Turns between two looks at the thread's CPU clock (a system call).
const CHECK_EVERY: u32 = 16;
/// A gap with no turn asked for this long (wall time) means the thread went idle, and an idle
/// executor reaps its ring: the run starts over.
const IDLE_GAP: Duration = Duration::from_millis(1);
/// Waiting writers let go at once after a pause; the pacer runs again after them, so a pause
/// that begins meanwhile keeps the rest in their places. (16 against 4 and 64 at 10,000 clients
/// and 1M deliveries/s: the lowest p99 of the three; docs/benchmarks.md.)
const RELEASE_BATCH: usize = 16;

/// A writer's place in the queue while it waits for its turn. Start at [`Turn::default`] for a
/// writer to one connection, [`Turn::batch`] for one that writes for many.
#[derive(Debug, Default, Clone, Copy)]
pub struct Turn {
    /// Its ticket while queued (tickets start at 1).
    ticket: u64,
    batch: bool,
}

impl Turn {
    /// A writer that writes for many connections in turn (the parking lot's rounds): it waits
    /// through pauses like any writer, but goes on between them even while single writers still
    /// wait to be let go. One write per trip through the queue would starve the many it stands
    /// for.
    pub fn batch() -> Turn {
        Turn {
            ticket: 0,
            batch: true,
        }
    }
}

/// The pacer of one executor thread.
struct Pacer {
    /// The thread's CPU time when the current run began.
    since: Duration,
    /// Wall time of the last look at the clocks.
    last_check: Instant,
    turns: u32,
    pausing: bool,
    /// The writers waiting, by ticket.
    waiting: VecDeque<(u64, Waker)>,
    next_ticket: u64,
    /// Every ticket below this one has been let go.
    released_below: u64,
    /// The pacer task's waker, to start a pause.
    task: Option<Waker>,
}

impl Pacer {
    fn poll_turn(&mut self, cx: &mut Context<'_>, turn: &mut Turn) -> Poll<()> {
        if turn.ticket != 0 {
            if turn.ticket >= self.released_below {
                return Poll::Pending; // still in the queue
            }
            turn.ticket = 0;
        } else if self.pausing || (!self.waiting.is_empty() && !turn.batch) {
            self.enqueue(cx, turn);
            return Poll::Pending;
        }
        if self.pausing {
            self.enqueue(cx, turn);
            return Poll::Pending;
        }
        self.turns += 1;
        if self.turns < CHECK_EVERY {
            return Poll::Ready(());
        }
        self.turns = 0;
        let (now, cpu) = (Instant::now(), system::thread_cpu_time());
        if now.duration_since(self.last_check) >= IDLE_GAP {
            self.since = cpu;
        }
        self.last_check = now;
        if cpu.saturating_sub(self.since) < RUN_FOR {
            return Poll::Ready(());
        }
        self.pausing = true;
        self.enqueue(cx, turn);
        Poll::Pending
    }

    fn enqueue(&mut self, cx: &mut Context<'_>, turn: &mut Turn) {
        self.next_ticket += 1;
        turn.ticket = self.next_ticket;
        self.waiting.push_back((turn.ticket, cx.waker().clone()));
    }
}

enum State {
    /// Not made yet on this thread.
    Unset,
    /// The socket pair could not be made: no pauses.
    Off,
    On(Box<Pacer>),
}

thread_local! {
    static PACER: RefCell<State> = const { RefCell::new(State::Unset) };
}

/// `Ready` when the caller may write now; `Pending` when it waits for its turn (its waker is kept
/// and woken when the turn comes). Call on an executor thread, with the same `turn` each time.
pub fn poll_turn(cx: &mut Context<'_>, turn: &mut Turn) -> Poll<()> {
    if PACER.with_borrow(|state| matches!(state, State::Unset)) {
        start();
    }
    // Wakers are woken outside the borrow (glommio may run a task it is given at once).
    let (poll, start_pause) = PACER.with_borrow_mut(|state| {
        let State::On(pacer) = state else {
            return (Poll::Ready(()), None);
        };
        let was_pausing = pacer.pausing;
        let poll = pacer.poll_turn(cx, turn);
        let start_pause = (!was_pausing && pacer.pausing)
            .then(|| pacer.task.clone())
            .flatten();
        (poll, start_pause)
    });
    if let Some(task) = start_pause {
        task.wake();
    }
    poll
}

/// Makes this thread's pacer and spawns its task.
fn start() {
    let mut step_aside = match YieldToIo::new() {
        Ok(step_aside) => step_aside,
        Err(e) => {
            warn!(error = %e, "fanout writes on this thread will not pause for I/O");
            PACER.set(State::Off);
            return;
        }
    };
    PACER.set(State::On(Box::new(Pacer {
        since: system::thread_cpu_time(),
        last_check: Instant::now(),
        turns: 0,
        pausing: false,
        waiting: VecDeque::new(),
        next_ticket: 0,
        released_below: 1,
        task: None,
    })));
    let mut batch = Vec::with_capacity(RELEASE_BATCH);
    super::spawn(poll_fn(move |cx| -> Poll<()> {
        let pausing = PACER.with_borrow(|state| matches!(state, State::On(p) if p.pausing));
        if pausing && step_aside.poll_after_io(cx).is_pending() {
            return Poll::Pending;
        }
        let more = PACER.with_borrow_mut(|state| {
            let State::On(pacer) = state else {
                return false;
            };
            if pausing {
                pacer.pausing = false;
                pacer.turns = 0;
                pacer.since = system::thread_cpu_time();
                pacer.last_check = Instant::now();
            }
            let n = pacer.waiting.len().min(RELEASE_BATCH);
            for (ticket, waker) in pacer.waiting.drain(..n) {
                pacer.released_below = ticket + 1;
                batch.push(waker);
            }
            if !pacer.task.as_ref().is_some_and(|t| t.will_wake(cx.waker())) {
                pacer.task = Some(cx.waker().clone());
            }
            !pacer.waiting.is_empty()
        });
        for waker in batch.drain(..) {
            waker.wake();
        }
        if more {
            // Runs again after the batch it just let go.
            cx.waker().wake_by_ref();
        }
        Poll::Pending
    }));
}
