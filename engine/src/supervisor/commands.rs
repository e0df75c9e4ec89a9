//! The control socket: the command line sends one request (`status`, `connections`, `reload`,
//! `restart ROLES`, `stop`, `stop graceful`, `metrics`) and gets one answer: `ok` or `error` on
//! the first line, then text.

use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::{Supervisor, channel};
use crate::config::Role;
use crate::process::ProcessStatus;

/// How long the command line waits for an answer (a reload waits for new workers to link).
const ANSWER_WAIT: Duration = Duration::from_secs(600);

impl Supervisor {
    pub(super) fn serve_command(self: Arc<Self>, mut stream: UnixStream) {
        let Ok(request) = channel::recv(&mut stream, Some(Duration::from_secs(10))) else {
            return;
        };
        let mut words = request.split_whitespace();
        let answer = match (words.next(), words.next()) {
            (Some("status"), _) => Ok(self.status_table()),
            (Some("connections"), _) => Ok(self.connections_table()),
            (Some("metrics"), _) => Ok(self.metrics()),
            (Some("reload"), _) => self.reload(),
            (Some("restart"), roles) => {
                let roles: Result<Vec<Role>, String> = roles
                    .map(|r| r.split(',').map(str::parse).collect())
                    .unwrap_or_else(|| Ok(Vec::new()));
                roles.and_then(|r| self.restart(&r))
            }
            (Some("stop"), how) => {
                let graceful = how == Some("graceful");
                self.stop(graceful);
                self.remove_files();
                let _ = channel::send(&mut stream, "ok\nstopped\n");
                tracing::info!(graceful, "stopped by command");
                std::process::exit(0);
            }
            _ => Err(format!("unknown request {request:?}")),
        };
        let text = match answer {
            Ok(text) => format!("ok\n{text}"),
            Err(text) => format!("error\n{text}\n"),
        };
        let _ = channel::send(&mut stream, &text);
    }

    fn status_table(&self) -> String {
        let mut out = format!(
            "{:<9} {:>8} {:>10} {:>10} {:>11} {:>11} {:>11} {:>6} {:>8} {:>9}\n",
            "role",
            "pid",
            "uptime",
            "memory",
            "connections",
            "messages_in",
            "messages_out",
            "links",
            "dropped",
            "events"
        );
        let mut children = self.serving(None);
        children.sort_by_key(|c| (c.role as u8, c.pid));
        for c in children {
            let s = c
                .ask("status", Duration::from_secs(5))
                .map(|line| ProcessStatus::from_line(&line))
                .unwrap_or_default();
            let memory = crate::system::rss_bytes(c.pid).map_or_else(
                || "-".to_owned(),
                |b| format!("{:.1}MiB", b as f64 / 1048576.0),
            );
            let extra = if c.role == Role::Register {
                format!("  gateways={} workers={}", s.gateways, s.workers)
            } else {
                String::new()
            };
            out.push_str(&format!(
                "{:<9} {:>8} {:>10} {:>10} {:>11} {:>11} {:>11} {:>6} {:>8} {:>9}{extra}\n",
                c.role.name(),
                c.pid,
                uptime(c.started.elapsed()),
                memory,
                s.connections,
                s.messages_in,
                s.messages_out,
                s.worker_links,
                s.dropped,
                s.events
            ));
        }
        out
    }

    fn connections_table(&self) -> String {
        let mut out = format!(
            "{:<20} {:<21} {:<12} {:<20} {:>9} {:>10} {:>10}\n",
            "client_id", "remote", "uid", "groups", "messages", "bytes_in", "queued_out"
        );
        for c in self.serving(Some(Role::Gateway)) {
            let Ok(rows) = c.ask("connections", Duration::from_secs(30)) else {
                continue;
            };
            for row in rows.lines() {
                let f: Vec<&str> = row.split('\t').collect();
                if let [id, remote, uid, groups, messages, bytes_in, queued] = f[..] {
                    out.push_str(&format!(
                        "{id:<20} {remote:<21} {uid:<12} {groups:<20} {messages:>9} {bytes_in:>10} {queued:>10}\n"
                    ));
                }
            }
        }
        out
    }
}

fn uptime(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 86400 {
        format!("{}d{:02}h", s / 86400, s % 86400 / 3600)
    } else {
        format!("{:02}:{:02}:{:02}", s / 3600, s % 3600 / 60, s % 60)
    }
}

/// The command line's side: sends `request` to the supervisor whose socket is in `dir`.
/// Returns the answer's text, or the error text.
pub fn request(dir: &Path, request: &str) -> Result<String, String> {
    let socket = dir.join(super::SOCKET);
    let mut stream = UnixStream::connect(&socket).map_err(|e| {
        format!(
            "gatewire is not running here (no control socket at {}: {e})",
            socket.display()
        )
    })?;
    let answer = channel::ask(&mut stream, request, ANSWER_WAIT)
        .map_err(|e| format!("no answer from the supervisor: {e}"))?;
    match answer.split_once('\n') {
        Some(("ok", text)) => Ok(text.to_owned()),
        Some((_, text)) => Err(text.trim_end().to_owned()),
        None => Err(answer),
    }
}
