//! What the core asks of the I/O layer's parking lot, as client ids (filled by `idle`, taken by
//! the lot each round).

use std::task::Waker;

/// What the core asks of the parking lot, as client ids.
#[derive(Debug, Default)]
pub struct ParkingRequests {
    /// Parked clients to give a task again (socket full, close requested) or whose socket to
    /// drop (gone).
    pub(super) wake: Vec<u32>,
    /// Parked clients with output queued since the lot last ran: written together, so a burst
    /// leaves in one `sendmsg` per client, as it would from a task.
    pub(super) dirty: Vec<u32>,
    /// The lot's task, woken when there is work.
    pub(super) waker: Option<Waker>,
}

/// One round of work for the parking lot.
#[derive(Debug, Default)]
pub struct ParkingWork {
    pub dirty: Vec<u32>,
    pub wake: Vec<u32>,
}

impl ParkingRequests {
    pub(super) fn notify(&mut self) {
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }
}
