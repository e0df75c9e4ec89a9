//! Counting a server's frames without keeping them: a small state machine per client that walks
//! frame headers in whatever pieces the socket gives, and hands on only the start of each
//! complete frame's payload (enough for the loadgen marker and the app's confirmations).
//! A frame that lies whole in one read is looked at in place; only one that is split across
//! reads has its first [`SCAN_BYTES`] payload bytes copied, into a buffer that is freed when the
//! frame ends. Nothing else grows with the traffic. A compressed message (permessage-deflate,
//! RSV1 on its frame, when loadgen ran with `--deflate`) is held whole, up to
//! [`MAX_COMPRESSED`], and only its first [`SCAN_BYTES`] are inflated, for the marker.

/// Payload bytes kept of a frame split across reads: the marker (`lg:<sender>:<seq>:<ns>:`)
/// and the prefix an app may put before it fit well within this.
pub const SCAN_BYTES: usize = 256;

/// The largest compressed message held to be inflated; a longer one is counted as `Other`.
pub const MAX_COMPRESSED: usize = 1 << 20;

/// The largest header: 2 bytes, 8 of extended length, 4 of mask.
const MAX_HEAD: usize = 14;

/// A complete frame, as far as loadgen cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame<'a> {
    /// The first (or only) frame of a text or binary message: the start of its payload.
    Data(&'a [u8]),
    /// A pong, with the start of its payload.
    Pong(&'a [u8]),
    /// The server closed (or sent something that is not WebSocket).
    Close,
    /// A ping, a continuation frame: nothing to count.
    Other,
}

/// Where one client's stream is between frames.
#[derive(Debug, Default)]
pub struct Scan {
    head: [u8; MAX_HEAD],
    head_len: u8,
    /// The current frame's opcode, once its header is complete.
    opcode: Option<u8>,
    /// The current frame is compressed (RSV1): its whole payload is held and inflated.
    compressed: bool,
    /// Payload bytes of the current frame still to come.
    left: u64,
    /// The current frame's payload start, while it is split across reads.
    held: Vec<u8>,
    /// Set after a close or a malformed header: everything after is ignored.
    closed: bool,
}

impl Scan {
    /// Walks `bytes`, the next piece of the stream, calling `on` for each frame it completes.
    pub fn feed(&mut self, mut bytes: &[u8], on: &mut impl FnMut(Frame<'_>)) {
        while !bytes.is_empty() && !self.closed {
            let Some(opcode) = self.opcode else {
                // Header: take what is needed, in place when it is all here.
                let need = match header_len(&self.head[..self.head_len as usize], bytes) {
                    Some(need) => need,
                    None => {
                        let take = bytes.len().min(MAX_HEAD - self.head_len as usize);
                        self.push_head(&bytes[..take]);
                        bytes = &bytes[take..];
                        continue;
                    }
                };
                let take = need - self.head_len as usize;
                if take > bytes.len() {
                    self.push_head(bytes);
                    return;
                }
                self.push_head(&bytes[..take]);
                bytes = &bytes[take..];
                match parse_header(&self.head[..need]) {
                    Some((opcode, len, compressed)) => {
                        self.opcode = Some(opcode);
                        self.left = len;
                        self.head_len = 0;
                        self.compressed = compressed;
                    }
                    None => {
                        self.closed = true;
                        on(Frame::Close);
                        return;
                    }
                }
                if self.left == 0 {
                    self.finish(&[], on);
                }
                continue;
            };
            let here = usize::try_from(self.left)
                .unwrap_or(usize::MAX)
                .min(bytes.len());
            let (payload, rest) = bytes.split_at(here);
            bytes = rest;
            self.left -= here as u64;
            let wanted = matters(opcode);
            let keep = if self.compressed {
                MAX_COMPRESSED
            } else {
                SCAN_BYTES
            };
            if self.left == 0 && self.held.is_empty() {
                // The whole payload (or all of it that is left) is here: look at it in place.
                self.finish(&payload[..payload.len().min(keep)], on);
            } else {
                if wanted && self.held.len() < keep {
                    let room = keep - self.held.len();
                    self.held
                        .extend_from_slice(&payload[..payload.len().min(room)]);
                }
                if self.left == 0 {
                    let held = std::mem::take(&mut self.held);
                    self.finish(&held, on);
                }
            }
        }
    }

    /// True once the stream has ended in a close or an error.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    fn push_head(&mut self, bytes: &[u8]) {
        let at = self.head_len as usize;
        self.head[at..at + bytes.len()].copy_from_slice(bytes);
        self.head_len += bytes.len() as u8;
    }

    fn finish(&mut self, payload: &[u8], on: &mut impl FnMut(Frame<'_>)) {
        let opcode = self.opcode.take().unwrap_or(0);
        if std::mem::take(&mut self.compressed) {
            // A message held whole: inflated (at most what the marker needs, and a bit more).
            // Only the start is inflated: the marker is all loadgen reads.
            match inflate_start_memo(payload) {
                Some((start, n)) => on(Frame::Data(&start[..n])),
                None => on(Frame::Other),
            }
            return;
        }
        let frame = match opcode {
            0x1 | 0x2 => Frame::Data(payload),
            0xA => Frame::Pong(payload),
            0x8 => {
                self.closed = true;
                Frame::Close
            }
            _ => Frame::Other,
        };
        on(frame);
    }
}

/// Compressed messages remembered per thread, with what their start inflates to: enough for
/// every broadcast in flight at once when a run falls seconds behind.
const MEMO_ENTRIES: usize = 1024;
/// The longest compressed message remembered.
const MEMO_MAX: usize = 4096;

/// The last [`MEMO_ENTRIES`] compressed messages a thread inflated, oldest first out.
#[derive(Default)]
struct Memo {
    inflated: std::collections::HashMap<Box<[u8]>, ([u8; SCAN_BYTES], usize)>,
    order: std::collections::VecDeque<Box<[u8]>>,
}

thread_local! {
    /// A broadcast reaches every client of a loadgen thread as the same bytes (a server without
    /// context takeover compresses each message on its own, so the same bytes always inflate
    /// to the same text): the first copy is inflated, the others are looked up by their bytes.
    /// Inflating every copy made loadgen, not the server, the limit of a compressed fanout
    /// (docs/benchmarks.md).
    static MEMO: std::cell::RefCell<Memo> = std::cell::RefCell::default();
}

/// The start of `payload` inflated (`None` when it does not inflate), from [`MEMO`] when the
/// same bytes were inflated lately.
fn inflate_start_memo(payload: &[u8]) -> Option<([u8; SCAN_BYTES], usize)> {
    MEMO.with_borrow_mut(|memo| {
        if let Some(found) = memo.inflated.get(payload) {
            return Some(*found);
        }
        let mut start = [0u8; SCAN_BYTES];
        let n = gatewire_proto::websocket::deflate::inflate_start(payload, &mut start).ok()?;
        if payload.len() <= MEMO_MAX {
            if memo.order.len() == MEMO_ENTRIES
                && let Some(oldest) = memo.order.pop_front()
            {
                memo.inflated.remove(&oldest);
            }
            memo.inflated.insert(payload.into(), (start, n));
            memo.order.push_back(payload.into());
        }
        Some((start, n))
    })
}

/// Opcodes whose payload start is worth keeping across reads.
fn matters(opcode: u8) -> bool {
    matches!(opcode, 0x1 | 0x2 | 0xA)
}

/// The header's full length, once its first two bytes are known (from `held`, then `more`).
fn header_len(held: &[u8], more: &[u8]) -> Option<usize> {
    let second = match held.len() {
        0 => *more.get(1)?,
        1 => *more.first()?,
        _ => held[1],
    };
    let ext = match second & 0x7f {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    let mask = if second & 0x80 != 0 { 4 } else { 0 };
    Some(2 + ext + mask)
}

/// `(opcode, payload length, compressed)` of a complete header; `None` if it is not a valid
/// frame header. RSV1 (permessage-deflate) is accepted on the first frame of a data message.
fn parse_header(head: &[u8]) -> Option<(u8, u64, bool)> {
    let opcode = head[0] & 0x0f;
    let compressed = head[0] & 0x40 != 0;
    if head[0] & 0x30 != 0
        || compressed && !matches!(opcode, 0x1 | 0x2)
        || !matches!(opcode, 0x0..=0x2 | 0x8..=0xA)
    {
        return None;
    }
    let len = match head[1] & 0x7f {
        126 => u64::from(u16::from_be_bytes([head[2], head[3]])),
        127 => u64::from_be_bytes(head[2..10].try_into().ok()?),
        n => u64::from(n),
    };
    // Control frames carry at most 125 bytes (RFC 6455 5.5).
    if opcode >= 0x8 && len > 125 {
        return None;
    }
    Some((opcode, len, compressed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use gatewire_proto::websocket::{OpCode, encode_frame, encode_masked_frame};

    /// What feeding `stream` in pieces of the given sizes reports, as owned values.
    fn frames(stream: &[u8], piece: usize) -> Vec<(String, Vec<u8>)> {
        let mut scan = Scan::default();
        let mut out = Vec::new();
        for chunk in stream.chunks(piece.max(1)) {
            scan.feed(chunk, &mut |f| {
                out.push(match f {
                    Frame::Data(p) => ("data".into(), p.to_vec()),
                    Frame::Pong(p) => ("pong".into(), p.to_vec()),
                    Frame::Close => ("close".into(), Vec::new()),
                    Frame::Other => ("other".into(), Vec::new()),
                })
            });
        }
        out
    }

    fn stream() -> (BytesMut, Vec<(String, Vec<u8>)>) {
        let big = vec![b'y'; 70_000];
        let mid = vec![b'z'; 300];
        let mut s = BytesMut::new();
        encode_frame(OpCode::Text, b"lg:1:2:3:xxxx", &mut s);
        encode_frame(OpCode::Ping, b"p", &mut s);
        encode_frame(OpCode::Binary, &mid, &mut s);
        encode_frame(OpCode::Text, b"", &mut s);
        encode_frame(OpCode::Text, &big, &mut s);
        encode_masked_frame(OpCode::Pong, b"alive", [1, 2, 3, 4], &mut s);
        encode_frame(OpCode::Text, b"after", &mut s);
        encode_frame(OpCode::Close, b"\x03\xe8", &mut s);
        encode_frame(OpCode::Text, b"never", &mut s);
        let want = vec![
            ("data".into(), b"lg:1:2:3:xxxx".to_vec()),
            ("other".into(), Vec::new()),
            ("data".into(), mid[..SCAN_BYTES].to_vec()),
            ("data".into(), Vec::new()),
            ("data".into(), big[..SCAN_BYTES].to_vec()),
            // A masked pong's payload is handed on as it came (loadgen's servers do not mask).
            ("pong".into(), {
                let mut p = b"alive".to_vec();
                for (i, b) in p.iter_mut().enumerate() {
                    *b ^= [1, 2, 3, 4][i % 4];
                }
                p
            }),
            ("data".into(), b"after".to_vec()),
            ("close".into(), Vec::new()),
        ];
        (s, want)
    }

    #[test]
    fn every_split_of_the_stream_reports_the_same_frames() {
        let (s, want) = stream();
        for piece in [1, 2, 3, 5, 7, 13, 64, 255, 256, 257, 4096, 65_536, s.len()] {
            assert_eq!(frames(&s, piece), want, "pieces of {piece} bytes");
        }
    }

    #[test]
    fn a_split_frame_holds_at_most_its_scan_bytes_and_frees_them() {
        let mut s = BytesMut::new();
        encode_frame(OpCode::Text, &vec![b'q'; 100_000], &mut s);
        let mut scan = Scan::default();
        let mut seen = 0;
        for chunk in s.chunks(1000) {
            scan.feed(chunk, &mut |_| seen += 1);
            assert!(scan.held.len() <= SCAN_BYTES);
        }
        assert_eq!(seen, 1);
        assert_eq!(
            scan.held.capacity(),
            0,
            "the held start is freed with its frame"
        );
    }

    #[test]
    fn remembered_compressed_messages_read_as_inflating_them_does() {
        use gatewire_proto::websocket::deflate::compress;
        // More different messages than the memo holds, each seen several times in turn.
        let messages: Vec<Vec<u8>> = (0..MEMO_ENTRIES + 6)
            .map(|i| format!("lg:{i}:{i}:{i}:{}", "x".repeat(300 + i)).into_bytes())
            .collect();
        let compressed: Vec<Vec<u8>> = messages.iter().map(|m| compress(m)).collect();
        for round in 0..3 {
            for (message, bytes) in messages.iter().zip(&compressed) {
                let (start, n) = inflate_start_memo(bytes).expect("inflates");
                assert_eq!(&start[..n], &message[..SCAN_BYTES], "round {round}");
            }
        }
        // Damaged bytes read the same as inflating them does, the first time and the next.
        let mut damaged = compressed[0].clone();
        damaged[1] ^= 0x55;
        let mut start = [0u8; SCAN_BYTES];
        let direct = gatewire_proto::websocket::deflate::inflate_start(&damaged, &mut start)
            .ok()
            .map(|n| (start, n));
        assert_eq!(inflate_start_memo(&damaged), direct);
        assert_eq!(inflate_start_memo(&damaged), direct);
    }

    #[test]
    fn a_compressed_message_is_inflated_to_find_its_marker_in_any_split() {
        use gatewire_proto::websocket::compressed_frame;
        use gatewire_proto::websocket::deflate::compress;
        let mut message = b"lg:4:5:6:".to_vec();
        message.extend(std::iter::repeat_n(b'w', 20_000));
        let mut s = BytesMut::new();
        s.extend_from_slice(&compressed_frame(OpCode::Text, &compress(&message)));
        encode_frame(OpCode::Text, b"plain", &mut s);
        for piece in [1, 7, 100, s.len()] {
            assert_eq!(
                frames(&s, piece),
                vec![
                    ("data".to_owned(), message[..SCAN_BYTES].to_vec()),
                    ("data".to_owned(), b"plain".to_vec()),
                ],
                "pieces of {piece} bytes"
            );
        }
    }

    #[test]
    fn a_reserved_opcode_or_a_long_control_frame_closes() {
        for bad in [
            &[0x83u8, 0x00][..],
            &[0xA1, 0x00],
            &[0xC9, 0x00],
            &[0x89, 0x7e, 0x01, 0x00],
        ] {
            let mut closes = 0;
            let mut scan = Scan::default();
            scan.feed(bad, &mut |f| closes += usize::from(f == Frame::Close));
            assert_eq!(closes, 1, "{bad:?}");
            assert!(scan.is_closed());
        }
    }
}
