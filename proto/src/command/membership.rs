//! Uids and groups: `BIND_UID`, `UNBIND_UID`, `JOIN_GROUP`, `LEAVE_GROUP`, `UNGROUP`. The uid or
//! group travels as the ext; a gateway refuses an empty (PHP-falsy) one when applying.

use super::{name, packet};
use crate::packet::{Cmd, Flags, Packet};
use crate::php::Key;

#[derive(Debug, Clone, PartialEq)]
pub enum Membership {
    /// `bindUid`: the connection's uid (replacing any).
    BindUid { connection_id: u32, uid: Key },
    /// `unbindUid`: the connection has no uid any more.
    UnbindUid { connection_id: u32 },
    /// `joinGroup`.
    JoinGroup { connection_id: u32, group: Key },
    /// `leaveGroup`.
    LeaveGroup { connection_id: u32, group: Key },
    /// `ungroup`: the group is emptied on this gateway.
    Ungroup { group: Key },
}

impl Membership {
    pub(super) fn from_packet(packet: &Packet) -> Option<Membership> {
        let connection_id = packet.header.connection_id;
        Some(match packet.header.cmd {
            Cmd::BindUid => Membership::BindUid {
                connection_id,
                uid: name(packet),
            },
            Cmd::UnbindUid => Membership::UnbindUid { connection_id },
            Cmd::JoinGroup => Membership::JoinGroup {
                connection_id,
                group: name(packet),
            },
            Cmd::LeaveGroup => Membership::LeaveGroup {
                connection_id,
                group: name(packet),
            },
            Cmd::Ungroup => Membership::Ungroup {
                group: name(packet),
            },
            _ => return None,
        })
    }

    pub(super) fn to_packet(&self) -> Packet {
        let (cmd, id, ext) = match self {
            Membership::BindUid { connection_id, uid } => (Cmd::BindUid, *connection_id, uid),
            Membership::UnbindUid { connection_id } => {
                return packet(Cmd::UnbindUid, *connection_id, Flags::SCALAR, "", "");
            }
            Membership::JoinGroup {
                connection_id,
                group,
            } => (Cmd::JoinGroup, *connection_id, group),
            Membership::LeaveGroup {
                connection_id,
                group,
            } => (Cmd::LeaveGroup, *connection_id, group),
            Membership::Ungroup { group } => (Cmd::Ungroup, 0, group),
        };
        packet(cmd, id, Flags::SCALAR, ext.to_bytes(), "")
    }
}
