//! Announced sizes are not reservations: a header that announces a large payload makes no decoder
//! grow its buffer before the payload's bytes arrive (a peer could otherwise make a process reserve
//! megabytes per connection with a few bytes each).

use bytes::{BufMut, BytesMut};
use gatewire_proto::PacketDecoder;
use gatewire_proto::frame::FrameDecoder as LengthFrameDecoder;
use gatewire_proto::query_reply::QueryReplyDecoder;
use gatewire_proto::websocket::FrameDecoder;

const ANNOUNCED: usize = 10 << 20;
/// What a receive buffer may hold after a few header bytes: far below the announced size.
const BOUND: usize = 64 * 1024;

fn assert_not_reserved(what: &str, buf: &BytesMut) {
    assert!(
        buf.capacity() < BOUND,
        "{what}: {} bytes reserved for {} bytes received",
        buf.capacity(),
        buf.len()
    );
}

#[test]
fn websocket_header_announcing_10_mib_reserves_nothing() {
    let mut decoder = FrameDecoder::server(16 << 20);
    let mut buf = BytesMut::new();
    buf.put_u8(0x82);
    buf.put_u8(0x80 | 127);
    buf.put_u64(ANNOUNCED as u64);
    buf.put_slice(&[1, 2, 3, 4]);
    assert_eq!(decoder.decode(&mut buf), Ok(None));
    assert_not_reserved("websocket", &buf);
}

#[test]
fn inner_packet_header_announcing_10_mib_reserves_nothing() {
    let mut decoder = PacketDecoder::new(16 << 20);
    let mut buf = BytesMut::new();
    buf.put_u32(ANNOUNCED as u32);
    buf.put_slice(&[0; 24]);
    assert!(decoder.decode(&mut buf).unwrap().is_none());
    assert_not_reserved("inner packet", &buf);
}

#[test]
fn length_prefixed_frame_announcing_10_mib_reserves_nothing() {
    let mut decoder = LengthFrameDecoder::new(16 << 20);
    let mut buf = BytesMut::new();
    buf.put_u32(ANNOUNCED as u32);
    assert!(decoder.decode(&mut buf).unwrap().is_none());
    assert_not_reserved("frame", &buf);
}

#[test]
fn query_reply_announcing_10_mib_reserves_nothing() {
    let mut decoder = QueryReplyDecoder::new(16 << 20);
    let mut buf = BytesMut::new();
    buf.put_u32(ANNOUNCED as u32);
    assert!(decoder.decode(&mut buf).unwrap().is_none());
    assert_not_reserved("query reply", &buf);
}

#[test]
fn a_large_message_still_decodes_when_it_arrives_in_pieces() {
    let mut decoder = PacketDecoder::new(16 << 20);
    let packet = gatewire_proto::Packet::new(
        gatewire_proto::Header::command(gatewire_proto::Cmd::SendToAll),
        "",
        vec![7u8; 3 << 20],
    )
    .to_bytes()
    .unwrap();
    let mut buf = BytesMut::new();
    let mut decoded = None;
    for piece in packet.chunks(16 * 1024) {
        buf.extend_from_slice(piece);
        if let Some(p) = decoder.decode(&mut buf).unwrap() {
            decoded = Some(p);
        }
    }
    assert_eq!(decoded.expect("whole packet").body.len(), 3 << 20);
}
