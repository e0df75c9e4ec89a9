//! A shard's uid and group indexes: the members of each key, and the keys in the order they were
//! created — the order PHP's arrays keep, which listings (GET_GROUP_ID_LIST) must return (a
//! key emptied and created again goes to the end, as after PHP's `unset`). Removing a key stays
//! O(1); only a listing sorts.
//!
//! With the store on, the index also records which keys this shard started or stopped holding
//! (the only changes the store needs), coalesced per key until the I/O side takes them.

use std::collections::HashMap;

use gatewire_proto::php::Key;
use indexmap::{IndexMap, IndexSet};

/// Members per key, with each key's creation number.
#[derive(Debug, Default)]
pub struct MemberIndex {
    keys: HashMap<Key, Members>,
    created: u64,
    /// Keys whose held state changed since the last `take_changes` (`true`: now held), when
    /// recording; one entry per key, the latest state.
    changes: Option<IndexMap<Key, bool>>,
}

#[derive(Debug)]
struct Members {
    created: u64,
    ids: IndexSet<u32>,
}

impl MemberIndex {
    /// An index that records which keys it starts and stops holding (see `take_changes`).
    pub fn recording() -> MemberIndex {
        MemberIndex {
            changes: Some(IndexMap::new()),
            ..MemberIndex::default()
        }
    }

    /// The keys whose held state changed since the last call, with their state now.
    pub fn take_changes(&mut self) -> Vec<(Key, bool)> {
        match &mut self.changes {
            Some(changes) => changes.drain(..).collect(),
            None => Vec::new(),
        }
    }

    /// Gives back changes taken but not delivered; a key changed again since keeps its newer
    /// state.
    pub fn put_back(&mut self, older: Vec<(Key, bool)>) {
        if let Some(changes) = &mut self.changes {
            for (key, held) in older {
                changes.entry(key).or_insert(held);
            }
        }
    }

    /// Keys with changes not yet taken.
    pub fn changes_pending(&self) -> usize {
        self.changes.as_ref().map_or(0, IndexMap::len)
    }

    fn changed(&mut self, key: &Key, held: bool) {
        if let Some(changes) = &mut self.changes {
            changes.insert(key.clone(), held);
        }
    }

    /// The members of `key`, in joining order.
    pub fn get(&self, key: &Key) -> Option<&IndexSet<u32>> {
        self.keys.get(key).map(|m| &m.ids)
    }

    pub fn add(&mut self, key: Key, id: u32) {
        if let Some(members) = self.keys.get_mut(&key) {
            members.ids.insert(id);
            return;
        }
        self.changed(&key, true);
        self.created += 1;
        let mut ids = IndexSet::new();
        ids.insert(id);
        let created = self.created;
        self.keys.insert(key, Members { created, ids });
    }

    /// Removes `id` from `key`; a key left empty is gone.
    pub fn remove(&mut self, key: &Key, id: u32) {
        if let Some(members) = self.keys.get_mut(key) {
            members.ids.shift_remove(&id);
            if members.ids.is_empty() {
                self.keys.remove(key);
                self.changed(key, false);
            }
        }
    }

    /// Removes `key` with all its members, returned.
    pub fn remove_key(&mut self, key: &Key) -> Option<IndexSet<u32>> {
        let members = self.keys.remove(key)?;
        self.changed(key, false);
        Some(members.ids)
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

    #[test]
    fn a_recording_index_reports_only_keys_it_starts_or_stops_holding() {
        let mut index = MemberIndex::recording();
        let (a, b) = (Key::from("a"), Key::from("b"));
        index.add(a.clone(), 1);
        index.add(a.clone(), 2);
        index.add(b.clone(), 3);
        assert_eq!(index.take_changes(), [(a.clone(), true), (b.clone(), true)]);
        index.remove(&a, 1);
        assert_eq!(index.take_changes(), [], "a still has member 2");
        index.remove(&a, 2);
        index.remove_key(&b);
        let taken = index.take_changes();
        assert_eq!(taken, [(a.clone(), false), (b.clone(), false)]);
        // Not delivered: given back, except where a newer change was made meanwhile.
        index.add(b.clone(), 4);
        index.put_back(taken);
        assert_eq!(index.take_changes(), [(b.clone(), true), (a, false)]);
        let mut quiet = MemberIndex::default();
        quiet.add(b, 1);
        assert!(quiet.take_changes().is_empty());
    }
}
