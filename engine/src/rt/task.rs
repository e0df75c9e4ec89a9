//! Tasks and timers on the current executor thread.

use std::future::Future;
use std::time::Duration;

/// A task that can be cancelled (dropping it cancels it too).
#[allow(missing_debug_implementations)]
pub struct Task<T>(glommio::Task<T>);

impl<T> Task<T> {
    /// Stops the task at its next await point.
    pub fn cancel(self) {
        drop(self.0.cancel());
    }
}

/// Awaiting a task gives its result.
impl<T> Future for Task<T> {
    type Output = T;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<T> {
        std::pin::Pin::new(&mut self.0).poll(cx)
    }
}

/// Runs `future` on this thread's executor, on its own (its result is dropped).
pub fn spawn<T: 'static>(future: impl Future<Output = T> + 'static) {
    glommio::spawn_local(future).detach();
}

thread_local! {
    /// This thread's queue for [`spawn_prompt`] tasks, made on first use.
    static PROMPT_QUEUE: std::cell::OnceCell<glommio::TaskQueueHandle> =
        const { std::cell::OnceCell::new() };
}

/// Runs `future` on this thread's executor in a queue of its own, beside the one [`spawn`]
/// uses: the executor takes turns between the two (by run time, a turn lasting at most the 2 ms
/// it runs tasks before looking at its I/O), so a task here that wakes (an inner link with new packets)
/// runs within one turn instead of after every task woken before it (a wave of clients, each
/// with a broadcast to write). For tasks that do little per wake-up.
pub fn spawn_prompt<T: 'static>(future: impl Future<Output = T> + 'static) {
    let queue = PROMPT_QUEUE.with(|q| {
        *q.get_or_init(|| {
            glommio::executor().create_task_queue(
                glommio::Shares::default(),
                glommio::Latency::NotImportant,
                "prompt",
            )
        })
    });
    match glommio::spawn_local_into(future, queue) {
        Ok(task) => task.detach(),
        Err(e) => panic!("cannot spawn into this thread's prompt queue: {e}"),
    };
}

/// Runs `future` on this thread's executor; the returned [`Task`] can cancel it.
pub fn spawn_cancellable<T: 'static>(future: impl Future<Output = T> + 'static) -> Task<T> {
    Task(glommio::spawn_local(future))
}

/// Whether the current task has run long enough that it should yield (wake itself and return
/// `Pending`) so the executor can look at its I/O and run the other tasks.
pub fn should_yield() -> bool {
    glommio::executor().need_preempt()
}

/// Resolves after `duration`.
pub async fn sleep(duration: Duration) {
    glommio::timer::sleep(duration).await;
}
