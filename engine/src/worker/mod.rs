//! The BusinessWorker (protocol §6): `count` threads, each one GatewayWorker "BusinessWorker
//! process" (`worker_key = name:index`) with its own executor, its links to every gateway
//! shard the registers announce, and the user's [`Events`] called inline, one event at a time.

//!
//! Inside one thread a client's event goes one way: [`links`] reads it from a gateway link,
//! [`dispatch`] picks its session ([`session`]) and calls the app, whose commands leave through
//! the Gateway API (`crate::api`) onto the same links. [`state`] is what the thread's tasks
//! share; [`runtime`] starts the threads and runs each one's life.

mod context;
mod control;
mod dispatch;
mod events;
mod links;
mod runtime;
mod session;
mod state;

// The Gateway API a worker's callbacks use (it lives in `crate::api`, shared with GatewayClient).
pub use crate::api::{Answer, Binary, Gateway, Message, Queries, QueryError};
pub use context::Context;
pub use control::{LATENCY_BOUNDS, LinkState, ThreadStats, WorkerControl};
pub use events::{Events, WorkerInfo};
pub use runtime::{Workers, start};
