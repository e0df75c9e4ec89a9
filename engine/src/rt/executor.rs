//! Executor threads: one single-threaded async runtime per thread, of the process's backend
//! ([`super::backend`]), placed on a CPU or left to the kernel.

use std::future::Future;

use super::backend::{self, Backend};
use super::own::{self, ReactorKind};

/// Where an executor thread runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cpu {
    /// Wherever the kernel puts it.
    Any,
    /// Pinned to this CPU.
    Fixed(usize),
}

/// What an executor thread is started with.
#[derive(Debug, Clone)]
pub struct ExecutorSpec {
    /// The thread's name (`ps -L`, logs).
    pub name: String,
    pub cpu: Cpu,
    /// Bytes of registered I/O memory (glommio: locked, counts against `RLIMIT_MEMLOCK`).
    pub io_memory: usize,
    /// Submission queue entries of an io_uring; `None` keeps the backend's default.
    pub ring_depth: Option<usize>,
    /// The backend; `None`: the process's ([`backend::selected`]).
    pub backend: Option<Backend>,
}

impl ExecutorSpec {
    pub fn new(name: impl Into<String>, cpu: Cpu) -> ExecutorSpec {
        ExecutorSpec {
            name: name.into(),
            cpu,
            io_memory: 64 * 1024,
            ring_depth: None,
            backend: None,
        }
    }

    pub fn ring_depth(mut self, entries: usize) -> ExecutorSpec {
        self.ring_depth = Some(entries);
        self
    }

    pub fn backend(mut self, backend: Backend) -> ExecutorSpec {
        self.backend = Some(backend);
        self
    }
}

/// Why an executor thread did not start or did not finish.
#[derive(Debug, thiserror::Error)]
pub enum ExecutorError {
    /// The runtime could not set the thread up (its ring, its locked memory, the CPU).
    #[error("{thread}: cannot start: {message}")]
    Start { thread: String, message: String },
    /// The thread's future panicked or the runtime failed under it.
    #[error("{thread}: ended with an error: {message}")]
    Join { thread: String, message: String },
}

enum Handle<T: Send + 'static> {
    Glommio(glommio::ExecutorJoinHandle<T>),
    Own(std::thread::JoinHandle<std::io::Result<T>>),
}

/// A running executor thread; [`Executor::join`] waits for its future's result.
#[allow(missing_debug_implementations)]
pub struct Executor<T: Send + 'static> {
    name: String,
    handle: Handle<T>,
}

impl<T: Send + 'static> Executor<T> {
    /// Waits until the thread's future finished; an error when it panicked or failed to run.
    pub fn join(self) -> Result<T, ExecutorError> {
        let name = self.name;
        let failed = |message: String| ExecutorError::Join {
            thread: name.clone(),
            message,
        };
        match self.handle {
            Handle::Glommio(handle) => handle.join().map_err(|e| failed(e.to_string())),
            Handle::Own(handle) => match handle.join() {
                Ok(Ok(value)) => Ok(value),
                Ok(Err(e)) => Err(failed(e.to_string())),
                Err(panic) => Err(failed(panic_message(&panic))),
            },
        }
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panicked".into())
}

/// Starts a thread running an executor that runs `main` (and whatever it spawns) to completion.
pub fn start<T, F, Fut>(spec: ExecutorSpec, main: F) -> Result<Executor<T>, ExecutorError>
where
    T: Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = T> + 'static,
{
    let backend = spec.backend.unwrap_or_else(backend::selected);
    let kind = match backend {
        Backend::Glommio => return start_glommio(spec, main),
        Backend::IoUring => ReactorKind::Uring,
        Backend::Epoll => ReactorKind::Epoll,
    };
    let start_failed = |name: &str, message: String| ExecutorError::Start {
        thread: name.to_owned(),
        message,
    };
    let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel::<Result<(), String>>(1);
    let (cpu, depth) = (spec.cpu, spec.ring_depth);
    let handle = std::thread::Builder::new()
        .name(spec.name.clone())
        .spawn(move || {
            if let Cpu::Fixed(cpu) = cpu
                && !core_affinity::set_for_current(core_affinity::CoreId { id: cpu })
            {
                let _ = ready_tx.send(Err(format!("cannot pin the thread to CPU {cpu}")));
                return Err(std::io::Error::other("not pinned"));
            }
            let reactor = match own::reactor(kind, depth) {
                Ok(reactor) => reactor,
                Err(e) => {
                    let _ = ready_tx.send(Err(format!("{backend} reactor: {e}")));
                    return Err(e);
                }
            };
            let _ = ready_tx.send(Ok(()));
            backend::set_current(Some(backend));
            let result = own::executor::block_on(reactor, async move { main().await });
            backend::set_current(None);
            result
        })
        .map_err(|e| start_failed(&spec.name, e.to_string()))?;
    match ready_rx.recv() {
        Ok(Ok(())) => Ok(Executor {
            name: spec.name,
            handle: Handle::Own(handle),
        }),
        Ok(Err(message)) => Err(start_failed(&spec.name, message)),
        Err(_) => Err(start_failed(&spec.name, "the thread ended at start".into())),
    }
}

fn start_glommio<T, F, Fut>(spec: ExecutorSpec, main: F) -> Result<Executor<T>, ExecutorError>
where
    T: Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = T> + 'static,
{
    let placement = match spec.cpu {
        Cpu::Any => glommio::Placement::Unbound,
        Cpu::Fixed(cpu) => glommio::Placement::Fixed(cpu),
    };
    let mut builder = glommio::LocalExecutorBuilder::new(placement)
        .name(&spec.name)
        .io_memory(spec.io_memory);
    if let Some(entries) = spec.ring_depth {
        builder = builder.ring_depth(entries);
    }
    builder
        .spawn(move || async move {
            backend::set_current(Some(Backend::Glommio));
            main().await
        })
        .map(|handle| Executor {
            name: spec.name.clone(),
            handle: Handle::Glommio(handle),
        })
        .map_err(|e| ExecutorError::Start {
            thread: spec.name,
            message: e.to_string(),
        })
}
