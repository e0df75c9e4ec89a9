//! An inner link as the gateway reads it: a packet stream (in two pieces, under the bound an
//! unauthenticated link gets), each packet's ext and body parsed the way its command is applied
//! (targets, key lists, SELECT, sessions, hellos, message bodies). Nothing may panic.
#![no_main]

use bytes::{Bytes, BytesMut};
use gatewire_proto::auth::Auth;
use gatewire_proto::ext::{Select, SendToAllTarget, SendToGroup, parse_key_list};
use gatewire_proto::php::merge_session;
use gatewire_proto::{Cmd, Packet, PacketDecoder, packet};
use libfuzzer_sys::fuzz_target;

/// The parse each command's handler does before it touches any state.
fn apply(packet: &Packet) {
    match packet.header.cmd {
        Cmd::WorkerConnect | Cmd::GatewayClientConnect => {
            let _ = Auth::parse(&packet.body, packet.header.cmd == Cmd::WorkerConnect);
        }
        Cmd::SendToAll => {
            let _ = SendToAllTarget::parse(&packet.ext);
        }
        Cmd::SendToGroup => {
            let _ = SendToGroup::parse(&packet.ext);
        }
        Cmd::SendToUid | Cmd::BatchGetClientIdByUid | Cmd::BatchGetClientCountByGroup => {
            let _ = parse_key_list(&packet.ext);
        }
        Cmd::Select => {
            let _ = Select::parse(&packet.ext);
        }
        Cmd::UpdateSession => {
            let _ = merge_session(&Bytes::from_static(b"a:1:{s:1:\"k\";i:1;}"), &packet.ext);
        }
        _ => {}
    }
    let _ = packet::decode_body(packet.header.flag, &packet.body);
}

fuzz_target!(|data: &[u8]| {
    let split = data.first().map_or(0, |b| *b as usize % (data.len() + 1));
    let mut decoder = PacketDecoder::new(64 * 1024);
    let mut buf = BytesMut::new();
    for piece in [&data[..split], &data[split..]] {
        buf.extend_from_slice(piece);
        while let Ok(Some(packet)) = decoder.decode(&mut buf) {
            apply(&packet);
        }
    }
});
