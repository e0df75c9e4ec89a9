//! The store (`[store]`, off by default): where the gateways record which uids and groups each
//! shard holds, so that workers and GatewayClients send a uid or group command — and ask a uid or
//! group query — only to the shards that hold it, instead of to every gateway as GatewayWorker
//! does.
//!
//! - [`redis`]: the Redis keys, the two scripts and the connection (the only file that speaks
//!   to Redis);
//! - [`publisher`]: a gateway process's store thread — the shards hand it what they started and
//!   stopped holding, it writes that to Redis in batches, refreshes it, and says which shards
//!   write to the store at all;
//! - [`resolver`]: a worker thread's (or a GatewayClient's) side — which gateways to send a uid
//!   or group command to, falling back to every gateway (counted, logged) when Redis cannot
//!   answer; [`recent`]: the binds it made itself, which the store may not show yet.
//!
//! A gateway that does not write to the store (a PHP gateway, or one with the store off) is
//! never in the writers' list, so it keeps getting every uid and group command: mixing stays
//! correct. Redis data is all soft state with a TTL: losing Redis costs sends to every gateway
//! until it is back, never a message.

use gatewire_proto::php::Key;

pub mod publisher;
pub mod recent;
pub mod redis;
pub mod resolver;

pub use publisher::{Publisher, PublisherStats, ShardFeed};
pub use resolver::{ROUTING, Resolver, RoutingStats};

/// uids and groups a gateway shard started (`true`) or stopped (`false`) holding: what its core
/// records for the store (see `gateway::core::member_index`).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct HoldingChanges {
    pub uids: Vec<(Key, bool)>,
    pub groups: Vec<(Key, bool)>,
}

impl HoldingChanges {
    pub fn is_empty(&self) -> bool {
        self.uids.is_empty() && self.groups.is_empty()
    }
}

/// What a store key lists the holders of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Uid,
    Group,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Uid => "uid",
            Kind::Group => "group",
        }
    }
}
