//! What a callback knows about the event it handles (GatewayWorker's `Context` and `$_SESSION`),
//! and the shortcuts for the current client.

use std::net::{SocketAddr, SocketAddrV4};

use gatewire_proto::ClientId;
use gatewire_proto::php::Array;

use crate::api::{Gateway, Message};

/// The event's client and session, and the Gateway API.
#[derive(Debug)]
pub struct Context<'a> {
    /// The client this event is about.
    pub client_id: ClientId,
    /// The client's address (`REMOTE_ADDR`/`REMOTE_PORT`).
    pub client_addr: SocketAddr,
    /// The gateway's public port (`GATEWAY_PORT`).
    pub gateway_port: u16,
    /// The client's session (`$_SESSION`): `None` until something is stored. Changes are saved
    /// with SET_SESSION after the callback returns (never after `on_close`).
    pub session: Option<Array>,
    /// Whether the message being handled was a binary WebSocket message.
    pub binary: bool,
    pub(super) gateway: &'a Gateway,
}

impl Context<'_> {
    /// The Gateway API, for other clients, uids, groups and queries.
    pub fn gateway(&self) -> &Gateway {
        self.gateway
    }

    /// The owning gateway shard's inner address (`GATEWAY_ADDR` and its port).
    pub fn gateway_addr(&self) -> SocketAddrV4 {
        self.client_id.gateway()
    }

    /// `sendToCurrentClient`: text, or a [`Binary`](super::Binary).
    pub fn send(&self, message: impl Into<Message>) -> bool {
        self.gateway.send_to_client(self.client_id, message)
    }

    /// Sends back with the type of the message being handled (binary stays binary).
    pub fn reply(&self, message: impl AsRef<[u8]>) -> bool {
        self.send(self.same_type(message))
    }

    /// `body` as a message of the type being handled (binary stays binary), for fanout.
    pub fn same_type(&self, body: impl AsRef<[u8]>) -> Message {
        Message::new(body, self.binary)
    }

    /// `closeCurrentClient($msg)`.
    pub fn close(&self, message: Option<&[u8]>) -> bool {
        self.gateway.close_client(self.client_id, message)
    }

    /// Runs `task` on this worker thread alongside its events: the callback returns at once and
    /// the thread goes on serving other clients while the task waits (for queries made with
    /// [`Gateway::nonblocking`], timers…). Clone what the task needs (`ctx.gateway().clone()`,
    /// `ctx.client_id`) into it; a task's sends are ordinary commands, sent when it makes them.
    pub fn spawn(&self, task: impl std::future::Future<Output = ()> + 'static) {
        crate::rt::spawn(task);
    }

    /// The session, created empty on first use.
    pub fn session_mut(&mut self) -> &mut Array {
        self.session.get_or_insert_default()
    }
}
