//! Register lines: framing plus JSON parsing; anything parsed must survive a round trip.
#![no_main]

use bytes::BytesMut;
use gatewire_proto::line::LineDecoder;
use gatewire_proto::register::RegisterMessage;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut lines = LineDecoder::new(4096);
    let mut buf = BytesMut::from(data);
    while let Ok(Some(line)) = lines.decode(&mut buf) {
        if let Ok(message) = RegisterMessage::parse(&line) {
            let again = message.to_line();
            let reparsed = RegisterMessage::parse(again.trim_end_matches('\n').as_bytes());
            assert_eq!(reparsed.as_ref(), Ok(&message));
        }
    }
});
