//! Why the supervisor could not do what it was asked: start, reload, restart, or hear a child.

use std::path::PathBuf;

use crate::config::Role;

#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    /// A file or directory of `[run] dir` (or the log) could not be made or used.
    #[error("{what} {}: {source}", path.display())]
    File {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// Another supervisor answers on this deployment's control socket.
    #[error("gatewire is already running here (control socket {})", .0.display())]
    AlreadyRunning(PathBuf),
    /// A child did not take a request or answer it in time.
    #[error("{role} process (pid {pid}): {source}")]
    Child {
        role: Role,
        pid: u32,
        source: std::io::Error,
    },
    /// A child answered with what this supervisor cannot read.
    #[error("{role} process (pid {pid}) answered {request} unreadably: {detail}")]
    Unreadable {
        role: Role,
        pid: u32,
        request: &'static str,
        detail: String,
    },
    /// A role did not start; the sentence is the child's (it names the key and the cause).
    #[error("{0}")]
    Start(String),
    /// What was asked does not apply to this deployment (e.g. a reload without workers).
    #[error("{0}")]
    NotHere(&'static str),
    /// A gateway refused its new certificate; the report says which and why.
    #[error("{0}")]
    TlsRefused(String),
    /// The operating system refused what the supervisor needs (a thread, its own path).
    #[error("{what}: {source}")]
    System {
        what: &'static str,
        source: std::io::Error,
    },
}
