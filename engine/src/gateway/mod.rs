//! The Gateway: `shards` glommio executors, each one what GatewayWorker calls a gateway process —
//! its own fd table, its own `SO_REUSEPORT` public listener, its own inner port registered with
//! every register, its own clients. Nothing mutable is shared between shards.

//!
//! `core/` is the shard's state machine without I/O; the files beside it are the I/O side:
//! `shard` starts the executors and runs the accept loops and timers, `client` and `link` drive
//! client and inner connections into the core, `parking` holds idle clients' sockets,
//! `holdings` hands the uids and groups a shard holds to the store thread (store on), and
//! `static_files` answers plain HTTP GETs.

mod client;
pub mod core;
mod holdings;
mod link;
mod parking;
mod shard;
mod static_files;
mod token_check;

pub use self::core::router::Router;
pub use self::core::shard::{Shard, ShardSettings};
pub use self::core::stats::{
    ClientRow, CloseCause, Inspect, Inspection, LimitWarnings, ShardSnapshot, Stats,
};
pub use shard::{ShardHandle, StartError, inner_addresses, start};
