//! A client connection's protocol side: the WebSocket handshake (or a static page for a plain
//! GET), then decoding messages with the listener's protocol and handing them to the shard.
//! Protocol errors close this client alone, counted and logged once per cause per interval.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;

use bytes::{Buf, Bytes, BytesMut};
use gatewire_proto::frame::FrameDecoder as LengthFrameDecoder;
use gatewire_proto::php::serialize;
use gatewire_proto::text::TextDecoder;
use gatewire_proto::websocket::{
    self, CloseCode, DEFAULT_MAX_HANDSHAKE_LEN, FrameDecoder, Message, OpCode,
};

use crate::config::ClientProtocol;
use crate::gateway::core::shard::Shard;
use crate::gateway::core::stats::CloseCause;
use crate::gateway::{static_files, token_check};
use crate::log_limit::warn_limited;
use crate::net::{Framed, Outbox, read_frames};
use crate::rt::{CloseReason, Peer};

/// Pings answered one by one in one input batch while the client reads its output.
const PONGS_PER_BATCH: usize = 16;

/// The pings of one input batch: how many more get their own pong, and the latest one not yet
/// answered.
#[derive(Default)]
struct Pings {
    answer_each: usize,
    latest: Option<Bytes>,
}

/// Where a client's byte stream is.
#[derive(Debug)]
enum Codec {
    /// A WebSocket client that has not finished its upgrade request (its address goes into the
    /// request data).
    Handshake(SocketAddr),
    WebSocket(FrameDecoder),
    Text(TextDecoder),
    Frame(LengthFrameDecoder),
    Raw,
    /// Input is ignored (the connection is closing).
    Done,
}

/// The protocol side of one client connection.
pub struct ClientPeer {
    shard: Rc<RefCell<Shard>>,
    id: u32,
    codec: Codec,
    /// Bytes of an incomplete message last reported to the shard's budget.
    reported_pending: usize,
    /// A message was handed to the shard during the current input.
    completed: bool,
    /// The pings of the current input (WebSocket).
    pings: Pings,
}

impl ClientPeer {
    pub fn new(shard: Rc<RefCell<Shard>>, id: u32, remote: SocketAddr) -> ClientPeer {
        Self::with_codec(shard, id, Some(remote))
    }

    /// A parked client getting a task again: past any handshake, with empty decoders (a client
    /// parks only between messages).
    pub fn resume(shard: Rc<RefCell<Shard>>, id: u32) -> ClientPeer {
        Self::with_codec(shard, id, None)
    }

    /// A WebSocket client starts in its handshake when `handshake_from` is given, past it
    /// otherwise; the other protocols start with an empty decoder.
    fn with_codec(
        shard: Rc<RefCell<Shard>>,
        id: u32,
        handshake_from: Option<SocketAddr>,
    ) -> ClientPeer {
        let (protocol, max) = {
            let s = shard.borrow();
            (s.settings().protocol, s.settings().max_message_size)
        };
        let codec = match protocol {
            ClientProtocol::WebSocket | ClientProtocol::SecureWebSocket => match handshake_from {
                Some(remote) => Codec::Handshake(remote),
                None => Codec::WebSocket(FrameDecoder::server(max)),
            },
            ClientProtocol::Text => Codec::Text(TextDecoder::new(max)),
            ClientProtocol::Frame => Codec::Frame(LengthFrameDecoder::new(max)),
            ClientProtocol::Raw => Codec::Raw,
        };
        ClientPeer {
            shard,
            id,
            codec,
            reported_pending: 0,
            completed: false,
            pings: Pings::default(),
        }
    }

    /// Refuses this client: `last_words` are written, then the connection closes.
    fn refuse(&mut self, cause: &'static str, detail: &dyn std::fmt::Display, last_words: Bytes) {
        let mut shard = self.shard.borrow_mut();
        let remote = shard.client_remote(self.id);
        warn_limited(cause, &format!("closing client {remote:?}: {detail}"));
        shard.close_client_with(self.id, last_words, CloseCause::BadInput);
        self.codec = Codec::Done;
    }

    fn alive(&self) -> bool {
        self.shard.borrow().has_client(self.id)
    }

    /// A bad upgrade request: workerman's 400/426 answer, then close.
    fn refuse_handshake(&mut self, e: &websocket::HandshakeError, input: &mut BytesMut) {
        input.clear();
        self.refuse(
            "bad websocket handshake",
            e,
            Bytes::from_static(e.response()),
        );
    }

    fn handshake(&mut self, remote: SocketAddr, input: &mut BytesMut) {
        let (request, used) = match websocket::parse_request(input, DEFAULT_MAX_HANDSHAKE_LEN) {
            Ok(Some(parsed)) => parsed,
            Ok(None) => return,
            Err(e) => return self.refuse_handshake(&e, input),
        };
        input.advance(used);
        if !request.is_websocket_upgrade() {
            let (dir, page) = {
                let shard = self.shard.borrow();
                let settings = shard.settings();
                (settings.static_dir.clone(), settings.builtin_page)
            };
            let response = static_files::respond(dir.as_deref(), page, &request);
            // A plain HTTP request, answered and closed (still in the handshake: what workers
            // queued for a WebSocket is dropped).
            self.shard
                .borrow_mut()
                .close_client_with(self.id, response, CloseCause::Peer);
            self.codec = Codec::Done;
            input.clear();
            return;
        }
        let accept = match request.accept_key() {
            Ok(accept) => accept,
            Err(e) => return self.refuse_handshake(&e, input),
        };
        let mut shard = self.shard.borrow_mut();
        let public_port = shard.settings().public_port;
        let max = shard.settings().max_message_size;
        let data = websocket::connect_data(&request, remote, public_port);
        let mut extensions = String::new();
        let mut decoder = FrameDecoder::server(max);
        if shard.settings().compression {
            let offers = request
                .headers
                .iter()
                .filter(|(name, _)| name.eq_ignore_ascii_case("sec-websocket-extensions"))
                .map(|(_, value)| value.as_ref());
            if let Some((agreement, response)) = websocket::deflate::negotiate(offers) {
                shard.client_deflates(self.id, agreement);
                extensions = format!("Sec-WebSocket-Extensions: {response}\r\n");
                decoder = decoder.with_deflate();
            }
        }
        let connected = match shard.settings().token_verifier.clone() {
            None => {
                let response = Bytes::from(websocket::response_101(&accept, &extensions));
                shard.websocket_connect(self.id, Bytes::from(serialize(&data)), response)
            }
            Some(verifier) => match token_check::check(&verifier, &request, data) {
                token_check::Outcome::Admitted {
                    admission,
                    data,
                    protocol,
                } => {
                    let mut extra = protocol
                        .map(|p| format!("Sec-WebSocket-Protocol: {p}\r\n"))
                        .unwrap_or_default();
                    extra.push_str(&extensions);
                    let response = Bytes::from(websocket::response_101(&accept, &extra));
                    let data = Bytes::from(serialize(&data));
                    shard.websocket_admitted(self.id, admission, data, response)
                }
                token_check::Outcome::Refused(refusal, response) => {
                    let remote = shard.client_remote(self.id);
                    warn_limited(
                        "token refused",
                        &format!(
                            "refusing client {remote:?}: token {} (gateway.auth)",
                            refusal.label()
                        ),
                    );
                    shard.websocket_refused(self.id, refusal, response);
                    input.clear();
                    false
                }
            },
        };
        if !connected {
            self.codec = Codec::Done;
            return;
        }
        self.codec = Codec::WebSocket(decoder);
    }

    /// A token refresh (`token_check.rs`): answered here, never forwarded.
    fn refresh_token(&mut self, message: &[u8]) {
        let mut shard = self.shard.borrow_mut();
        let Some(verifier) = shard.settings().token_verifier.clone() else {
            return;
        };
        let uid = shard.client_uid(self.id);
        let (outcome, answer) = token_check::refresh(&verifier, message, uid.as_ref());
        if let Ok(expires) = outcome {
            shard.token_refreshed(self.id, expires);
        }
        shard.deliver(self.id, websocket::text_frame(&answer));
    }

    /// Decodes every whole frame in `input`. Pings are answered one by one while the client
    /// reads its output (its queue was empty when the batch arrived), up to
    /// [`PONGS_PER_BATCH`]; past that, or while output is waiting, one pong answers the latest
    /// ping of the batch (RFC 6455 §5.5.3 allows it), so a ping flood cannot multiply output.
    fn websocket_frames(&mut self, input: &mut BytesMut) {
        let reading = self
            .with_outbox(|outbox| outbox.queued_bytes() == 0)
            .unwrap_or(false);
        self.pings = Pings {
            answer_each: if reading { PONGS_PER_BATCH } else { 0 },
            latest: None,
        };
        read_frames::<FrameDecoder, _>(self, input);
        if let (Some(payload), Codec::WebSocket(_)) = (self.pings.latest.take(), &self.codec) {
            self.pong(&payload);
        }
    }

    fn pong(&mut self, payload: &[u8]) {
        let mut pong = BytesMut::new();
        websocket::encode_frame(OpCode::Pong, payload, &mut pong);
        self.shard.borrow_mut().queue_pong(self.id, pong.freeze());
    }

    /// Tells the shard how much of an incomplete message this client holds now (only when that
    /// changed, or a new message began): the shard's budget and message deadline count it.
    fn report_pending(&mut self, input: &BytesMut) {
        let held = match &self.codec {
            Codec::WebSocket(decoder) => input.len() + decoder.partial_len(),
            Codec::Text(_) | Codec::Frame(_) => input.len(),
            Codec::Handshake(_) | Codec::Raw | Codec::Done => 0,
        };
        let completed = std::mem::take(&mut self.completed);
        if held != self.reported_pending || (held > 0 && completed) {
            self.reported_pending = held;
            self.shard
                .borrow_mut()
                .client_pending_input(self.id, held, completed);
        }
    }

    /// Hands a message to the shard; false when the client is gone (no worker took it).
    fn forward(&mut self, message: Bytes, binary: bool) -> bool {
        self.completed = true;
        if !binary && token_check::is_refresh(&message) && self.shard.borrow().token_auth() {
            self.refresh_token(&message);
            return self.alive();
        }
        self.shard
            .borrow_mut()
            .client_message(self.id, message, binary);
        self.alive()
    }
}

impl Framed<FrameDecoder> for ClientPeer {
    fn decoder(&mut self) -> Option<&mut FrameDecoder> {
        match &mut self.codec {
            Codec::WebSocket(decoder) => Some(decoder),
            _ => None,
        }
    }

    fn on_frame(&mut self, message: Message) -> bool {
        match message {
            Message::Text(m) => self.forward(m, false),
            Message::Binary(m) => self.forward(m, true),
            Message::Ping(payload) if self.pings.answer_each > 0 => {
                self.pings.answer_each -= 1;
                self.pong(&payload);
                true
            }
            Message::Ping(payload) => {
                self.pings.latest = Some(payload);
                true
            }
            Message::Pong(_) => true,
            Message::Close(_) => {
                let close = websocket::close_frame(CloseCode::NORMAL, "");
                self.shard
                    .borrow_mut()
                    .close_client_with(self.id, close, CloseCause::Peer);
                self.codec = Codec::Done;
                false
            }
        }
    }

    fn on_undecodable(&mut self, e: websocket::WsError) {
        let cause = match e {
            websocket::WsError::Unmasked => "unmasked websocket frame",
            websocket::WsError::TooLarge { .. } => "oversize websocket message",
            websocket::WsError::InvalidUtf8 => "invalid utf-8 in websocket text",
            websocket::WsError::InflatedTooLarge { .. } => {
                self.shard.borrow_mut().inflated_too_large();
                "compressed websocket message inflates past max_message_size"
            }
            websocket::WsError::BadCompressedData => "bad compressed websocket message",
            _ => "websocket protocol error",
        };
        self.refuse(cause, &e, websocket::close_frame(e.close_code(), ""));
    }
}

/// `text://` and `frame://` clients: each line or frame is one text message.
macro_rules! message_codec {
    ($variant:ident, $decoder:ty, $error:ty) => {
        impl Framed<$decoder> for ClientPeer {
            fn decoder(&mut self) -> Option<&mut $decoder> {
                match &mut self.codec {
                    Codec::$variant(decoder) => Some(decoder),
                    _ => None,
                }
            }

            fn on_frame(&mut self, message: Bytes) -> bool {
                self.forward(message, false)
            }

            fn on_undecodable(&mut self, e: $error) {
                self.refuse("oversize message", &e, Bytes::new());
            }
        }
    };
}

message_codec!(Text, TextDecoder, gatewire_proto::line::LineTooLong);
message_codec!(Frame, LengthFrameDecoder, gatewire_proto::frame::FrameError);

impl Peer for ClientPeer {
    fn with_outbox<R>(&mut self, f: impl FnOnce(&mut Outbox) -> R) -> Option<R> {
        let mut shard = self.shard.borrow_mut();
        shard.client_outbox(self.id).map(f)
    }

    fn on_input(&mut self, input: &mut BytesMut) {
        if !matches!(self.codec, Codec::Done) && self.shard.borrow().client_closing(self.id) {
            self.codec = Codec::Done;
        }
        if let Codec::Handshake(remote) = self.codec {
            self.handshake(remote, input);
        }
        match &self.codec {
            Codec::Handshake(_) => {}
            Codec::WebSocket(_) => self.websocket_frames(input),
            Codec::Text(_) => read_frames::<TextDecoder, _>(self, input),
            Codec::Frame(_) => read_frames::<LengthFrameDecoder, _>(self, input),
            Codec::Raw => {
                let message = input.split().freeze();
                self.shard
                    .borrow_mut()
                    .client_message(self.id, message, false);
            }
            Codec::Done => {}
        }
        // A client that closed meanwhile (a close frame, a refusal) reads nothing more.
        if matches!(self.codec, Codec::Done) {
            input.clear();
        }
        self.report_pending(input);
    }

    fn output_cap(&self) -> usize {
        self.shard.borrow().settings().send_to_client_buffer_size
    }

    fn parkable(&self) -> bool {
        match &self.codec {
            Codec::WebSocket(decoder) => decoder.is_idle(),
            Codec::Text(_) | Codec::Frame(_) | Codec::Raw => true,
            Codec::Handshake(_) | Codec::Done => false,
        }
    }

    fn paced(&self) -> bool {
        true
    }

    fn on_closed(&mut self, reason: CloseReason) {
        let mut shard = self.shard.borrow_mut();
        let requested = shard.requested_close(self.id);
        let cause = match reason {
            CloseReason::PeerClosed | CloseReason::Error(_) => {
                requested.unwrap_or(CloseCause::Peer)
            }
            _ => requested.unwrap_or(CloseCause::Worker),
        };
        shard.client_closed(self.id, cause);
    }
}
