//! The [`Gateway`] handle and its commands (GatewayWorker's `Lib\Gateway`, protocol §7), with
//! Rust names and typed ids. Commands go over a worker's event links, or, for a GatewayClient,
//! over a fresh connection each (see `transport`); the queries are in `queries`.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use bytes::Bytes;
use gatewire_proto::ClientId;
use gatewire_proto::command::{self, Command, Membership, SendCommand, Session};
use gatewire_proto::ext::{SendToAllTarget, SendToGroup};
use gatewire_proto::php::{Array, Key, Value, serialize};
use tracing::warn;

use super::links::Links;
use super::message::Message;
use super::transport::{self, QueryError};
use crate::store::{Kind, ROUTING, Resolver};
use std::sync::atomic::Ordering;

/// How commands reach the gateways.
#[derive(Debug, Clone)]
pub(super) enum Transport {
    /// A worker's persistent, authorized event links.
    Links(Rc<RefCell<Links>>),
    /// A GatewayClient: a fresh connection per command, to addresses from the registers.
    Direct(Rc<super::Directory>),
}

/// A handle on every gateway: a worker's links, or a GatewayClient's direct connections.
#[derive(Debug, Clone)]
pub struct Gateway {
    pub(super) transport: Transport,
    pub(super) secret: Rc<str>,
    /// With the store on: where uids and groups are held.
    pub(super) store: Option<Rc<Resolver>>,
}

/// An answer merged from every gateway, with the gateways that did not answer.
#[derive(Debug)]
pub struct Answer<T> {
    pub value: T,
    pub unreachable: Vec<QueryError>,
}

impl<T> Answer<T> {
    /// Whether every gateway answered.
    pub fn is_complete(&self) -> bool {
        self.unreachable.is_empty()
    }

    /// The same answer with its value transformed (the unreachable gateways carry over).
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Answer<U> {
        Answer {
            value: f(self.value),
            unreachable: self.unreachable,
        }
    }
}

/// Each group's members with their uid (if bound).
pub(super) type GroupMembers = BTreeMap<String, Vec<(ClientId, Option<String>)>>;

/// The connection ids of `clients` owned by the gateway at `addr`.
fn ids_on(clients: &[ClientId], addr: &str) -> Vec<u32> {
    clients
        .iter()
        .filter(|c| c.gateway().to_string() == addr)
        .map(|c| c.connection_id)
        .collect()
}

/// The client id for connection `id` on the gateway at `addr`.
pub(super) fn client_on(addr: &str, id: u32) -> Option<ClientId> {
    let gateway: std::net::SocketAddrV4 = addr.parse().ok()?;
    Some(ClientId::new(*gateway.ip(), gateway.port(), id))
}

pub(super) fn key_text(key: &Key) -> String {
    String::from_utf8_lossy(&key.to_bytes()).into_owned()
}

impl Gateway {
    pub(crate) fn new(links: Rc<RefCell<Links>>, secret: &str) -> Gateway {
        Gateway {
            transport: Transport::Links(links),
            secret: Rc::from(secret),
            store: None,
        }
    }

    /// The same handle routing uid and group commands through `store` (see [`crate::store`]).
    pub(crate) fn with_store(mut self, store: Option<Resolver>) -> Gateway {
        self.store = store.map(Rc::new);
        self
    }

    /// Of `candidates`, the gateways a command or query about `names` must reach: every one,
    /// or with the store on, those holding one of `names` and those that do not write to the
    /// store. `None` names (a command about connections, or everyone) keeps every candidate.
    pub(super) fn gateways_for(
        &self,
        names: Option<&[(Kind, Key)]>,
        candidates: Vec<String>,
    ) -> Vec<String> {
        let Some(names) = names else {
            return candidates;
        };
        let targets = match &self.store {
            None => candidates,
            Some(store) => {
                let texts: Vec<Bytes> = names.iter().map(|(_, k)| k.to_bytes()).collect();
                let pairs: Vec<(Kind, &[u8])> = names
                    .iter()
                    .zip(&texts)
                    .map(|((kind, _), text)| (*kind, text.as_ref()))
                    .collect();
                store.targets(&pairs, candidates)
            }
        };
        ROUTING.sends.fetch_add(1, Ordering::Relaxed);
        ROUTING
            .packets
            .fetch_add(targets.len() as u64, Ordering::Relaxed);
        targets
    }

    /// Remembers that this handle bound `name` on `client`'s gateway (the store learns of it a
    /// little later; see [`crate::store::recent::RECENT`]).
    fn noted(&self, kind: Kind, client: ClientId, name: &str) {
        if let Some(store) = &self.store {
            store.noted(kind, name.as_bytes(), client.gateway().to_string());
        }
    }

    pub(crate) fn direct(directory: Rc<super::Directory>, secret: &str) -> Gateway {
        Gateway {
            transport: Transport::Direct(directory),
            secret: Rc::from(secret),
            store: None,
        }
    }

    /// Every gateway address the registers announced.
    pub(super) fn known(&self) -> Vec<String> {
        match &self.transport {
            Transport::Links(links) => links.borrow().known.iter().cloned().collect(),
            Transport::Direct(directory) => directory.addresses(),
        }
    }

    /// Where "every gateway" commands go: a worker's connected links, or every announced gateway.
    fn command_targets(&self) -> Vec<String> {
        match &self.transport {
            Transport::Links(links) => links
                .borrow()
                .connected
                .values()
                .map(|link| link.address.clone())
                .collect(),
            Transport::Direct(directory) => directory.addresses(),
        }
    }

    fn to_address(&self, address: &str, packet: Option<Bytes>) -> bool {
        let Some(packet) = packet else {
            return false;
        };
        match &self.transport {
            Transport::Links(links) => match address.parse() {
                Ok(gateway) => links.borrow_mut().push(gateway, packet),
                Err(_) => false,
            },
            Transport::Direct(_) => match transport::send(address, &self.secret, &packet) {
                Ok(()) => true,
                Err(e) => {
                    warn!(error = %e, "command not delivered");
                    false
                }
            },
        }
    }

    /// Sends `packet` to the gateway owning `client`; false when it cannot be reached.
    fn to_owner(&self, client: ClientId, packet: Option<Bytes>) -> bool {
        match (&self.transport, packet) {
            (Transport::Links(links), Some(packet)) => {
                links.borrow_mut().push(client.gateway().into(), packet)
            }
            (_, packet) => self.to_address(&client.gateway().to_string(), packet),
        }
    }

    fn to_every_gateway(&self, packet: Option<Bytes>) {
        if packet.is_none() {
            return;
        }
        for address in self.command_targets() {
            self.to_address(&address, packet.clone());
        }
    }

    /// Sends `packet` to the gateways holding one of `names` (every gateway with the store off).
    fn to_holders(&self, names: &[(Kind, Key)], packet: Option<Bytes>) {
        if packet.is_none() {
            return;
        }
        for address in self.gateways_for(Some(names), self.command_targets()) {
            self.to_address(&address, packet.clone());
        }
    }

    // ---- commands ----------------------------------------------------------------------------

    // Every send takes anything byte-like (a text message) or a [`Binary`](super::Binary).

    /// `sendToClient`: false when the owning gateway cannot be reached.
    pub fn send_to_client(&self, client: ClientId, message: impl Into<Message>) -> bool {
        let message = message.into().wire();
        let command = SendCommand::ToOne {
            connection_id: client.connection_id,
            message,
        };
        self.to_owner(client, encode(command))
    }

    /// `sendToAll($msg)`.
    pub fn send_to_all(&self, message: impl Into<Message>) {
        let message = message.into().wire();
        self.to_every_gateway(encode(SendCommand::ToAll {
            target: SendToAllTarget::Everyone,
            message,
        }));
    }

    /// `sendToAll($msg, null, $exclude)`.
    pub fn send_to_all_except(&self, message: impl Into<Message>, exclude: &[ClientId]) {
        let message = message.into().wire();
        for addr in self.command_targets() {
            let ids = ids_on(exclude, &addr);
            let target = if ids.is_empty() {
                SendToAllTarget::Everyone
            } else {
                SendToAllTarget::Except(ids)
            };
            let message = message.clone();
            self.to_address(&addr, encode(SendCommand::ToAll { target, message }));
        }
    }

    /// `sendToAll($msg, $client_ids)`: only to these clients; an empty list sends nothing.
    pub fn send_to_clients(&self, message: impl Into<Message>, clients: &[ClientId]) {
        let message = message.into().wire();
        let mut by_gateway: BTreeMap<String, Vec<u32>> = BTreeMap::new();
        for c in clients {
            by_gateway
                .entry(c.gateway().to_string())
                .or_default()
                .push(c.connection_id);
        }
        for (addr, ids) in by_gateway {
            let target = SendToAllTarget::Only(ids);
            let message = message.clone();
            self.to_address(&addr, encode(SendCommand::ToAll { target, message }));
        }
    }

    /// `closeClient($id, $msg)`: the message (if any) is sent, then the connection closes.
    pub fn close_client(&self, client: ClientId, message: Option<&[u8]>) -> bool {
        let command = SendCommand::Kick {
            connection_id: client.connection_id,
            message: message.map(|m| command::Payload::new(Bytes::copy_from_slice(m), false)),
        };
        self.to_owner(client, encode(command))
    }

    /// `destoryClient($id)`: closes at once.
    pub fn destroy_client(&self, client: ClientId) -> bool {
        let connection_id = client.connection_id;
        self.to_owner(client, encode(SendCommand::Destroy { connection_id }))
    }

    /// `bindUid($id, $uid)`.
    pub fn bind_uid(&self, client: ClientId, uid: &str) -> bool {
        self.noted(Kind::Uid, client, uid);
        let command = Membership::BindUid {
            connection_id: client.connection_id,
            uid: name(uid),
        };
        self.to_owner(client, encode(command))
    }

    /// `unbindUid($id, $uid)`.
    pub fn unbind_uid(&self, client: ClientId) -> bool {
        let connection_id = client.connection_id;
        self.to_owner(client, encode(Membership::UnbindUid { connection_id }))
    }

    /// `joinGroup($id, $group)`.
    pub fn join_group(&self, client: ClientId, group: &str) -> bool {
        self.noted(Kind::Group, client, group);
        let command = Membership::JoinGroup {
            connection_id: client.connection_id,
            group: name(group),
        };
        self.to_owner(client, encode(command))
    }

    /// `leaveGroup($id, $group)`.
    pub fn leave_group(&self, client: ClientId, group: &str) -> bool {
        let command = Membership::LeaveGroup {
            connection_id: client.connection_id,
            group: name(group),
        };
        self.to_owner(client, encode(command))
    }

    /// `ungroup($group)`.
    pub fn ungroup(&self, group: &str) {
        let names = [(Kind::Group, name(group))];
        self.to_holders(&names, encode(Membership::Ungroup { group: name(group) }));
    }

    /// `sendToUid($uids, $msg)`.
    pub fn send_to_uid(&self, uids: &[&str], message: impl Into<Message>) {
        let message = message.into().wire();
        let uids: Vec<Key> = uids.iter().map(|u| name(u)).collect();
        let names: Vec<(Kind, Key)> = uids.iter().map(|u| (Kind::Uid, u.clone())).collect();
        self.to_holders(&names, encode(SendCommand::ToUid { uids, message }));
    }

    /// `sendToGroup($groups, $msg, $exclude)`.
    pub fn send_to_group(
        &self,
        groups: &[&str],
        message: impl Into<Message>,
        exclude: &[ClientId],
    ) {
        let message = message.into().wire();
        let groups: Vec<Key> = groups.iter().map(|g| name(g)).collect();
        let names: Vec<(Kind, Key)> = groups.iter().map(|g| (Kind::Group, g.clone())).collect();
        for addr in self.gateways_for(Some(&names), self.command_targets()) {
            let target = SendToGroup {
                groups: groups.clone(),
                exclude: ids_on(exclude, &addr),
            };
            let message = message.clone();
            self.to_address(&addr, encode(SendCommand::ToGroup { target, message }));
        }
    }

    /// `setSession($id, $session)`: replaces the stored session.
    pub fn set_session(&self, client: ClientId, session: &Array) -> bool {
        let session = serialize(&Value::Array(session.clone()));
        self.set_session_bytes_to(client, session)
    }

    /// `updateSession($id, $session)`: merged into the stored one with `array_replace_recursive`.
    pub fn update_session(&self, client: ClientId, session: &Array) -> bool {
        let command = Session::Update {
            connection_id: client.connection_id,
            update: Bytes::from(serialize(&Value::Array(session.clone()))),
        };
        self.to_owner(client, encode(command))
    }

    pub(crate) fn set_session_bytes(&self, client: ClientId, session: Vec<u8>) {
        self.set_session_bytes_to(client, session);
    }

    fn set_session_bytes_to(&self, client: ClientId, session: Vec<u8>) -> bool {
        let command = Session::Set {
            connection_id: client.connection_id,
            session: Bytes::from(session),
        };
        self.to_owner(client, encode(command))
    }
}

/// The bytes of a command's packet, or `None` (counted, logged once per interval) when it cannot
/// be built: the command is then not sent, and a send that reports reports false.
fn encode(command: impl Into<Command>) -> Option<Bytes> {
    match command.into().to_packet().to_bytes() {
        Ok(bytes) => Some(bytes),
        Err(e) => {
            ROUTING.unencodable.fetch_add(1, Ordering::Relaxed);
            crate::log_limit::warn_limited(
                "unencodable command",
                &format!("a command was not sent: {e}"),
            );
            None
        }
    }
}

/// A uid or group name as PHP's array keys read it ("42" is the integer 42).
pub(super) fn name(text: &str) -> Key {
    Key::from(Bytes::copy_from_slice(text.as_bytes()))
}
