//! Sending to clients: SEND_TO_ONE, SEND_TO_ALL, SEND_TO_UID, SEND_TO_GROUP, KICK, DESTROY.
//! A broadcast body is encoded once into one `Bytes` shared by every recipient (hot path: the
//! per-recipient work is a refcount bump and a queue push).

use bytes::Bytes;
use gatewire_proto::ext::{SendToAllTarget, SendToGroup, parse_key_list};
use gatewire_proto::php::Value;
use gatewire_proto::{Packet, packet};
use tracing::warn;

use crate::gateway::core::encode::client_frame;
use crate::gateway::core::state::Shard;
use crate::gateway::core::stats::CloseCause;

impl Shard {
    /// The body encoded for this shard's clients, or `None` (logged) when it cannot be sent.
    fn frame_for(&mut self, packet: &Packet) -> Option<Bytes> {
        match client_frame(self.settings.protocol, packet.header.flag, &packet.body) {
            Ok(frame) => Some(frame),
            Err(e) => {
                warn!(error = %e, "message not sent");
                None
            }
        }
    }

    /// A command whose ext cannot be read: the link is misbehaving and is closed.
    pub(super) fn bad_ext(&mut self, link_id: u64, packet: &Packet, error: impl std::fmt::Display) {
        warn!(cmd = u8::from(packet.header.cmd), %error, "bad ext from an inner link, closing it");
        self.stats.bad_inner_packets += 1;
        self.close_link(link_id);
    }

    pub(super) fn send_to_one(&mut self, packet: &Packet) {
        let id = packet.header.connection_id;
        if !self.clients.contains_key(&id) {
            return;
        }
        if let Some(frame) = self.frame_for(packet) {
            self.deliver(id, frame);
        }
    }

    pub(super) fn send_to_all(&mut self, link_id: u64, packet: &Packet) {
        let target = match SendToAllTarget::parse(&packet.ext) {
            Ok(t) => t,
            Err(e) => return self.bad_ext(link_id, packet, e),
        };
        let Some(frame) = self.frame_for(packet) else {
            return;
        };
        let ids: Vec<u32> = match target {
            SendToAllTarget::Everyone => self.clients.keys().copied().collect(),
            SendToAllTarget::Only(ids) => ids,
            SendToAllTarget::Except(excluded) => {
                let excluded: std::collections::HashSet<u32> = excluded.into_iter().collect();
                self.clients
                    .keys()
                    .copied()
                    .filter(|id| !excluded.contains(id))
                    .collect()
            }
        };
        for id in ids {
            self.deliver(id, frame.clone());
        }
    }

    pub(super) fn send_to_uid(&mut self, link_id: u64, packet: &Packet) {
        let uids = match parse_key_list(&packet.ext) {
            Ok(u) => u,
            Err(e) => return self.bad_ext(link_id, packet, e),
        };
        let Some(frame) = self.frame_for(packet) else {
            return;
        };
        let ids: Vec<u32> = uids
            .iter()
            .filter_map(|uid| self.uids.get(uid))
            .flatten()
            .copied()
            .collect();
        for id in ids {
            self.deliver(id, frame.clone());
        }
    }

    pub(super) fn send_to_group(&mut self, link_id: u64, packet: &Packet) {
        let SendToGroup { groups, exclude } = match SendToGroup::parse(&packet.ext) {
            Ok(g) => g,
            Err(e) => return self.bad_ext(link_id, packet, e),
        };
        let Some(frame) = self.frame_for(packet) else {
            return;
        };
        // A client in two listed groups gets the message twice, as in GatewayWorker.
        let ids: Vec<u32> = groups
            .iter()
            .filter_map(|g| self.groups.get(g))
            .flatten()
            .copied()
            .filter(|id| !exclude.contains(id))
            .collect();
        for id in ids {
            self.deliver(id, frame.clone());
        }
    }

    /// Sends the body unless it is a serialized null, then closes once the output is written. No
    /// WebSocket close frame, as in GatewayWorker.
    pub(super) fn kick(&mut self, packet: &Packet) {
        let id = packet.header.connection_id;
        if !self.clients.contains_key(&id) {
            return;
        }
        let has_message = packet.header.flag.body_is_scalar()
            || packet::decode_body(packet.header.flag, &packet.body) != Value::Null;
        if has_message {
            if let Some(frame) = self.frame_for(packet) {
                self.deliver(id, frame);
            }
        }
        if let Some(client) = self.clients.get_mut(&id) {
            // Frames queued before the WebSocket handshake finished still go out first.
            client.outbox.release();
        }
        self.close_client_after_flush(id, CloseCause::Worker);
    }

    pub(super) fn destroy(&mut self, packet: &Packet) {
        let id = packet.header.connection_id;
        if self.clients.contains_key(&id) {
            self.destroy_client(id, CloseCause::Worker);
        }
    }
}
