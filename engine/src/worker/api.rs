//! The Gateway API a worker's callbacks use (GatewayWorker's `Lib\Gateway`, protocol §7), with
//! Rust names and typed ids. Commands go over the worker's event links (fire and forget); queries
//! go over their own connections, to every gateway the registers announced.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use bytes::Bytes;
use gatewire_proto::ext::{SendToAllTarget, SendToGroup, key_list_ext};
use gatewire_proto::php::{Array, Value, serialize, unserialize};
use gatewire_proto::{ClientId, Cmd, Flags, Header, Packet};
use tracing::warn;

use super::query::{self, QueryError};
use crate::net::Outbox;

/// The gateway links of one worker thread, by `"ip:port"`.
#[derive(Debug, Default)]
pub struct Links {
    pub connected: HashMap<String, Rc<RefCell<Outbox>>>,
    /// Every address the registers announced (queries go to all of them).
    pub known: Vec<String>,
}

/// A handle on every gateway this worker knows.
#[derive(Debug, Clone)]
pub struct Gateway {
    links: Rc<RefCell<Links>>,
    secret: Rc<str>,
}

/// An answer merged from every gateway, with the ones that did not answer.
#[derive(Debug)]
pub struct Answer<T> {
    pub value: T,
    pub unreachable: Vec<QueryError>,
}

impl Gateway {
    pub(crate) fn new(links: Rc<RefCell<Links>>, secret: &str) -> Gateway {
        Gateway {
            links,
            secret: Rc::from(secret),
        }
    }

    fn packet(
        cmd: Cmd,
        connection_id: u32,
        flag: Flags,
        ext: impl Into<Bytes>,
        body: impl Into<Bytes>,
    ) -> Bytes {
        Packet::new(Header::for_connection(cmd, connection_id, flag), ext, body)
            .to_bytes()
            .unwrap_or_default()
    }

    /// Queues `packet` on the link of the gateway owning `client`; false when not connected.
    fn to_owner(&self, client: ClientId, packet: Bytes) -> bool {
        let links = self.links.borrow();
        match links.connected.get(&client.gateway().to_string()) {
            Some(outbox) => {
                outbox.borrow_mut().push(packet);
                true
            }
            None => false,
        }
    }

    /// Queues `packet` on every connected gateway link.
    fn to_every_gateway(&self, packet: Bytes) {
        for outbox in self.links.borrow().connected.values() {
            outbox.borrow_mut().push(packet.clone());
        }
    }

    fn text_flag(binary: bool) -> Flags {
        Flags::SCALAR.with_binary(binary)
    }

    /// `sendToClient`: false when the owning gateway is not connected.
    pub fn send_to_client(&self, client: ClientId, message: impl AsRef<[u8]>) -> bool {
        self.send_to_client_as(client, message, false)
    }

    /// `sendToClient` with the message type chosen (binary frames for WebSocket clients).
    pub fn send_to_client_as(
        &self,
        client: ClientId,
        message: impl AsRef<[u8]>,
        binary: bool,
    ) -> bool {
        let body = Bytes::copy_from_slice(message.as_ref());
        self.to_owner(
            client,
            Self::packet(
                Cmd::SendToOne,
                client.connection_id,
                Self::text_flag(binary),
                "",
                body,
            ),
        )
    }

    /// `sendToAll($msg)`.
    pub fn send_to_all(&self, message: impl AsRef<[u8]>) {
        let body = Bytes::copy_from_slice(message.as_ref());
        self.to_every_gateway(Self::packet(Cmd::SendToAll, 0, Flags::SCALAR, "", body));
    }

    /// `sendToAll($msg, null, $exclude)`.
    pub fn send_to_all_except(&self, message: impl AsRef<[u8]>, exclude: &[ClientId]) {
        let body = Bytes::copy_from_slice(message.as_ref());
        let links = self.links.borrow();
        for (addr, outbox) in &links.connected {
            let ids: Vec<u32> = exclude
                .iter()
                .filter(|c| c.gateway().to_string() == *addr)
                .map(|c| c.connection_id)
                .collect();
            let ext = if ids.is_empty() {
                String::new()
            } else {
                SendToAllTarget::Except(ids).to_ext()
            };
            outbox.borrow_mut().push(Self::packet(
                Cmd::SendToAll,
                0,
                Flags::SCALAR,
                ext,
                body.clone(),
            ));
        }
    }

    /// `closeClient($id, $msg)`: the message (if any) is sent, then the connection closes.
    pub fn close_client(&self, client: ClientId, message: Option<&[u8]>) -> bool {
        let (flag, body) = match message {
            Some(m) => (Flags::SCALAR, Bytes::copy_from_slice(m)),
            None => (Flags::default(), Bytes::from_static(b"N;")),
        };
        self.to_owner(
            client,
            Self::packet(Cmd::Kick, client.connection_id, flag, "", body),
        )
    }

    /// `destoryClient($id)`: closes at once.
    pub fn destroy_client(&self, client: ClientId) -> bool {
        self.to_owner(
            client,
            Self::packet(Cmd::Destroy, client.connection_id, Flags::SCALAR, "", ""),
        )
    }

    /// `bindUid($id, $uid)`.
    pub fn bind_uid(&self, client: ClientId, uid: &str) -> bool {
        let ext = Bytes::copy_from_slice(uid.as_bytes());
        self.to_owner(
            client,
            Self::packet(Cmd::BindUid, client.connection_id, Flags::SCALAR, ext, ""),
        )
    }

    /// `unbindUid($id, $uid)`.
    pub fn unbind_uid(&self, client: ClientId) -> bool {
        self.to_owner(
            client,
            Self::packet(Cmd::UnbindUid, client.connection_id, Flags::SCALAR, "", ""),
        )
    }

    /// `joinGroup($id, $group)`.
    pub fn join_group(&self, client: ClientId, group: &str) -> bool {
        let ext = Bytes::copy_from_slice(group.as_bytes());
        self.to_owner(
            client,
            Self::packet(Cmd::JoinGroup, client.connection_id, Flags::SCALAR, ext, ""),
        )
    }

    /// `leaveGroup($id, $group)`.
    pub fn leave_group(&self, client: ClientId, group: &str) -> bool {
        let ext = Bytes::copy_from_slice(group.as_bytes());
        self.to_owner(
            client,
            Self::packet(
                Cmd::LeaveGroup,
                client.connection_id,
                Flags::SCALAR,
                ext,
                "",
            ),
        )
    }

    /// `ungroup($group)`.
    pub fn ungroup(&self, group: &str) {
        let ext = Bytes::copy_from_slice(group.as_bytes());
        self.to_every_gateway(Self::packet(Cmd::Ungroup, 0, Flags::SCALAR, ext, ""));
    }

    /// `sendToUid($uids, $msg)`.
    pub fn send_to_uid(&self, uids: &[&str], message: impl AsRef<[u8]>) {
        let body = Bytes::copy_from_slice(message.as_ref());
        self.to_every_gateway(Self::packet(
            Cmd::SendToUid,
            0,
            Flags::SCALAR,
            key_list_ext(uids),
            body,
        ));
    }

    /// `sendToGroup($groups, $msg, $exclude)`.
    pub fn send_to_group(&self, groups: &[&str], message: impl AsRef<[u8]>, exclude: &[ClientId]) {
        let body = Bytes::copy_from_slice(message.as_ref());
        let links = self.links.borrow();
        for (addr, outbox) in &links.connected {
            let ids: Vec<u32> = exclude
                .iter()
                .filter(|c| c.gateway().to_string() == *addr)
                .map(|c| c.connection_id)
                .collect();
            let ext = SendToGroup::to_ext(groups, &ids);
            outbox.borrow_mut().push(Self::packet(
                Cmd::SendToGroup,
                0,
                Flags::SCALAR,
                ext,
                body.clone(),
            ));
        }
    }

    /// `setSession($id, $session)`: replaces the stored session.
    pub fn set_session(&self, client: ClientId, session: &Array) -> bool {
        let ext = serialize(&Value::Array(session.clone()));
        self.to_owner(
            client,
            Self::packet(
                Cmd::SetSession,
                client.connection_id,
                Flags::SCALAR,
                ext,
                "",
            ),
        )
    }

    /// `updateSession($id, $session)`: merged into the stored one with `array_replace_recursive`.
    pub fn update_session(&self, client: ClientId, session: &Array) -> bool {
        let ext = serialize(&Value::Array(session.clone()));
        self.to_owner(
            client,
            Self::packet(
                Cmd::UpdateSession,
                client.connection_id,
                Flags::SCALAR,
                ext,
                "",
            ),
        )
    }

    pub(crate) fn set_session_bytes(&self, client: ClientId, session: Vec<u8>) {
        self.to_owner(
            client,
            Self::packet(
                Cmd::SetSession,
                client.connection_id,
                Flags::SCALAR,
                session,
                "",
            ),
        );
    }

    fn ask_owner(&self, client: ClientId, cmd: Cmd, ext: &str) -> Result<Bytes, QueryError> {
        let packet = Packet::new(
            Header::for_connection(cmd, client.connection_id, Flags::SCALAR),
            ext.to_owned(),
            "",
        );
        query::ask(&client.gateway().to_string(), &self.secret, &packet)
    }

    fn ask_all(&self, cmd: Cmd, ext: &str) -> (Vec<Bytes>, Vec<QueryError>) {
        let known = self.links.borrow().known.clone();
        let packet = Packet::new(
            Header::for_connection(cmd, 0, Flags::SCALAR),
            ext.to_owned(),
            "",
        );
        let mut answers = Vec::new();
        let mut unreachable = Vec::new();
        for addr in known {
            match query::ask(&addr, &self.secret, &packet) {
                Ok(reply) => answers.push(reply),
                Err(e) => {
                    warn!(error = %e, "gateway query unanswered: the result is partial");
                    unreachable.push(e);
                }
            }
        }
        (answers, unreachable)
    }

    /// `isOnline($id)`.
    pub fn is_online(&self, client: ClientId) -> Result<bool, QueryError> {
        let reply = self.ask_owner(client, Cmd::IsOnline, "")?;
        Ok(matches!(unserialize(&reply), Ok(Value::Int(1))))
    }

    /// `getSession($id)`: `None` when there is no such client.
    pub fn get_session(&self, client: ClientId) -> Result<Option<Array>, QueryError> {
        let reply = self.ask_owner(client, Cmd::GetSessionByClientId, "")?;
        Ok(match unserialize(&reply) {
            Ok(Value::Array(a)) => Some(a),
            _ => None,
        })
    }

    /// `getAllClientIdCount()`: clients on every gateway.
    pub fn get_all_client_id_count(&self) -> Answer<u64> {
        self.count_by_group("")
    }

    /// `getClientIdCountByGroup($group)`.
    pub fn get_client_id_count_by_group(&self, group: &str) -> Answer<u64> {
        self.count_by_group(group)
    }

    fn count_by_group(&self, group: &str) -> Answer<u64> {
        let (answers, unreachable) = self.ask_all(Cmd::GetClientCountByGroup, group);
        let value = answers
            .iter()
            .filter_map(|r| match unserialize(r) {
                Ok(Value::Int(n)) => u64::try_from(n).ok(),
                _ => None,
            })
            .sum();
        Answer { value, unreachable }
    }
}
