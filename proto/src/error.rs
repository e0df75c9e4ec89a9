//! One error type for the crate: every codec's error, so callers that mix codecs can use `?`.

use crate::auth::AuthError;
use crate::client_id::ClientIdError;
use crate::ext::ExtError;
use crate::frame::FrameError;
use crate::line::LineTooLong;
use crate::packet::PacketError;
use crate::php::UnserializeError;
use crate::query_reply::QueryReplyError;
use crate::register::RegisterError;
use crate::websocket::{HandshakeError, WsError};

/// Any decoding or encoding failure in `gatewire-proto`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Packet(#[from] PacketError),
    #[error(transparent)]
    QueryReply(#[from] QueryReplyError),
    #[error(transparent)]
    Register(#[from] RegisterError),
    #[error(transparent)]
    Line(#[from] LineTooLong),
    #[error(transparent)]
    ClientId(#[from] ClientIdError),
    #[error(transparent)]
    Unserialize(#[from] UnserializeError),
    #[error(transparent)]
    Ext(#[from] ExtError),
    #[error(transparent)]
    Handshake(#[from] HandshakeError),
    #[error(transparent)]
    WebSocket(#[from] WsError),
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error(transparent)]
    Auth(#[from] AuthError),
}
