//! Keeping a link to every listed gateway shard: the address book a register's list updates (at
//! most `worker.max_gateways` addresses, each change O(1) per address), one task per listed
//! address that connects, says hello, asks for the confirmation and reconnects every second
//! while the address stays listed, and the link's reading side, which hands events on to
//! [`super::dispatch`].

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use gatewire_proto::auth::gatewire_worker_connect_body;
use gatewire_proto::command::{Command, Control};
use gatewire_proto::packet::{CMD_WORKER_ALIVE, CMD_WORKER_CONFIRM, CMD_WORKER_DRAIN, PacketError};
use gatewire_proto::register::{RegisterMessage, worker_connect_line};
use gatewire_proto::{Cmd, Flags, Header, Packet, PacketDecoder};
use indexmap::IndexSet;
use tracing::{debug, info, warn};

use super::dispatch;
use super::events::Events;
use super::state::WorkerThread;
use crate::net::{self, Framed, Outbox, read_frames};
use crate::register::RegisterLink;
use crate::rt::{self, CloseReason, Peer};

const RETRY_AFTER: Duration = Duration::from_secs(1);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A link the gateway has not confirmed within this time counts as linked anyway (PHP gateways
/// do not answer the confirmation request).
const CONFIRM_WAIT: Duration = Duration::from_secs(1);

/// The worker side of a register link: follows the gateway list.
pub(super) struct AddressBook<A> {
    pub worker: Rc<WorkerThread<A>>,
}

impl<A: Events> RegisterLink for AddressBook<A> {
    fn hello(&self) -> String {
        worker_connect_line(&self.worker.secret)
    }

    fn on_message(&mut self, message: RegisterMessage) {
        let RegisterMessage::BroadcastAddresses { addresses } = message else {
            return;
        };
        let worker = &self.worker;
        let offered = addresses.len();
        let listed: IndexSet<String> = addresses.into_iter().take(worker.max_gateways).collect();
        let over = offered.saturating_sub(worker.max_gateways) as u64;
        worker.stats.gateways_over_cap.store(over, Ordering::SeqCst);
        if over > 0 {
            worker
                .stats
                .gateway_cap_hits
                .fetch_add(1, Ordering::Relaxed);
            crate::log_limit::warn_limited(
                "worker.max_gateways",
                &format!(
                    "a register listed {offered} gateway shards; this worker links to the first {} \
                     (worker.max_gateways) and ignores {over}",
                    worker.max_gateways
                ),
            );
        }
        debug!(gateways = listed.len(), "gateway list");
        worker.links.borrow_mut().known = listed;
        worker.stats.has_list.store(true, Ordering::SeqCst);
        worker.publish_links();
        if worker.retiring.get() {
            return;
        }
        // A task per newly listed address; the tasks of addresses no longer listed end by
        // themselves at their next look.
        let links = worker.links.borrow();
        let mut linking = worker.linking.borrow_mut();
        for address in &links.known {
            if !linking.contains(address) {
                linking.insert(address.clone());
                rt::spawn(keep_linked(worker.clone(), address.clone()));
            }
        }
    }
}

/// Keeps a link to the gateway at `address` while the registers list it.
async fn keep_linked<A: Events>(worker: Rc<WorkerThread<A>>, address: String) {
    let mut backoff = net::Backoff::default();
    loop {
        if !worker.listed(&address) || worker.retiring.get() {
            break;
        }
        let delay = match address.parse::<SocketAddr>() {
            Ok(target) => match rt::connect(target, CONNECT_TIMEOUT).await {
                Ok(stream) => link(&worker, (&address, target), stream, &mut backoff).await,
                Err(_) => RETRY_AFTER,
            },
            Err(_) => {
                crate::log_limit::warn_limited(
                    "gateway address is not ip:port",
                    &format!("a register listed gateway {address:?}, which is not ip:port"),
                );
                RETRY_AFTER
            }
        };
        if worker.retiring.get() {
            break;
        }
        rt::sleep(delay).await;
    }
    worker.linking.borrow_mut().remove(&address);
}

/// Runs one link to `address` (as listed, and parsed) until it ends; returns how long to wait
/// before the next try.
async fn link<A: Events>(
    worker: &Rc<WorkerThread<A>>,
    (address, gateway): (&str, SocketAddr),
    stream: rt::TcpStream,
    backoff: &mut net::Backoff,
) -> Duration {
    let _ = stream.set_nodelay(true);
    rt::fail_dead_peer_after(&stream, worker.link_timeout);
    let outbox = Rc::new(RefCell::new(Outbox::default()));
    let hello = Packet::new(
        Header::for_connection(Cmd::WorkerConnect, 0, Flags::SCALAR),
        "",
        gatewire_worker_connect_body(
            &worker.worker_key,
            &worker.secret,
            worker.max_packet_size,
            worker.presence,
        ),
    );
    // The gateway echoes the confirmation request once it has handled the hello.
    let confirm = Command::Control(Control::Confirm).to_packet();
    for packet in [hello, confirm] {
        if let Ok(bytes) = packet.to_bytes() {
            outbox.borrow_mut().push(bytes);
        }
    }
    let fd = std::os::fd::AsRawFd::as_raw_fd(&stream);
    worker.links.borrow_mut().connected.insert(
        gateway,
        crate::api::LinkHandle {
            address: address.to_owned(),
            outbox: outbox.clone(),
            fd,
        },
    );
    info!(%address, worker = %worker.worker_key, "linked to gateway");
    let (late, late_address) = (worker.clone(), address.to_owned());
    let confirm_anyway = rt::spawn_cancellable(async move {
        rt::sleep(CONFIRM_WAIT).await;
        late.confirm(&late_address);
    });
    let ended = Rc::new(RefCell::new(None));
    let peer = LinkReader {
        worker: worker.clone(),
        address: address.to_owned(),
        outbox,
        decoder: PacketDecoder::new(worker.max_packet_size),
        ended: ended.clone(),
    };
    let opened = Instant::now();
    rt::drive(stream, peer).await;
    confirm_anyway.cancel();
    let was_confirmed = worker.confirmed.borrow().contains(address);
    worker.link_lost(address);
    if worker.retiring.get() {
        return RETRY_AFTER;
    }
    let accepted = was_confirmed || opened.elapsed() >= CONFIRM_WAIT;
    if let Some(refused) = backoff.after_connection(accepted) {
        crate::log_limit::warn_limited(
            "gateway refused the link",
            &format!(
                "gateway {address} closed the link right after our hello: its secret_key differs, \
                 or worker key {} is held there by another live link; retrying in {}s",
                worker.worker_key,
                refused.as_secs()
            ),
        );
        return refused;
    }
    let reason = ended.borrow_mut().take().map_or_else(
        || "unknown".to_owned(),
        |r: CloseReason| r.describe().into_owned(),
    );
    warn!(%address, %reason, "gateway link lost; retrying every second while listed");
    RETRY_AFTER
}

/// The reading side of one gateway link.
struct LinkReader<A> {
    worker: Rc<WorkerThread<A>>,
    address: String,
    outbox: Rc<RefCell<Outbox>>,
    decoder: PacketDecoder,
    /// Why the link ended, for the log line.
    ended: Rc<RefCell<Option<CloseReason>>>,
}

impl<A: Events> Framed<PacketDecoder> for LinkReader<A> {
    fn decoder(&mut self) -> Option<&mut PacketDecoder> {
        Some(&mut self.decoder)
    }

    fn on_frame(&mut self, packet: Packet) -> bool {
        match packet.header.cmd {
            CMD_WORKER_CONFIRM => self.worker.confirm(&self.address),
            CMD_WORKER_DRAIN => {
                self.worker.drain_pending.borrow_mut().remove(&self.address);
            }
            // The gateway asks whether we read: everything it sent before is handled.
            CMD_WORKER_ALIVE => {
                if let Ok(answer) = packet.to_bytes() {
                    self.outbox.borrow_mut().push(answer);
                }
            }
            _ => dispatch::event(&self.worker, packet),
        }
        true
    }

    fn on_undecodable(&mut self, e: PacketError) {
        crate::log_limit::warn_limited(
            "bad packet from a gateway",
            &format!(
                "bad packet from gateway {}: {e}; dropping the link",
                self.address
            ),
        );
        self.outbox.borrow_mut().close(net::Closing::Now);
    }
}

impl<A: Events> Peer for LinkReader<A> {
    fn with_outbox<R>(&mut self, f: impl FnOnce(&mut Outbox) -> R) -> Option<R> {
        Some(f(&mut self.outbox.borrow_mut()))
    }

    fn on_input(&mut self, input: &mut BytesMut) {
        read_frames::<PacketDecoder, _>(self, input);
    }

    fn on_closed(&mut self, reason: CloseReason) {
        *self.ended.borrow_mut() = Some(reason);
    }
}
