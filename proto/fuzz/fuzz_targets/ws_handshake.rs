//! WebSocket upgrade requests: parsing, validation and the ON_WEBSOCKET_CONNECT array.
#![no_main]

use gatewire_proto::php::serialize;
use gatewire_proto::websocket::{connect_data, parse_request};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(Some((request, used))) = parse_request(data, 1 << 16) {
        assert!(used <= data.len());
        let _ = request.accept_key();
        let _ = request.is_websocket_upgrade();
        let value = connect_data(&request, "127.0.0.1:40000".parse().unwrap(), 8282);
        let _ = serialize(&value);
    }
});
