//! The Gateway: `shards` glommio executors, each one what GatewayWorker calls a gateway process —
//! its own fd table, its own `SO_REUSEPORT` public listener, its own inner port registered with
//! every register, its own clients. Nothing mutable is shared between shards.

mod client;
mod commands;
#[cfg(test)]
mod core_tests;
mod encode;
mod handshake_deadline;
mod heartbeat;
mod idle;
mod link;
mod member_index;
mod parking;
mod parking_requests;
mod router;
mod shard;
mod state;
mod static_files;
mod stats;

pub use router::Router;
pub use shard::{ShardHandle, start};
pub use state::{Shard, ShardSettings};
pub use stats::{ClientRow, CloseCause, Inspect, Inspection, LimitWarnings, ShardSnapshot, Stats};
