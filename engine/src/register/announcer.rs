//! The client side of the Register, used by gateway shards (and workers): keep one connection to
//! each register, say hello on every (re)connect, pass on what the register says, ping every 25 s
//! unless the register is on 127.0.0.1, and reconnect 1 s after a drop. A register that closes
//! the connection at once without a word has refused us (wrong secret_key): that is logged and
//! retried with a doubling delay up to 30 s. A register that sends what is not the register
//! protocol (a line that is not JSON, a line over 10 MiB) has its link closed by us and retried
//! the same way, logged once per interval under its own cause; an unknown event is skipped.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use gatewire_proto::line::{LineDecoder, LineTooLong};
use gatewire_proto::register::{RegisterError, RegisterMessage, ping_line};
use tracing::{debug, warn};

use crate::net::{self, Closing, Framed, Outbox, read_frames};
use crate::rt::{self, CloseReason, Peer};

const RECONNECT_AFTER: Duration = Duration::from_secs(1);
const PING_EVERY: Duration = Duration::from_secs(25);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_LINE: usize = 10 * 1024 * 1024;
/// A connection that lasted this long, or got an answer, was accepted.
const ACCEPTED_AFTER: Duration = Duration::from_secs(1);

/// What to say to a register and what to do with its answers.
pub trait RegisterLink: 'static {
    /// The hello line (with its newline), sent after every connect.
    fn hello(&self) -> String;
    /// A message from the register.
    fn on_message(&mut self, message: RegisterMessage);
}

/// Keeps a connection to the register at `addr` forever; a register that acknowledges nothing
/// for `link_timeout` seconds counts as gone.
pub async fn keep_registered<L: RegisterLink>(
    addr: SocketAddr,
    link: Rc<RefCell<L>>,
    link_timeout: f64,
) {
    let ping = !addr.ip().to_string().starts_with("127.0.0.1");
    let mut backoff = net::Backoff::default();
    loop {
        let mut delay = RECONNECT_AFTER;
        match rt::connect(addr, CONNECT_TIMEOUT).await {
            // With nobody listening, a dial to a port in the ephemeral range can connect to
            // itself and squat the register's port; let it go at once.
            Ok(stream) if stream.local_addr().ok() == Some(addr) => {
                debug!(%addr, "connected to ourselves: the register is down");
            }
            Ok(stream) => {
                debug!(%addr, "connected to register");
                rt::fail_dead_peer_after(&stream, link_timeout);
                let outbox = Rc::new(RefCell::new(Outbox::default()));
                outbox.borrow_mut().push(Bytes::from(link.borrow().hello()));
                let pinger = ping.then(|| {
                    let outbox = Rc::downgrade(&outbox);
                    rt::spawn_cancellable(async move {
                        loop {
                            rt::sleep(PING_EVERY).await;
                            let Some(o) = outbox.upgrade() else { return };
                            o.borrow_mut()
                                .push(Bytes::from_static(ping_line().as_bytes()));
                        }
                    })
                });
                let answered = Rc::new(std::cell::Cell::new(false));
                let garbled = Rc::new(std::cell::Cell::new(None));
                let peer = AnnouncerPeer {
                    addr,
                    outbox,
                    link: link.clone(),
                    lines: LineDecoder::new(MAX_LINE),
                    answered: answered.clone(),
                    garbled: garbled.clone(),
                };
                let opened = std::time::Instant::now();
                rt::drive(stream, peer).await;
                if let Some(task) = pinger {
                    task.cancel();
                }
                let accepted = answered.get() || opened.elapsed() >= ACCEPTED_AFTER;
                if let Some(cause) = garbled.get() {
                    // We closed it: the register spoke, but not the register protocol.
                    delay = backoff.after_connection(false).unwrap_or(RECONNECT_AFTER);
                    crate::log_limit::warn_limited(
                        cause,
                        &format!(
                            "register {addr}: {cause}; closed the link, reconnecting in {}s",
                            delay.as_secs()
                        ),
                    );
                } else if let Some(refused) = backoff.after_connection(accepted) {
                    delay = refused;
                    crate::log_limit::warn_limited(
                        "register refused us",
                        &format!(
                            "register {addr} closed the connection without a word: check that \
                             secret_key matches the register's; retrying in {}s",
                            delay.as_secs()
                        ),
                    );
                } else {
                    warn!(%addr, "register connection lost, reconnecting in 1 s");
                }
            }
            Err(e) => debug!(%addr, error = %e, "register connect failed, retrying in 1 s"),
        }
        rt::sleep(delay).await;
    }
}

struct AnnouncerPeer<L> {
    addr: SocketAddr,
    outbox: Rc<RefCell<Outbox>>,
    link: Rc<RefCell<L>>,
    lines: LineDecoder,
    /// The register has said something readable (it accepted us).
    answered: Rc<std::cell::Cell<bool>>,
    /// Why we closed the link: the register sent what is not the register protocol.
    garbled: Rc<std::cell::Cell<Option<&'static str>>>,
}

impl<L> AnnouncerPeer<L> {
    /// Closes a link whose register does not speak the protocol (once: the rest of the input is
    /// left unread).
    fn garbled(&mut self, cause: &'static str) {
        debug!(addr = %self.addr, cause, "closing the register link");
        self.garbled.set(Some(cause));
        self.outbox.borrow_mut().close(Closing::Now);
    }
}

impl<L: RegisterLink> Framed<LineDecoder> for AnnouncerPeer<L> {
    fn decoder(&mut self) -> Option<&mut LineDecoder> {
        self.garbled.get().is_none().then_some(&mut self.lines)
    }

    fn on_frame(&mut self, line: Bytes) -> bool {
        match RegisterMessage::parse(&line) {
            Ok(message) => {
                self.answered.set(true);
                self.link.borrow_mut().on_message(message);
            }
            // A newer register may know events we do not: skip them, as PHP does.
            Err(RegisterError::UnknownEvent(event)) => {
                self.answered.set(true);
                crate::log_limit::warn_limited(
                    "unknown register event",
                    &format!("register {}: unknown event {event:?}, ignored", self.addr),
                );
            }
            Err(_) => {
                self.garbled("the register sent a line that is not a register message");
                return false;
            }
        }
        true
    }

    fn on_undecodable(&mut self, _: LineTooLong) {
        self.garbled("the register sent a line over 10 MiB");
    }
}

impl<L: RegisterLink> Peer for AnnouncerPeer<L> {
    fn with_outbox<R>(&mut self, f: impl FnOnce(&mut Outbox) -> R) -> Option<R> {
        Some(f(&mut self.outbox.borrow_mut()))
    }

    fn on_input(&mut self, input: &mut BytesMut) {
        read_frames::<LineDecoder, _>(self, input);
    }

    fn on_closed(&mut self, _reason: CloseReason) {}
}
