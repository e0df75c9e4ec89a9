//! Sending to clients: `SEND_TO_ONE`, `SEND_TO_ALL` (everyone, only some, all but some),
//! `SEND_TO_UID`, `SEND_TO_GROUP`, `KICK` (a last message, then close) and `DESTROY`.

use bytes::Bytes;

use super::packet;
use crate::ext::{ExtError, SendToAllTarget, SendToGroup, key_list_ext, parse_key_list};
use crate::packet::{Cmd, Flags, Packet, decode_body};
use crate::php::{Key, Value};

/// What a send carries: the body as the worker wrote it and the flags saying how to read it
/// (scalar or serialized, binary WebSocket frame or text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    pub flag: Flags,
    pub body: Bytes,
}

impl Payload {
    /// A message of raw bytes (PHP's scalar body), as text or as a binary frame.
    pub fn new(body: impl Into<Bytes>, binary: bool) -> Payload {
        Payload {
            flag: Flags::SCALAR.with_binary(binary),
            body: body.into(),
        }
    }

    fn of(packet: &Packet) -> Payload {
        Payload {
            flag: packet.header.flag,
            body: packet.body.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum SendCommand {
    /// `sendToClient`: to one connection of this gateway.
    ToOne {
        connection_id: u32,
        message: Payload,
    },
    /// `sendToAll`: to everyone, only some connections, or all but some.
    ToAll {
        target: SendToAllTarget,
        message: Payload,
    },
    /// `sendToUid`: to every connection bound to one of the uids.
    ToUid { uids: Vec<Key>, message: Payload },
    /// `sendToGroup`: to the members of each group (twice to a member of two), minus excluded.
    ToGroup {
        target: SendToGroup,
        message: Payload,
    },
    /// `closeClient`: the message if there is one (a serialized null is none), then close once
    /// written.
    Kick {
        connection_id: u32,
        message: Option<Payload>,
    },
    /// `destoryClient`: close at once.
    Destroy { connection_id: u32 },
}

impl SendCommand {
    pub(super) fn from_packet(packet: &Packet) -> Result<Option<SendCommand>, ExtError> {
        let id = packet.header.connection_id;
        Ok(Some(match packet.header.cmd {
            Cmd::SendToOne => SendCommand::ToOne {
                connection_id: id,
                message: Payload::of(packet),
            },
            Cmd::SendToAll => SendCommand::ToAll {
                target: SendToAllTarget::parse(&packet.ext)?,
                message: Payload::of(packet),
            },
            Cmd::SendToUid => SendCommand::ToUid {
                uids: parse_key_list(&packet.ext)?,
                message: Payload::of(packet),
            },
            Cmd::SendToGroup => SendCommand::ToGroup {
                target: SendToGroup::parse(&packet.ext)?,
                message: Payload::of(packet),
            },
            Cmd::Kick => {
                let flag = packet.header.flag;
                let has_message =
                    flag.body_is_scalar() || decode_body(flag, &packet.body) != Value::Null;
                SendCommand::Kick {
                    connection_id: id,
                    message: has_message.then(|| Payload::of(packet)),
                }
            }
            Cmd::Destroy => SendCommand::Destroy { connection_id: id },
            _ => return Ok(None),
        }))
    }

    pub(super) fn to_packet(&self) -> Packet {
        match self {
            SendCommand::ToOne {
                connection_id,
                message,
            } => packet(
                Cmd::SendToOne,
                *connection_id,
                message.flag,
                "",
                message.body.clone(),
            ),
            SendCommand::ToAll { target, message } => packet(
                Cmd::SendToAll,
                0,
                message.flag,
                target.to_ext(),
                message.body.clone(),
            ),
            SendCommand::ToUid { uids, message } => {
                let names: Vec<String> = uids.iter().map(key_text).collect();
                packet(
                    Cmd::SendToUid,
                    0,
                    message.flag,
                    key_list_ext(&names),
                    message.body.clone(),
                )
            }
            SendCommand::ToGroup { target, message } => {
                let names: Vec<String> = target.groups.iter().map(key_text).collect();
                packet(
                    Cmd::SendToGroup,
                    0,
                    message.flag,
                    SendToGroup::to_ext(&names, &target.exclude),
                    message.body.clone(),
                )
            }
            // PHP's closeClient without a message sends a serialized null.
            SendCommand::Kick {
                connection_id,
                message,
            } => match message {
                Some(m) => packet(Cmd::Kick, *connection_id, m.flag, "", m.body.clone()),
                None => packet(Cmd::Kick, *connection_id, Flags::default(), "", "N;"),
            },
            SendCommand::Destroy { connection_id } => {
                packet(Cmd::Destroy, *connection_id, Flags::SCALAR, "", "")
            }
        }
    }
}

fn key_text(key: &Key) -> String {
    String::from_utf8_lossy(&key.to_bytes()).into_owned()
}
