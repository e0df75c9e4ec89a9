//! WebSocket frames in server and client mode, fed in two pieces.
#![no_main]

use bytes::BytesMut;
use gatewire_proto::websocket::FrameDecoder;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let split = data.first().map_or(0, |b| *b as usize % (data.len() + 1));
    for mut decoder in [FrameDecoder::server(1 << 16), FrameDecoder::client(1 << 16)] {
        let mut buf = BytesMut::new();
        for piece in [&data[..split], &data[split..]] {
            buf.extend_from_slice(piece);
            while let Ok(Some(_)) = decoder.decode(&mut buf) {}
        }
    }
});
