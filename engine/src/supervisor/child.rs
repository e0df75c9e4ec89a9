//! The child side: a process the supervisor started for one role. It reports "ready" (or why it
//! failed) on the control channel the supervisor passed as fd 3, then answers the supervisor's
//! requests (status, metrics, connections, drain) until it is told to stop.

use std::os::fd::FromRawFd;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tracing::{info, warn};

use super::channel;
use super::report::{ConnectionRow, ProcessReport};
use crate::config::{Config, Role};
use crate::process::Running;
use crate::system;
use crate::worker::Events;

/// What the supervisor asks a child (`N word` on the control channel, the answer echoing `N`).
/// The words stay what they were in earlier releases: after a binary upgrade the running
/// supervisor still drains, reloads and scrapes the children it starts from the new binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildRequest {
    /// A [`ProcessReport`] as JSON.
    Status,
    /// Every client of the gateway shards, a [`ConnectionRow`] per line.
    Connections,
    /// The Prometheus text of the process's roles.
    Metrics,
    /// Read the certificate and key again: `ok …` or `error …`.
    ReloadTls,
    /// Stop taking events, drain, exit: `ok`.
    Drain,
}

impl ChildRequest {
    pub fn word(self) -> &'static str {
        match self {
            ChildRequest::Status => "status",
            ChildRequest::Connections => "connections",
            ChildRequest::Metrics => "metrics",
            ChildRequest::ReloadTls => "tls",
            ChildRequest::Drain => "drain",
        }
    }
}

impl std::str::FromStr for ChildRequest {
    type Err = String;

    fn from_str(word: &str) -> Result<ChildRequest, String> {
        [
            ChildRequest::Status,
            ChildRequest::Connections,
            ChildRequest::Metrics,
            ChildRequest::ReloadTls,
            ChildRequest::Drain,
        ]
        .into_iter()
        .find(|r| r.word() == word)
        .ok_or_else(|| format!("unknown request {word:?}"))
    }
}

/// The fd a supervised child finds its control channel on.
pub const CONTROL_FD: i32 = 3;

/// Runs `roles` under a supervisor; returns the process's exit status.
pub fn run<A: Events>(config: &Config, roles: &[Role], custom: Option<A>) -> u8 {
    // SAFETY: the supervisor passes its end of a socket pair as fd 3; nothing else owns it.
    let mut control = unsafe { UnixStream::from_raw_fd(CONTROL_FD) };
    crate::process::block_signals_for(config, roles);
    let running = match Running::start(config, roles, custom) {
        Ok(r) => Arc::new(r),
        Err(message) => {
            // The supervisor reports it (once, for every role).
            tracing::debug!("{message}");
            let _ = channel::send(&mut control, &format!("failed {message}"));
            return 1;
        }
    };
    let ready_within = Duration::from_secs_f64(config.worker.ready_timeout);
    let report = if running.wait_ready(ready_within) {
        "ready".to_owned()
    } else {
        format!(
            "unready the workers are not linked to every gateway shard after {:?} (worker.ready_timeout)",
            ready_within
        )
    };
    if channel::send(&mut control, &report).is_err() {
        return 1;
    }
    crate::process::reload_tls_on_sighup(&running);
    let drain = Arc::new(AtomicBool::new(false));
    {
        let (running, drain) = (running.clone(), drain.clone());
        std::thread::spawn(move || serve(control, &running, &drain));
    }
    let signal = system::wait_stop_signal();
    let draining = drain.load(Ordering::SeqCst);
    info!(signal, draining, "stopping");
    running.stop(draining);
    0
}

/// Answers the supervisor until the channel closes (the supervisor is gone: stop too).
fn serve(mut control: UnixStream, running: &Running, drain: &AtomicBool) {
    loop {
        let request = match channel::recv(&mut control, None) {
            Ok(r) => r,
            Err(_) => {
                warn!("supervisor gone; stopping");
                system::raise_stop_signal();
                return;
            }
        };
        let (number, request) = request.split_once(' ').unwrap_or(("", request.as_str()));
        let answer = match request.parse::<ChildRequest>() {
            Ok(ChildRequest::Status) => serde_json::to_string(&ProcessReport::of(running))
                .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}")),
            Ok(ChildRequest::Connections) => ConnectionRow::lines_of(running),
            Ok(ChildRequest::Metrics) => running.metrics(),
            Ok(ChildRequest::ReloadTls) => match running.reload_tls() {
                Ok(done) => format!("ok {done}"),
                Err(why) => format!("error {why}"),
            },
            Ok(ChildRequest::Drain) => {
                drain.store(true, Ordering::SeqCst);
                system::raise_stop_signal();
                "ok".to_owned()
            }
            Err(unknown) => unknown,
        };
        if channel::send(&mut control, &format!("{number}\n{answer}")).is_err() {
            return;
        }
    }
}
