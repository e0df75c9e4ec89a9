//! A shard's clients by connection id, packed: the records in one dense vector, and a small map
//! from id to position. A `HashMap<u32, Client>` kept each record (184 bytes) inside its hash
//! table, which grows by doubling at seven eighths full: a shard of 15,625 clients (a million
//! on 64 shards) sat in 32,768 buckets, 402 bytes a client for 188 of data. Here the vector
//! grows by an eighth at a time, the map holds 8 bytes a bucket, and a broadcast walks the
//! records in order instead of hashing every id.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Hashes the gateway's own connection ids (sequential, never chosen by a peer): one multiply,
/// spreading them over the high bits the table's control bytes use.
#[derive(Debug, Default, Clone, Copy)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn write_u32(&mut self, id: u32) {
        self.0 = u64::from(id).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

/// The clients of a shard (`T` is the shard's `Client`; the table does not look inside).
#[derive(Debug)]
pub struct ClientTable<T> {
    /// Every client, with its id, in no particular order.
    records: Vec<(u32, T)>,
    /// Where each id's record is in `records`.
    position: HashMap<u32, u32, BuildHasherDefault<IdHasher>>,
}

impl<T> Default for ClientTable<T> {
    fn default() -> Self {
        ClientTable {
            records: Vec::new(),
            position: HashMap::default(),
        }
    }
}

/// Records below which the vector is never shrunk.
const MIN_KEPT: usize = 64;

impl<T> ClientTable<T> {
    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    pub fn contains_key(&self, id: &u32) -> bool {
        self.position.contains_key(id)
    }

    pub fn get(&self, id: &u32) -> Option<&T> {
        let at = *self.position.get(id)? as usize;
        Some(&self.records[at].1)
    }

    pub fn get_mut(&mut self, id: &u32) -> Option<&mut T> {
        let at = *self.position.get(id)? as usize;
        Some(&mut self.records[at].1)
    }

    /// Adds `client` under `id`, giving back the one it replaces.
    pub fn insert(&mut self, id: u32, client: T) -> Option<T> {
        if let Some(&at) = self.position.get(&id) {
            return Some(std::mem::replace(&mut self.records[at as usize].1, client));
        }
        if self.records.len() == self.records.capacity() {
            // Grow by an eighth (at least a few), not by doubling: at most an eighth idle.
            let more = (self.records.len() / 8).max(8);
            self.records.reserve_exact(more);
        }
        self.position.insert(id, self.records.len() as u32);
        self.records.push((id, client));
        None
    }

    pub fn remove(&mut self, id: &u32) -> Option<T> {
        let at = self.position.remove(id)? as usize;
        let (_, client) = self.records.swap_remove(at);
        if let Some((moved, _)) = self.records.get(at) {
            self.position.insert(*moved, at as u32);
        }
        let len = self.records.len();
        if len >= MIN_KEPT && len < self.records.capacity() / 2 {
            // Most clients gone (a mass disconnect): give the room back.
            self.records.shrink_to(len + len / 8);
            self.position.shrink_to(len + len / 8);
        }
        Some(client)
    }

    /// Every id, in the table's order.
    pub fn keys(&self) -> impl Iterator<Item = &u32> + '_ {
        self.records.iter().map(|(id, _)| id)
    }

    pub fn values(&self) -> impl Iterator<Item = &T> + '_ {
        self.records.iter().map(|(_, c)| c)
    }

    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut T> + '_ {
        self.records.iter_mut().map(|(_, c)| c)
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&u32, &mut T)> + '_ {
        self.records.iter_mut().map(|(id, c)| (&*id, c))
    }
}

impl<T> std::ops::Index<&u32> for ClientTable<T> {
    type Output = T;

    fn index(&self, id: &u32) -> &T {
        self.get(id).expect("no client with this id")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table against a plain map, through a long mixed run of inserts and removes.
    #[test]
    fn it_holds_what_a_map_would_through_inserts_and_removes() {
        let mut table = ClientTable::default();
        let mut model = std::collections::BTreeMap::new();
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for step in 0..200_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let id = (x % 5_000) as u32;
            // Mostly inserts early on, mostly removes later: the table grows, then shrinks.
            if (x >> 32) % 100 < if step < 100_000 { 70 } else { 30 } {
                assert_eq!(table.insert(id, step), model.insert(id, step));
            } else {
                assert_eq!(table.remove(&id), model.remove(&id));
            }
            assert_eq!(table.len(), model.len());
        }
        for (id, value) in &model {
            assert_eq!(table.get(id), Some(value));
            assert!(table.contains_key(id));
        }
        let mut keys: Vec<u32> = table.keys().copied().collect();
        keys.sort_unstable();
        assert_eq!(keys, model.keys().copied().collect::<Vec<_>>());
        for (id, value) in table.iter_mut() {
            assert_eq!(model.get(id), Some(&*value));
            *value += 1;
        }
        assert!(table.values_mut().all(|v| *v >= 1));
    }

    #[test]
    fn it_grows_by_an_eighth_and_gives_room_back_when_emptied() {
        let mut table = ClientTable::default();
        for id in 0..15_625u32 {
            table.insert(id, [0u8; 184]);
        }
        let idle = table.records.capacity() - table.len();
        assert!(idle <= table.len() / 8 + 8, "{idle} idle records");
        for id in 0..15_000u32 {
            table.remove(&id);
        }
        assert!(table.records.capacity() < 2 * table.len().max(MIN_KEPT) + 8);
        assert_eq!(table.len(), 625);
        assert!(table.get(&15_000).is_some() && table.get(&14_999).is_none());
    }
}
