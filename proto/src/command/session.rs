//! Sessions: `SET_SESSION` replaces a connection's stored session, `UPDATE_SESSION` merges into
//! it (PHP's `array_replace_recursive`). Both carry a serialized array as the ext.

use bytes::Bytes;

use super::packet;
use crate::packet::{Cmd, Flags, Packet};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Session {
    /// `setSession`: the serialized session.
    Set { connection_id: u32, session: Bytes },
    /// `updateSession`: the serialized update.
    Update { connection_id: u32, update: Bytes },
}

impl Session {
    pub(super) fn from_packet(packet: &Packet) -> Option<Session> {
        let connection_id = packet.header.connection_id;
        Some(match packet.header.cmd {
            Cmd::SetSession => Session::Set {
                connection_id,
                session: packet.ext.clone(),
            },
            Cmd::UpdateSession => Session::Update {
                connection_id,
                update: packet.ext.clone(),
            },
            _ => return None,
        })
    }

    pub(super) fn to_packet(&self) -> Packet {
        match self {
            Session::Set {
                connection_id,
                session,
            } => packet(
                Cmd::SetSession,
                *connection_id,
                Flags::SCALAR,
                session.clone(),
                "",
            ),
            Session::Update {
                connection_id,
                update,
            } => packet(
                Cmd::UpdateSession,
                *connection_id,
                Flags::SCALAR,
                update.clone(),
                "",
            ),
        }
    }
}
