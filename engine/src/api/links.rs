//! A worker thread's event links to the gateways: one outbox per gateway shard, bounded by
//! `worker.send_to_gateway_buffer_size`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;

use bytes::Bytes;
use indexmap::IndexSet;
use tracing::warn;

use crate::net::Outbox;

/// One event link's outbox and socket.
#[derive(Debug)]
pub struct LinkHandle {
    /// The gateway's address as the registers listed it.
    pub address: String,
    pub outbox: Rc<RefCell<Outbox>>,
    pub fd: std::os::fd::RawFd,
}

/// The gateway links of one worker thread, by the gateway's socket address: a client id names
/// its gateway as one, so sending to a client looks its link up without formatting an address.
#[derive(Debug, Default)]
pub struct Links {
    pub connected: HashMap<SocketAddr, LinkHandle>,
    /// The gateway shards the newest register list named, in its order, up to
    /// `worker.max_gateways` (queries go to all of them).
    pub known: IndexSet<String>,
    /// Bytes one link may hold queued (`worker.send_to_gateway_buffer_size`).
    pub output_cap: usize,
    /// Links dropped because their gateway left more than `output_cap` unread.
    pub overflows: u64,
}

impl Links {
    /// Queues `packet` on the link to `gateway`; false when there is none. A link whose gateway
    /// left more than `output_cap` unread is dropped (its queue freed; the link is made again).
    pub(super) fn push(&mut self, gateway: SocketAddr, packet: Bytes) -> bool {
        let Some(link) = self.connected.get(&gateway) else {
            return false;
        };
        let mut outbox = link.outbox.borrow_mut();
        if outbox.closing().is_some() {
            return false;
        }
        if outbox.queued_bytes() + packet.len() > self.output_cap {
            // A callback may queue a lot at once: first let the socket take what it can.
            let _ = crate::rt::send_parked(link.fd, &mut outbox);
        }
        let queued = outbox.queued_bytes();
        if queued > 0 && queued + packet.len() > self.output_cap {
            outbox.close(crate::net::Closing::Now);
            self.overflows += 1;
            warn!(
                gateway = %link.address,
                queued,
                "the gateway does not read its link: dropping the link and {queued} queued bytes \
                 (worker.send_to_gateway_buffer_size); it is made again in a second"
            );
            return false;
        }
        outbox.push(packet);
        true
    }
}
