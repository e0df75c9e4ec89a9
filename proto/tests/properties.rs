//! Property tests: every encoder round-trips through its decoder, and arbitrary bytes fed to
//! every decoder (whole or in arbitrary pieces) never panic.

use std::net::Ipv4Addr;

use bytes::{Bytes, BytesMut};
use gatewire_proto::ext::{Select, SendToAllTarget, SendToGroup, parse_key_list};
use gatewire_proto::frame::{self as frame_protocol, FrameDecoder as LengthFrameDecoder};
use gatewire_proto::line::LineDecoder;
use gatewire_proto::php::{Array, Key, Value, merge_session, serialize, to_json, unserialize};
use gatewire_proto::query_reply::{self, QueryReplyDecoder};
use gatewire_proto::register::RegisterMessage;
use gatewire_proto::websocket::{
    FrameDecoder, Message, OpCode, encode_masked_frame, parse_request, parse_str,
};
use gatewire_proto::{ClientId, Cmd, Flags, Header, Packet, PacketDecoder, auth::Auth};
use proptest::prelude::*;

fn header() -> impl Strategy<Value = Header> {
    (
        any::<u8>(),
        any::<u32>(),
        any::<u16>(),
        any::<u32>(),
        any::<u16>(),
        any::<u32>(),
        any::<u8>(),
        any::<u16>(),
    )
        .prop_map(|(cmd, lip, lport, cip, cport, id, flag, gport)| Header {
            cmd: Cmd::from(cmd),
            local_ip: Ipv4Addr::from(lip),
            local_port: lport,
            client_ip: Ipv4Addr::from(cip),
            client_port: cport,
            connection_id: id,
            flag: Flags(flag),
            gateway_port: gport,
        })
}

fn key() -> impl Strategy<Value = Key> {
    prop_oneof![
        any::<i64>().prop_map(Key::Int),
        prop::collection::vec(any::<u8>(), 0..12).prop_map(|b| Key::from(b.as_slice())),
        "[0-9]{1,4}".prop_map(|s| Key::from(s.as_str())),
    ]
}

fn php_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::Int),
        any::<f64>().prop_map(Value::Float),
        prop::collection::vec(any::<u8>(), 0..24).prop_map(|b| Value::Str(Bytes::from(b))),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop::collection::vec((key(), inner), 0..8)
            .prop_map(|pairs| Value::Array(pairs.into_iter().collect::<Array>()))
    })
}

/// PHP `===`, except that NAN is equal to itself (serialize must round-trip it too).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Float(x), Value::Float(y)) => {
            x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan())
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y.iter())
                    .all(|((ka, va), (kb, vb))| ka == kb && same(va, vb))
        }
        _ => a == b,
    }
}

/// Splits `data` into pieces at the given cut points (each taken modulo the length).
fn pieces(data: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (data.len() + 1)).collect();
    points.push(0);
    points.push(data.len());
    points.sort_unstable();
    points.dedup();
    points
        .windows(2)
        .map(|w| data[w[0]..w[1]].to_vec())
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn packets_round_trip_in_any_split(
        packets in prop::collection::vec(
            (header(), prop::collection::vec(any::<u8>(), 0..64), prop::collection::vec(any::<u8>(), 0..256)),
            1..5,
        ),
        cuts in prop::collection::vec(any::<usize>(), 0..8),
    ) {
        let packets: Vec<Packet> =
            packets.into_iter().map(|(h, e, b)| Packet::new(h, e, b)).collect();
        let mut wire = Vec::new();
        for p in &packets {
            wire.extend_from_slice(&p.to_bytes().unwrap());
        }
        let mut decoder = PacketDecoder::default();
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for piece in pieces(&wire, &cuts) {
            buf.extend_from_slice(&piece);
            while let Some(p) = decoder.decode(&mut buf).unwrap() {
                got.push(p);
            }
        }
        prop_assert_eq!(got, packets);
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn serialize_round_trips(value in php_value()) {
        let bytes = serialize(&value);
        let back = unserialize(&bytes).unwrap();
        prop_assert!(same(&value, &back), "{:?} came back as {:?}", value, back);
        prop_assert_eq!(serialize(&back), bytes);
    }

    #[test]
    fn floats_round_trip_exactly(x in any::<f64>()) {
        let bytes = serialize(&Value::Float(x));
        match unserialize(&bytes).unwrap() {
            Value::Float(y) => prop_assert!(x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan())),
            other => prop_assert!(false, "{:?}", other),
        }
    }

    #[test]
    fn client_ids_round_trip(ip in any::<u32>(), port in any::<u16>(), id in any::<u32>()) {
        let client = ClientId::new(Ipv4Addr::from(ip), port, id);
        let text = client.to_string();
        prop_assert_eq!(text.len(), 20);
        prop_assert_eq!(text.parse::<ClientId>().unwrap(), client);
    }

    #[test]
    fn websocket_frames_round_trip(
        messages in prop::collection::vec((any::<bool>(), prop::collection::vec(any::<u8>(), 0..70000), any::<[u8; 4]>(), 1usize..4), 1..4),
        cuts in prop::collection::vec(any::<usize>(), 0..6),
    ) {
        let mut wire = BytesMut::new();
        let mut expected = Vec::new();
        for (text, payload, mask, fragments) in messages {
            let payload = if text { String::from_utf8_lossy(&payload).into_owned().into_bytes() } else { payload };
            let (opcode, bits) = if text { (OpCode::Text, 1u8) } else { (OpCode::Binary, 2u8) };
            let chunk = payload.len().div_ceil(fragments).max(1);
            let parts: Vec<&[u8]> = if payload.is_empty() { vec![&[][..]] } else { payload.chunks(chunk).collect() };
            for (i, part) in parts.iter().enumerate() {
                let start = wire.len();
                encode_masked_frame(opcode, part, mask, &mut wire);
                let fin = if i + 1 == parts.len() { 0x80 } else { 0 };
                wire[start] = fin | if i == 0 { bits } else { 0 };
            }
            let payload = Bytes::from(payload);
            expected.push(if text { Message::Text(payload) } else { Message::Binary(payload) });
        }
        let mut decoder = FrameDecoder::server(1 << 20);
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for piece in pieces(&wire, &cuts) {
            buf.extend_from_slice(&piece);
            while let Some(m) = decoder.decode(&mut buf).unwrap() {
                got.push(m);
            }
        }
        prop_assert_eq!(got, expected);
    }

    #[test]
    fn length_frames_and_query_replies_round_trip(payloads in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 1..5)) {
        let mut frames = BytesMut::new();
        let mut replies = BytesMut::new();
        for p in &payloads {
            frame_protocol::encode(p, &mut frames).unwrap();
            query_reply::encode(p, &mut replies).unwrap();
        }
        let mut fd = LengthFrameDecoder::default();
        let mut qd = QueryReplyDecoder::default();
        for p in &payloads {
            prop_assert_eq!(fd.decode(&mut frames).unwrap().unwrap(), &p[..]);
            prop_assert_eq!(qd.decode(&mut replies).unwrap().unwrap(), &p[..]);
        }
    }

    #[test]
    fn send_to_all_targets_round_trip(ids in prop::collection::vec(1u32.., 0..20), only in any::<bool>()) {
        let target = match (ids.is_empty(), only) {
            (true, _) => SendToAllTarget::Everyone,
            (false, true) => SendToAllTarget::Only(ids),
            (false, false) => SendToAllTarget::Except(ids),
        };
        prop_assert_eq!(SendToAllTarget::parse(target.to_ext().as_bytes()).unwrap(), target);
    }

    #[test]
    fn send_to_group_round_trips(groups in prop::collection::vec("[a-z]{1,8}", 0..5), exclude in prop::collection::vec(1u32.., 0..5)) {
        let ext = SendToGroup::to_ext(&groups, &exclude);
        let parsed = SendToGroup::parse(ext.as_bytes()).unwrap();
        let keys: Vec<Key> = groups.iter().map(|g| Key::from(g.as_str())).collect();
        prop_assert_eq!(parsed.groups, keys);
        prop_assert_eq!(parsed.exclude, exclude);
    }

    #[test]
    fn register_lines_round_trip(address in "\\PC{1,40}", secret in "\\PC{0,20}") {
        for message in [
            RegisterMessage::GatewayConnect { address: address.clone(), secret_key: secret.clone() },
            RegisterMessage::WorkerConnect { secret_key: secret.clone() },
            RegisterMessage::BroadcastAddresses { addresses: vec![address.clone(), secret.clone()] },
        ] {
            let line = message.to_line();
            let parsed = RegisterMessage::parse(line.trim_end_matches('\n').as_bytes()).unwrap();
            prop_assert_eq!(parsed, message);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_any_decoder(
        data in prop::collection::vec(any::<u8>(), 0..512),
        cuts in prop::collection::vec(any::<usize>(), 0..6),
    ) {
        let mut packets = PacketDecoder::new(4096);
        let mut frames = FrameDecoder::server(4096);
        let mut client_frames = FrameDecoder::client(4096);
        let mut lines = LineDecoder::new(4096);
        let mut lengths = LengthFrameDecoder::new(4096);
        let mut replies = QueryReplyDecoder::new(4096);
        let mut bufs = vec![BytesMut::new(); 6];
        for piece in pieces(&data, &cuts) {
            for b in &mut bufs {
                b.extend_from_slice(&piece);
            }
            while let Ok(Some(_)) = packets.decode(&mut bufs[0]) {}
            while let Ok(Some(_)) = frames.decode(&mut bufs[1]) {}
            while let Ok(Some(_)) = client_frames.decode(&mut bufs[2]) {}
            while let Ok(Some(_)) = lines.decode(&mut bufs[3]) {}
            while let Ok(Some(_)) = lengths.decode(&mut bufs[4]) {}
            while let Ok(Some(_)) = replies.decode(&mut bufs[5]) {}
        }
        let _ = unserialize(&data);
        let _ = RegisterMessage::parse(&data);
        let _ = SendToAllTarget::parse(&data);
        let _ = SendToGroup::parse(&data);
        let _ = Select::parse(&data);
        let _ = parse_key_list(&data);
        let _ = Auth::parse(&data, true);
        let _ = parse_request(&data, 4096);
        let _ = parse_str(&data);
        let _ = data.iter().map(|&b| b as char).collect::<String>().parse::<ClientId>();
        if let Ok(value) = unserialize(&data) {
            let _ = to_json(&value);
        }
        let _ = merge_session(&data, &data);
    }

    #[test]
    fn serialize_like_bytes_never_panic_unserialize(data in "(a:[0-9]{1,3}:\\{|[sidbN]:[0-9.E+-]{0,6}(:\"[a-z\"]{0,4}\")?;|\\}|i:[0-9]{1,3};){0,30}") {
        let _ = unserialize(data.as_bytes());
    }

    #[test]
    fn handshake_like_requests_never_panic(
        target in "/[a-zA-Z0-9%\\[\\]=&.+ ]{0,40}",
        headers in prop::collection::vec(("[A-Za-z-]{1,12}", "[ -~]{0,30}"), 0..8),
    ) {
        let mut request = format!("GET {} HTTP/1.1\r\n", target.replace(' ', "+"));
        for (name, value) in &headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        if let Ok(Some((parsed, _))) = parse_request(request.as_bytes(), 65536) {
            let _ = parsed.accept_key();
            let data = gatewire_proto::websocket::connect_data(&parsed, "127.0.0.1:1".parse().unwrap(), 8282);
            let _ = serialize(&data);
        }
    }
}
