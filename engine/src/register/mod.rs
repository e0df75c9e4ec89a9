//! The Register (protocol §3): an address book. Gateway shards announce their inner address,
//! workers and GatewayClients ask for the list and are told whenever it changes. One small
//! executor; its traffic is a few lines per membership change.

mod announcer;
mod server;

pub use announcer::{RegisterLink, keep_registered};
pub use server::{Member, RegisterStats, serve};
