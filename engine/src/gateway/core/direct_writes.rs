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

use crate::net::{Frame, Outbox};

/// The clients with frames waiting for the end of the current link batch (the shard's
/// `begin_direct_writes` and `end_direct_writes` drive it).
#[derive(Debug, Default)]
pub struct DirectWrites {
    /// A link batch is being applied.
    open: bool,
    /// Clients whose outbox holds frames for the batch's direct write, in the order of their
    /// first frame.
    waiting: Vec<u32>,
}

impl DirectWrites {
    /// A link's input batch starts.
    pub fn begin(&mut self) {
        self.open = true;
    }

    /// Queues `frame` in client `id`'s `outbox` for the direct write when a batch is open and
    /// the client can take one (its task runs on a plain socket; a parked client has no socket
    /// recorded); gives the frame back otherwise (for the ordinary way).
    pub fn queue(&mut self, id: u32, outbox: &mut Outbox, frame: Frame) -> Option<Frame> {
        if !self.open || !outbox.takes_direct() {
            return Some(frame);
        }
        if outbox.push_direct(frame) {
            self.waiting.push(id);
        }
        None
    }

    /// The batch is applied: the clients to write, in order (handed back with
    /// [`DirectWrites::recycle`], which keeps the list's allocation for the next batch).
    pub fn end(&mut self) -> Vec<u32> {
        self.open = false;
        std::mem::take(&mut self.waiting)
    }

    pub fn recycle(&mut self, mut ids: Vec<u32>) {
        ids.clear();
        self.waiting = ids;
    }

    /// One waiting outbox's turn: `write` writes it to its socket (as much as the socket takes)
    /// unless it was closed meanwhile; whatever is left wakes the client's task.
    pub fn write(outbox: &mut Outbox, write: &mut impl FnMut(&mut Outbox)) {
        if !outbox.is_direct() {
            return;
        }
        if outbox.takes_direct() {
            write(outbox);
        }
        outbox.end_direct();
    }
}
