//! The store's Redis layout and connection.
//!
//! - `{prefix}uid:{uid}` and `{prefix}group:{group}`: sorted sets whose members are the inner
//!   addresses (`ip:port`) of the gateway shards holding that uid or group, scored with the time
//!   (Redis's clock, in ms) the entry expires. A shard refreshes its entries every third of
//!   `store.ttl`; readers skip expired members, and a key nobody refreshes expires whole. The
//!   TTL only bounds what a dead gateway leaves in Redis: routing never trusts an entry of a
//!   shard that is not linked and listed as a writer.
//! - `{prefix}gateways`: the same, for the shards that write to the store at all, refreshed every
//!   second with a short TTL ([`WRITER_TTL`]). A shard not listed there (a PHP gateway, one with
//!   the store off, or one that cannot reach Redis) gets every uid and group command.
//!
//! Both scripts read Redis's own clock, so hosts need not agree on the time. The keys of one
//! script call may hash to different slots: a single Redis (or a Sentinel-managed primary), not
//! Redis Cluster.

use std::time::Duration;

use redis::{Client, Connection, IntoConnectionInfo, RedisResult};

use super::Kind;
use crate::config::StoreConfig;

/// How long a shard stays in the writers' list without a refresh (refreshed every second).
pub const WRITER_TTL: Duration = Duration::from_secs(3);

/// Adds `ARGV[1]` (a shard) to every key, expiring `ARGV[2]` ms from now, and keeps each key
/// alive at least as long as its newest entry. Expired members are not swept here (that tripled
/// the cost of a refresh): readers skip them, and a key nobody refreshes expires whole, so what
/// stays behind is at most one expired member per shard in a key another shard still holds.
const HOLD: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
for _, k in ipairs(KEYS) do
  redis.call('ZADD', k, now + ttl, ARGV[1])
  if redis.call('PTTL', k) < ttl then redis.call('PEXPIRE', k, ttl) end
end
return #KEYS
";

/// The live members of every key, in order.
const LOOKUP: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {}
for i, k in ipairs(KEYS) do
  out[i] = redis.call('ZRANGEBYSCORE', k, string.format('(%d', now), '+inf')
end
return out
";

/// The key naming one uid's or group's holders.
pub fn holders_key(prefix: &str, kind: Kind, name: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(prefix.len() + 6 + name.len());
    key.extend_from_slice(prefix.as_bytes());
    key.extend_from_slice(kind.name().as_bytes());
    key.push(b':');
    key.extend_from_slice(name);
    key
}

/// The key listing the shards that write to the store.
pub fn writers_key(prefix: &str) -> Vec<u8> {
    format!("{prefix}gateways").into_bytes()
}

/// A connection with its scripts loaded.
pub struct StoreConnection {
    pub conn: Connection,
    hold: String,
    lookup: String,
}

impl std::fmt::Debug for StoreConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreConnection").finish_non_exhaustive()
    }
}

impl StoreConnection {
    /// Connects to `store.redis_url` (with `store.password`), every socket operation bounded by
    /// `timeout`, and loads the scripts.
    pub fn open(config: &StoreConfig, timeout: Duration) -> RedisResult<StoreConnection> {
        let mut info = config.redis_url.as_str().into_connection_info()?;
        if !config.password.is_empty() {
            let settings = info.redis_settings().clone().set_password(&config.password);
            info = info.set_redis_settings(settings);
        }
        let mut conn = Client::open(info)?.get_connection_with_timeout(timeout)?;
        conn.set_read_timeout(Some(timeout))?;
        conn.set_write_timeout(Some(timeout))?;
        let hold = redis::cmd("SCRIPT")
            .arg("LOAD")
            .arg(HOLD)
            .query(&mut conn)?;
        let lookup = redis::cmd("SCRIPT")
            .arg("LOAD")
            .arg(LOOKUP)
            .query(&mut conn)?;
        Ok(StoreConnection { conn, hold, lookup })
    }

    /// The command adding `shard` to `keys` for `ttl`.
    pub fn hold(&self, keys: &[Vec<u8>], shard: &str, ttl: Duration) -> redis::Cmd {
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg(&self.hold).arg(keys.len());
        for key in keys {
            cmd.arg(key.as_slice());
        }
        cmd.arg(shard).arg(ttl.as_millis() as u64);
        cmd
    }

    /// The live members of each of `keys`.
    pub fn lookup(&mut self, keys: &[Vec<u8>]) -> RedisResult<Vec<Vec<String>>> {
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg(&self.lookup).arg(keys.len());
        for key in keys {
            cmd.arg(key.as_slice());
        }
        cmd.query(&mut self.conn)
    }
}
