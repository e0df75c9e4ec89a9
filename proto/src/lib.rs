//! Sans-IO codecs for every byte format gatewire speaks.
//!
//! Nothing here touches a socket, a clock, a thread or a runtime: bytes go in, typed values come
//! out, and values encode back to the exact bytes PHP's GatewayWorker produces. The engine and the
//! load generator move bytes between sockets and these codecs. Every decoder is incremental (it
//! returns `Ok(None)` until a whole unit has arrived), bounds every length and nesting depth, and
//! never panics on any input.
//!
//! | module | format | reference |
//! |---|---|---|
//! | [`packet`] | GatewayProtocol inner packets (28-byte header + ext + body) | protocol §2 |
//! | [`command`] | the commands a worker sends a gateway, typed (parse and encode) | §5.6, §5.7 |
//! | [`auth`] | the bodies of `CMD_WORKER_CONNECT` and `CMD_GATEWAY_CLIENT_CONNECT` | §2.5 |
//! | [`query_reply`] | u32-length-prefixed query replies | §2.4 |
//! | [`register`] | Register JSON lines | §3 |
//! | [`client_id`] | the 20-hex-char client id | §4 |
//! | [`php`] | PHP `serialize` values, key rules, `array_replace_recursive` | §9 |
//! | [`ext`] | JSON ext payloads of the broadcast, group, uid and select commands | §2.3, §5.6, §5.7 |
//! | [`websocket`] | WebSocket server side: handshake, `get/server/cookie`, frames | §10.1, §12 |
//! | [`text`], [`frame`] | the Text (newline) and Frame (u32 length) client protocols | §10.2 |
//! | [`line`] | newline framing shared by the register and the Text protocol | §3, §10.2 |

pub mod auth;
pub mod client_id;
pub mod command;
pub mod decode;
pub mod error;
pub mod ext;
pub mod frame;
mod json_in;
mod json_out;
pub mod line;
pub mod packet;
pub mod php;
pub mod query_reply;
pub mod register;
pub mod text;
pub mod websocket;

pub use client_id::ClientId;
pub use decode::Decode;
pub use error::Error;
pub use packet::{Cmd, Flags, Header, Packet, PacketDecoder};
pub use php::{Array, Key, Value};

/// workerman's `TcpConnection::$defaultMaxPackageSize`: the default bound on an inner packet, a
/// client message, a register line and a handshake (10 MiB).
pub const DEFAULT_MAX_PACKAGE_SIZE: usize = 10_485_760;
