//! permessage-deflate (RFC 7692) as a gateway with many sockets wants it: no compressor or
//! decompressor state kept per connection. The negotiation always answers with
//! `server_no_context_takeover` and `client_no_context_takeover`, so every message is compressed
//! on its own: one message compressed once can be queued to every client that negotiated it, and
//! one compressor and one decompressor per thread (a shard) serve all its connections.
//!
//! A client that asks for `server_max_window_bits=N` gets compressed messages only when they
//! are at most 2^N bytes long (each is compressed alone, so no back-reference reaches further
//! than its own length; a longer one is sent uncompressed, which the extension allows per
//! message). Inflated messages are bounded by the caller's maximum: a small frame that inflates
//! past it is refused before more memory is taken (a zip bomb).

use std::cell::RefCell;

use bytes::BytesMut;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// What the negotiation settled for one client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeflateAgreement {
    /// The largest window the client accepts from us (`server_max_window_bits`, 8–15).
    pub server_window_bits: u8,
}

impl DeflateAgreement {
    /// Whether a message of `len` bytes, compressed alone, fits the client's window.
    pub fn fits(&self, len: usize) -> bool {
        len <= 1usize << self.server_window_bits
    }
}

/// The first acceptable `permessage-deflate` offer among the request's
/// `Sec-WebSocket-Extensions` values, with the response header's value; `None` declines (no
/// offer, or none well-formed). Offers are tried in order; a malformed one is skipped.
pub fn negotiate<'a>(
    header_values: impl IntoIterator<Item = &'a [u8]>,
) -> Option<(DeflateAgreement, String)> {
    for value in header_values {
        let Ok(value) = std::str::from_utf8(value) else {
            continue;
        };
        for offer in split_outside_quotes(value, ',') {
            let mut parts = split_outside_quotes(offer, ';').into_iter().map(str::trim);
            if parts.next() != Some("permessage-deflate") {
                continue;
            }
            if let Some(accepted) = accept(parts) {
                return Some(accepted);
            }
        }
    }
    None
}

/// The agreement for one offer's parameters, or `None` when they are malformed.
fn accept<'a>(params: impl Iterator<Item = &'a str>) -> Option<(DeflateAgreement, String)> {
    let mut seen: Vec<&str> = Vec::new();
    let mut server_window_bits = None;
    for param in params {
        let (name, value) = match param.split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.trim().trim_matches('"'))),
            None => (param, None),
        };
        if seen.contains(&name) {
            return None;
        }
        seen.push(name);
        let bits = |v: Option<&str>| {
            v.and_then(|v| v.parse::<u8>().ok())
                .filter(|b| (8..=15).contains(b))
        };
        match (name, value) {
            ("server_no_context_takeover" | "client_no_context_takeover", None) => {}
            ("server_max_window_bits", v) => server_window_bits = Some(bits(v)?),
            // Our decompressor takes any window up to 15, so the client's choice needs no answer.
            ("client_max_window_bits", None) => {}
            ("client_max_window_bits", v) => {
                bits(v)?;
            }
            _ => return None,
        }
    }
    let mut response =
        String::from("permessage-deflate; server_no_context_takeover; client_no_context_takeover");
    if let Some(bits) = server_window_bits {
        response.push_str(&format!("; server_max_window_bits={bits}"));
    }
    Some((
        DeflateAgreement {
            server_window_bits: server_window_bits.unwrap_or(15),
        },
        response,
    ))
}

/// Splits `s` at `sep` outside double quotes.
fn split_outside_quotes(s: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut quoted) = (0, false);
    for (i, c) in s.char_indices() {
        match c {
            '"' => quoted = !quoted,
            c if c == sep && !quoted => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

/// The empty stored block a sync flush ends with; RFC 7692 removes it on the wire and the
/// receiver puts it back.
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

thread_local! {
    static DEFLATE: RefCell<Compress> = RefCell::new(Compress::new(Compression::default(), false));
    static INFLATE: RefCell<Decompress> = RefCell::new(Decompress::new(false));
}

/// `payload` compressed alone (no context kept), as a permessage-deflate message body.
pub fn compress(payload: &[u8]) -> Vec<u8> {
    DEFLATE.with(|c| {
        let mut c = c.borrow_mut();
        c.reset();
        let mut out = Vec::with_capacity(payload.len() / 2 + 64);
        let mut input = payload;
        loop {
            if out.len() == out.capacity() {
                out.reserve(out.capacity().max(64));
            }
            let before = c.total_in();
            c.compress_vec(input, &mut out, FlushCompress::Sync)
                .expect("deflate cannot fail on valid state");
            input = &input[(c.total_in() - before) as usize..];
            // Done once the input is in and the flush left room to spare in the output.
            if input.is_empty() && out.len() < out.capacity() {
                break;
            }
        }
        if out.ends_with(&TAIL) {
            out.truncate(out.len() - TAIL.len());
        }
        out
    })
}

/// Why a compressed message could not be inflated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InflateError {
    /// It inflates past the maximum given.
    TooLarge,
    /// It is not deflate data.
    Bad,
}

/// The start of a compressed message's payload: inflates into `out` until it is full or the
/// message ends, and returns how many bytes it holds (what a reader that needs only a message's
/// first bytes pays: the load generator's marker).
pub fn inflate_start(payload: &[u8], out: &mut [u8]) -> Result<usize, InflateError> {
    INFLATE.with(|d| {
        let mut d = d.borrow_mut();
        d.reset(false);
        let mut filled = 0;
        for mut input in [payload, &TAIL[..]] {
            while filled < out.len() {
                let (before_in, before_out) = (d.total_in(), d.total_out());
                let status = d
                    .decompress(input, &mut out[filled..], FlushDecompress::Sync)
                    .map_err(|_| InflateError::Bad)?;
                input = &input[(d.total_in() - before_in) as usize..];
                filled += (d.total_out() - before_out) as usize;
                if status == Status::StreamEnd || input.is_empty() {
                    break;
                }
                if d.total_in() == before_in && d.total_out() == before_out {
                    return Err(InflateError::Bad);
                }
            }
            if filled == out.len() {
                break;
            }
        }
        Ok(filled)
    })
}

/// A compressed message's payload inflated, at most `max` bytes.
pub fn inflate(payload: &[u8], max: usize) -> Result<BytesMut, InflateError> {
    INFLATE.with(|d| {
        let mut d = d.borrow_mut();
        d.reset(false);
        let mut out: Vec<u8> = Vec::with_capacity((payload.len() * 3).clamp(64, max.max(64)));
        for mut input in [payload, &TAIL[..]] {
            loop {
                if out.len() == out.capacity() {
                    if out.len() > max {
                        return Err(InflateError::TooLarge);
                    }
                    let room = out.capacity().max(1024).min(max + 1 - out.len().min(max));
                    out.reserve(room.max(1));
                }
                let (before_in, before_out) = (d.total_in(), out.len());
                let status = d
                    .decompress_vec(input, &mut out, FlushDecompress::Sync)
                    .map_err(|_| InflateError::Bad)?;
                input = &input[(d.total_in() - before_in) as usize..];
                if out.len() > max {
                    return Err(InflateError::TooLarge);
                }
                let progressed = out.len() > before_out || d.total_in() > before_in;
                let output_full = out.len() == out.capacity();
                if status == Status::StreamEnd || (input.is_empty() && !output_full) {
                    break;
                }
                if !progressed && !output_full {
                    return Err(InflateError::Bad);
                }
            }
        }
        Ok(BytesMut::from(&out[..]))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offers_are_accepted_in_order_and_malformed_ones_declined() {
        let (a, r) = negotiate([&b"permessage-deflate"[..]]).unwrap();
        assert_eq!(a.server_window_bits, 15);
        assert_eq!(
            r,
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
        );
        let (a, r) = negotiate([
            &b"permessage-deflate; server_max_window_bits=10; client_max_window_bits"[..],
        ])
        .unwrap();
        assert_eq!(a.server_window_bits, 10);
        assert!(r.ends_with("; server_max_window_bits=10"));
        assert!(a.fits(1024) && !a.fits(1025));
        // The first offer is malformed (a bad value, an unknown parameter, a duplicate): the next.
        for bad in [
            "permessage-deflate; server_max_window_bits=16, permessage-deflate",
            "permessage-deflate; foo, permessage-deflate",
            "permessage-deflate; client_no_context_takeover; client_no_context_takeover, permessage-deflate",
            "permessage-deflate; server_max_window_bits, permessage-deflate",
        ] {
            let (a, _) = negotiate([bad.as_bytes()]).unwrap();
            assert_eq!(a.server_window_bits, 15, "{bad}");
        }
        assert_eq!(negotiate([&b"x-webkit-deflate-frame"[..]]), None);
        assert_eq!(negotiate([&b"permessage-deflate; x=1"[..]]), None);
        assert_eq!(
            negotiate([
                &b"foo"[..],
                &b"permessage-deflate; client_max_window_bits=\"12\""[..]
            ])
            .map(|(a, _)| a.server_window_bits),
            Some(15)
        );
    }

    #[test]
    fn messages_round_trip_and_each_stands_alone() {
        let text = br#"{"type":"tick","symbol":"ABC","price":101.25,"volume":1200}"#.repeat(20);
        let small = compress(&text);
        assert!(
            small.len() < text.len() / 4,
            "{} of {}",
            small.len(),
            text.len()
        );
        assert_eq!(&inflate(&small, 1 << 20).unwrap()[..], &text[..]);
        // No context carried over: the same message compresses to the same bytes again.
        assert_eq!(compress(&text), small);
        assert_eq!(&inflate(&compress(b""), 10).unwrap()[..], b"");
        let mut start = [0u8; 100];
        assert_eq!(inflate_start(&small, &mut start), Ok(100));
        assert_eq!(&start[..], &text[..100]);
        let mut all = [0u8; 64];
        let short = compress(b"short");
        assert_eq!(inflate_start(&short, &mut all), Ok(5));
        assert_eq!(&all[..5], b"short");
    }

    #[test]
    fn a_bomb_is_refused_at_the_limit_and_garbage_is_bad_data() {
        let zeros = vec![0u8; 4 << 20];
        let bomb = compress(&zeros);
        assert!(bomb.len() < 8 << 10);
        assert_eq!(inflate(&bomb, 1 << 20), Err(InflateError::TooLarge));
        assert_eq!(inflate(&bomb, 4 << 20).unwrap().len(), 4 << 20);
        assert_eq!(inflate(&[0xff, 0xff, 0xff], 100), Err(InflateError::Bad));
    }
}
