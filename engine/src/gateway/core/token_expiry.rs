//! When each client admitted with a token (`token_auth.rs`) must be closed: the expiries in
//! order, so the once-a-second sweep takes only the due ones.

use std::collections::{BTreeSet, HashMap};

/// When each admitted client's token expires, soonest first.
#[derive(Debug, Default)]
pub struct TokenExpiry {
    by_time: BTreeSet<(u64, u32)>,
    by_client: HashMap<u32, u64>,
}

impl TokenExpiry {
    pub fn set(&mut self, id: u32, expires: Option<u64>) {
        self.remove(id);
        if let Some(at) = expires {
            self.by_time.insert((at, id));
            self.by_client.insert(id, at);
        }
    }

    pub fn remove(&mut self, id: u32) {
        if let Some(at) = self.by_client.remove(&id) {
            self.by_time.remove(&(at, id));
        }
    }

    /// The clients whose tokens expired at `now` or before, taken out.
    pub fn take_due(&mut self, now: u64) -> Vec<u32> {
        let mut due = Vec::new();
        while let Some(&(at, id)) = self.by_time.first()
            && at <= now
        {
            self.by_time.pop_first();
            self.by_client.remove(&id);
            due.push(id);
        }
        due
    }

    pub fn len(&self) -> usize {
        self.by_client.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_client.is_empty()
    }
}
