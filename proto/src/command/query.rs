//! Queries (protocol §5.7): the gateway answers each on the link it came in on, with a
//! length-prefixed serialized value (see `query_reply`). Asked with a scalar flag and the
//! argument as the ext, as PHP's `Lib\Gateway` asks.

use super::{name, packet};
use crate::ext::{ExtError, Select, key_list_ext, parse_key_list};
use crate::packet::{Cmd, Flags, Packet};
use crate::php::Key;

#[derive(Debug, Clone, PartialEq)]
pub enum Query {
    /// `getSession`: the connection's serialized session (`N;` when it is not here).
    GetSession { connection_id: u32 },
    /// Every connection's session, by connection id.
    GetAllClientSessions,
    /// `isOnline`: 1 or 0.
    IsOnline { connection_id: u32 },
    /// The connection ids bound to a uid.
    GetClientIdByUid { uid: Key },
    /// The connection ids of each uid.
    BatchGetClientIdByUid { uids: Vec<Key> },
    /// The sessions of a group's members, by connection id.
    GetClientSessionsByGroup { group: Key },
    /// A group's size, or with `None` every connection of the gateway.
    GetClientCountByGroup { group: Option<Key> },
    /// The size of each group.
    BatchGetClientCountByGroup { groups: Vec<Key> },
    /// The names of the groups that have members.
    GetGroupIdList,
    /// Fields (uid, groups, session) of the connections a filter picks.
    Select(Select),
}

impl Query {
    pub(super) fn from_packet(packet: &Packet) -> Result<Option<Query>, ExtError> {
        let connection_id = packet.header.connection_id;
        Ok(Some(match packet.header.cmd {
            Cmd::GetSessionByClientId => Query::GetSession { connection_id },
            Cmd::GetAllClientSessions => Query::GetAllClientSessions,
            Cmd::IsOnline => Query::IsOnline { connection_id },
            Cmd::GetClientIdByUid => Query::GetClientIdByUid { uid: name(packet) },
            Cmd::BatchGetClientIdByUid => Query::BatchGetClientIdByUid {
                uids: parse_key_list(&packet.ext)?,
            },
            Cmd::GetClientSessionsByGroup => Query::GetClientSessionsByGroup {
                group: name(packet),
            },
            Cmd::GetClientCountByGroup => Query::GetClientCountByGroup {
                group: (!packet.ext.is_empty()).then(|| name(packet)),
            },
            Cmd::BatchGetClientCountByGroup => Query::BatchGetClientCountByGroup {
                groups: parse_key_list(&packet.ext)?,
            },
            Cmd::GetGroupIdList => Query::GetGroupIdList,
            Cmd::Select => Query::Select(Select::parse(&packet.ext)?),
            _ => return Ok(None),
        }))
    }

    pub(super) fn to_packet(&self) -> Packet {
        let list = |keys: &[Key]| {
            let names: Vec<String> = keys
                .iter()
                .map(|k| String::from_utf8_lossy(&k.to_bytes()).into_owned())
                .collect();
            key_list_ext(&names)
        };
        let (cmd, id, ext): (Cmd, u32, bytes::Bytes) = match self {
            Query::GetSession { connection_id } => (
                Cmd::GetSessionByClientId,
                *connection_id,
                Default::default(),
            ),
            Query::GetAllClientSessions => (Cmd::GetAllClientSessions, 0, Default::default()),
            Query::IsOnline { connection_id } => {
                (Cmd::IsOnline, *connection_id, Default::default())
            }
            Query::GetClientIdByUid { uid } => (Cmd::GetClientIdByUid, 0, uid.to_bytes()),
            Query::BatchGetClientIdByUid { uids } => {
                (Cmd::BatchGetClientIdByUid, 0, list(uids).into())
            }
            Query::GetClientSessionsByGroup { group } => {
                (Cmd::GetClientSessionsByGroup, 0, group.to_bytes())
            }
            Query::GetClientCountByGroup { group } => (
                Cmd::GetClientCountByGroup,
                0,
                group.as_ref().map(Key::to_bytes).unwrap_or_default(),
            ),
            Query::BatchGetClientCountByGroup { groups } => {
                (Cmd::BatchGetClientCountByGroup, 0, list(groups).into())
            }
            Query::GetGroupIdList => (Cmd::GetGroupIdList, 0, Default::default()),
            Query::Select(select) => (
                Cmd::Select,
                0,
                Select::to_ext(&select.fields, select.filter.as_ref()).into(),
            ),
        };
        packet(cmd, id, Flags::SCALAR, ext, "")
    }
}
