//! The BusinessWorker (protocol §6): `count` threads, each one GatewayWorker "BusinessWorker
//! process" (`worker_key = name:index`) with its own glommio executor, its links to every gateway
//! shard the registers announce, and the user's [`Events`] called inline, one event at a time.

mod context;
mod control;
mod events;
mod runtime;

// The Gateway API a worker's callbacks use (it lives in `crate::api`, shared with GatewayClient).
pub use crate::api::{Answer, Binary, Gateway, Message, Queries, QueryError};
pub use context::Context;
pub use control::{LATENCY_BOUNDS, LinkState, ThreadStats, WorkerControl};
pub use events::{Events, WorkerInfo};
pub use runtime::{Workers, start};
