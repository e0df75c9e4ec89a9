//! PHP unserialize: never panics; whatever it accepts re-serializes to a fixed point, and the
//! session merge and json_encode accept its output.
#![no_main]

use gatewire_proto::php::{merge_session, serialize, to_json, unserialize};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(value) = unserialize(data) {
        let bytes = serialize(&value);
        let again = unserialize(&bytes).expect("serialize output unserializes");
        assert_eq!(serialize(&again), bytes);
        let _ = to_json(&value);
        let _ = merge_session(&bytes, data);
    }
});
