//! Connection plumbing shared by the roles and independent of the runtime: the bounded output
//! queue every connection writes from ([`Outbox`]) and what it queues ([`Frame`]), reconnect backoff, who holds a port, and TLS
//! configuration. The runtime itself (executors, sockets, the connection driver, dead-peer
//! detection) is behind [`crate::rt`].

mod backoff;
mod frame;
mod framed;
mod http_url;
pub mod jwt;
mod outbox;
pub mod port_owner;
pub mod tls;

pub use backoff::Backoff;
pub use frame::Frame;
pub use framed::{Framed, read_frames};
pub use http_url::HttpUrl;
pub use outbox::{Closing, Outbox, QueuedTally};
