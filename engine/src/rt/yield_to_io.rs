//! Stepping aside until the executor has looked at its I/O. Work that runs long (a broadcast's
//! writes, see [`super::pacing`], whose pauses are made with this) would otherwise keep its
//! thread until it ends: waking itself does not help, as the executor runs ready tasks before it
//! looks at its rings (glommio: for up to 100 ms), so an inner link's new packets wait for all of
//! it. Here the task writes a byte into a socket pair of its own and waits to
//! read it back through the executor's ring: it runs again once the executor has reaped its
//! completions, and every task they woke (an inner link with packets) has had its turn too.
//!
//! A shorter preempt timer would do the same for every task; with glommio 0.9 it lost wake-ups
//! at a million clients (docs/benchmarks.md, reading while writing a broadcast). This uses only
//! what every socket read uses.

use std::io::Write;
use std::os::fd::OwnedFd;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_lite::AsyncRead;

use super::sockets::{UnixStream, unix_stream};

/// A task's way to step aside until the executor has looked at its I/O.
#[allow(missing_debug_implementations)]
pub struct YieldToIo {
    tx: std::os::unix::net::UnixStream,
    rx: UnixStream,
    /// A byte was written and a read for it found nothing yet: it comes through the ring.
    waiting: bool,
    buf: [u8; 64],
}

impl YieldToIo {
    /// Call on the executor thread whose ring is meant.
    pub fn new() -> std::io::Result<YieldToIo> {
        let (rx, tx) = std::os::unix::net::UnixStream::pair()?;
        rx.set_nonblocking(true)?;
        tx.set_nonblocking(true)?;
        Ok(YieldToIo {
            tx,
            rx: unix_stream(OwnedFd::from(rx))?,
            waiting: false,
            buf: [0; 64],
        })
    }

    /// `Pending` (the caller returns `Pending` too) until the executor has looked at its I/O
    /// since the first call; then `Ready`, and the next call starts over.
    pub fn poll_after_io(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        // At most two bytes: the runtime reads at once when no readiness poll is armed yet (the
        // first time); after that read it arms one, and the next byte comes through the ring.
        for _ in 0..2 {
            if !self.waiting {
                // One byte in flight at most: the pair never fills.
                let _ = self.tx.write(&[1]);
            }
            match Pin::new(&mut self.rx).poll_read(cx, &mut self.buf) {
                Poll::Pending => {
                    self.waiting = true;
                    return Poll::Pending;
                }
                // Read at once, without the ring: does not count, go again.
                Poll::Ready(Ok(_)) if !self.waiting => {}
                // Came through the ring; or an error, not expected on a pair we own: go on.
                Poll::Ready(_) => {
                    self.waiting = false;
                    return Poll::Ready(());
                }
            }
        }
        Poll::Ready(())
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::future::poll_fn;
    use std::io::Write as _;
    use std::rc::Rc;
    use std::task::Poll;

    use futures_lite::AsyncReadExt;

    use crate::rt::{self, Backend, Cpu, ExecutorSpec};

    /// Runs a task that works in steps, with `step_aside` between steps, while a byte waits on
    /// a socket another task reads; returns how many steps ran before that task had its byte.
    fn steps_before_the_reader_ran(step_aside: bool) -> usize {
        let _alone = rt::exclusive_test();
        // Stepping aside is glommio's work-around (the own executor reaps its I/O every turn).
        let spec = ExecutorSpec::new("yield-to-io-test", Cpu::Any).backend(Backend::Glommio);
        rt::start(spec, move || async move {
            let (theirs, mut ours) = std::os::unix::net::UnixStream::pair().unwrap();
            theirs.set_nonblocking(true).unwrap();
            let mut reader = rt::unix_stream(theirs.into()).unwrap();
            let read = Rc::new(Cell::new(false));
            let reader_read = read.clone();
            // The reader finds nothing at first and waits on the executor's ring.
            rt::spawn(async move {
                let mut byte = [0u8; 1];
                reader.read_exact(&mut byte).await.unwrap();
                reader_read.set(true);
            });
            rt::sleep(std::time::Duration::from_millis(10)).await;
            ours.write_all(b"x").unwrap();
            let mut pause = super::YieldToIo::new().unwrap();
            let mut steps = 0;
            let mut pausing = false;
            poll_fn(|cx| {
                loop {
                    if pausing {
                        if pause.poll_after_io(cx).is_pending() {
                            return Poll::Pending;
                        }
                        pausing = false;
                    }
                    if read.get() || steps == 1000 {
                        return Poll::Ready(());
                    }
                    // A step of work (a slice of a broadcast), then a pause or a plain yield.
                    steps += 1;
                    if step_aside {
                        pausing = true;
                    } else {
                        cx.waker().wake_by_ref();
                        return Poll::Pending;
                    }
                }
            })
            .await;
            steps
        })
        .unwrap()
        .join()
        .unwrap()
    }

    #[test]
    fn a_task_that_steps_aside_lets_the_tasks_its_io_woke_run() {
        assert!(
            steps_before_the_reader_ran(true) <= 2,
            "the reader runs at the first pause"
        );
    }

    #[test]
    fn a_task_that_only_wakes_itself_keeps_the_executor_from_its_io() {
        // Why the pause exists: glommio runs ready tasks for up to 100 ms before it reaps its
        // ring, so the reader waits through all the steps (they take far less than that).
        assert_eq!(steps_before_the_reader_ran(false), 1000);
    }
}
