//! uids and groups: BIND_UID, UNBIND_UID, JOIN_GROUP, LEAVE_GROUP, UNGROUP. Names follow PHP's
//! array-key rules ("42" and 42 are one uid); empty or "0" names are refused, as in GatewayWorker.

use gatewire_proto::Packet;
use gatewire_proto::php::{Key, Value};
use tracing::warn;

use crate::gateway::core::state::Shard;

/// The uid or group named by a raw ext, unless PHP would treat it as empty.
fn name(packet: &Packet, what: &str) -> Option<Key> {
    if !Value::Str(packet.ext.clone()).is_truthy() {
        warn!(
            "{what} {:?} is empty and was refused",
            String::from_utf8_lossy(&packet.ext)
        );
        return None;
    }
    Some(Key::from(packet.ext.clone()))
}

impl Shard {
    pub(super) fn bind_uid(&mut self, packet: &Packet) {
        let id = packet.header.connection_id;
        let Some(uid) = name(packet, "uid") else {
            return;
        };
        let Some(client) = self.clients.get_mut(&id) else {
            return;
        };
        if let Some(old) = client.membership_mut().uid.replace(uid.clone()) {
            self.uids.remove(&old, id);
        }
        self.uids.add(uid, id);
    }

    pub(super) fn unbind_uid(&mut self, packet: &Packet) {
        let id = packet.header.connection_id;
        let Some(client) = self.clients.get_mut(&id) else {
            return;
        };
        if let Some(old) = client.membership.as_mut().and_then(|m| m.uid.take()) {
            self.uids.remove(&old, id);
        }
    }

    pub(super) fn join_group(&mut self, packet: &Packet) {
        let id = packet.header.connection_id;
        let Some(group) = name(packet, "group") else {
            return;
        };
        let Some(client) = self.clients.get_mut(&id) else {
            return;
        };
        client
            .membership_mut()
            .groups
            .get_or_insert_default()
            .insert(group.clone());
        self.groups.add(group, id);
    }

    pub(super) fn leave_group(&mut self, packet: &Packet) {
        let id = packet.header.connection_id;
        let Some(group) = name(packet, "group") else {
            return;
        };
        let Some(client) = self.clients.get_mut(&id) else {
            return;
        };
        if let Some(groups) = client.membership.as_mut().and_then(|m| m.groups.as_mut()) {
            groups.shift_remove(&group);
        }
        self.groups.remove(&group, id);
    }

    /// Dissolves a group; its members stay connected.
    pub(super) fn ungroup(&mut self, packet: &Packet) {
        let Some(group) = name(packet, "group") else {
            return;
        };
        let Some(members) = self.groups.remove_key(&group) else {
            return;
        };
        for id in members {
            let client = self.clients.get_mut(&id);
            if let Some(groups) = client
                .and_then(|c| c.membership.as_mut())
                .and_then(|m| m.groups.as_mut())
            {
                groups.shift_remove(&group);
            }
        }
    }
}
