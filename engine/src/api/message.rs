//! What a send carries to clients: the bytes and the frame type WebSocket clients receive.
//! Anything byte-like converts to a text message (GatewayWorker's behaviour); [`Binary`] marks
//! bytes that must arrive as a binary frame (they need not be UTF-8, which a text frame must be).

use bytes::Bytes;
use gatewire_proto::command;

/// A message for one or many clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    body: Bytes,
    binary: bool,
}

/// Bytes sent as a binary WebSocket frame: `gateway.send_to_all(Binary(bytes))`.
#[derive(Debug, Clone, Copy)]
pub struct Binary<T>(pub T);

impl Message {
    /// A message of either type (`binary` picks the WebSocket frame type).
    pub fn new(body: impl AsRef<[u8]>, binary: bool) -> Message {
        Message {
            body: Bytes::copy_from_slice(body.as_ref()),
            binary,
        }
    }

    pub fn body(&self) -> &Bytes {
        &self.body
    }

    pub fn is_binary(&self) -> bool {
        self.binary
    }

    /// The message as a command carries it: a scalar body, with gatewire's binary bit when
    /// binary.
    pub(crate) fn wire(&self) -> command::Payload {
        command::Payload::new(self.body.clone(), self.binary)
    }
}

impl<T: AsRef<[u8]>> From<T> for Message {
    fn from(body: T) -> Message {
        Message::new(body, false)
    }
}

impl<T: AsRef<[u8]>> From<Binary<T>> for Message {
    fn from(Binary(body): Binary<T>) -> Message {
        Message::new(body, true)
    }
}
