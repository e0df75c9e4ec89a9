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
use crate::config::{Config, Role};
use crate::process::Running;
use crate::system;
use crate::worker::Events;

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
        let answer = match request {
            "status" => running.status().to_line(),
            "tls" => match running.reload_tls() {
                Ok(done) => format!("ok {done}"),
                Err(why) => format!("error {why}"),
            },
            "metrics" => running.metrics(),
            "connections" => running
                .connections()
                .iter()
                .map(|c| {
                    format!(
                        "{}\t{}\t{}\t{}\t{}\t{}\t{}\n",
                        c.client_id,
                        c.remote,
                        c.uid.as_deref().unwrap_or("-"),
                        if c.groups.is_empty() {
                            "-".to_owned()
                        } else {
                            c.groups.join(",")
                        },
                        c.messages_in,
                        c.bytes_in,
                        c.queued_out,
                    )
                })
                .collect(),
            "links" => running
                .links()
                .iter()
                .map(|(worker, l)| {
                    let since = l
                        .since
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_secs());
                    let state = if l.up { "up" } else { "down" };
                    format!("{worker}\t{}\t{state}\t{since}\n", l.gateway)
                })
                .collect(),
            "worker_hosts" => running
                .worker_hosts()
                .iter()
                .map(|(host, links)| format!("{host}\t{links}\n"))
                .collect(),
            "store" => running
                .store_summary()
                .iter()
                .map(|line| format!("{line}\n"))
                .collect(),
            "members" => running
                .members()
                .iter()
                .map(|m| {
                    let since = m
                        .since
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_secs());
                    let kind = if m.announces.is_some() {
                        "gateway"
                    } else {
                        "worker"
                    };
                    let announces = m.announces.as_deref().unwrap_or("-");
                    format!("{kind}\t{}\t{announces}\t{since}\n", m.from)
                })
                .collect(),
            "drain" => {
                drain.store(true, Ordering::SeqCst);
                system::raise_stop_signal();
                "ok".to_owned()
            }
            other => format!("unknown request {other:?}"),
        };
        if channel::send(&mut control, &format!("{number}\n{answer}")).is_err() {
            return;
        }
    }
}
