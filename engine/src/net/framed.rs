//! The one read loop of every framed connection: take each whole unit its decoder finds in the
//! input, hand it over, stop when the input is used up, the connection stops reading, or the
//! input cannot be decoded. A connection says only where its decoder is and what a unit and an
//! error mean to it.

use bytes::BytesMut;
use gatewire_proto::Decode;

/// A connection reading units of `D` (it may read several kinds over its life: a client's
/// codec changes at its upgrade, so the decoder is looked up at every unit).
pub trait Framed<D: Decode> {
    /// The decoder, or `None` when this connection reads no more `D` (it is closing, or moved
    /// on to another codec).
    fn decoder(&mut self) -> Option<&mut D>;

    /// One whole unit; `false` stops reading this input.
    fn on_frame(&mut self, frame: D::Item) -> bool;

    /// The input cannot be decoded (it has been cleared): the connection is closed by its rule.
    fn on_undecodable(&mut self, error: D::Error);
}

/// Hands every whole unit of `input` to `peer`.
#[inline]
pub fn read_frames<D: Decode, P: Framed<D>>(peer: &mut P, input: &mut BytesMut) {
    loop {
        let Some(decoder) = peer.decoder() else {
            return;
        };
        match decoder.decode(input) {
            Ok(Some(frame)) => {
                if !peer.on_frame(frame) {
                    return;
                }
            }
            Ok(None) => return,
            Err(e) => {
                input.clear();
                return peer.on_undecodable(e);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use gatewire_proto::line::{LineDecoder, LineTooLong};

    struct Lines {
        decoder: LineDecoder,
        seen: Vec<Bytes>,
        stop_after: usize,
        refused: Option<String>,
    }

    impl Framed<LineDecoder> for Lines {
        fn decoder(&mut self) -> Option<&mut LineDecoder> {
            Some(&mut self.decoder)
        }
        fn on_frame(&mut self, line: Bytes) -> bool {
            self.seen.push(line);
            self.seen.len() < self.stop_after
        }
        fn on_undecodable(&mut self, error: LineTooLong) {
            self.refused = Some(error.to_string());
        }
    }

    fn lines(stop_after: usize) -> Lines {
        Lines {
            decoder: LineDecoder::new(8),
            seen: Vec::new(),
            stop_after,
            refused: None,
        }
    }

    #[test]
    fn every_whole_unit_is_handed_over_and_the_rest_waits() {
        let mut peer = lines(usize::MAX);
        let mut input = BytesMut::from(&b"a\nbb\ncc"[..]);
        read_frames(&mut peer, &mut input);
        assert_eq!(peer.seen, [Bytes::from("a"), Bytes::from("bb")]);
        assert_eq!(&input[..], b"cc");
    }

    #[test]
    fn a_peer_that_stops_leaves_the_rest_in_the_input() {
        let mut peer = lines(1);
        let mut input = BytesMut::from(&b"a\nb\n"[..]);
        read_frames(&mut peer, &mut input);
        assert_eq!(peer.seen, [Bytes::from("a")]);
        assert_eq!(&input[..], b"b\n");
    }

    #[test]
    fn undecodable_input_is_cleared_and_reported_once() {
        let mut peer = lines(usize::MAX);
        let mut input = BytesMut::from(&b"ok\nmuch too long"[..]);
        read_frames(&mut peer, &mut input);
        assert_eq!(peer.seen, [Bytes::from("ok")]);
        assert!(input.is_empty());
        assert_eq!(peer.refused.as_deref(), Some("no newline within 8 bytes"));
    }
}
