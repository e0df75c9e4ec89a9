//! Half-received client messages. A client's incomplete message (the bytes of a frame not yet
//! whole, the fragments of a message not yet final) is memory the shard holds for it; a client
//! that starts large messages and never finishes them would hold it forever. Two bounds:
//!
//! - `gateway.max_pending_input_bytes`: the shard's budget for all of them together. Past it, the
//!   client holding the largest incomplete message is closed (WebSocket 1009) until the shard is
//!   back under it, each counted in `limit_hits_total{limit="pending_input"}`.
//! - `gateway.message_timeout`: once a message's first byte arrived, the client has that long to
//!   finish it, or it is closed (1008), counted in `limit_hits_total{limit="message_timeout"}`.
//!   Like the handshake deadline, no timer per client: a sweep every quarter of the timeout
//!   counts how many sweeps each incomplete message has lasted.
//!
//! Only clients holding something are in the table; a client whose messages arrive whole costs
//! nothing here (its I/O side reports only changes). This file is the table; the shard applies
//! the bounds in `input_bounds.rs`.

use std::collections::HashMap;

/// The incomplete messages of one shard's clients.
#[derive(Debug, Default)]
pub struct PendingInput {
    pub(super) clients: HashMap<u32, Pending>,
    /// Bytes held over all clients.
    total: usize,
    /// Sweeps so far.
    pub(super) sweeps: u64,
    /// Bytes no longer held (messages finished, clients closed) since [`Self::take_released`].
    pub(super) released: usize,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Pending {
    pub(super) bytes: usize,
    /// The sweep count when the incomplete message began.
    pub(super) since: u64,
}

impl PendingInput {
    /// Client `id` holds `bytes`; `restarted`: what it holds began after a message it finished.
    pub(super) fn set(&mut self, id: u32, bytes: usize, restarted: bool) {
        let sweeps = self.sweeps;
        let entry = self.clients.entry(id).or_insert(Pending {
            bytes: 0,
            since: sweeps,
        });
        self.total = self.total - entry.bytes + bytes;
        self.released += entry.bytes.saturating_sub(bytes);
        entry.bytes = bytes;
        if restarted {
            entry.since = sweeps;
        }
    }

    pub(super) fn remove(&mut self, id: u32) {
        if let Some(p) = self.clients.remove(&id) {
            self.total -= p.bytes;
            self.released += p.bytes;
        }
    }

    /// The client holding the most.
    pub(super) fn largest(&self) -> Option<u32> {
        self.clients
            .iter()
            .max_by_key(|(_, p)| p.bytes)
            .map(|(&id, _)| id)
    }

    /// Bytes held over all clients.
    pub fn total(&self) -> usize {
        self.total
    }
}
