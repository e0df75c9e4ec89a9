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

/// Runs `future` on this thread's executor; the returned [`Task`] can cancel it.
pub fn spawn_cancellable<T: 'static>(future: impl Future<Output = T> + 'static) -> Task<T> {
    Task(glommio::spawn_local(future))
}

/// Resolves after `duration`.
pub async fn sleep(duration: Duration) {
    glommio::timer::sleep(duration).await;
}
