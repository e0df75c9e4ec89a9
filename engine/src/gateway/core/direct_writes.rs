//! Replies written by the inner link that carried them. While a worker link's input batch is
//! applied, a reply to one client (SEND_TO_ONE) whose task runs on a plain socket and has nothing
//! else queued is not handed to that task: it waits in the client's outbox, and at the end of the
//! batch the link writes every such outbox straight to its socket. What a socket does not take,
//! and any error, is left to the client's task (woken then), as any other output is.
//!
//! Why: a reply waking its client's task goes to the back of the executor's ordinary queue. Past
//! ~110,000 echoes/s on one core, the I/O pass of a turn reads thousands of requests while the
//! ordinary queue runs a bounded batch, replies wait there past TCP's delayed-ACK time, and the
//! shard tips into a state where every echo costs one more segment (docs/benchmarks.md, "Replies
//! written by the inner link"). Written by the link, a reply leaves in the turn that read it.
//! A fanout still wakes its writers: they take turns with the shard's I/O (`rt::pacing`).

use crate::gateway::core::shard::{Client, Shard};
use crate::net::{Frame, Outbox};

/// The clients with frames waiting for the end of the current link batch.
#[derive(Debug, Default)]
pub struct DirectWrites {
    /// A link batch is being applied.
    open: bool,
    /// Clients whose outbox holds frames for the batch's direct write, in the order of their
    /// first frame.
    waiting: Vec<u32>,
}

impl DirectWrites {
    /// Queues `frame` for client `id`'s direct write when a batch is open and the client can
    /// take one; gives the frame back otherwise (for the ordinary way).
    pub(in crate::gateway::core) fn queue(
        &mut self,
        id: u32,
        client: &mut Client,
        frame: Frame,
    ) -> Option<Frame> {
        if !self.open || client.parked || !client.outbox.takes_direct() {
            return Some(frame);
        }
        if client.outbox.push_direct(frame) {
            self.waiting.push(id);
        }
        None
    }
}

impl Shard {
    /// A link's input batch starts: replies to single clients wait for its end.
    pub fn begin_direct_writes(&mut self) {
        self.direct_writes.open = true;
    }

    /// The batch is applied: `write` writes each waiting outbox to its socket (as much as the
    /// socket takes); whatever is left wakes the client's task.
    pub fn end_direct_writes(&mut self, mut write: impl FnMut(&mut Outbox)) {
        self.direct_writes.open = false;
        let mut waiting = std::mem::take(&mut self.direct_writes.waiting);
        for id in waiting.drain(..) {
            let Some(client) = self.clients.get_mut(&id) else {
                continue;
            };
            if !client.outbox.is_direct() {
                continue;
            }
            if client.outbox.takes_direct() {
                write(&mut client.outbox);
            }
            client.outbox.end_direct();
        }
        // The list's allocation is kept for the next batch.
        self.direct_writes.waiting = waiting;
    }
}
