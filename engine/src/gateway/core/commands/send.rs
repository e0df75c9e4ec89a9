//! Sending to clients: SEND_TO_ONE, SEND_TO_ALL, SEND_TO_UID, SEND_TO_GROUP, KICK, DESTROY.
//! A broadcast body is encoded once per shard into one [`Frame::shared`] every recipient queues
//! (hot path: the per-recipient work is a plain, non-atomic refcount bump and a queue push).

use bytes::Bytes;
use gatewire_proto::command::{Payload, SendCommand};
use gatewire_proto::ext::{SendToAllTarget, SendToGroup};

use crate::gateway::core::encode::client_frame;
use crate::gateway::core::state::Shard;
use crate::gateway::core::stats::CloseCause;
use crate::net::Frame;

impl Shard {
    pub(super) fn apply_send(&mut self, command: SendCommand) {
        match command {
            SendCommand::ToOne {
                connection_id,
                message,
            } => self.send_to_one(connection_id, &message),
            SendCommand::ToAll { target, message } => self.send_to_all(target, &message),
            SendCommand::ToUid { uids, message } => self.send_to_uid(&uids, &message),
            SendCommand::ToGroup { target, message } => self.send_to_group(target, &message),
            SendCommand::Kick {
                connection_id,
                message,
            } => self.kick(connection_id, message.as_ref()),
            SendCommand::Destroy { connection_id } => {
                if self.clients.contains_key(&connection_id) {
                    self.destroy_client(connection_id, CloseCause::Worker);
                }
            }
        }
    }

    /// The body encoded once for many of this shard's clients.
    fn shared_frame_for(&mut self, message: &Payload) -> Option<Frame> {
        self.frame_for(message).map(|bytes| Frame::shared(&bytes))
    }

    /// The body encoded for this shard's clients, or `None` (logged) when it cannot be sent.
    fn frame_for(&mut self, message: &Payload) -> Option<Bytes> {
        match client_frame(self.settings.protocol, message.flag, &message.body) {
            Ok(frame) => Some(frame),
            Err(e) => {
                crate::log_limit::warn_limited(
                    "message not sent",
                    &format!(
                        "a message could not be framed for this shard's clients ({e}); not sent"
                    ),
                );
                None
            }
        }
    }

    fn send_to_one(&mut self, id: u32, message: &Payload) {
        if !self.clients.contains_key(&id) {
            return;
        }
        if let Some(frame) = self.frame_for(message) {
            self.deliver(id, frame);
        }
    }

    fn send_to_all(&mut self, target: SendToAllTarget, message: &Payload) {
        let Some(frame) = self.shared_frame_for(message) else {
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

    fn send_to_uid(&mut self, uids: &[gatewire_proto::Key], message: &Payload) {
        let Some(frame) = self.shared_frame_for(message) else {
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

    fn send_to_group(&mut self, target: SendToGroup, message: &Payload) {
        let SendToGroup { groups, exclude } = target;
        let Some(frame) = self.shared_frame_for(message) else {
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

    /// Sends the last message (if any), then closes once the output is written. No WebSocket
    /// close frame, as in GatewayWorker.
    fn kick(&mut self, id: u32, message: Option<&Payload>) {
        if !self.clients.contains_key(&id) {
            return;
        }
        if let Some(frame) = message.and_then(|m| self.frame_for(m)) {
            self.deliver(id, frame);
        }
        if let Some(client) = self.clients.get_mut(&id) {
            // Frames queued before the WebSocket handshake finished still go out first.
            client.outbox.release();
        }
        self.close_client_after_flush(id, CloseCause::Worker);
    }
}
