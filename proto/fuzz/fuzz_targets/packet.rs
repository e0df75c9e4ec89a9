//! Inner packet stream: arbitrary bytes, fed in two pieces, must decode or fail cleanly, and every
//! decoded packet must re-encode to the bytes it came from.
#![no_main]

use bytes::BytesMut;
use gatewire_proto::PacketDecoder;
use gatewire_proto::query_reply::QueryReplyDecoder;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let split = data.first().map_or(0, |b| *b as usize % (data.len() + 1));
    let mut decoder = PacketDecoder::new(1 << 16);
    let mut buf = BytesMut::new();
    let mut consumed = 0;
    for piece in [&data[..split], &data[split..]] {
        buf.extend_from_slice(piece);
        loop {
            let before = buf.len();
            match decoder.decode(&mut buf) {
                Ok(Some(packet)) => {
                    let wire = packet.to_bytes().expect("a decoded packet re-encodes");
                    let used = before - buf.len();
                    assert_eq!(&wire[..], &data[consumed..consumed + used]);
                    consumed += used;
                }
                Ok(None) | Err(_) => break,
            }
        }
    }
    let mut replies = QueryReplyDecoder::new(1 << 16);
    let mut buf = BytesMut::from(data);
    while let Ok(Some(_)) = replies.decode(&mut buf) {}
});
