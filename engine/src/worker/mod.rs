//! The BusinessWorker (protocol §6): `count` threads, each one GatewayWorker "BusinessWorker
//! process" (`worker_key = name:index`) with its own glommio executor, its links to every gateway
//! shard the registers announce, and the user's [`Events`] called inline, one event at a time.

mod api;
mod context;
mod control;
mod directory;
mod events;
mod message;
mod query;
mod runtime;

pub use api::{Answer, Gateway};
pub use context::Context;
pub use control::{LATENCY_BOUNDS, LinkState, ThreadStats, WorkerControl};
pub use directory::Directory;
pub use events::{Events, WorkerInfo};
pub use message::{Binary, Message};
pub use query::QueryError;
pub use runtime::{Workers, start};
