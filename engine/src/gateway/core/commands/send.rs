//! Sending to clients: SEND_TO_ONE, SEND_TO_ALL, SEND_TO_UID, SEND_TO_GROUP, KICK, DESTROY.
//! A broadcast body is encoded once per shard into one [`Frame::shared`] every recipient queues
//! (hot path: the per-recipient work is a plain, non-atomic refcount bump and a queue push);
//! with `gateway.compression`, it is also compressed once per shard, on the first recipient that
//! negotiated permessage-deflate, and that frame is shared by all of them.

use bytes::Bytes;
use gatewire_proto::command::{Payload, SendCommand};
use gatewire_proto::ext::{SendToAllTarget, SendToGroup};

use gatewire_proto::websocket::{OpCode, compressed_frame, deflate};

use crate::gateway::core::encode::{client_frame, websocket_parts};
use crate::gateway::core::shard::Shard;
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

    /// A message on its way to this shard's clients; `shared` when many get it (a fanout).
    fn outgoing(&mut self, message: &Payload, shared: bool) -> Option<Outgoing> {
        let bytes = self.frame_for(message)?;
        let deflatable = match self.settings.compression {
            true => websocket_parts(self.settings.protocol, message.flag, &message.body)
                .filter(|(_, payload)| payload.len() >= self.settings.compression_min_size),
            false => None,
        };
        let plain = match shared {
            true => Frame::shared(&bytes),
            false => Frame::from(bytes),
        };
        Some(Outgoing {
            plain,
            deflatable,
            compressed: None,
            shared,
        })
    }

    /// Queues `out` for client `id`: compressed when the client negotiated permessage-deflate and
    /// the message fits its window (compressed once, on the first such client), plain otherwise.
    fn deliver_outgoing(&mut self, id: u32, out: &mut Outgoing) {
        let frame = match &out.deflatable {
            Some((opcode, payload))
                if self.clients.get(&id).is_some_and(|c| {
                    c.deflate_window_bits > 0 && payload.len() <= 1 << c.deflate_window_bits
                }) =>
            {
                self.stats.compressed_deliveries += 1;
                let stats = &mut self.stats;
                out.compressed
                    .get_or_insert_with(|| {
                        stats.compressions += 1;
                        let wire = compressed_frame(*opcode, &deflate::compress(payload));
                        match out.shared {
                            true => Frame::shared(&wire),
                            false => Frame::from(wire),
                        }
                    })
                    .clone()
            }
            _ => out.plain.clone(),
        };
        // A fanout wakes its writers (they take turns with the shard's I/O); a reply to one
        // client is written at the end of the link's batch.
        self.queue_frame(id, frame, !out.shared);
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
        if let Some(mut out) = self.outgoing(message, false) {
            self.deliver_outgoing(id, &mut out);
        }
    }

    fn send_to_all(&mut self, target: SendToAllTarget, message: &Payload) {
        let Some(mut out) = self.outgoing(message, true) else {
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
            self.deliver_outgoing(id, &mut out);
        }
    }

    fn send_to_uid(&mut self, uids: &[gatewire_proto::Key], message: &Payload) {
        let Some(mut out) = self.outgoing(message, true) else {
            return;
        };
        let ids: Vec<u32> = uids
            .iter()
            .filter_map(|uid| self.uids.get(uid))
            .flatten()
            .copied()
            .collect();
        for id in ids {
            self.deliver_outgoing(id, &mut out);
        }
    }

    fn send_to_group(&mut self, target: SendToGroup, message: &Payload) {
        let SendToGroup { groups, exclude } = target;
        let Some(mut out) = self.outgoing(message, true) else {
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
            self.deliver_outgoing(id, &mut out);
        }
    }

    /// Sends the last message (if any), then closes once the output is written. No WebSocket
    /// close frame, as in GatewayWorker.
    fn kick(&mut self, id: u32, message: Option<&Payload>) {
        if !self.clients.contains_key(&id) {
            return;
        }
        if let Some(mut out) = message.and_then(|m| self.outgoing(m, false)) {
            self.deliver_outgoing(id, &mut out);
        }
        if let Some(client) = self.clients.get_mut(&id) {
            // Frames queued before the WebSocket handshake finished still go out first.
            client.outbox.release();
        }
        self.close_client_after_flush(id, CloseCause::Worker);
    }
}

/// A message on its way to some of a shard's clients: the plain frame, and, with compression on
/// and the message long enough, its payload for the clients that negotiated permessage-deflate,
/// compressed at most once.
struct Outgoing {
    plain: Frame,
    deflatable: Option<(OpCode, Bytes)>,
    compressed: Option<Frame>,
    /// Many clients get it: frames are `Frame::shared`.
    shared: bool,
}
