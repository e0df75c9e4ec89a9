//! The control socket: the command line sends one request (`status [json]`,
//! `connections [json]`, `reload`,
//! `restart ROLES`, `stop`, `stop graceful`, `metrics`) and gets one answer: `ok` or `error` on
//! the first line, then text.

use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::child::ChildRequest;
use super::report::{ConnectionRow, LinkRow, MemberRow, ProcessReport, StoreRow, WorkerHostRow};
use super::{Supervisor, channel};
use crate::config::Role;

/// What the command line asks the supervisor (one per connection; its text form goes over the
/// control socket).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlRequest {
    Status {
        json: bool,
    },
    Connections {
        json: bool,
    },
    Metrics,
    Reload,
    /// Re-read the gateway's certificate and key (every gateway process).
    ReloadTls,
    /// Restart these roles (every role when empty).
    Restart(Vec<Role>),
    Stop {
        graceful: bool,
    },
    /// How a command-line client reaches this deployment: its registers and secret (JSON).
    Reach,
}

impl std::fmt::Display for ControlRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let json = |json: &bool| if *json { " json" } else { "" };
        match self {
            ControlRequest::Status { json: j } => write!(f, "status{}", json(j)),
            ControlRequest::Connections { json: j } => write!(f, "connections{}", json(j)),
            ControlRequest::Metrics => f.write_str("metrics"),
            ControlRequest::Reload => f.write_str("reload"),
            ControlRequest::ReloadTls => f.write_str("reload tls"),
            ControlRequest::Restart(roles) => {
                let names: Vec<&str> = roles.iter().map(|r| r.name()).collect();
                write!(f, "restart {}", names.join(","))
            }
            ControlRequest::Stop { graceful: true } => f.write_str("stop graceful"),
            ControlRequest::Stop { graceful: false } => f.write_str("stop"),
            ControlRequest::Reach => f.write_str("reach"),
        }
    }
}

impl std::str::FromStr for ControlRequest {
    type Err = String;

    fn from_str(text: &str) -> Result<ControlRequest, String> {
        let mut words = text.split_whitespace();
        Ok(match (words.next(), words.next()) {
            (Some("status"), flag) => ControlRequest::Status {
                json: flag == Some("json"),
            },
            (Some("connections"), flag) => ControlRequest::Connections {
                json: flag == Some("json"),
            },
            (Some("metrics"), _) => ControlRequest::Metrics,
            (Some("reload"), Some("tls")) => ControlRequest::ReloadTls,
            (Some("reload"), _) => ControlRequest::Reload,
            (Some("restart"), roles) => ControlRequest::Restart(
                roles
                    .map(|r| r.split(',').map(str::parse).collect())
                    .unwrap_or_else(|| Ok(Vec::new()))?,
            ),
            (Some("stop"), how) => ControlRequest::Stop {
                graceful: how == Some("graceful"),
            },
            (Some("reach"), _) => ControlRequest::Reach,
            _ => return Err(format!("unknown request {text:?}")),
        })
    }
}

/// How `gatewire send` / `query` reach a deployment: the registers (and secret) its own roles
/// use — a worker's, else a gateway's, else the register it runs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Reach {
    pub registers: Vec<std::net::SocketAddr>,
    pub secret_key: String,
}

impl Reach {
    pub fn of(config: &crate::config::Config, roles: &[Role]) -> Reach {
        if roles.contains(&Role::Worker) {
            Reach {
                registers: config.worker.register_address.clone(),
                secret_key: config.worker.secret_key.clone(),
            }
        } else if roles.contains(&Role::Gateway) {
            Reach {
                registers: config.gateway.register_address.clone(),
                secret_key: config.gateway.secret_key.clone(),
            }
        } else {
            let mut listen = config.register.listen;
            if listen.ip().is_unspecified() {
                listen.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
            }
            Reach {
                registers: vec![listen],
                secret_key: config.register.secret_key.clone(),
            }
        }
    }
}

/// How long the command line waits for an answer (a reload waits for new workers to link).
const ANSWER_WAIT: Duration = Duration::from_secs(600);

impl Supervisor {
    pub(super) fn serve_command(self: Arc<Self>, mut stream: UnixStream) {
        let Ok(request) = channel::recv(&mut stream, Some(Duration::from_secs(10))) else {
            return;
        };
        let answer = match request.parse::<ControlRequest>() {
            Ok(ControlRequest::Status { json: true }) => Ok(json(&self.status_rows())),
            Ok(ControlRequest::Status { json: false }) => Ok(self.status_table()),
            Ok(ControlRequest::Connections { json: true }) => Ok(json(&self.connection_rows())),
            Ok(ControlRequest::Connections { json: false }) => Ok(self.connections_table()),
            Ok(ControlRequest::Metrics) => Ok(self.metrics()),
            Ok(ControlRequest::Reload) => self.reload().map_err(|e| e.to_string()),
            Ok(ControlRequest::ReloadTls) => self.reload_tls().map_err(|e| e.to_string()),
            Ok(ControlRequest::Reach) => Ok(json(&Reach::of(&self.config, &self.roles))),
            Ok(ControlRequest::Restart(roles)) => self.restart(&roles).map_err(|e| e.to_string()),
            Ok(ControlRequest::Stop { graceful }) => {
                self.stop(graceful);
                self.remove_files();
                let _ = channel::send(&mut stream, "ok\nstopped\n");
                tracing::info!(graceful, "stopped by command");
                // The main thread's signal wait ends the process (its stop finds nothing left).
                crate::system::raise_stop_signal();
                return;
            }
            Err(e) => Err(e),
        };
        let text = match answer.map_err(|e| e.to_string()) {
            Ok(text) => format!("ok\n{text}"),
            Err(text) => format!("error\n{text}\n"),
        };
        let _ = channel::send(&mut stream, &text);
    }

    /// One row per serving child: its process facts and what it reports.
    fn status_rows(&self) -> Vec<StatusRow> {
        let mut children = self.serving(None);
        children.sort_by_key(|c| (c.role as u8, c.pid));
        children
            .into_iter()
            .map(|c| {
                let (report, unanswered) = match c
                    .ask(ChildRequest::Status, Duration::from_secs(5))
                    .and_then(|text| {
                        serde_json::from_str::<ProcessReport>(&text)
                            .map_err(|e| c.unreadable("status", &e))
                    }) {
                    Ok(report) => (report, None),
                    Err(e) => (ProcessReport::default(), Some(e.to_string())),
                };
                let s = report.status;
                let register = c.role == Role::Register;
                StatusRow {
                    role: c.role.name(),
                    pid: c.pid,
                    uptime_seconds: c.started.elapsed().as_secs(),
                    rss_bytes: crate::system::rss_bytes(c.pid),
                    unanswered,
                    connections: s.connections,
                    messages_in: s.messages_in,
                    messages_out: s.messages_out,
                    links: s.worker_links,
                    dropped: s.dropped,
                    events: s.events,
                    gateways: register.then_some(s.gateways),
                    workers: register.then_some(s.workers),
                    link_states: report.link_states,
                    worker_hosts: report.worker_hosts,
                    members: report.members,
                    store: report.store,
                }
            })
            .collect()
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
        let rows = self.status_rows();
        for r in &rows {
            let memory = r.rss_bytes.map_or_else(
                || "-".to_owned(),
                |b| format!("{:.1}MiB", b as f64 / 1048576.0),
            );
            let mut extra = match (r.gateways, r.workers) {
                (Some(g), Some(w)) => format!("  gateways={g} workers={w}"),
                _ => String::new(),
            };
            if let Some(why) = &r.unanswered {
                extra.push_str(&format!("  (no report: {why})"));
            }
            out.push_str(&format!(
                "{:<9} {:>8} {:>10} {:>10} {:>11} {:>11} {:>11} {:>6} {:>8} {:>9}{extra}\n",
                r.role,
                r.pid,
                uptime(Duration::from_secs(r.uptime_seconds)),
                memory,
                r.connections,
                r.messages_in,
                r.messages_out,
                r.links,
                r.dropped,
                r.events
            ));
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let ago = |since: u64| uptime(Duration::from_secs(now.saturating_sub(since)));
        let members: Vec<&MemberRow> = rows.iter().flat_map(|r| &r.members).collect();
        if !members.is_empty() {
            out.push_str(&format!(
                "\n{:<8} {:<21} {:<21} {}\n",
                "member", "from", "announces", "since"
            ));
            for m in members {
                out.push_str(&format!(
                    "{:<8} {:<21} {:<21} {} ago\n",
                    m.kind,
                    m.from,
                    m.announces.as_deref().unwrap_or("-"),
                    ago(m.since_unix)
                ));
            }
        }
        if rows.iter().any(|r| !r.store.is_empty()) {
            out.push_str("\nstore\n");
            for r in &rows {
                for s in &r.store {
                    out.push_str(&s.describe(r.role, r.pid));
                    out.push('\n');
                }
            }
        }
        let hosts: Vec<&WorkerHostRow> = rows.iter().flat_map(|r| &r.worker_hosts).collect();
        if !hosts.is_empty() {
            out.push_str(&format!("\n{:<21} {}\n", "worker host", "links"));
            for h in hosts {
                out.push_str(&format!("{:<21} {}\n", h.host, h.links));
            }
        }
        let links: Vec<&LinkRow> = rows.iter().flat_map(|r| &r.link_states).collect();
        if !links.is_empty() {
            out.push_str(&format!(
                "\n{:<24} {:<21} {:<5} {}\n",
                "worker", "gateway", "link", "since"
            ));
            for l in links {
                out.push_str(&format!(
                    "{:<24} {:<21} {:<5} {} ago\n",
                    l.worker,
                    l.gateway,
                    l.state,
                    ago(l.since_unix)
                ));
            }
        }
        out
    }

    /// Every gateway's clients. A gateway that does not answer is left out with a warning.
    fn connection_rows(&self) -> Vec<ConnectionRow> {
        let mut out = Vec::new();
        for c in self.serving(Some(Role::Gateway)) {
            let rows = c
                .ask(ChildRequest::Connections, Duration::from_secs(30))
                .and_then(|text| {
                    text.lines()
                        .map(|line| {
                            serde_json::from_str::<ConnectionRow>(line)
                                .map_err(|e| c.unreadable("connections", &e))
                        })
                        .collect::<Result<Vec<_>, _>>()
                });
            match rows {
                Ok(rows) => out.extend(rows),
                Err(e) => tracing::warn!("connections: {e}"),
            }
        }
        out
    }

    fn connections_table(&self) -> String {
        let mut out = format!(
            "{:<20} {:<21} {:<12} {:<20} {:>9} {:>10} {:>10}\n",
            "client_id", "remote", "uid", "groups", "messages", "bytes_in", "queued_out"
        );
        for r in self.connection_rows() {
            let uid = r.uid.as_deref().unwrap_or("-");
            let groups = if r.groups.is_empty() {
                "-".to_owned()
            } else {
                r.groups.join(",")
            };
            out.push_str(&format!(
                "{:<20} {:<21} {uid:<12} {groups:<20} {:>9} {:>10} {:>10}\n",
                r.client_id, r.remote, r.messages_in, r.bytes_in, r.queued_out
            ));
        }
        out
    }
}

/// One process in `gatewire status` (`--json`: an array of these).
#[derive(Debug, serde::Serialize)]
struct StatusRow {
    role: &'static str,
    pid: u32,
    uptime_seconds: u64,
    rss_bytes: Option<u64>,
    /// Why the process's report is missing (it did not answer in time, or not readably); its
    /// counters are then zero.
    #[serde(skip_serializing_if = "Option::is_none")]
    unanswered: Option<String>,
    connections: u64,
    messages_in: u64,
    messages_out: u64,
    /// Worker links: held by a gateway, or made by a worker process.
    links: u64,
    dropped: u64,
    events: u64,
    /// Register membership (register rows only).
    #[serde(skip_serializing_if = "Option::is_none")]
    gateways: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    workers: Option<u64>,
    /// A worker process's links, one per worker thread and listed gateway shard.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    link_states: Vec<LinkRow>,
    /// A gateway process's linked workers, per worker host (gateway rows only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    worker_hosts: Vec<WorkerHostRow>,
    /// The register's members (register rows only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    members: Vec<MemberRow>,
    /// What the process does with the store (with it on).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    store: Vec<StoreRow>,
}

fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|e| format!("\"{e}\"")) + "\n"
}

fn uptime(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 86400 {
        format!("{}d{:02}h", s / 86400, s % 86400 / 3600)
    } else {
        format!("{:02}:{:02}:{:02}", s / 3600, s % 3600 / 60, s % 60)
    }
}

/// Why a control request got no answer.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// Nothing listens on the deployment's control socket.
    #[error(
        "gatewire is not running here: no control socket at {} ({source}). Start it with \
         `gatewire start`, or point to the deployment you mean with -c FILE (its [run] dir), \
         --name NAME, or --set run.dir=DIR",
        socket.display()
    )]
    NotRunning {
        socket: std::path::PathBuf,
        source: std::io::Error,
    },
    /// The supervisor took the request but did not answer in time.
    #[error("no answer from the supervisor: {0}")]
    NoAnswer(std::io::Error),
    /// The supervisor answered that the request failed, and why.
    #[error("{0}")]
    Failed(String),
}

/// The command line's side: sends `request` to the supervisor whose socket is in `dir` and
/// returns the answer's text.
pub fn request(dir: &Path, request: &ControlRequest) -> Result<String, ControlError> {
    let socket = dir.join(super::SOCKET);
    let mut stream = UnixStream::connect(&socket)
        .map_err(|source| ControlError::NotRunning { socket, source })?;
    let answer = channel::ask(&mut stream, &request.to_string(), ANSWER_WAIT)
        .map_err(ControlError::NoAnswer)?;
    match answer.split_once('\n') {
        Some(("ok", text)) => Ok(text.to_owned()),
        Some((_, text)) => Err(ControlError::Failed(text.trim_end().to_owned())),
        None => Err(ControlError::Failed(answer)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_survive_their_text_form() {
        for request in [
            ControlRequest::Status { json: false },
            ControlRequest::Status { json: true },
            ControlRequest::Connections { json: true },
            ControlRequest::Metrics,
            ControlRequest::Reload,
            ControlRequest::ReloadTls,
            ControlRequest::Restart(Vec::new()),
            ControlRequest::Restart(vec![Role::Gateway, Role::Worker]),
            ControlRequest::Stop { graceful: true },
            ControlRequest::Stop { graceful: false },
            ControlRequest::Reach,
        ] {
            assert_eq!(request.to_string().parse::<ControlRequest>(), Ok(request));
        }
        assert!("dance".parse::<ControlRequest>().is_err());
        assert!("restart nobody".parse::<ControlRequest>().is_err());
    }
}
