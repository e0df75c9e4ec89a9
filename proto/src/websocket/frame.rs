//! WebSocket frames (RFC 6455 §5). The decoder unmasks in place and hands out an unfragmented
//! message as a `Bytes` view of the receive buffer (no copy); fragments are gathered into one
//! buffer. It enforces masking, reserved bits and opcodes, control-frame rules, continuation
//! order, UTF-8 of text messages (checked per fragment, so bad text fails early), close payloads
//! and the message size bound. The encoder writes unmasked server frames, so one encoded frame can
//! be queued to many clients; a masked variant serves clients (load generator, tests).

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::deflate::InflateError;
use crate::DEFAULT_MAX_PACKAGE_SIZE;

/// Frame opcodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpCode {
    Continuation = 0,
    Text = 1,
    Binary = 2,
    Close = 8,
    Ping = 9,
    Pong = 10,
}

impl OpCode {
    fn from_bits(bits: u8) -> Option<OpCode> {
        Some(match bits {
            0 => OpCode::Continuation,
            1 => OpCode::Text,
            2 => OpCode::Binary,
            8 => OpCode::Close,
            9 => OpCode::Ping,
            10 => OpCode::Pong,
            _ => return None,
        })
    }

    fn is_control(self) -> bool {
        (self as u8) & 0x08 != 0
    }
}

/// Close status codes used by the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CloseCode;

impl CloseCode {
    pub const NORMAL: u16 = 1000;
    pub const GOING_AWAY: u16 = 1001;
    pub const PROTOCOL_ERROR: u16 = 1002;
    pub const INVALID_PAYLOAD: u16 = 1007;
    pub const POLICY: u16 = 1008;
    pub const TOO_BIG: u16 = 1009;

    /// Whether a peer may send `code` in a close frame (RFC 6455 §7.4, IANA registry): 1000–1003,
    /// 1007–1014 and 3000–4999. 1004–1006 and 1015 are reserved for local use.
    pub fn is_valid_on_wire(code: u16) -> bool {
        matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
    }
}

/// One complete message or control frame from the peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A text message, valid UTF-8.
    Text(Bytes),
    Binary(Bytes),
    Ping(Bytes),
    Pong(Bytes),
    /// A close frame: its code and reason, if it had a payload.
    Close(Option<(u16, Bytes)>),
}

/// A protocol violation; the connection is closed with [`WsError::close_code`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WsError {
    #[error("client frame is not masked")]
    Unmasked,
    #[error("server frame is masked")]
    Masked,
    #[error("reserved bits set without a negotiated extension")]
    ReservedBits,
    #[error("reserved opcode {0:#x}")]
    ReservedOpcode(u8),
    #[error("control frame payload of {0} bytes exceeds 125")]
    ControlTooLong(u64),
    #[error("fragmented control frame")]
    FragmentedControl,
    #[error("continuation frame without a message to continue")]
    UnexpectedContinuation,
    #[error("new data frame while a fragmented message is incomplete")]
    ExpectedContinuation,
    #[error("message of {len} bytes exceeds the maximum of {max} bytes")]
    TooLarge { len: u64, max: usize },
    #[error("text message is not valid UTF-8")]
    InvalidUtf8,
    #[error("close frame payload of 1 byte")]
    BadClosePayload,
    #[error("close code {0} may not be sent by a peer")]
    BadCloseCode(u16),
    #[error("compressed message does not inflate (permessage-deflate)")]
    BadCompressedData,
    #[error("compressed message inflates past the maximum of {max} bytes")]
    InflatedTooLarge { max: usize },
}

impl WsError {
    /// The close code to answer this violation with.
    pub fn close_code(&self) -> u16 {
        match self {
            WsError::InvalidUtf8 | WsError::BadCompressedData => CloseCode::INVALID_PAYLOAD,
            WsError::TooLarge { .. } | WsError::InflatedTooLarge { .. } => CloseCode::TOO_BIG,
            _ => CloseCode::PROTOCOL_ERROR,
        }
    }
}

/// A fragmented message being gathered.
#[derive(Debug)]
struct Partial {
    is_text: bool,
    /// Its first frame had RSV1 (permessage-deflate): inflated, then checked, once complete.
    compressed: bool,
    data: BytesMut,
    /// Bytes of `data` known to be valid UTF-8 (text only).
    utf8_valid: usize,
}

/// Incremental frame decoder for one connection.
#[derive(Debug)]
pub struct FrameDecoder {
    /// Server side: frames must be masked. Client side: frames must not be.
    server: bool,
    max_message: usize,
    partial: Option<Partial>,
    /// permessage-deflate was negotiated: RSV1 marks a compressed message.
    deflate: bool,
}

impl FrameDecoder {
    /// Decoder for frames from clients (masking required).
    pub fn server(max_message: usize) -> FrameDecoder {
        FrameDecoder {
            server: true,
            max_message,
            partial: None,
            deflate: false,
        }
    }

    /// This decoder with permessage-deflate negotiated ([`super::deflate`]): a data message
    /// whose first frame has RSV1 is inflated (at most `max_message` bytes) before it is checked
    /// and returned.
    pub fn with_deflate(mut self) -> FrameDecoder {
        self.deflate = true;
        self
    }

    /// No fragmented message is in progress: a fresh decoder would behave the same.
    pub fn is_idle(&self) -> bool {
        self.partial.is_none()
    }

    /// Decoder for frames from a server (masking forbidden).
    pub fn client(max_message: usize) -> FrameDecoder {
        FrameDecoder {
            server: false,
            ..FrameDecoder::server(max_message)
        }
    }

    /// Whether a fragmented message is half-received (its buffer counts as memory in use).
    pub fn has_partial(&self) -> bool {
        self.partial.is_some()
    }

    /// Bytes of a half-received fragmented message held here (frames not yet whole stay in the
    /// caller's buffer).
    pub fn partial_len(&self) -> usize {
        self.partial.as_ref().map_or(0, |p| p.data.len())
    }

    /// The next message or control frame off `buf`, or `Ok(None)` until one is complete.
    /// Intermediate fragments are consumed without returning.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Message>, WsError> {
        loop {
            let Some(frame) = self.next_frame(buf)? else {
                return Ok(None);
            };
            if let Some(message) = self.on_frame(frame)? {
                return Ok(Some(message));
            }
        }
    }

    /// Splits one whole frame off `buf`, validated and unmasked.
    fn next_frame(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, WsError> {
        if buf.len() < 2 {
            return Ok(None);
        }
        let (b0, b1) = (buf[0], buf[1]);
        let fin = b0 & 0x80 != 0;
        let opcode = OpCode::from_bits(b0 & 0x0f).ok_or(WsError::ReservedOpcode(b0 & 0x0f))?;
        // RSV1 is permessage-deflate's, on the first frame of a data message only.
        let compressed = b0 & 0x40 != 0;
        if b0 & 0x30 != 0
            || compressed && !(self.deflate && matches!(opcode, OpCode::Text | OpCode::Binary))
        {
            return Err(WsError::ReservedBits);
        }
        let masked = b1 & 0x80 != 0;
        if masked != self.server {
            return Err(if self.server {
                WsError::Unmasked
            } else {
                WsError::Masked
            });
        }
        let len7 = b1 & 0x7f;
        if opcode.is_control() {
            if !fin {
                return Err(WsError::FragmentedControl);
            }
            if len7 > 125 {
                return Err(WsError::ControlTooLong(len7.into()));
            }
        }
        let ext_len = match len7 {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        let mask_len = if masked { 4 } else { 0 };
        let header_len = 2 + ext_len + mask_len;
        if buf.len() < 2 + ext_len {
            return Ok(None);
        }
        let payload_len = match len7 {
            126 => u64::from(u16::from_be_bytes([buf[2], buf[3]])),
            127 => u64::from_be_bytes(buf[2..10].try_into().expect("8 bytes")),
            n => u64::from(n),
        };
        if !opcode.is_control() {
            let gathered = self.partial.as_ref().map_or(0, |p| p.data.len() as u64);
            let total = gathered.saturating_add(payload_len);
            if total > self.max_message as u64 {
                return Err(WsError::TooLarge {
                    len: total,
                    max: self.max_message,
                });
            }
        }
        // Bounded by max_message (data) or 125 (control) above.
        let frame_len = header_len + payload_len as usize;
        if buf.len() < frame_len {
            // Nothing reserved for the announced length: a 14-byte header announcing 10 MiB
            // costs nothing until the bytes arrive (the buffer grows with them).
            return Ok(None);
        }
        let mut frame = buf.split_to(frame_len);
        let mask = masked.then(|| {
            let at = 2 + ext_len;
            [frame[at], frame[at + 1], frame[at + 2], frame[at + 3]]
        });
        frame.advance(header_len);
        if let Some(mask) = mask {
            apply_mask(&mut frame, mask);
        }
        Ok(Some(Frame {
            fin,
            opcode,
            compressed,
            payload: frame,
        }))
    }

    fn on_frame(&mut self, frame: Frame) -> Result<Option<Message>, WsError> {
        let Frame {
            fin,
            opcode,
            compressed,
            payload,
        } = frame;
        match opcode {
            OpCode::Ping => Ok(Some(Message::Ping(payload.freeze()))),
            OpCode::Pong => Ok(Some(Message::Pong(payload.freeze()))),
            OpCode::Close => close_message(payload.freeze()).map(Some),
            OpCode::Text | OpCode::Binary => {
                if self.partial.is_some() {
                    return Err(WsError::ExpectedContinuation);
                }
                let is_text = opcode == OpCode::Text;
                if fin {
                    return self.whole(is_text, compressed, payload, false).map(Some);
                }
                let mut partial = Partial {
                    is_text,
                    compressed,
                    data: payload,
                    utf8_valid: 0,
                };
                partial.check_utf8(false)?;
                self.partial = Some(partial);
                Ok(None)
            }
            OpCode::Continuation => {
                let partial = self
                    .partial
                    .as_mut()
                    .ok_or(WsError::UnexpectedContinuation)?;
                partial.data.extend_from_slice(&payload);
                partial.check_utf8(fin)?;
                if !fin {
                    return Ok(None);
                }
                let Partial {
                    is_text,
                    compressed,
                    data,
                    ..
                } = self.partial.take().expect("checked above");
                // An uncompressed text's fragments were checked as they came.
                self.whole(is_text, compressed, data, !compressed).map(Some)
            }
        }
    }

    /// A complete data message: inflated when compressed, then its text checked for UTF-8
    /// unless `checked` already.
    fn whole(
        &self,
        is_text: bool,
        compressed: bool,
        data: BytesMut,
        checked: bool,
    ) -> Result<Message, WsError> {
        let data = if compressed {
            super::deflate::inflate(&data, self.max_message).map_err(|e| match e {
                InflateError::TooLarge => WsError::InflatedTooLarge {
                    max: self.max_message,
                },
                InflateError::Bad => WsError::BadCompressedData,
            })?
        } else {
            data
        };
        if is_text && !checked && std::str::from_utf8(&data).is_err() {
            return Err(WsError::InvalidUtf8);
        }
        let data = data.freeze();
        Ok(if is_text {
            Message::Text(data)
        } else {
            Message::Binary(data)
        })
    }
}

impl Default for FrameDecoder {
    fn default() -> Self {
        FrameDecoder::server(DEFAULT_MAX_PACKAGE_SIZE)
    }
}

struct Frame {
    fin: bool,
    opcode: OpCode,
    compressed: bool,
    payload: BytesMut,
}

impl Partial {
    /// Validates the bytes added since the last check. A sequence cut at the end is fine until the
    /// final fragment; an invalid one fails at once.
    fn check_utf8(&mut self, final_fragment: bool) -> Result<(), WsError> {
        if !self.is_text || self.compressed {
            return Ok(());
        }
        match std::str::from_utf8(&self.data[self.utf8_valid..]) {
            Ok(_) => {
                self.utf8_valid = self.data.len();
                Ok(())
            }
            Err(e) if e.error_len().is_none() && !final_fragment => {
                self.utf8_valid += e.valid_up_to();
                Ok(())
            }
            Err(_) => Err(WsError::InvalidUtf8),
        }
    }
}

fn close_message(payload: Bytes) -> Result<Message, WsError> {
    match payload.len() {
        0 => Ok(Message::Close(None)),
        1 => Err(WsError::BadClosePayload),
        _ => {
            let code = u16::from_be_bytes([payload[0], payload[1]]);
            if !CloseCode::is_valid_on_wire(code) {
                return Err(WsError::BadCloseCode(code));
            }
            let reason = payload.slice(2..);
            if std::str::from_utf8(&reason).is_err() {
                return Err(WsError::InvalidUtf8);
            }
            Ok(Message::Close(Some((code, reason))))
        }
    }
}

/// XORs `data` with the 4-byte `mask` (hot: every client byte passes here; word at a time).
fn apply_mask(data: &mut [u8], mask: [u8; 4]) {
    let mask64 = u64::from_ne_bytes([
        mask[0], mask[1], mask[2], mask[3], mask[0], mask[1], mask[2], mask[3],
    ]);
    let mut chunks = data.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let word = u64::from_ne_bytes((*chunk).try_into().expect("8-byte chunk")) ^ mask64;
        chunk.copy_from_slice(&word.to_ne_bytes());
    }
    for (i, byte) in chunks.into_remainder().iter_mut().enumerate() {
        *byte ^= mask[i % 4];
    }
}

/// The header of an unmasked final frame: bytes and length. Sent before the payload in a vectored
/// write, or copied in front of it.
pub fn frame_header(opcode: OpCode, payload_len: usize) -> ([u8; 10], usize) {
    let mut head = [0u8; 10];
    head[0] = 0x80 | opcode as u8;
    let len = if payload_len <= 125 {
        head[1] = payload_len as u8;
        2
    } else if payload_len <= 0xffff {
        head[1] = 126;
        head[2..4].copy_from_slice(&(payload_len as u16).to_be_bytes());
        4
    } else {
        head[1] = 127;
        head[2..10].copy_from_slice(&(payload_len as u64).to_be_bytes());
        10
    };
    (head, len)
}

/// Appends one unmasked final frame to `dst`.
pub fn encode_frame(opcode: OpCode, payload: &[u8], dst: &mut BytesMut) {
    let (head, len) = frame_header(opcode, payload.len());
    dst.reserve(len + payload.len());
    dst.put_slice(&head[..len]);
    dst.put_slice(payload);
}

/// One text frame as a shareable buffer: encode once, queue to every recipient.
pub fn text_frame(payload: &[u8]) -> Bytes {
    let mut dst = BytesMut::with_capacity(payload.len() + 10);
    encode_frame(OpCode::Text, payload, &mut dst);
    dst.freeze()
}

/// A whole frame with RSV1 set (a compressed message) carrying `compressed`.
pub fn compressed_frame(opcode: OpCode, compressed: &[u8]) -> Bytes {
    let (mut header, len) = frame_header(opcode, compressed.len());
    header[0] |= 0x40;
    let mut out = BytesMut::with_capacity(len + compressed.len());
    out.extend_from_slice(&header[..len]);
    out.extend_from_slice(compressed);
    out.freeze()
}

/// A close frame with `code` and `reason` (truncated to fit the 125-byte control limit).
pub fn close_frame(code: u16, reason: &str) -> Bytes {
    let mut reason = &reason.as_bytes()[..reason.len().min(123)];
    while std::str::from_utf8(reason).is_err() {
        reason = &reason[..reason.len() - 1];
    }
    let mut payload = Vec::with_capacity(2 + reason.len());
    payload.extend_from_slice(&code.to_be_bytes());
    payload.extend_from_slice(reason);
    let mut dst = BytesMut::with_capacity(payload.len() + 2);
    encode_frame(OpCode::Close, &payload, &mut dst);
    dst.freeze()
}

/// Appends one masked final frame (what a client sends) to `dst`.
pub fn encode_masked_frame(opcode: OpCode, payload: &[u8], mask: [u8; 4], dst: &mut BytesMut) {
    let (mut head, len) = frame_header(opcode, payload.len());
    head[1] |= 0x80;
    dst.reserve(len + 4 + payload.len());
    dst.put_slice(&head[..len]);
    dst.put_slice(&mask);
    let start = dst.len();
    dst.put_slice(payload);
    apply_mask(&mut dst[start..], mask);
}
