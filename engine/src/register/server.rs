//! The Register server: JSON lines, a 10 s first-line timeout, the secret check, at most
//! `register.max_members` connections, and the gateway list sent to every worker after gateways
//! come or go (once per 100 ms tick however many did; each join or leave costs O(1)). A refused connection is
//! closed without a word, as PHP's register does (its clients take any answer for data); the
//! reason is logged here, naming the peer, once per cause per interval.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use gatewire_proto::line::{LineDecoder, LineTooLong};
use gatewire_proto::register::{RegisterMessage, broadcast_addresses_line};
use gatewire_proto::{Cmd, Flags, Header, Packet};
use indexmap::IndexMap;
use tracing::{debug, info};

use crate::config::RegisterConfig;
use crate::log_limit::warn_limited;
use crate::net::{Closing, Framed, Outbox, read_frames};
use crate::rt::{self, CloseReason, Peer};

/// Longest register line accepted.
const MAX_LINE: usize = 64 * 1024;
/// A connection must say something within this time.
const FIRST_LINE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug)]
struct Connection {
    outbox: Outbox,
    role: Membership,
    spoke: bool,
    remote: std::net::SocketAddr,
    opened: std::time::SystemTime,
}

#[derive(Debug, Default, PartialEq, Eq)]
enum Membership {
    #[default]
    Unknown,
    /// Announced this gateway address; listed once it answers there ([`prove`]).
    Announcing(String),
    Gateway(String),
    Worker,
}

/// What the register publishes for the status and metrics endpoints.
#[derive(Debug, Default)]
pub struct RegisterStats {
    /// Gateway shards announced (distinct addresses).
    pub gateways: AtomicU64,
    /// Workers and GatewayClients following the list.
    pub workers: AtomicU64,
    /// Connections refused (bad line, wrong key, timeout).
    pub refused: AtomicU64,
    /// Connections closed at accept because `register.max_members` were open.
    pub member_cap_hits: AtomicU64,
    /// Every member, for `gatewire status`.
    pub members: std::sync::Mutex<Vec<Member>>,
}

/// One connection that said who it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The gateway address it announced; `None` for a worker or GatewayClient.
    pub announces: Option<String>,
    /// Where it connects from.
    pub from: std::net::SocketAddr,
    pub since: std::time::SystemTime,
}

/// How long the register gathers list changes before it sends workers the new list: a burst of
/// announcements (a cluster starting, or a flood) costs one broadcast per tick, not one each.
const BROADCAST_TICK: Duration = Duration::from_millis(100);

#[derive(Debug, Default)]
struct Book {
    secret: String,
    connections: HashMap<u64, Connection>,
    next_id: u64,
    /// Every announced gateway address, in the order it was first announced, with the number of
    /// connections announcing it (a restarted gateway may briefly overlap its old connection).
    gateways: IndexMap<String, u32>,
    /// Connections that joined as workers (or GatewayClients); published at once.
    workers: u64,
    /// The newest list as a line, built once per change.
    line: Option<Bytes>,
    /// The list changed since the workers last got it.
    list_changed: bool,
    /// A flush is scheduled for the end of the tick.
    flush_scheduled: bool,
    stats: Arc<RegisterStats>,
}

impl Book {
    /// The list as `broadcast_addresses` line.
    fn line(&mut self) -> Bytes {
        let gateways = &self.gateways;
        self.line
            .get_or_insert_with(|| {
                let addresses: Vec<String> = gateways.keys().cloned().collect();
                Bytes::from(broadcast_addresses_line(&addresses))
            })
            .clone()
    }

    fn announce(&mut self, address: String) {
        let count = self.gateways.entry(address).or_insert(0);
        *count += 1;
        if *count == 1 {
            self.list_changed();
        }
    }

    fn withdraw(&mut self, address: &str) {
        let Some(count) = self.gateways.get_mut(address) else {
            return;
        };
        *count -= 1;
        if *count == 0 {
            // O(gateways), once per address that leaves; the order of the rest is kept.
            self.gateways.shift_remove(address);
            self.list_changed();
        }
    }

    /// A connection gives up `role` (it closed, or said something else).
    fn left(&mut self, role: Membership) {
        match role {
            Membership::Gateway(address) => {
                debug!(%address, "register: gateway left");
                self.withdraw(&address);
            }
            Membership::Worker => self.count_workers(-1),
            Membership::Announcing(_) | Membership::Unknown => {}
        }
    }

    /// The gateway announcing `address` on connection `id` answered on that address: list it.
    fn proven(&mut self, id: u64, address: &str) -> bool {
        let Some(c) = self.connections.get_mut(&id) else {
            return false;
        };
        if !matches!(&c.role, Membership::Announcing(a) if a == address) {
            return false;
        }
        c.role = Membership::Gateway(address.to_owned());
        self.announce(address.to_owned());
        true
    }

    /// Whether connection `id` still announces `address` without having proven it.
    fn announcing(&self, id: u64, address: &str) -> bool {
        self.connections
            .get(&id)
            .is_some_and(|c| matches!(&c.role, Membership::Announcing(a) if a == address))
    }

    fn count_workers(&mut self, change: i64) {
        self.workers = self.workers.saturating_add_signed(change);
        self.stats.workers.store(self.workers, Ordering::Relaxed);
    }

    fn list_changed(&mut self) {
        self.line = None;
        self.list_changed = true;
        self.stats
            .gateways
            .store(self.gateways.len() as u64, Ordering::Relaxed);
    }

    /// Sends the workers the list if it changed, and publishes the members.
    fn flush(&mut self) {
        self.flush_scheduled = false;
        if std::mem::take(&mut self.list_changed) {
            let line = self.line();
            for c in self.connections.values_mut() {
                if c.role == Membership::Worker {
                    c.outbox.push(line.clone());
                }
            }
        }
        self.publish_members();
    }

    fn publish_members(&self) {
        let mut members: Vec<(u64, Member)> = self
            .connections
            .iter()
            .filter_map(|(id, c)| {
                let announces = match &c.role {
                    Membership::Unknown | Membership::Announcing(_) => return None,
                    Membership::Gateway(a) => Some(a.clone()),
                    Membership::Worker => None,
                };
                let member = Member {
                    announces,
                    from: c.remote,
                    since: c.opened,
                };
                Some((*id, member))
            })
            .collect();
        members.sort_unstable_by_key(|(id, _)| *id);
        if let Ok(mut published) = self.stats.members.lock() {
            *published = members.into_iter().map(|(_, m)| m).collect();
        }
    }
}

/// How long the register waits before it asks an announced gateway that did not answer again.
const PROVE_RETRY: Duration = Duration::from_secs(2);

/// Lists the gateway announced as `address` on connection `id` once it answers a query there
/// (a hello and an IS_ONLINE, which PHP gateways answer too), asking every [`PROVE_RETRY`] while
/// the announcement stands: an address where no gateway serves — the register's own port, a
/// closed one — is never handed to workers.
async fn prove(book: Rc<RefCell<Book>>, id: u64, address: String) {
    let secret = book.borrow().secret.clone();
    let probe = Packet::new(
        Header::for_connection(Cmd::IsOnline, 0, Flags::SCALAR),
        "",
        "",
    );
    while book.borrow().announcing(id, &address) {
        match crate::api::ask_async(&address, &secret, &probe).await {
            Ok(_) => {
                let mut b = book.borrow_mut();
                if b.proven(id, &address) {
                    info!(%address, "register: gateway listed");
                    flush_soon(&mut b, &book);
                }
                return;
            }
            Err(e) => warn_limited(
                "announced gateway does not answer",
                &format!(
                    "register: a gateway announced {address} but does not answer there ({e}); \
                     not listed, asking again every {} s",
                    PROVE_RETRY.as_secs()
                ),
            ),
        }
        rt::sleep(PROVE_RETRY).await;
    }
}

/// Flushes `book` (borrowed as `b`) at the end of the current tick, once however many changes
/// come meanwhile.
fn flush_soon(b: &mut Book, book: &Rc<RefCell<Book>>) {
    if b.flush_scheduled {
        return;
    }
    b.flush_scheduled = true;
    let book = book.clone();
    rt::spawn(async move {
        rt::sleep(BROADCAST_TICK).await;
        book.borrow_mut().flush();
    });
}

/// A gateway may announce only an address of the host it connects from (the same ip; any
/// loopback address when it connects over loopback): otherwise anyone reaching the register
/// could point every worker at a host of their choosing.
fn announced_from_its_own_host(address: &str, from: std::net::SocketAddr) -> Result<(), String> {
    let announced: std::net::SocketAddr = address
        .parse()
        .map_err(|_| format!("gateway address {address:?} is not ip:port"))?;
    let (ip, peer) = (announced.ip(), from.ip().to_canonical());
    if ip == peer || (ip.is_loopback() && peer.is_loopback()) {
        Ok(())
    } else {
        Err(format!(
            "a gateway announcing {address}, which is not an address of the announcing host"
        ))
    }
}

/// Runs the Register on `listener` until the executor stops, publishing into `stats`.
pub async fn serve(listener: rt::TcpListener, config: RegisterConfig, stats: Arc<RegisterStats>) {
    let book = Rc::new(RefCell::new(Book {
        secret: config.secret_key.clone(),
        stats,
        ..Book::default()
    }));
    info!(listen = %config.listen, "register listening");
    loop {
        let stream = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                warn_limited(
                    "register accept failed",
                    &format!("register accept failed: {e}"),
                );
                rt::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(remote) = stream.peer_addr() else {
            continue;
        };
        if book.borrow().connections.len() >= config.max_members {
            let stats = book.borrow().stats.clone();
            stats.member_cap_hits.fetch_add(1, Ordering::Relaxed);
            warn_limited(
                "register.max_members",
                &format!(
                    "register: {} connections are open (register.max_members); closing the one \
                     from {remote}",
                    config.max_members
                ),
            );
            continue;
        }
        crate::rt::fail_dead_peer_after(&stream, config.link_timeout);
        let id = {
            let mut b = book.borrow_mut();
            b.next_id += 1;
            let id = b.next_id;
            let connection = Connection {
                outbox: Outbox::default(),
                role: Membership::Unknown,
                spoke: false,
                remote,
                opened: std::time::SystemTime::now(),
            };
            b.connections.insert(id, connection);
            id
        };
        let timeout_book = book.clone();
        rt::spawn(async move {
            rt::sleep(FIRST_LINE_TIMEOUT).await;
            let mut b = timeout_book.borrow_mut();
            let stats = b.stats.clone();
            if let Some(c) = b.connections.get_mut(&id)
                && !c.spoke
            {
                warn_limited(
                    "register first-line timeout",
                    &format!("register: {remote} said nothing within 10 s, closing"),
                );
                stats.refused.fetch_add(1, Ordering::Relaxed);
                c.outbox.close(Closing::Now);
            }
        });
        let peer = RegisterPeer {
            id,
            remote,
            book: book.clone(),
            lines: LineDecoder::new(MAX_LINE),
        };
        rt::spawn(rt::drive(stream, peer));
    }
}

struct RegisterPeer {
    id: u64,
    remote: std::net::SocketAddr,
    book: Rc<RefCell<Book>>,
    lines: LineDecoder,
}

impl RegisterPeer {
    /// Closes the connection without a word (as PHP's register does), logging why under
    /// `cause`, naming the peer.
    fn refuse(&self, book: &mut Book, cause: &'static str, why: &str) {
        book.stats.refused.fetch_add(1, Ordering::Relaxed);
        warn_limited(
            cause,
            &format!("register: {why} from {}, closing", self.remote),
        );
        if let Some(c) = book.connections.get_mut(&self.id) {
            c.outbox.close(Closing::Now);
        }
    }

    /// Applies one line; returns a gateway address it announced, to be proven.
    fn on_line(&mut self, line: &[u8]) -> Option<String> {
        let mut book = self.book.borrow_mut();
        let book = &mut *book;
        let conn = book.connections.get_mut(&self.id)?;
        conn.spoke = true;
        let message = match RegisterMessage::parse(line) {
            Ok(m) => m,
            Err(e) => {
                self.refuse(book, "register bad line", &format!("bad line ({e})"));
                return None;
            }
        };
        match message {
            RegisterMessage::GatewayConnect {
                address,
                secret_key,
            } => {
                if secret_key != book.secret {
                    let why = format!("secret key mismatch (a gateway announcing {address})");
                    self.refuse(book, "register secret key mismatch", &why);
                    return None;
                }
                if let Err(why) = announced_from_its_own_host(&address, self.remote) {
                    self.refuse(book, "register foreign gateway address", &why);
                    return None;
                }
                let previous =
                    std::mem::replace(&mut conn.role, Membership::Announcing(address.clone()));
                book.left(previous);
                flush_soon(book, &self.book);
                return Some(address);
            }
            RegisterMessage::WorkerConnect { secret_key } => {
                if secret_key != book.secret {
                    let why = "secret key mismatch (a worker or GatewayClient)";
                    self.refuse(book, "register secret key mismatch", why);
                    return None;
                }
                let previous = std::mem::replace(&mut conn.role, Membership::Worker);
                book.left(previous);
                book.count_workers(1);
                let line = book.line();
                if let Some(c) = book.connections.get_mut(&self.id) {
                    c.outbox.push(line);
                }
                flush_soon(book, &self.book);
            }
            RegisterMessage::Ping => {}
            RegisterMessage::BroadcastAddresses { .. } => {
                let why = "unexpected broadcast_addresses";
                self.refuse(book, "register bad line", why);
            }
        }
        None
    }
}

impl Framed<LineDecoder> for RegisterPeer {
    fn decoder(&mut self) -> Option<&mut LineDecoder> {
        Some(&mut self.lines)
    }

    fn on_frame(&mut self, line: Bytes) -> bool {
        if let Some(address) = self.on_line(&line) {
            rt::spawn(prove(self.book.clone(), self.id, address));
        }
        true
    }

    fn on_undecodable(&mut self, e: LineTooLong) {
        let book = self.book.clone();
        let why = format!("line too long ({e})");
        self.refuse(&mut book.borrow_mut(), "register bad line", &why);
    }
}

impl Peer for RegisterPeer {
    fn with_outbox<R>(&mut self, f: impl FnOnce(&mut Outbox) -> R) -> Option<R> {
        let mut book = self.book.borrow_mut();
        book.connections.get_mut(&self.id).map(|c| f(&mut c.outbox))
    }

    fn on_input(&mut self, input: &mut BytesMut) {
        read_frames::<LineDecoder, _>(self, input);
    }

    fn on_closed(&mut self, _reason: CloseReason) {
        let mut book = self.book.borrow_mut();
        let Some(conn) = book.connections.remove(&self.id) else {
            return;
        };
        if conn.role == Membership::Unknown {
            return;
        }
        book.left(conn.role);
        flush_soon(&mut book, &self.book);
    }
}
