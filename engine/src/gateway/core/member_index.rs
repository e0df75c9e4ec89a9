//! A shard's uid and group indexes: the members of each key, and the keys in the order they were
//! created — the order PHP's arrays keep, which listings (GET_GROUP_ID_LIST) must return (a
//! key emptied and created again goes to the end, as after PHP's `unset`). Removing a key stays
//! O(1); only a listing sorts.

use std::collections::HashMap;

use gatewire_proto::php::Key;
use indexmap::IndexSet;

/// Members per key, with each key's creation number.
#[derive(Debug, Default)]
pub struct MemberIndex {
    keys: HashMap<Key, Members>,
    created: u64,
}

#[derive(Debug)]
struct Members {
    created: u64,
    ids: IndexSet<u32>,
}

impl MemberIndex {
    /// The members of `key`, in joining order.
    pub fn get(&self, key: &Key) -> Option<&IndexSet<u32>> {
        self.keys.get(key).map(|m| &m.ids)
    }

    pub fn add(&mut self, key: Key, id: u32) {
        let created = &mut self.created;
        self.keys
            .entry(key)
            .or_insert_with(|| {
                *created += 1;
                Members {
                    created: *created,
                    ids: IndexSet::new(),
                }
            })
            .ids
            .insert(id);
    }

    /// Removes `id` from `key`; a key left empty is gone.
    pub fn remove(&mut self, key: &Key, id: u32) {
        if let Some(members) = self.keys.get_mut(key) {
            members.ids.shift_remove(&id);
            if members.ids.is_empty() {
                self.keys.remove(key);
            }
        }
    }

    /// Removes `key` with all its members, returned.
    pub fn remove_key(&mut self, key: &Key) -> Option<IndexSet<u32>> {
        self.keys.remove(key).map(|m| m.ids)
    }

    /// Every key, in creation order.
    pub fn keys_in_creation_order(&self) -> Vec<&Key> {
        let mut keys: Vec<(&Key, u64)> = self.keys.iter().map(|(k, m)| (k, m.created)).collect();
        keys.sort_unstable_by_key(|(_, created)| *created);
        keys.into_iter().map(|(k, _)| k).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_list_in_creation_order_and_a_recreated_key_goes_last() {
        let mut index = MemberIndex::default();
        for (i, name) in ["zeta", "alpha", "mid", "beta"].iter().enumerate() {
            index.add(Key::from(*name), i as u32);
        }
        index.remove(&Key::from("alpha"), 1);
        index.add(Key::from("alpha"), 9);
        let names: Vec<String> = index
            .keys_in_creation_order()
            .into_iter()
            .map(|k| String::from_utf8_lossy(&k.to_bytes()).into_owned())
            .collect();
        assert_eq!(names, ["zeta", "mid", "beta", "alpha"]);
    }
}
