//! The Register server: JSON lines, a 10 s first-line timeout, the secret check, and the gateway
//! list broadcast to every worker whenever a gateway comes or goes.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use gatewire_proto::line::LineDecoder;
use gatewire_proto::register::{RegisterMessage, broadcast_addresses_line};
use glommio::net::TcpListener;
use tracing::{info, warn};

use crate::config::RegisterConfig;
use crate::net::{self, CloseReason, Closing, Outbox, Peer};

/// Longest register line accepted.
const MAX_LINE: usize = 64 * 1024;
/// A connection must say something within this time.
const FIRST_LINE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Default)]
struct Connection {
    outbox: Outbox,
    role: Membership,
    spoke: bool,
}

#[derive(Debug, Default, PartialEq, Eq)]
enum Membership {
    #[default]
    Unknown,
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
}

#[derive(Debug, Default)]
struct Book {
    secret: String,
    connections: HashMap<u64, Connection>,
    next_id: u64,
    stats: Arc<RegisterStats>,
}

impl Book {
    fn publish(&self) {
        let workers = self
            .connections
            .values()
            .filter(|c| c.role == Membership::Worker)
            .count();
        self.stats
            .gateways
            .store(self.addresses().len() as u64, Ordering::Relaxed);
        self.stats.workers.store(workers as u64, Ordering::Relaxed);
    }

    /// Gateway addresses in announcement order, each once.
    fn addresses(&self) -> Vec<String> {
        let mut gateways: Vec<(u64, &String)> = self
            .connections
            .iter()
            .filter_map(|(id, c)| match &c.role {
                Membership::Gateway(a) => Some((*id, a)),
                _ => None,
            })
            .collect();
        gateways.sort_unstable_by_key(|(id, _)| *id);
        let mut out: Vec<String> = Vec::with_capacity(gateways.len());
        for (_, a) in gateways {
            if !out.contains(a) {
                out.push(a.clone());
            }
        }
        out
    }

    fn broadcast_to_workers(&mut self) {
        let line = Bytes::from(broadcast_addresses_line(&self.addresses()));
        for c in self.connections.values_mut() {
            if c.role == Membership::Worker {
                c.outbox.push(line.clone());
            }
        }
    }
}

/// Runs the Register on `listener` until the executor stops, publishing into `stats`.
pub async fn serve(listener: TcpListener, config: RegisterConfig, stats: Arc<RegisterStats>) {
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
                warn!(error = %e, "register accept failed");
                glommio::timer::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let remote = stream
            .peer_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let id = {
            let mut b = book.borrow_mut();
            b.next_id += 1;
            let id = b.next_id;
            b.connections.insert(id, Connection::default());
            id
        };
        let timeout_book = book.clone();
        glommio::spawn_local(async move {
            glommio::timer::sleep(FIRST_LINE_TIMEOUT).await;
            let mut b = timeout_book.borrow_mut();
            let stats = b.stats.clone();
            if let Some(c) = b.connections.get_mut(&id) {
                if !c.spoke {
                    warn!(%remote, "register auth timeout");
                    stats.refused.fetch_add(1, Ordering::Relaxed);
                    c.outbox.close(Closing::Now);
                }
            }
        })
        .detach();
        let peer = RegisterPeer {
            id,
            book: book.clone(),
            lines: LineDecoder::new(MAX_LINE),
        };
        glommio::spawn_local(net::drive(stream, peer)).detach();
    }
}

struct RegisterPeer {
    id: u64,
    book: Rc<RefCell<Book>>,
    lines: LineDecoder,
}

impl RegisterPeer {
    /// Answers `text` as a line and closes.
    fn refuse(book: &mut Book, id: u64, text: &str) {
        book.stats.refused.fetch_add(1, Ordering::Relaxed);
        if let Some(c) = book.connections.get_mut(&id) {
            c.outbox.push(Bytes::from(format!("{text}\n")));
            c.outbox.close(Closing::AfterFlush);
        }
    }

    fn on_line(&mut self, line: &[u8]) {
        let mut book = self.book.borrow_mut();
        let book = &mut *book;
        let Some(conn) = book.connections.get_mut(&self.id) else {
            return;
        };
        conn.spoke = true;
        let message = match RegisterMessage::parse(line) {
            Ok(m) => m,
            Err(e) => {
                warn!(error = %e, "register: bad line, closing");
                return Self::refuse(book, self.id, &e.to_string());
            }
        };
        match message {
            RegisterMessage::GatewayConnect {
                address,
                secret_key,
            } => {
                if secret_key != book.secret {
                    warn!(%address, "register: key does not match, closing");
                    return Self::refuse(book, self.id, "Key does not match");
                }
                conn.role = Membership::Gateway(address);
                book.broadcast_to_workers();
                book.publish();
            }
            RegisterMessage::WorkerConnect { secret_key } => {
                if secret_key != book.secret {
                    warn!("register: worker key does not match, closing");
                    return Self::refuse(book, self.id, "Key does not match");
                }
                conn.role = Membership::Worker;
                book.publish();
                let line = broadcast_addresses_line(&book.addresses());
                if let Some(c) = book.connections.get_mut(&self.id) {
                    c.outbox.push(Bytes::from(line));
                }
            }
            RegisterMessage::Ping => {}
            RegisterMessage::BroadcastAddresses { .. } => {
                warn!("register: unexpected broadcast_addresses, closing");
                Self::refuse(book, self.id, "unexpected event broadcast_addresses");
            }
        }
    }
}

impl Peer for RegisterPeer {
    fn with_outbox<R>(&mut self, f: impl FnOnce(&mut Outbox) -> R) -> Option<R> {
        let mut book = self.book.borrow_mut();
        book.connections.get_mut(&self.id).map(|c| f(&mut c.outbox))
    }

    fn on_input(&mut self, input: &mut BytesMut) {
        loop {
            match self.lines.decode(input) {
                Ok(Some(line)) => self.on_line(&line),
                Ok(None) => return,
                Err(e) => {
                    warn!(error = %e, "register: line too long, closing");
                    input.clear();
                    return Self::refuse(&mut self.book.borrow_mut(), self.id, &e.to_string());
                }
            }
        }
    }

    fn on_closed(&mut self, _reason: CloseReason) {
        let mut book = self.book.borrow_mut();
        if let Some(conn) = book.connections.remove(&self.id) {
            if let Membership::Gateway(address) = conn.role {
                info!(%address, "register: gateway left");
                book.broadcast_to_workers();
            }
            book.publish();
        }
    }
}
