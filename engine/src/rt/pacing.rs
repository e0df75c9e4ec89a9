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
use std::future::{Future, poll_fn};
use std::pin::Pin;
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
/// Off the CPU this long between two looks at the clocks, the thread was most likely idle, and
/// an idle executor reaps its ring: the run starts over. (It may also have waited for its core;
/// then the pause comes later, as without pacing.)
const IDLE_GAP: Duration = Duration::from_millis(1);
/// A pause whose read has not come back after this long (wall time) ends by a timer: writers
/// must not wait on one lost report (a million-client run had a shard whose queued writers never
/// wrote again, its pongs unanswered; the timer then ended 5 pauses in 64 shards).
const PAUSE_AT_MOST: Duration = Duration::from_millis(200);
/// Waiting writers let go at once after a pause; the pacer runs again after them, so a pause
/// that begins meanwhile keeps the rest in their places. (16 against 4 and 64 at 10,000 clients
/// and 1M deliveries/s: the lowest p99 of the three; docs/benchmarks.md.)
const RELEASE_BATCH: usize = 16;

/// A writer's place in the queue while it waits for its turn. Start at [`Turn::default`] for a
/// writer to one connection, [`Turn::batch`] for one that writes for many.
#[derive(Debug, Default, Clone, Copy)]
pub struct Turn {
    /// Its ticket from the time it first waits until it writes (tickets start at 1).
    ticket: u64,
    batch: bool,
    /// Own backends: a batch writer's writes since it last stepped aside.
    since_yield: u32,
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
            since_yield: 0,
        }
    }
}

/// Writes a batch writer makes between two steps aside on the own backends (a few hundred
/// microseconds of a parking lot's round).
const BATCH_WRITES: u32 = 64;

/// The pacer of one executor thread.
struct Pacer {
    /// The thread's CPU time when the current run began.
    since: Duration,
    /// Wall and CPU time of the last look at the clocks.
    last_check: (Instant, Duration),
    turns: u32,
    pausing: bool,
    /// Pauses so far.
    pauses: u64,
    /// Pauses ended by the timer after [`PAUSE_AT_MOST`].
    overdue_pauses: u64,
    /// The writers waiting, by ticket.
    waiting: VecDeque<(u64, Waker)>,
    next_ticket: u64,
    /// The tickets of the last batch let go, until they write.
    released: Vec<u64>,
    /// The pacer task's waker, to start a pause.
    task: Option<Waker>,
}

impl Pacer {
    fn new() -> Pacer {
        let (now, cpu) = (Instant::now(), system::thread_cpu_time());
        Pacer {
            since: cpu,
            last_check: (now, cpu),
            turns: 0,
            pausing: false,
            pauses: 0,
            overdue_pauses: 0,
            waiting: VecDeque::new(),
            next_ticket: 0,
            released: Vec::with_capacity(RELEASE_BATCH),
            task: None,
        }
    }

    fn poll_turn(&mut self, cx: &mut Context<'_>, turn: &mut Turn) -> Poll<()> {
        if turn.ticket != 0 && self.still_waiting(turn.ticket) {
            return Poll::Pending;
        }
        let queue_first = turn.ticket == 0 && !turn.batch && !self.waiting.is_empty();
        if self.pausing || queue_first || self.run_is_over() {
            self.wait(cx, turn);
            return Poll::Pending;
        }
        turn.ticket = 0;
        Poll::Ready(())
    }

    /// Whether the writer holding `ticket` has not been let go yet.
    fn still_waiting(&self, ticket: u64) -> bool {
        !self.released.contains(&ticket)
            && self
                .waiting
                .front()
                .is_some_and(|&(first, _)| first <= ticket)
    }

    /// Queues the writer: a new one at the back; one that was let go but met a pause before it
    /// wrote, back in its place (it is older than every writer queued after it).
    fn wait(&mut self, cx: &mut Context<'_>, turn: &mut Turn) {
        let waker = cx.waker().clone();
        if turn.ticket == 0 {
            self.next_ticket += 1;
            turn.ticket = self.next_ticket;
            self.waiting.push_back((turn.ticket, waker));
        } else {
            self.released.retain(|&t| t != turn.ticket);
            let at = self.waiting.partition_point(|&(t, _)| t < turn.ticket);
            self.waiting.insert(at, (turn.ticket, waker));
        }
    }

    /// Counts a turn; every [`CHECK_EVERY`] turns, whether the run has lasted [`RUN_FOR`] (a
    /// pause begins then).
    fn run_is_over(&mut self) -> bool {
        self.turns += 1;
        if self.turns < CHECK_EVERY {
            return false;
        }
        self.turns = 0;
        let (now, cpu) = (Instant::now(), system::thread_cpu_time());
        let (then, cpu_then) = std::mem::replace(&mut self.last_check, (now, cpu));
        let off_cpu = now
            .duration_since(then)
            .saturating_sub(cpu.saturating_sub(cpu_then));
        if off_cpu >= IDLE_GAP && idle_gaps_count() {
            self.since = cpu;
        }
        if cpu.saturating_sub(self.since) < RUN_FOR {
            return false;
        }
        self.pausing = true;
        self.pauses += 1;
        true
    }

    /// The pause is over: a new run begins.
    fn end_pause(&mut self) {
        self.pausing = false;
        self.turns = 0;
        self.since = system::thread_cpu_time();
        self.last_check = (Instant::now(), self.since);
    }

    /// Lets the next batch of waiting writers go (into `batch`); true when more wait.
    fn release(&mut self, batch: &mut Vec<Waker>) -> bool {
        // The batch before has written by now (it ran before the pacer), or met a pause and is
        // queued again; a ticket left here belongs to a task that ended meanwhile.
        self.released.clear();
        let n = self.waiting.len().min(RELEASE_BATCH);
        for (ticket, waker) in self.waiting.drain(..n) {
            self.released.push(ticket);
            batch.push(waker);
        }
        !self.waiting.is_empty()
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
    // gatewire's own executor reaps its I/O between batches of tasks by design: a single
    // writer needs no turn. A batch writer (the parking lot: thousands of writes in one task)
    // steps aside every BATCH_WRITES writes, so the loop looks at its I/O and runs the links
    // (urgent) before the round goes on.
    if super::backend::current() != super::Backend::Glommio {
        if turn.batch {
            turn.since_yield += 1;
            if turn.since_yield > BATCH_WRITES {
                turn.since_yield = 0;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
        }
        return Poll::Ready(());
    }
    // One look at the thread's pacer per turn (this runs for every write); wakers are woken
    // outside the borrow (glommio may run a task it is given at once).
    let (poll, start_pause, unset) = PACER.with_borrow_mut(|state| match state {
        State::Unset => (Poll::Ready(()), None, true),
        State::Off => (Poll::Ready(()), None, false),
        State::On(pacer) => {
            let was_pausing = pacer.pausing;
            let poll = pacer.poll_turn(cx, turn);
            let start_pause = (!was_pausing && pacer.pausing)
                .then(|| pacer.task.clone())
                .flatten();
            (poll, start_pause, false)
        }
    });
    if unset {
        start(); // leaves the state On or Off
        return poll_turn(cx, turn);
    }
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
    PACER.set(State::On(Box::new(Pacer::new())));
    let mut batch = Vec::with_capacity(RELEASE_BATCH);
    let mut overdue: Option<Pin<Box<dyn Future<Output = ()>>>> = None;
    super::spawn(poll_fn(move |cx| -> Poll<()> {
        let pausing = PACER.with_borrow(|state| matches!(state, State::On(p) if p.pausing));
        let mut late = false;
        if pausing {
            let timer = overdue.get_or_insert_with(|| Box::pin(super::sleep(PAUSE_AT_MOST)));
            if step_aside.poll_after_io(cx).is_pending() {
                if timer.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                late = true;
            }
            overdue = None;
        }
        let (more, overdue_pauses) = PACER.with_borrow_mut(|state| {
            let State::On(pacer) = state else {
                return (false, 0);
            };
            if pausing {
                pacer.end_pause();
                pacer.overdue_pauses += u64::from(late);
            }
            if !pacer.task.as_ref().is_some_and(|t| t.will_wake(cx.waker())) {
                pacer.task = Some(cx.waker().clone());
            }
            (pacer.release(&mut batch), pacer.overdue_pauses)
        });
        if late {
            crate::log_limit::warn_limited(
                "overdue fanout pause",
                &format!(
                    "a pause for I/O lasted over {PAUSE_AT_MOST:?} without the executor reporting \
                     the pacer's read; ended by its timer ({overdue_pauses} such pauses on this \
                     thread)"
                ),
            );
        }
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

/// Whether an off-CPU gap starts a run over ([`IDLE_GAP`]). Tests that count pauses turn it off
/// on their thread: on a loaded box the thread waits for its core between looks, and every run
/// would start over.
#[cfg(not(test))]
fn idle_gaps_count() -> bool {
    true
}

#[cfg(test)]
fn idle_gaps_count() -> bool {
    !tests::IGNORE_IDLE_GAPS.with(std::cell::Cell::get)
}

/// What this thread's pacer has done so far.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counts {
    pub pauses: u64,
    /// Pauses ended by the timer ([`PAUSE_AT_MOST`]).
    pub overdue_pauses: u64,
}

/// This thread's pacer's counts (zero on a thread that never wrote fanout).
pub fn counts() -> Counts {
    PACER.with_borrow(|state| match state {
        State::On(pacer) => Counts {
            pauses: pacer.pauses,
            overdue_pauses: pacer.overdue_pauses,
        },
        _ => Counts::default(),
    })
}

#[cfg(test)]
mod tests {
    use std::cell::{Cell, RefCell};
    use std::future::poll_fn;
    use std::io::Write as _;
    use std::rc::Rc;
    use std::time::Duration;

    use futures_lite::AsyncReadExt;

    use super::{Turn, poll_turn};
    use crate::rt::{self, Backend, Cpu, ExecutorSpec};
    use crate::system;

    /// Spends `work` of the thread's CPU time (a write to a client, made long).
    fn burn(work: Duration) {
        let start = system::thread_cpu_time();
        while system::thread_cpu_time().saturating_sub(start) < work {}
    }

    /// Spawns `writers` tasks that each take a turn, then write (spend `work`); records the
    /// order in which they wrote. They start as a wave: all ready at once, as a broadcast wakes
    /// its clients' tasks.
    fn spawn_writers(writers: usize, work: Duration, wrote: &Rc<RefCell<Vec<usize>>>) {
        for i in 0..writers {
            let wrote = wrote.clone();
            rt::spawn(async move {
                // glommio polls a task at once when it is spawned: the wave begins at the next
                // poll.
                let mut woken = false;
                poll_fn(|cx| {
                    if std::mem::replace(&mut woken, true) {
                        return std::task::Poll::Ready(());
                    }
                    cx.waker().wake_by_ref();
                    std::task::Poll::Pending
                })
                .await;
                let mut turn = Turn::default();
                poll_fn(|cx| poll_turn(cx, &mut turn)).await;
                burn(work);
                wrote.borrow_mut().push(i);
            });
        }
    }

    thread_local! {
        /// Set on a test's executor thread: pauses come from CPU time alone, so a box loaded by
        /// other work (the other tests, a CI neighbour) does not keep starting runs over.
        pub(super) static IGNORE_IDLE_GAPS: Cell<bool> = const { Cell::new(false) };
    }

    #[test]
    fn writers_that_wait_for_their_turn_write_in_the_order_they_came() {
        let _alone = rt::exclusive_test();
        let spec = ExecutorSpec::new("pacing-order-test", Cpu::Any).backend(Backend::Glommio);
        let (wrote, pauses) = rt::start(spec, || async {
            IGNORE_IDLE_GAPS.with(|c| c.set(true));
            let wrote = Rc::new(RefCell::new(Vec::new()));
            // 200 writes of 100 µs: 20 ms of writing, so several pauses of 2 ms.
            spawn_writers(200, Duration::from_micros(100), &wrote);
            while wrote.borrow().len() < 200 {
                rt::sleep(Duration::from_millis(1)).await;
            }
            (wrote.take(), super::counts().pauses)
        })
        .unwrap()
        .join()
        .unwrap();
        assert!(pauses >= 1, "the writers paused");
        assert_eq!(wrote, (0..200).collect::<Vec<_>>());
    }

    #[test]
    fn a_task_woken_by_io_runs_while_writers_wait_for_their_turn() {
        let _alone = rt::exclusive_test();
        let spec = ExecutorSpec::new("pacing-io-test", Cpu::Any).backend(Backend::Glommio);
        let written_before_read = rt::start(spec, || async {
            IGNORE_IDLE_GAPS.with(|c| c.set(true));
            let (theirs, mut ours) = std::os::unix::net::UnixStream::pair().unwrap();
            theirs.set_nonblocking(true).unwrap();
            let mut reader = rt::unix_stream(theirs.into()).unwrap();
            let wrote = Rc::new(RefCell::new(Vec::new()));
            let written_before_read = Rc::new(Cell::new(None));
            // The reader (an inner link) waits on the executor's ring for its next message.
            let (counted, seen) = (wrote.clone(), written_before_read.clone());
            rt::spawn(async move {
                let mut byte = [0u8; 1];
                reader.read_exact(&mut byte).await.unwrap();
                seen.set(Some(counted.borrow().len()));
            });
            rt::sleep(Duration::from_millis(10)).await;
            ours.write_all(b"x").unwrap();
            // A broadcast's wave: 1,000 writes of 50 µs, 50 ms in all (glommio alone would run
            // them all before it looks at its ring).
            spawn_writers(1000, Duration::from_micros(50), &wrote);
            while wrote.borrow().len() < 1000 {
                rt::sleep(Duration::from_millis(1)).await;
            }
            written_before_read.get()
        })
        .unwrap()
        .join()
        .unwrap();
        let written = written_before_read.expect("the reader read its byte");
        assert!(
            written < 500,
            "the reader ran at a pause, after {written} of 1000 writes"
        );
    }
}
