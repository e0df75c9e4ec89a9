//! Turning a worker's message body into the bytes a client receives: PHP's body rules (scalar or
//! serialized), then the listener's protocol encoding, once per command so a broadcast shares one
//! buffer across every recipient.

use bytes::{Bytes, BytesMut};
use gatewire_proto::php::{self, Value};
use gatewire_proto::{Flags, frame, text, websocket};

use crate::config::ClientProtocol;

/// Why a body cannot be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("a non-scalar message cannot be sent over {0:?} (only WebSocket JSON-encodes them)")]
    NotScalar(ClientProtocol),
    #[error("the message cannot be JSON-encoded (INF/NAN or a non-UTF-8 string)")]
    NotJson,
}

/// The wire bytes for `body` sent with `flag` to clients speaking `protocol`.
pub fn client_frame(
    protocol: ClientProtocol,
    flag: Flags,
    body: &Bytes,
) -> Result<Bytes, EncodeError> {
    if flag.not_call_encode() {
        return Ok(body.clone());
    }
    let payload = message_bytes(protocol, flag, body)?;
    if flag.binary() && is_websocket(protocol) {
        let mut out = BytesMut::with_capacity(payload.len() + 10);
        websocket::encode_frame(websocket::OpCode::Binary, &payload, &mut out);
        return Ok(out.freeze());
    }
    Ok(encode_message(protocol, &payload))
}

/// A message for WebSocket clients as permessage-deflate sees it, its opcode and payload;
/// `None` for other protocols and for bodies sent as they are (`not_call_encode`).
pub fn websocket_parts(
    protocol: ClientProtocol,
    flag: Flags,
    body: &Bytes,
) -> Option<(websocket::OpCode, Bytes)> {
    if flag.not_call_encode() || !is_websocket(protocol) {
        return None;
    }
    let payload = message_bytes(protocol, flag, body).ok()?;
    let opcode = match flag.binary() {
        true => websocket::OpCode::Binary,
        false => websocket::OpCode::Text,
    };
    Some((opcode, payload))
}

/// The message bytes before protocol encoding.
fn message_bytes(
    protocol: ClientProtocol,
    flag: Flags,
    body: &Bytes,
) -> Result<Bytes, EncodeError> {
    if flag.body_is_scalar() {
        return Ok(body.clone());
    }
    let value = gatewire_proto::packet::decode_body(flag, body);
    Ok(match value {
        Value::Str(s) => s,
        Value::Int(i) => Bytes::from(i.to_string()),
        Value::Float(x) => Bytes::from(php::float_to_string(x)),
        Value::Bool(true) => Bytes::from_static(b"1"),
        Value::Bool(false) => Bytes::new(),
        other => match protocol {
            ClientProtocol::WebSocket | ClientProtocol::SecureWebSocket => {
                Bytes::from(php::to_json(&other).ok_or(EncodeError::NotJson)?)
            }
            _ => return Err(EncodeError::NotScalar(protocol)),
        },
    })
}

fn is_websocket(protocol: ClientProtocol) -> bool {
    matches!(
        protocol,
        ClientProtocol::WebSocket | ClientProtocol::SecureWebSocket
    )
}

/// Protocol-encodes one message.
pub fn encode_message(protocol: ClientProtocol, payload: &[u8]) -> Bytes {
    match protocol {
        ClientProtocol::WebSocket | ClientProtocol::SecureWebSocket => {
            websocket::text_frame(payload)
        }
        ClientProtocol::Text => {
            let mut out = BytesMut::with_capacity(payload.len() + 1);
            text::encode(payload, &mut out);
            out.freeze()
        }
        ClientProtocol::Frame => {
            let mut out = BytesMut::with_capacity(payload.len() + 4);
            // A payload over 4 GiB cannot be framed; it was bounded by max_packet_size anyway.
            let _ = frame::encode(payload, &mut out);
            out.freeze()
        }
        ClientProtocol::Raw => Bytes::copy_from_slice(payload),
    }
}
