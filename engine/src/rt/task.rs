//! Tasks and timers on the current executor thread, of whichever backend runs it.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use super::backend::{self, Backend};
use super::own;

/// A task that can be cancelled (dropping it cancels it too).
#[allow(missing_debug_implementations)]
pub struct Task<T>(Inner<T>);

enum Inner<T> {
    Glommio(glommio::Task<T>),
    Own(own::Task<T>),
}

impl<T> Task<T> {
    /// Stops the task at its next await point.
    pub fn cancel(self) {
        match self.0 {
            Inner::Glommio(task) => drop(task.cancel()),
            Inner::Own(task) => task.cancel(),
        }
    }
}

/// Awaiting a task gives its result.
impl<T> Future for Task<T> {
    type Output = T;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        match &mut self.0 {
            Inner::Glommio(task) => Pin::new(task).poll(cx),
            Inner::Own(task) => Pin::new(task).poll(cx),
        }
    }
}

/// Runs `future` on this thread's executor, on its own (its result is dropped).
pub fn spawn<T: 'static>(future: impl Future<Output = T> + 'static) {
    match backend::current() {
        Backend::Glommio => drop(glommio::spawn_local(future).detach()),
        Backend::IoUring | Backend::Epoll => own::spawn(future).detach(),
    }
}

/// Runs `future` on this thread's executor; the returned [`Task`] can cancel it.
pub fn spawn_cancellable<T: 'static>(future: impl Future<Output = T> + 'static) -> Task<T> {
    Task(match backend::current() {
        Backend::Glommio => Inner::Glommio(glommio::spawn_local(future)),
        Backend::IoUring | Backend::Epoll => Inner::Own(own::spawn(future)),
    })
}

/// Resolves after `duration`.
pub async fn sleep(duration: Duration) {
    match backend::current() {
        Backend::Glommio => {
            glommio::timer::sleep(duration).await;
        }
        Backend::IoUring | Backend::Epoll => own::sleep(duration).await,
    }
}

/// Marks the current task as one that feeds many others (an inner link): on the own backends it
/// runs before a broadcast's wave of writers when woken. glommio has one queue (its writers take
/// turns instead: `rt::pacing`).
pub fn prefer_current() {
    match backend::current() {
        Backend::Glommio => {}
        Backend::IoUring | Backend::Epoll => own::prefer_current(),
    }
}
