//! Worker commands (protocol §2.3, §5.6, §5.7): authentication, then the typed command
//! (`gatewire_proto::command`) applied by the handler of its family, in the file of the same name. Per-client commands for an unknown connection id are ignored, as in GatewayWorker.

mod membership;
mod query;
mod send;
mod session;

use core::net::SocketAddr;
use std::rc::Rc;

use gatewire_proto::auth::Auth;
use gatewire_proto::command::{Command, CommandError, Control};
use gatewire_proto::packet::{CMD_WORKER_CONFIRM, CMD_WORKER_DRAIN};
use gatewire_proto::{Cmd, Header, Packet};

use crate::gateway::core::shard::Shard;
use crate::log_limit::warn_limited;
use crate::net::Closing;

impl Shard {
    /// Applies one packet received on inner link `link_id`.
    pub fn link_packet(&mut self, link_id: u64, packet: Packet) {
        let Some(link) = self.links.get(&link_id) else {
            return;
        };
        let (authorized, peer) = (link.authorized, link.peer);
        let cmd = packet.header.cmd;
        match cmd {
            Cmd::WorkerConnect | Cmd::GatewayClientConnect => {
                return self.link_hello(link_id, peer, cmd == Cmd::WorkerConnect, &packet.body);
            }
            _ if !authorized => {
                warn_limited(
                    "inner unauthorized",
                    &format!(
                        "{peer} sent cmd {} on the inner port without authenticating (a secret_key \
                         is set), closing",
                        u8::from(cmd)
                    ),
                );
                self.stats.unauthorized_links += 1;
                return self.close_link(link_id);
            }
            // No secret: PHP's GatewayClient sends its command without a hello.
            _ => {
                if let Some(link) = self.links.get_mut(&link_id) {
                    link.identified = true;
                }
            }
        }
        match Command::from_packet(&packet) {
            Ok(Command::Send(c)) => self.apply_send(c),
            Ok(Command::Membership(c)) => self.apply_membership(c),
            Ok(Command::Session(c)) => self.apply_session(c),
            Ok(Command::Query(q)) => self.answer(link_id, q),
            Ok(Command::Control(Control::Drain)) => self.worker_drain(link_id),
            Ok(Command::Control(Control::Confirm)) => self.echo_signal(link_id, CMD_WORKER_CONFIRM),
            Ok(Command::Control(Control::Alive)) => self.worker_alive(link_id),
            Err(CommandError::Ext(e)) => {
                warn_limited(
                    "bad ext from an inner link",
                    &format!(
                        "bad ext in command {} from {peer}: {e}; closing the link",
                        u8::from(cmd)
                    ),
                );
                self.stats.bad_inner_packets += 1;
                self.close_link(link_id);
            }
            Err(CommandError::NotACommand(_)) => {
                warn_limited(
                    "not a command from an inner link",
                    &format!(
                        "gateway inner pack err: command {} from {peer} is not one a gateway takes; ignored",
                        u8::from(cmd)
                    ),
                );
                self.stats.bad_inner_packets += 1;
            }
        }
    }

    /// A worker's or GatewayClient's hello (`WorkerConnect`/`GatewayClientConnect`): with the
    /// right secret the link is identified (and, for a named worker, registered under its key);
    /// a wrong secret or an unreadable hello closes it.
    fn link_hello(&mut self, link_id: u64, peer: SocketAddr, worker: bool, body: &[u8]) {
        match Auth::parse(body, worker) {
            Ok(auth) if auth.secret_matches(&self.settings.secret_key) => {
                self.link_authenticated(link_id, peer, worker, auth);
            }
            Ok(_) => {
                let who = if worker {
                    "a worker"
                } else {
                    "a GatewayClient"
                };
                warn_limited(
                    "inner secret key mismatch",
                    &format!(
                        "secret key mismatch from {peer} ({who}): check secret_key on \
                         both sides; closing"
                    ),
                );
                self.stats.unauthorized_links += 1;
                self.close_link(link_id);
            }
            Err(e) => {
                warn_limited(
                    "inner bad hello",
                    &format!("bad hello from {peer} on the inner port ({e}), closing"),
                );
                self.stats.bad_inner_packets += 1;
                self.close_link(link_id);
            }
        }
    }

    /// A hello with the right secret: what the link may receive (packet size, probes,
    /// presence), then its worker key, if it named one.
    fn link_authenticated(&mut self, link_id: u64, peer: SocketAddr, worker: bool, auth: Auth) {
        if let Some(link) = self.links.get_mut(&link_id) {
            link.identified = true;
            link.max_packet = auth
                .max_packet_size
                .map(|max| usize::try_from(max).unwrap_or(usize::MAX));
            link.answers_probes = worker && auth.max_packet_size.is_some();
            let presence = worker && auth.presence;
            if presence != link.presence {
                link.presence = presence;
                if presence {
                    self.presence_links += 1;
                } else {
                    self.presence_links -= 1;
                }
            }
        }
        if let Some(name) = auth.worker_key.filter(|_| worker) {
            let key: Rc<str> = Rc::from(format!("{}:{name}", peer.ip()));
            if let Some(holder) = self.register_worker(link_id, key.clone()) {
                warn_limited(
                    "worker key taken over",
                    &format!(
                        "worker key {key} claimed by {peer}: it takes the key \
                         over from {holder}, whose link is closed (as in \
                         GatewayWorker 4.0); two workers of one name on one \
                         host take it from each other: give each its own \
                         worker.name"
                    ),
                );
            }
        } else if let Some(link) = self.links.get_mut(&link_id) {
            link.authorized = true;
        }
    }

    /// A retiring worker asks for no new events: it stops being a routing target (its clients
    /// are re-routed on their next event) and the same cmd goes back as the last event on the
    /// link, after everything already queued for it.
    fn worker_drain(&mut self, link_id: u64) {
        let Some(key) = self
            .links
            .get_mut(&link_id)
            .and_then(|l| l.worker_key.take())
        else {
            return;
        };
        if self.workers.get(&key) == Some(&link_id) {
            self.workers.shift_remove(&key);
            self.router.worker_left(&key);
        }
        tracing::info!(worker = %key, "worker draining: no new events routed to it");
        self.echo_signal(link_id, CMD_WORKER_DRAIN);
    }

    /// Sends a bodiless `cmd` back on the link, after everything already queued there (the
    /// answer to the confirm and drain extension cmds).
    fn echo_signal(&mut self, link_id: u64, cmd: Cmd) {
        let signal = Packet::new(Header::command(cmd), "", "");
        if let (Ok(bytes), Some(link)) = (signal.to_bytes(), self.links.get_mut(&link_id)) {
            link.outbox.push(bytes);
        }
    }

    /// Closes an inner link at once.
    pub fn close_link(&mut self, link_id: u64) {
        if let Some(link) = self.links.get_mut(&link_id) {
            link.outbox.close(Closing::Now);
        }
    }
}
