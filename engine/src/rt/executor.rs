//! Executor threads: one single-threaded async runtime per thread (glommio's `LocalExecutor`,
//! an io_uring each), placed on a CPU or left to the kernel.

use std::future::Future;

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
    /// Bytes of registered I/O memory (locked: counts against `RLIMIT_MEMLOCK`).
    pub io_memory: usize,
    /// Submission queue entries; `None` keeps the runtime's default.
    pub ring_depth: Option<usize>,
}

impl ExecutorSpec {
    pub fn new(name: impl Into<String>, cpu: Cpu) -> ExecutorSpec {
        ExecutorSpec {
            name: name.into(),
            cpu,
            io_memory: 64 * 1024,
            ring_depth: None,
        }
    }

    pub fn ring_depth(mut self, entries: usize) -> ExecutorSpec {
        self.ring_depth = Some(entries);
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

/// A running executor thread; [`Executor::join`] waits for its future's result.
#[allow(missing_debug_implementations)]
pub struct Executor<T: Send + 'static> {
    name: String,
    handle: glommio::ExecutorJoinHandle<T>,
}

impl<T: Send + 'static> Executor<T> {
    /// Waits until the thread's future finished; an error when it panicked or failed to run.
    pub fn join(self) -> Result<T, ExecutorError> {
        self.handle.join().map_err(|e| ExecutorError::Join {
            thread: self.name,
            message: e.to_string(),
        })
    }
}

/// Starts a thread running an executor that runs `main` (and whatever it spawns) to completion.
pub fn start<T, F, Fut>(spec: ExecutorSpec, main: F) -> Result<Executor<T>, ExecutorError>
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
        .spawn(main)
        .map(|handle| Executor {
            name: spec.name.clone(),
            handle,
        })
        .map_err(|e| ExecutorError::Start {
            thread: spec.name,
            message: e.to_string(),
        })
}
