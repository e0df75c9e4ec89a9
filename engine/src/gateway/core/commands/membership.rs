//! uids and groups: BIND_UID, UNBIND_UID, JOIN_GROUP, LEAVE_GROUP, UNGROUP. Names follow PHP's
//! array-key rules ("42" and 42 are one uid); empty or "0" names are refused, as in GatewayWorker.

use gatewire_proto::command::Membership;
use gatewire_proto::php::Key;

use crate::gateway::core::shard::Shard;

/// A uid or group name that PHP would take: an empty or falsy one ("", "0") is refused.
fn usable(name: Key, what: &str) -> Option<Key> {
    if !name.to_value().is_truthy() {
        crate::log_limit::warn_limited(
            "empty uid or group",
            &format!(
                "{what} {:?} is empty and was refused",
                String::from_utf8_lossy(&name.to_bytes())
            ),
        );
        return None;
    }
    Some(name)
}

impl Shard {
    pub(super) fn apply_membership(&mut self, command: Membership) {
        match command {
            Membership::BindUid { connection_id, uid } => self.bind_uid(connection_id, uid),
            Membership::UnbindUid { connection_id } => self.unbind_uid(connection_id),
            Membership::JoinGroup {
                connection_id,
                group,
            } => self.join_group(connection_id, group),
            Membership::LeaveGroup {
                connection_id,
                group,
            } => self.leave_group(connection_id, group),
            Membership::Ungroup { group } => self.ungroup(group),
        }
    }

    pub(in crate::gateway::core) fn bind_uid(&mut self, id: u32, uid: Key) {
        let Some(uid) = usable(uid, "uid") else {
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

    fn unbind_uid(&mut self, id: u32) {
        let Some(client) = self.clients.get_mut(&id) else {
            return;
        };
        if let Some(old) = client.membership.as_mut().and_then(|m| m.uid.take()) {
            self.uids.remove(&old, id);
        }
    }

    pub(in crate::gateway::core) fn join_group(&mut self, id: u32, group: Key) {
        let Some(group) = usable(group, "group") else {
            return;
        };
        let Some(client) = self.clients.get_mut(&id) else {
            return;
        };
        let joined = client
            .membership_mut()
            .groups
            .get_or_insert_default()
            .insert(group.clone());
        if joined {
            self.group_joined(id, &group);
        }
        self.groups.add(group, id);
    }

    fn leave_group(&mut self, id: u32, group: Key) {
        let Some(group) = usable(group, "group") else {
            return;
        };
        let Some(client) = self.clients.get_mut(&id) else {
            return;
        };
        let left = client
            .membership
            .as_mut()
            .and_then(|m| m.groups.as_mut())
            .is_some_and(|groups| groups.shift_remove(&group));
        self.groups.remove(&group, id);
        if left {
            self.group_left(id, &group);
        }
    }

    fn ungroup(&mut self, group: Key) {
        let Some(group) = usable(group, "group") else {
            return;
        };
        let Some(members) = self.groups.remove_key(&group) else {
            return;
        };
        for id in members {
            let client = self.clients.get_mut(&id);
            let left = client
                .and_then(|c| c.membership.as_mut())
                .and_then(|m| m.groups.as_mut())
                .is_some_and(|groups| groups.shift_remove(&group));
            if left {
                self.group_left(id, &group);
            }
        }
    }
}
