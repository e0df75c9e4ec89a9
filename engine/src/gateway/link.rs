//! An inner connection's protocol side: GatewayProtocol packets in, applied to the shard; replies
//! and events go out through the link's outbox. A malformed stream closes the link.

use std::cell::RefCell;
use std::rc::Rc;

use bytes::BytesMut;
use gatewire_proto::PacketDecoder;

use crate::gateway::core::state::Shard;
use crate::log_limit::warn_limited;
use crate::net::{CloseReason, Outbox, Peer};

/// The largest packet an inner link may send before it authenticated: the hello packets are a
/// few hundred bytes, so a stranger cannot make the gateway buffer megabytes.
const MAX_PACKET_BEFORE_AUTH: usize = 64 * 1024;

/// The protocol side of one inner link.
pub struct LinkPeer {
    shard: Rc<RefCell<Shard>>,
    link_id: u64,
}

impl LinkPeer {
    pub fn new(shard: Rc<RefCell<Shard>>, link_id: u64) -> LinkPeer {
        LinkPeer { shard, link_id }
    }

    /// The packet size bound for this link now: `max_packet_size` once authorized.
    fn max_packet(&self) -> usize {
        let shard = self.shard.borrow();
        match shard.links.get(&self.link_id) {
            Some(link) if link.authorized => shard.settings.max_packet_size,
            _ => MAX_PACKET_BEFORE_AUTH.min(shard.settings.max_packet_size),
        }
    }
}

impl Peer for LinkPeer {
    fn with_outbox<R>(&mut self, f: impl FnOnce(&mut Outbox) -> R) -> Option<R> {
        let mut shard = self.shard.borrow_mut();
        shard.links.get_mut(&self.link_id).map(|l| f(&mut l.outbox))
    }

    fn on_input(&mut self, input: &mut BytesMut) {
        loop {
            match PacketDecoder::new(self.max_packet()).decode(input) {
                Ok(Some(packet)) => {
                    let mut shard = self.shard.borrow_mut();
                    if !shard.links.contains_key(&self.link_id) {
                        return;
                    }
                    shard.link_packet(self.link_id, packet);
                }
                Ok(None) => return,
                Err(e) => {
                    warn_limited("bad inner packet", &format!("closing inner link: {e}"));
                    input.clear();
                    let mut shard = self.shard.borrow_mut();
                    shard.stats.bad_inner_packets += 1;
                    shard.close_link(self.link_id);
                    return;
                }
            }
        }
    }

    fn on_closed(&mut self, _reason: CloseReason) {
        self.shard.borrow_mut().link_closed(self.link_id);
    }
}
