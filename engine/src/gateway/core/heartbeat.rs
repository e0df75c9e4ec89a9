//! The client heartbeat (protocol §5.5), exactly GatewayWorker's: a tick every `ping_interval`
//! (every half interval when silent clients are dropped); each tick bumps a per-client counter
//! that any message resets to -1, sends `ping_data` on some ticks, and drops a client once the
//! counter reaches twice the limit.

use gatewire_proto::{Cmd, Header, Packet};

use crate::gateway::core::encode::encode_message;
use crate::gateway::core::shard::Shard;
use crate::gateway::core::stats::CloseCause;

impl Shard {
    /// Seconds between ticks, or `None` when the heartbeat is off.
    pub fn heartbeat_period(&self) -> Option<f64> {
        let interval = self.settings.ping_interval;
        if interval <= 0.0 {
            return None;
        }
        Some(if self.settings.ping_not_response_limit > 0 {
            interval / 2.0
        } else {
            interval
        })
    }

    /// One heartbeat tick over every client.
    pub fn heartbeat_tick(&mut self) {
        let limit = self.settings.ping_not_response_limit as i32;
        let ping = (!self.settings.ping_data.is_empty())
            .then(|| encode_message(self.settings.protocol, &self.settings.ping_data));
        let ids: Vec<u32> = self.clients.keys().copied().collect();
        for id in ids {
            let Some(client) = self.clients.get_mut(&id) else {
                continue;
            };
            if limit > 0 && client.ping_count >= 2 * limit {
                self.destroy_client(id, CloseCause::Heartbeat);
                continue;
            }
            client.ping_count += 1;
            let count = client.ping_count;
            if let Some(ping) = &ping {
                if count == 0 || (limit > 0 && count % 2 == 1) {
                    continue;
                }
                self.deliver(id, ping.clone());
            }
        }
    }

    /// CMD_PING to every worker (keeps NAT entries alive when lan_ip is not loopback).
    pub fn ping_workers(&mut self) {
        let Ok(ping) = Packet::new(Header::command(Cmd::Ping), "", "").to_bytes() else {
            return;
        };
        for link_id in self.workers.values().copied().collect::<Vec<_>>() {
            if let Some(link) = self.links.get_mut(&link_id) {
                link.outbox.push(ping.clone());
            }
        }
    }
}
