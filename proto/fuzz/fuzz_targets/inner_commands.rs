//! An inner link as the gateway reads it: a packet stream (in two pieces, under the bound an
//! unauthenticated link gets), each packet read as the gateway reads it — a hello, or a typed
//! `Command` — with the body and session parsed as applying it would. A command that parses
//! must encode back to a packet that parses to the same command. Nothing may panic.
#![no_main]

use bytes::{Bytes, BytesMut};
use gatewire_proto::auth::Auth;
use gatewire_proto::command::{Command, Session};
use gatewire_proto::php::merge_session;
use gatewire_proto::{Cmd, Packet, PacketDecoder, packet};
use libfuzzer_sys::fuzz_target;

/// What the gateway does with a packet before it touches any state.
fn apply(packet: &Packet) {
    if matches!(packet.header.cmd, Cmd::WorkerConnect | Cmd::GatewayClientConnect) {
        let _ = Auth::parse(&packet.body, packet.header.cmd == Cmd::WorkerConnect);
        return;
    }
    if let Ok(command) = Command::from_packet(packet) {
        if let Command::Session(Session::Update { update, .. }) = &command {
            let _ = merge_session(&Bytes::from_static(b"a:1:{s:1:\"k\";i:1;}"), update);
        }
        let again = Command::from_packet(&command.to_packet());
        assert_eq!(again.as_ref(), Ok(&command), "encode then parse changes {command:?}");
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
