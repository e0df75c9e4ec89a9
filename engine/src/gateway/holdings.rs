//! Hands a shard's holding changes (uids and groups it started or stopped holding) to the
//! process's store thread, with the store on. Binds and joins arrive in inner packets, so the
//! link hands them over at the end of each batch it read — the store hears of a bind within one
//! batch, with no timer. Removals (a client closing) and anything a full queue left with the
//! shard go on the shard's publishing tick: a removal written late costs at most a spare packet.

use crate::gateway::core::shard::Shard;
use crate::store::ShardFeed;

/// A shard's end of the store queue.
#[derive(Debug)]
pub struct Holdings {
    feed: ShardFeed,
}

impl Holdings {
    pub fn new(feed: ShardFeed) -> Holdings {
        Holdings { feed }
    }

    /// Hands over what changed since the last call; a full queue leaves it with the shard.
    pub fn flush(&self, shard: &mut Shard) {
        if shard.holding_changes_pending() == 0 {
            return;
        }
        let changes = shard.take_holding_changes();
        if let Err(back) = self.feed.offer(changes) {
            shard.put_back_holding_changes(back);
        }
    }
}
