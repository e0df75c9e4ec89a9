//! An inner connection's protocol side: GatewayProtocol packets in, applied to the shard; replies
//! and events go out through the link's outbox. A malformed stream closes the link.

use std::cell::RefCell;
use std::rc::Rc;

use bytes::BytesMut;
use gatewire_proto::packet::PacketError;
use gatewire_proto::{Packet, PacketDecoder};

use crate::gateway::core::shard::Shard;
use crate::gateway::holdings::Holdings;
use crate::log_limit::warn_limited;
use crate::net::{Framed, Outbox, read_frames};
use crate::rt::{CloseReason, Peer};

/// The protocol side of one inner link.
pub struct LinkPeer {
    shard: Rc<RefCell<Shard>>,
    link_id: u64,
    /// With the store on: where binds and joins go after each batch.
    holdings: Option<Rc<Holdings>>,
    /// Re-bounded before each packet (a hello raises the bound).
    decoder: PacketDecoder,
}

impl LinkPeer {
    pub fn new(
        shard: Rc<RefCell<Shard>>,
        link_id: u64,
        holdings: Option<Rc<Holdings>>,
    ) -> LinkPeer {
        LinkPeer {
            shard,
            link_id,
            holdings,
            decoder: PacketDecoder::default(),
        }
    }

    /// The packet size bound for this link now: `max_packet_size` once authorized.
    fn max_packet(&self) -> usize {
        self.shard.borrow().link_max_packet(self.link_id)
    }
}

impl Peer for LinkPeer {
    fn with_outbox<R>(&mut self, f: impl FnOnce(&mut Outbox) -> R) -> Option<R> {
        let mut shard = self.shard.borrow_mut();
        shard.link_outbox(self.link_id).map(f)
    }

    fn on_input(&mut self, input: &mut BytesMut) {
        // Replies to single clients in this batch are written at its end, here, instead of
        // waking each client's task (core::direct_writes).
        self.shard.borrow_mut().begin_direct_writes();
        read_frames::<PacketDecoder, _>(self, input);
        let mut shard = self.shard.borrow_mut();
        shard.end_direct_writes(crate::rt::write_direct);
        if let Some(holdings) = &self.holdings {
            holdings.flush(&mut shard);
        }
    }

    fn on_closed(&mut self, reason: CloseReason) {
        let mut shard = self.shard.borrow_mut();
        if let Some(worker) = shard.link_worker_key(self.link_id) {
            // A worker that stops or reloads closes its links: routine. A socket error (a
            // silent peer's keepalive timing out, a reset) is worth a warning.
            match reason {
                CloseReason::Error(_) => {
                    tracing::warn!(%worker, reason = %reason.describe(), "worker link closed");
                }
                _ => tracing::info!(%worker, reason = %reason.describe(), "worker link closed"),
            }
        }
        shard.link_closed(self.link_id);
    }
}

impl Framed<PacketDecoder> for LinkPeer {
    /// A decoder bounded by what the link may send now (`max_packet_size` once authorized).
    fn decoder(&mut self) -> Option<&mut PacketDecoder> {
        self.decoder = PacketDecoder::new(self.max_packet());
        Some(&mut self.decoder)
    }

    /// Applies one packet to the shard.
    fn on_frame(&mut self, packet: Packet) -> bool {
        let mut shard = self.shard.borrow_mut();
        if !shard.has_link(self.link_id) {
            return false;
        }
        shard.link_packet(self.link_id, packet);
        true
    }

    fn on_undecodable(&mut self, e: PacketError) {
        let identified = self.shard.borrow().link_identified(self.link_id);
        if identified {
            warn_limited("bad inner packet", &format!("closing inner link: {e}"));
        } else {
            warn_limited(
                "inner packet before a hello",
                &format!(
                    "closing inner link: {e}; until a connection's hello \
                         (CMD_WORKER_CONNECT or CMD_GATEWAY_CLIENT_CONNECT) packets are \
                         bounded to 64 KiB. PHP's GatewayClient sends its hello only when \
                         a secret_key is set: set one to send larger commands from it"
                ),
            );
        }
        self.shard.borrow_mut().bad_inner_stream(self.link_id);
    }
}
