//! Which runtime backend runs the executor threads, and why.
//!
//! - `io_uring`: gatewire's own executor over an io_uring reactor ([`super::own`]);
//! - `epoll`: the same executor over epoll, for where io_uring is blocked (the default seccomp
//!   profiles of Docker ≥ 25 and containerd 2.0, `kernel.io_uring_disabled`);
//! - `glommio`: glommio 0.9's executor (io_uring, with its locked memory).
//!
//! `auto` (the default) probes io_uring once at start and takes the own io_uring reactor where
//! it works, epoll where it does not, and says why in one line. glommio runs only when named.

use std::cell::Cell;
use std::sync::atomic::{AtomicU8, Ordering};

use serde::{Deserialize, Serialize};

/// What `run.backend` asks for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BackendChoice {
    /// io_uring where the kernel allows it, epoll where not.
    #[default]
    Auto,
    IoUring,
    Epoll,
    Glommio,
}

/// The backend the executor threads run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    IoUring,
    Epoll,
    Glommio,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::IoUring => "io_uring",
            Backend::Epoll => "epoll",
            Backend::Glommio => "glommio",
        }
    }

    fn code(self) -> u8 {
        match self {
            Backend::IoUring => 1,
            Backend::Epoll => 2,
            Backend::Glommio => 3,
        }
    }

    fn from_code(code: u8) -> Option<Backend> {
        match code {
            1 => Some(Backend::IoUring),
            2 => Some(Backend::Epoll),
            3 => Some(Backend::Glommio),
            _ => None,
        }
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The backend chosen, and the reason in a few words (for the start-up log line).
#[derive(Debug, Clone)]
pub struct Selection {
    pub backend: Backend,
    pub why: String,
}

/// The backend asked for cannot run here: the cause and the fix.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct Unavailable(pub String);

static SELECTED: AtomicU8 = AtomicU8::new(0);

thread_local! {
    /// The backend of the executor running on this thread, if any.
    static CURRENT: Cell<Option<Backend>> = const { Cell::new(None) };
}

/// Resolves `choice` on this host (probing io_uring) and makes it the process's backend.
pub fn select(choice: BackendChoice) -> Result<Selection, Unavailable> {
    let selection = resolve(choice)?;
    SELECTED.store(selection.backend.code(), Ordering::Release);
    Ok(selection)
}

/// Resolves `choice` on this host without changing the process's backend.
pub fn resolve(choice: BackendChoice) -> Result<Selection, Unavailable> {
    let refused = io_uring_refused();
    match (choice, refused) {
        (BackendChoice::Epoll, _) => Ok(Selection {
            backend: Backend::Epoll,
            why: "run.backend = \"epoll\"".into(),
        }),
        (BackendChoice::IoUring | BackendChoice::Glommio, Some(why)) => {
            Err(Unavailable(uring_refused_message(choice, &why)))
        }
        (BackendChoice::IoUring, None) => Ok(Selection {
            backend: Backend::IoUring,
            why: "run.backend = \"io_uring\"".into(),
        }),
        (BackendChoice::Glommio, None) => match memlock_shortfall() {
            Some(why) => Err(Unavailable(why)),
            None => Ok(Selection {
                backend: Backend::Glommio,
                why: "run.backend = \"glommio\"".into(),
            }),
        },
        (BackendChoice::Auto, Some(why)) => Ok(Selection {
            backend: Backend::Epoll,
            why: format!("io_uring is not available here ({why}); epoll instead"),
        }),
        // The own io_uring reactor, not glommio: it is at least as good on every measured figure
        // (echo CPU, fanout knee and latency, idle memory, the million; docs/benchmarks.md, "What
        // auto picks") and needs no locked memory.
        (BackendChoice::Auto, None) => Ok(Selection {
            backend: Backend::IoUring,
            why: "io_uring works here".into(),
        }),
    }
}

/// The process's backend: the one [`select`]ed, else what `auto` resolves to (once).
pub fn selected() -> Backend {
    if let Some(backend) = Backend::from_code(SELECTED.load(Ordering::Acquire)) {
        return backend;
    }
    let backend = resolve(BackendChoice::Auto)
        .map(|s| s.backend)
        .unwrap_or(Backend::Epoll);
    let _ = SELECTED.compare_exchange(0, backend.code(), Ordering::AcqRel, Ordering::Acquire);
    Backend::from_code(SELECTED.load(Ordering::Acquire)).unwrap_or(backend)
}

/// The backend of the executor on this thread; panics off an executor thread.
pub fn current() -> Backend {
    CURRENT
        .with(Cell::get)
        .expect("an rt:: call made off an executor thread")
}

/// Marks this thread as running an executor of `backend` (or none).
pub(super) fn set_current(backend: Option<Backend>) {
    CURRENT.with(|c| c.set(backend));
}

fn uring_refused_message(choice: BackendChoice, why: &str) -> String {
    let key = match choice {
        BackendChoice::Glommio => "glommio",
        _ => "io_uring",
    };
    format!(
        "run.backend = \"{key}\" but io_uring is not available here ({why}). Allow it \
         (`sysctl kernel.io_uring_disabled=0`; in a container, a seccomp profile that permits \
         io_uring_setup, io_uring_enter and io_uring_register: deploy/seccomp-io_uring.json, \
         docs/deployment.md), or set run.backend = \"auto\" or \"epoll\" to run on epoll"
    )
}

/// Whether the kernel refuses this process an io_uring, and why (`None`: it works).
pub fn io_uring_refused() -> Option<String> {
    let disabled = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
        .ok()
        .map(|t| t.trim().to_owned());
    match super::own::uring::Uring::new(8) {
        Ok(_) => None,
        Err(e) => Some(match (e.raw_os_error(), disabled.as_deref()) {
            (Some(libc::EPERM), Some("2")) => "kernel.io_uring_disabled = 2".into(),
            (Some(libc::EPERM), Some("1")) => {
                "kernel.io_uring_disabled = 1 and this process is not in \
                 kernel.io_uring_group"
                    .into()
            }
            (Some(libc::EPERM), _) => {
                "io_uring_setup: permission denied (a seccomp filter, as in Docker's and \
                 containerd's default profiles)"
                    .into()
            }
            (Some(libc::ENOSYS), _) => {
                "io_uring_setup: not implemented (an old kernel, or a seccomp filter that \
                 answers ENOSYS)"
                    .into()
            }
            (Some(libc::ENOMEM), _) => {
                "io_uring_setup: out of locked memory (raise `ulimit -l`, or \
                 `--ulimit memlock=` in a container)"
                    .into()
            }
            _ => format!("io_uring_setup: {e}"),
        }),
    }
}

/// The smallest locked-memory limit glommio starts with: it locks memory for each executor's
/// io_uring (measured: 256 KiB fails, 512 KiB works, also with 8 shards).
pub const GLOMMIO_MIN_MEMLOCK: u64 = 512 * 1024;

/// Why glommio cannot start under this process's locked-memory limit, with the fix.
pub fn memlock_shortfall() -> Option<String> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut limit) } != 0
        || limit.rlim_cur == libc::RLIM_INFINITY
        || limit.rlim_cur >= GLOMMIO_MIN_MEMLOCK
    {
        return None;
    }
    Some(format!(
        "the locked-memory limit is {} KiB and the glommio backend needs at least {} KiB (its \
         io_uring rings lock memory). Raise it before starting: `ulimit -l {}` in the shell \
         (the hard limit may need root: /etc/security/limits.conf), `LimitMEMLOCK={}K` in a \
         systemd unit, `--ulimit memlock={}` with Docker; or use run.backend = \"io_uring\" \
         or \"epoll\", which lock no memory",
        limit.rlim_cur / 1024,
        GLOMMIO_MIN_MEMLOCK / 1024,
        GLOMMIO_MIN_MEMLOCK / 1024 * 2,
        GLOMMIO_MIN_MEMLOCK / 1024 * 2,
        GLOMMIO_MIN_MEMLOCK * 2
    ))
}
