//! The WebSocket server side (RFC 6455) as workerman 5.2.2 speaks it (protocol §10.1): the
//! upgrade request and its 101/400/426 answers, the `get`/`server`/`cookie` array sent to workers
//! with `CMD_ON_WEBSOCKET_CONNECT`, and the frame codec (masking, fragmentation, control frames,
//! UTF-8, close codes, size limits), and permessage-deflate ([`deflate`]). The frame codec also
//! has a client mode for the load generator and tests.

mod connect_data;
pub mod deflate;
mod frame;
mod handshake;
mod parse_str;

pub use connect_data::connect_data;
pub use frame::{
    CloseCode, FrameDecoder, Message, OpCode, WsError, close_frame, compressed_frame, encode_frame,
    encode_masked_frame, frame_header, text_frame,
};
pub use handshake::{
    DEFAULT_MAX_HANDSHAKE_LEN, HandshakeError, HandshakeRequest, parse_request, response_101,
};
pub use parse_str::{parse_str, url_decode};
