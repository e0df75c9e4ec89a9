//! JSON ext payloads and authentication bodies.
#![no_main]

use gatewire_proto::auth::Auth;
use gatewire_proto::ext::{Select, SendToAllTarget, SendToGroup, parse_key_list};
use gatewire_proto::websocket::parse_str;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(target) = SendToAllTarget::parse(data) {
        let _ = SendToAllTarget::parse(target.to_ext().as_bytes());
    }
    let _ = SendToGroup::parse(data);
    let _ = Select::parse(data);
    let _ = parse_key_list(data);
    let _ = Auth::parse(data, true);
    let _ = parse_str(data);
});
