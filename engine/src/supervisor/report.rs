//! What a child reports to its supervisor, as JSON: one [`ProcessReport`] for `status`, one
//! [`ConnectionRow`] per line for `connections`. The same types are what `gatewire status
//! --json` and `gatewire connections --json` print, so a field is named once. A report that does
//! not parse is an error naming the child, never a row of zeros.

use serde::{Deserialize, Serialize};

use crate::process::{ProcessStatus, Running, StoreSummary};

/// One process's counters and the tables of its roles (empty for roles it does not run).
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct ProcessReport {
    pub status: ProcessStatus,
    /// A worker process's links, one per worker thread and listed gateway shard.
    pub link_states: Vec<LinkRow>,
    /// A gateway process's linked workers, per worker host.
    pub worker_hosts: Vec<WorkerHostRow>,
    /// The register's members.
    pub members: Vec<MemberRow>,
    /// What the process does with the store (with it on).
    pub store: Vec<StoreRow>,
}

impl ProcessReport {
    /// The child's side: everything `running` reports.
    pub fn of(running: &Running) -> ProcessReport {
        ProcessReport {
            status: running.status(),
            link_states: running
                .links()
                .into_iter()
                .map(|(worker, l)| LinkRow {
                    worker,
                    gateway: l.gateway,
                    state: if l.up { "up" } else { "down" }.to_owned(),
                    since_unix: unix_seconds(l.since),
                })
                .collect(),
            worker_hosts: running
                .worker_hosts()
                .into_iter()
                .map(|(host, links)| WorkerHostRow { host, links })
                .collect(),
            members: running
                .members()
                .into_iter()
                .map(|m| MemberRow {
                    kind: if m.announces.is_some() {
                        "gateway"
                    } else {
                        "worker"
                    }
                    .to_owned(),
                    from: m.from.to_string(),
                    announces: m.announces,
                    since_unix: unix_seconds(m.since),
                })
                .collect(),
            store: running
                .store_summary()
                .into_iter()
                .map(StoreRow::from)
                .collect(),
        }
    }
}

/// A process's side of the store: a gateway's store thread, or a worker's routing.
#[derive(Debug, Serialize, Deserialize)]
pub struct StoreRow {
    /// "gateway" or "worker".
    pub side: String,
    pub redis_url: String,
    /// Gateway: whether its store thread is connected to Redis.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connected: Option<bool>,
    /// Gateway: uid and group entries its shards hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entries: Option<u64>,
    /// Gateway: failed connections and writes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errors: Option<u64>,
    /// Worker: uid and group commands and queries sent, the gateway packets they took, and
    /// those sent to every gateway because the store did not answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routed: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub packets: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallbacks: Option<u64>,
}

impl From<StoreSummary> for StoreRow {
    fn from(summary: StoreSummary) -> StoreRow {
        match summary {
            StoreSummary::Gateway {
                redis_url,
                connected,
                entries,
                errors,
            } => StoreRow {
                side: "gateway".into(),
                redis_url,
                connected: Some(connected),
                entries: Some(entries),
                errors: Some(errors),
                routed: None,
                packets: None,
                fallbacks: None,
            },
            StoreSummary::Worker {
                redis_url,
                routed,
                packets,
                fallbacks,
            } => StoreRow {
                side: "worker".into(),
                redis_url,
                connected: None,
                entries: None,
                errors: None,
                routed: Some(routed),
                packets: Some(packets),
                fallbacks: Some(fallbacks),
            },
        }
    }
}

impl StoreRow {
    /// One line of `gatewire status`.
    pub fn describe(&self, role: &str, pid: u32) -> String {
        match (self.connected, self.routed) {
            (Some(connected), _) => format!(
                "{role} {pid}: {} {}, {} uid/group entries held, {} errors",
                if connected {
                    "connected to"
                } else {
                    "NOT connected to"
                },
                self.redis_url,
                self.entries.unwrap_or_default(),
                self.errors.unwrap_or_default()
            ),
            (_, Some(routed)) => format!(
                "{role} {pid}: {routed} uid/group commands and queries took {} gateway packets, \
                 {} sent to every gateway because the store did not answer",
                self.packets.unwrap_or_default(),
                self.fallbacks.unwrap_or_default()
            ),
            _ => String::new(),
        }
    }
}

/// The worker links a gateway process holds from one host (all its shards).
#[derive(Debug, Serialize, Deserialize)]
pub struct WorkerHostRow {
    pub host: String,
    pub links: u64,
}

/// One member of a register: a gateway shard announcing its inner address, or a worker (or
/// GatewayClient) following the list.
#[derive(Debug, Serialize, Deserialize)]
pub struct MemberRow {
    /// "gateway" or "worker".
    pub kind: String,
    /// The member's address as the register sees it.
    pub from: String,
    /// The inner address a gateway announced.
    pub announces: Option<String>,
    /// When it connected (Unix seconds).
    pub since_unix: u64,
}

/// One worker thread's link to one gateway shard.
#[derive(Debug, Serialize, Deserialize)]
pub struct LinkRow {
    pub worker: String,
    pub gateway: String,
    /// "up" or "down".
    pub state: String,
    /// When it last went up or down (Unix seconds).
    pub since_unix: u64,
}

/// One client in `gatewire connections` (`--json`: an array of these).
#[derive(Debug, Serialize, Deserialize)]
pub struct ConnectionRow {
    pub client_id: String,
    pub remote: String,
    pub uid: Option<String>,
    pub groups: Vec<String>,
    pub messages_in: u64,
    pub bytes_in: u64,
    pub queued_out: u64,
}

impl ConnectionRow {
    /// The child's side: every client of `running`'s gateway shards, one JSON object per line.
    pub fn lines_of(running: &Running) -> String {
        let mut out = String::new();
        for c in running.connections() {
            let row = ConnectionRow {
                client_id: c.client_id.to_string(),
                remote: c.remote.to_string(),
                uid: c.uid,
                groups: c.groups,
                messages_in: c.messages_in,
                bytes_in: c.bytes_in,
                queued_out: c.queued_out,
            };
            if let Ok(line) = serde_json::to_string(&row) {
                out.push_str(&line);
                out.push('\n');
            }
        }
        out
    }
}

fn unix_seconds(at: std::time::SystemTime) -> u64 {
    at.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_survives_its_json_form() {
        let report = ProcessReport {
            status: ProcessStatus {
                connections: 7,
                events: 3,
                ..ProcessStatus::default()
            },
            link_states: vec![LinkRow {
                worker: "127.0.0.1:w".into(),
                gateway: "127.0.0.1:2900".into(),
                state: "up".into(),
                since_unix: 1_700_000_000,
            }],
            store: vec![StoreRow::from(StoreSummary::Worker {
                redis_url: "redis://127.0.0.1/".into(),
                routed: 5,
                packets: 6,
                fallbacks: 0,
            })],
            ..ProcessReport::default()
        };
        let back: ProcessReport =
            serde_json::from_str(&serde_json::to_string(&report).unwrap()).unwrap();
        assert_eq!(back.status, report.status);
        assert_eq!(back.link_states[0].gateway, "127.0.0.1:2900");
        assert_eq!(back.store[0].routed, Some(5));
        assert_eq!(back.store[0].connected, None);
    }
}
