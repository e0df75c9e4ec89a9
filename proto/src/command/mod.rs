//! The commands a worker (or a GatewayClient) sends to a gateway (protocol §5.6–§5.7), typed:
//! [`Command::from_packet`] is what a gateway reads, [`Command::to_packet`] what a worker writes,
//! byte for byte what PHP's `Lib\Gateway` writes. One file per family, named as the gateway's
//! handlers and the worker API's methods are: [`send`] (send to one / all / uids / groups, kick,
//! destroy), [`membership`] (uids and groups), [`session`], [`query`], and the gatewire
//! extensions in [`control`].

pub mod control;
pub mod membership;
pub mod query;
pub mod send;
pub mod session;

use bytes::Bytes;

use crate::ext::ExtError;
use crate::packet::{
    CMD_WORKER_ALIVE, CMD_WORKER_CONFIRM, CMD_WORKER_DRAIN, Cmd, Flags, Header, Packet,
};
use crate::php::Key;

pub use control::Control;
pub use membership::Membership;
pub use query::Query;
pub use send::{Payload, SendCommand};
pub use session::Session;

/// One command to a gateway.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Send(SendCommand),
    Membership(Membership),
    Session(Session),
    Query(Query),
    Control(Control),
}

/// A packet that is no command a gateway takes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// A cmd a gateway does not take from a worker (an event, a hello, an unknown value).
    #[error("cmd {0} is not a command to a gateway")]
    NotACommand(u8),
    /// The ext cannot be read: the sender is misbehaving.
    #[error(transparent)]
    Ext(#[from] ExtError),
}

impl Command {
    /// Reads a packet received on a gateway's inner port (after the link's hello).
    pub fn from_packet(packet: &Packet) -> Result<Command, CommandError> {
        let cmd = packet.header.cmd;
        if let Some(c) = SendCommand::from_packet(packet)? {
            return Ok(Command::Send(c));
        }
        if let Some(c) = Membership::from_packet(packet) {
            return Ok(Command::Membership(c));
        }
        if let Some(c) = Session::from_packet(packet) {
            return Ok(Command::Session(c));
        }
        if let Some(c) = Query::from_packet(packet)? {
            return Ok(Command::Query(c));
        }
        if let Some(c) = Control::from_packet(packet) {
            return Ok(Command::Control(c));
        }
        Err(CommandError::NotACommand(u8::from(cmd)))
    }

    /// The packet a worker sends for this command.
    pub fn to_packet(&self) -> Packet {
        match self {
            Command::Send(c) => c.to_packet(),
            Command::Membership(c) => c.to_packet(),
            Command::Session(c) => c.to_packet(),
            Command::Query(c) => c.to_packet(),
            Command::Control(c) => c.to_packet(),
        }
    }
}

/// A packet for connection `id` (0 for commands about no one client), PHP's header otherwise
/// zeroed.
fn packet(cmd: Cmd, id: u32, flag: Flags, ext: impl Into<Bytes>, body: impl Into<Bytes>) -> Packet {
    Packet::new(Header::for_connection(cmd, id, flag), ext, body)
}

/// A uid or group name carried as the ext (`bindUid`, `joinGroup`…).
fn name(packet: &Packet) -> Key {
    Key::from(packet.ext.clone())
}

fn is_extension(cmd: Cmd) -> bool {
    cmd == CMD_WORKER_DRAIN || cmd == CMD_WORKER_CONFIRM || cmd == CMD_WORKER_ALIVE
}

impl From<SendCommand> for Command {
    fn from(c: SendCommand) -> Command {
        Command::Send(c)
    }
}

impl From<Membership> for Command {
    fn from(c: Membership) -> Command {
        Command::Membership(c)
    }
}

impl From<Session> for Command {
    fn from(c: Session) -> Command {
        Command::Session(c)
    }
}

impl From<Query> for Command {
    fn from(c: Query) -> Command {
        Command::Query(c)
    }
}

impl From<Control> for Command {
    fn from(c: Control) -> Command {
        Command::Control(c)
    }
}
