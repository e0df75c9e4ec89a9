//! Idle clients, the core's side of parking: which clients sent nothing for a whole sweep (asked
//! to park), which are parked, and what the I/O layer's parking lot must do for them — ids only.
//! The lot owns the parked sockets; the core never sees a descriptor.

use std::task::Waker;

use crate::gateway::core::parking_requests::{ParkingRequests, ParkingWork};
use crate::gateway::core::shard::Shard;

impl Shard {
    /// Turns parking on (`gateway.park_after` > 0 and a lot is running).
    pub fn enable_parking(&mut self) {
        self.parking = Some(ParkingRequests::default());
    }

    /// Asks every client that sent nothing since the previous sweep to park (its task parks it
    /// once its output is written).
    pub fn sweep_idle(&mut self) {
        for client in self.clients.values_mut() {
            if !client.active
                && !client.parked
                && client.outbox.closing().is_none()
                && !client.outbox.is_held()
            {
                client.outbox.request_park();
            }
            client.active = false;
        }
    }

    /// Client `id`'s task ended idle and the lot holds its socket now. False when the client is
    /// no longer known (the lot then drops the socket).
    pub fn parked(&mut self, id: u32) -> bool {
        let Some(client) = self.clients.get_mut(&id) else {
            return false;
        };
        client.outbox.forget_writer();
        client.outbox.shrink_if_empty();
        client.parked = true;
        self.stats.parked += 1;
        true
    }

    /// Client `id` has a task again. False when it was not parked (or is gone).
    pub fn unparked(&mut self, id: u32) -> bool {
        match self.clients.get_mut(&id) {
            Some(client) if client.parked => {
                client.parked = false;
                client.flush_pending = false;
                self.stats.unparked += 1;
                true
            }
            _ => false,
        }
    }

    /// The lot's next round of work (setting the waker for the one after).
    pub fn take_parking_work(&mut self, waker: &Waker) -> Option<ParkingWork> {
        let requests = self.parking.as_mut()?;
        requests.waker = Some(waker.clone());
        Some(ParkingWork {
            dirty: std::mem::take(&mut requests.dirty),
            wake: std::mem::take(&mut requests.wake),
        })
    }

    /// The output of parked client `id`, for the lot to write now. Until this is asked, more
    /// output for the client joins the same write instead of asking for another: a round that
    /// yields half-way (to read new messages) gives them to the clients it has not reached yet.
    pub fn parked_output_to_write(&mut self, id: u32) -> Option<&mut crate::net::Outbox> {
        let client = self.clients.get_mut(&id)?;
        client.flush_pending = false;
        Some(&mut client.outbox)
    }

    /// A parked client has new output: the lot writes it on its next round.
    pub(in crate::gateway) fn parked_output(&mut self, id: u32) {
        let Some(client) = self.clients.get_mut(&id) else {
            return;
        };
        if std::mem::replace(&mut client.flush_pending, true) {
            return;
        }
        if let Some(requests) = self.parking.as_mut() {
            requests.dirty.push(id);
            requests.notify();
        }
    }

    /// A parked client needs a task (or, if it is gone, its socket dropped).
    pub(in crate::gateway) fn unpark_soon(&mut self, id: u32) {
        if let Some(requests) = self.parking.as_mut() {
            requests.wake.push(id);
            requests.notify();
        }
    }
}
