//! Golden vectors: every byte example and serialize example of gatewayworker-protocol.md (the
//! verified PHP captures), encoded and decoded. Section numbers refer to that document.

use std::net::{Ipv4Addr, SocketAddr};

use bytes::{Bytes, BytesMut};
use gatewire_proto::auth::{
    Auth, gateway_client_connect_body, worker_connect_body, worker_connect_body_with_limit,
};
use gatewire_proto::ext::{
    Select, SelectField, SelectWhere, SendToAllTarget, SendToGroup, key_list_ext, parse_key_list,
};
use gatewire_proto::php::{
    Array, Key, Value, array_replace_recursive, float_to_string, merge_session, serialize, to_json,
    unserialize,
};
use gatewire_proto::query_reply::{self, QueryReplyDecoder};
use gatewire_proto::register::{
    RegisterMessage, broadcast_addresses_line, gateway_connect_line, ping_line, worker_connect_line,
};
use gatewire_proto::websocket::{
    FrameDecoder, HandshakeError, Message, OpCode, close_frame, connect_data, encode_frame,
    encode_masked_frame, parse_request, parse_str, response_101, text_frame,
};
use gatewire_proto::{ClientId, Cmd, Flags, Header, Packet, PacketDecoder, packet};

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn decode_one(wire: &[u8]) -> Packet {
    let mut buf = BytesMut::from(wire);
    let packet = PacketDecoder::default().decode(&mut buf).unwrap().unwrap();
    assert!(buf.is_empty(), "the packet is exactly pack_len bytes");
    packet
}

fn client_header(cmd: Cmd) -> Header {
    Header {
        cmd,
        local_ip: Ipv4Addr::new(127, 0, 0, 1),
        local_port: 2900,
        client_ip: Ipv4Addr::new(127, 0, 0, 1),
        client_port: 44130,
        connection_id: 1,
        flag: Flags::SCALAR,
        gateway_port: 8282,
    }
}

fn ser(v: impl Into<Value>) -> String {
    String::from_utf8(serialize(&v.into())).unwrap()
}

fn unser(s: &str) -> Value {
    unserialize(s.as_bytes()).unwrap()
}

// §2.6 ---------------------------------------------------------------------------------------

#[test]
fn worker_hello_is_81_bytes_as_captured() {
    let body = worker_connect_body("DemoBusinessWorker:0", "");
    assert_eq!(
        body,
        r#"{"worker_key":"DemoBusinessWorker:0","secret_key":""}"#
    );
    let mut wire = hex("00000051 c8 00000000 0000 00000000 0000 00000000 01 0000 00000000");
    wire.extend_from_slice(body.as_bytes());
    assert_eq!(wire.len(), 81);

    let packet = Packet::new(
        Header::for_connection(Cmd::WorkerConnect, 0, Flags::SCALAR),
        Bytes::new(),
        body.clone(),
    );
    assert_eq!(packet.to_bytes().unwrap(), wire);

    let decoded = decode_one(&wire);
    assert_eq!(decoded, packet);
    let auth = Auth::parse(&decoded.body, true).unwrap();
    assert_eq!(auth.worker_key.as_deref(), Some("DemoBusinessWorker:0"));
    assert!(auth.secret_matches(""));
    assert!(!auth.secret_matches("s3cret"));
}

#[test]
fn gateway_client_auth_body() {
    let body = gateway_client_connect_body("k");
    assert_eq!(body, r#"{"secret_key":"k"}"#);
    let auth = Auth::parse(body.as_bytes(), false).unwrap();
    assert!(auth.secret_matches("k"));
    assert_eq!(auth.worker_key, None);
    assert!(
        Auth::parse(b"{}", true).is_err(),
        "a worker must name itself"
    );
    assert!(Auth::parse(b"not json", false).is_err());
}

#[test]
fn on_connect_as_captured() {
    let wire = hex("0000001c 01 7f000001 0b54 7f000001 ac62 00000001 01 205a 00000000");
    let packet = Packet::new(client_header(Cmd::OnConnect), Bytes::new(), Bytes::new());
    assert_eq!(packet.to_bytes().unwrap(), wire);
    assert_eq!(decode_one(&wire), packet);
}

#[test]
fn on_message_without_session_as_captured() {
    let mut wire = hex("00000029 03 7f000001 0b54 7f000001 ac62 00000001 01 205a 00000000");
    wire.extend_from_slice(b"hello gateway");
    let packet = Packet::new(client_header(Cmd::OnMessage), Bytes::new(), "hello gateway");
    assert_eq!(packet.to_bytes().unwrap(), wire);
    assert_eq!(decode_one(&wire), packet);
}

#[test]
fn on_message_carries_the_session_in_ext() {
    let session = r#"a:1:{s:3:"uid";i:5;}"#;
    assert_eq!(session.len(), 0x14);
    let header = client_header(Cmd::OnMessage);
    let head = header.encode(session.len(), 2).unwrap();
    assert_eq!(&head[21..28], &hex("01 205a 00000014")[..]);
    let packet = Packet::new(header, session, "hi");
    let decoded = decode_one(&packet.to_bytes().unwrap());
    assert_eq!(decoded.ext, session.as_bytes());
    assert_eq!(decoded.body, "hi".as_bytes());
}

#[test]
fn set_session_as_captured() {
    let session = r#"a:1:{s:5:"color";s:4:"blue";}"#;
    let mut wire = hex("00000039 cc 00000000 0000 00000000 0000 00000007 01 0000 0000001d");
    wire.extend_from_slice(session.as_bytes());
    let packet = Packet::new(
        Header::for_connection(Cmd::SetSession, 7, Flags::SCALAR),
        session,
        Bytes::new(),
    );
    assert_eq!(packet.to_bytes().unwrap(), wire);
    assert_eq!(decode_one(&wire), packet);
    let mut color = Array::new();
    color.insert("color", "blue");
    assert_eq!(ser(color), session);
}

#[test]
fn send_to_one_as_captured() {
    let wire =
        hex("00000025 05 00000000 0000 00000000 0000 00000007 01 0000 00000000 7365743a636f6c6f72");
    let (flag, body) = packet::encode_body(&Value::from("set:color"));
    let packet = Packet::new(
        Header::for_connection(Cmd::SendToOne, 7, flag),
        Bytes::new(),
        body,
    );
    assert_eq!(packet.to_bytes().unwrap(), wire);
    assert_eq!(decode_one(&wire), packet);
}

#[test]
fn send_to_group_and_uid_ext_as_captured() {
    assert_eq!(
        SendToGroup::to_ext(&["room"], &[7]),
        r#"{"group":["room"],"exclude":{"7":7}}"#
    );
    assert_eq!(
        SendToGroup::parse(br#"{"group":["room"],"exclude":{"7":7}}"#).unwrap(),
        SendToGroup {
            groups: vec![Key::from("room")],
            exclude: vec![7]
        }
    );
    assert_eq!(key_list_ext(&["42"]), r#"["42"]"#);
    assert_eq!(parse_key_list(br#"["42"]"#).unwrap(), vec![Key::Int(42)]);
}

// §2.1, §2.2, §2.3 ----------------------------------------------------------------------------

#[test]
fn every_command_has_its_numeric_value() {
    let expected: [(Cmd, u8); 30] = [
        (Cmd::OnConnect, 1),
        (Cmd::OnMessage, 3),
        (Cmd::OnClose, 4),
        (Cmd::SendToOne, 5),
        (Cmd::SendToAll, 6),
        (Cmd::Kick, 7),
        (Cmd::Destroy, 8),
        (Cmd::UpdateSession, 9),
        (Cmd::GetAllClientSessions, 10),
        (Cmd::IsOnline, 11),
        (Cmd::BindUid, 12),
        (Cmd::UnbindUid, 13),
        (Cmd::SendToUid, 14),
        (Cmd::GetClientIdByUid, 15),
        (Cmd::BatchGetClientIdByUid, 16),
        (Cmd::JoinGroup, 20),
        (Cmd::LeaveGroup, 21),
        (Cmd::SendToGroup, 22),
        (Cmd::GetClientSessionsByGroup, 23),
        (Cmd::GetClientCountByGroup, 24),
        (Cmd::Select, 25),
        (Cmd::GetGroupIdList, 26),
        (Cmd::Ungroup, 27),
        (Cmd::BatchGetClientCountByGroup, 28),
        (Cmd::WorkerConnect, 200),
        (Cmd::Ping, 201),
        (Cmd::GatewayClientConnect, 202),
        (Cmd::GetSessionByClientId, 203),
        (Cmd::SetSession, 204),
        (Cmd::OnWebSocketConnect, 205),
    ];
    for (cmd, value) in expected {
        assert_eq!(u8::from(cmd), value, "{cmd:?}");
        assert_eq!(Cmd::from(value), cmd);
    }
    assert_eq!(Cmd::all().count(), 30);
    for unknown in [0u8, 2, 17, 18, 19, 29, 199, 206, 255] {
        assert_eq!(Cmd::from(unknown), Cmd::Unknown(unknown));
        assert_eq!(u8::from(Cmd::Unknown(unknown)), unknown);
    }
    let queries: Vec<u8> = Cmd::all().filter(|c| c.is_query()).map(u8::from).collect();
    assert_eq!(queries, vec![10, 11, 15, 16, 23, 24, 25, 26, 28, 203]);
}

#[test]
fn flags_bits() {
    assert!(Flags(0x03).body_is_scalar());
    assert!(Flags(0x03).not_call_encode());
    assert!(!Flags(0x00).body_is_scalar());
    assert_eq!(Flags::SCALAR.with_raw(true), Flags(0x03));
    assert_eq!(Flags(0x03).with_raw(false), Flags(0x01));
}

#[test]
fn body_encoding_follows_php_scalar_rules() {
    let cases: [(Value, u8, &[u8]); 7] = [
        (Value::from("hi"), 0x01, b"hi"),
        (Value::Int(-7), 0x01, b"-7"),
        (Value::Bool(true), 0x01, b"1"),
        (Value::Bool(false), 0x01, b""),
        (Value::Float(0.1 + 0.2), 0x01, b"0.3"),
        (Value::Null, 0x00, b"N;"),
        (Value::Array(Array::new()), 0x00, b"a:0:{}"),
    ];
    for (value, flag, body) in cases {
        let (f, b) = packet::encode_body(&value);
        assert_eq!((f.0, b.as_ref()), (flag, body), "{value:?}");
    }
    // closeClient($id) with no message: body N; with flag 0, decoded as null.
    assert_eq!(
        packet::decode_body(Flags(0), &Bytes::from_static(b"N;")),
        Value::Null
    );
    assert_eq!(
        packet::decode_body(Flags(0), &Bytes::from_static(b"garbage")),
        Value::Bool(false),
        "a failed unserialize is false, as in PHP"
    );
    assert_eq!(
        packet::decode_body(Flags(1), &Bytes::from_static(b"N;")),
        Value::from("N;")
    );
}

#[test]
fn several_packets_on_one_stream_and_partial_input() {
    let a = Packet::new(client_header(Cmd::OnMessage), "sess", "one")
        .to_bytes()
        .unwrap();
    let b = Packet::new(client_header(Cmd::OnClose), "", "")
        .to_bytes()
        .unwrap();
    let mut stream = a.to_vec();
    stream.extend_from_slice(&b);
    let mut decoder = PacketDecoder::default();
    let mut buf = BytesMut::new();
    let mut got = Vec::new();
    for byte in stream {
        buf.extend_from_slice(&[byte]);
        while let Some(p) = decoder.decode(&mut buf).unwrap() {
            got.push(p);
        }
    }
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].body, "one".as_bytes());
    assert_eq!(got[1].header.cmd, Cmd::OnClose);
}

#[test]
fn bad_packet_lengths_are_errors() {
    use gatewire_proto::packet::PacketError;
    let mut buf = BytesMut::from(&hex("0000001b")[..]);
    assert_eq!(
        PacketDecoder::default().decode(&mut buf),
        Err(PacketError::TooShort(27))
    );
    let mut buf = BytesMut::from(&hex("00a00001")[..]);
    assert!(matches!(
        PacketDecoder::default().decode(&mut buf),
        Err(PacketError::TooLong { .. })
    ));
    let mut buf = BytesMut::from(&hex("00000100")[..]);
    assert!(matches!(
        PacketDecoder::new(128).decode(&mut buf),
        Err(PacketError::TooLong { len: 256, max: 128 })
    ));
    let mut wire = hex("0000001d 03 00000000 0000 00000000 0000 00000001 01 0000 00000002");
    wire.push(b'x');
    let mut buf = BytesMut::from(&wire[..]);
    assert!(matches!(
        PacketDecoder::default().decode(&mut buf),
        Err(PacketError::ExtOverrun { .. })
    ));
}

// §2.4 ----------------------------------------------------------------------------------------

#[test]
fn query_replies_as_captured() {
    assert_eq!(ser(1i64), "i:1;");

    let mut ids = Array::new();
    ids.push(2i64);
    assert_eq!(ser(ids.clone()), "a:1:{i:0;i:2;}");

    let mut batch = Array::new();
    batch.insert("7", ids.clone());
    batch.insert("8", Array::new());
    assert_eq!(ser(batch), "a:2:{i:7;a:1:{i:0;i:2;}i:8;a:0:{}}");

    let mut counts = Array::new();
    counts.insert("g1", 1i64);
    counts.insert("g2", 0i64);
    assert_eq!(ser(counts), r#"a:2:{s:2:"g1";i:1;s:2:"g2";i:0;}"#);

    let mut groups = Array::new();
    groups.push(Key::from("g1").to_value());
    assert_eq!(ser(groups), r#"a:1:{i:0;s:2:"g1";}"#);

    let session = r#"a:3:{s:4:"name";s:3:"bob";s:3:"age";i:30;s:4:"tags";a:1:{i:0;s:1:"x";}}"#;
    let mut all = Array::new();
    all.insert(2i64, session);
    assert_eq!(
        ser(all),
        format!(r#"a:1:{{i:2;s:{}:"{session}";}}"#, session.len())
    );

    let mut member_of = Array::new();
    member_of.insert("g1", "g1");
    let mut row = Array::new();
    row.insert("uid", "7");
    row.insert("groups", member_of);
    row.insert("session", session);
    let mut select = Array::new();
    select.insert(2i64, row);
    assert_eq!(
        ser(select),
        format!(
            r#"a:1:{{i:2;a:3:{{s:3:"uid";s:1:"7";s:6:"groups";a:1:{{s:2:"g1";s:2:"g1";}}s:7:"session";s:{}:"{session}";}}}}"#,
            session.len()
        )
    );
    assert_eq!(ser(Value::Null), "N;");
}

#[test]
fn query_reply_framing() {
    let mut dst = BytesMut::new();
    query_reply::encode(b"i:1;", &mut dst).unwrap();
    assert_eq!(&dst[..], &hex("00000004 693a313b")[..]);
    let mut decoder = QueryReplyDecoder::default();
    let mut partial = BytesMut::from(&dst[..5]);
    assert_eq!(decoder.decode(&mut partial).unwrap(), None);
    assert_eq!(
        decoder.decode(&mut dst).unwrap().unwrap(),
        "i:1;".as_bytes()
    );
    assert!(
        QueryReplyDecoder::new(3)
            .decode(&mut BytesMut::from(&hex("00000004 693a313b")[..]))
            .is_err()
    );
}

// §3 ------------------------------------------------------------------------------------------

#[test]
fn register_lines_as_captured() {
    assert_eq!(
        gateway_connect_line("127.0.0.1:2900", ""),
        "{\"event\":\"gateway_connect\", \"address\":\"127.0.0.1:2900\", \"secret_key\":\"\"}\n"
    );
    assert_eq!(
        worker_connect_line(""),
        "{\"event\":\"worker_connect\",\"secret_key\":\"\"}\n"
    );
    assert_eq!(ping_line(), "{\"event\":\"ping\"}\n");
    assert_eq!(
        broadcast_addresses_line(&["127.0.0.1:2900", "127.0.0.1:2901"]),
        "{\"event\":\"broadcast_addresses\",\"addresses\":[\"127.0.0.1:2900\",\"127.0.0.1:2901\"]}\n"
    );
    assert_eq!(
        broadcast_addresses_line::<&str>(&[]),
        "{\"event\":\"broadcast_addresses\",\"addresses\":[]}\n"
    );
}

#[test]
fn register_lines_parse_back() {
    let cases = [
        RegisterMessage::GatewayConnect {
            address: "127.0.0.1:2900".into(),
            secret_key: "k".into(),
        },
        RegisterMessage::WorkerConnect {
            secret_key: "".into(),
        },
        RegisterMessage::BroadcastAddresses {
            addresses: vec!["127.0.0.1:2900".into()],
        },
        RegisterMessage::Ping,
    ];
    for message in cases {
        let line = message.to_line();
        let line = line.strip_suffix('\n').unwrap();
        assert_eq!(RegisterMessage::parse(line.as_bytes()).unwrap(), message);
    }
}

#[test]
fn broadcast_addresses_may_be_an_object() {
    let line = br#"{"event":"broadcast_addresses","addresses":{"0":"a:1","2":"b:2"}}"#;
    assert_eq!(
        RegisterMessage::parse(line).unwrap(),
        RegisterMessage::BroadcastAddresses {
            addresses: vec!["a:1".into(), "b:2".into()]
        }
    );
}

#[test]
fn register_rejects_bad_lines() {
    use gatewire_proto::register::RegisterError;
    assert_eq!(RegisterMessage::parse(b"nope"), Err(RegisterError::NotJson));
    assert_eq!(RegisterMessage::parse(b"{}"), Err(RegisterError::NoEvent));
    assert_eq!(
        RegisterMessage::parse(br#"{"event":"dance"}"#),
        Err(RegisterError::UnknownEvent("dance".into()))
    );
    assert_eq!(
        RegisterMessage::parse(br#"{"event":"gateway_connect","address":""}"#),
        Err(RegisterError::MissingAddress)
    );
    assert_eq!(
        RegisterMessage::parse(br#"{"event":"gateway_connect","address":"1.2.3.4:5"}"#),
        Ok(RegisterMessage::GatewayConnect {
            address: "1.2.3.4:5".into(),
            secret_key: "".into()
        }),
        "a missing secret_key means \"\""
    );
}

#[test]
fn register_line_framing() {
    use gatewire_proto::line::LineDecoder;
    let mut lines = LineDecoder::new(64);
    let mut buf = BytesMut::from(&b"{\"event\":\"ping\"}\r\n{\"ev"[..]);
    assert_eq!(
        lines.decode(&mut buf).unwrap().unwrap(),
        &b"{\"event\":\"ping\"}"[..]
    );
    assert_eq!(lines.decode(&mut buf).unwrap(), None);
    buf.extend_from_slice(b"ent\":\"ping\"}\n");
    assert!(lines.decode(&mut buf).unwrap().is_some());
    let mut long = BytesMut::from(&[b'x'; 64][..]);
    assert!(lines.decode(&mut long).is_err());
}

// §4 ------------------------------------------------------------------------------------------

#[test]
fn client_id_as_captured() {
    let id = ClientId::new(Ipv4Addr::new(127, 0, 0, 1), 2900, 1);
    assert_eq!(id.to_string(), "7f0000010b5400000001");
    assert_eq!("7f0000010b5400000001".parse::<ClientId>().unwrap(), id);
    assert_eq!("7F0000010B5400000001".parse::<ClientId>().unwrap(), id);
    assert_eq!(id.gateway().to_string(), "127.0.0.1:2900");
    assert!("7f0000010b540000000".parse::<ClientId>().is_err());
    assert!("7f0000010b540000000g".parse::<ClientId>().is_err());
}

// §5.6, §5.7 ----------------------------------------------------------------------------------

#[test]
fn send_to_all_ext() {
    assert_eq!(
        SendToAllTarget::parse(b"").unwrap(),
        SendToAllTarget::Everyone
    );
    assert_eq!(
        SendToAllTarget::parse(br#"{"connections":{"3":3,"5":5}}"#).unwrap(),
        SendToAllTarget::Only(vec![3, 5])
    );
    assert_eq!(
        SendToAllTarget::parse(br#"{"connections":[3,"5"]}"#).unwrap(),
        SendToAllTarget::Only(vec![3, 5]),
        "PHP iterates values, of an array or an object"
    );
    assert_eq!(
        SendToAllTarget::parse(br#"{"exclude":{"5":5}}"#).unwrap(),
        SendToAllTarget::Except(vec![5])
    );
    assert_eq!(
        SendToAllTarget::Only(vec![3, 5]).to_ext(),
        r#"{"connections":{"3":3,"5":5}}"#
    );
    assert_eq!(
        SendToAllTarget::Except(vec![5]).to_ext(),
        r#"{"exclude":{"5":5}}"#
    );
    assert_eq!(SendToAllTarget::Everyone.to_ext(), "");
    assert!(SendToAllTarget::parse(b"{oops").is_err());
}

#[test]
fn send_to_group_with_null_exclude_and_object_groups() {
    assert_eq!(
        SendToGroup::to_ext(&["a", "b"], &[]),
        r#"{"group":["a","b"],"exclude":null}"#
    );
    let parsed = SendToGroup::parse(br#"{"group":{"0":"a","1":42},"exclude":null}"#).unwrap();
    assert_eq!(parsed.groups, vec![Key::from("a"), Key::Int(42)]);
    assert!(parsed.exclude.is_empty());
}

#[test]
fn select_ext() {
    let all = Select::parse(br#"{"fields":["uid"],"where":[]}"#).unwrap();
    assert_eq!(all.fields, vec![SelectField::Uid]);
    assert_eq!(all.filter, None);
    assert_eq!(
        Select::to_ext(&[SelectField::Uid], None),
        r#"{"fields":["uid"],"where":[]}"#
    );

    let by = Select::parse(
        br#"{"fields":["uid","groups","session","nope"],"where":{"groups":["g1"],"uid":["7"],"connection_id":{"3":3}}}"#,
    )
    .unwrap();
    assert_eq!(
        by.fields,
        vec![
            SelectField::Uid,
            SelectField::Groups,
            SelectField::Session,
            SelectField::Other("nope".into())
        ]
    );
    let filter = SelectWhere {
        groups: Some(vec![Key::from("g1")]),
        uids: Some(vec![Key::Int(7)]),
        connection_ids: Some(vec![3]),
    };
    assert_eq!(by.filter, Some(filter.clone()));
    let round = Select::to_ext(&by.fields, Some(&filter));
    assert_eq!(Select::parse(round.as_bytes()).unwrap(), by);

    let by_id = Select::to_ext(
        &[SelectField::Uid],
        Some(&SelectWhere {
            connection_ids: Some(vec![7]),
            ..SelectWhere::default()
        }),
    );
    assert_eq!(
        by_id,
        r#"{"fields":["uid"],"where":{"connection_id":{"7":7}}}"#
    );
}

#[test]
fn non_scalar_bodies_reach_websocket_clients_as_json() {
    let value = unser(r#"a:1:{s:1:"k";a:2:{i:0;i:1;i:1;s:1:"x";}}"#);
    assert_eq!(to_json(&value).unwrap(), r#"{"k":[1,"x"]}"#);
    assert_eq!(to_json(&Value::Float(1e25)).unwrap(), "1.0e+25");
    assert_eq!(to_json(&Value::Float(f64::NAN)), None);
    assert_eq!(
        to_json(&unser(r#"a:1:{i:1;s:1:"/";}"#)).unwrap(),
        r#"{"1":"\/"}"#
    );
}

// §9 ------------------------------------------------------------------------------------------

#[test]
fn serialize_examples_as_verified() {
    let cases = [
        r#"s:6:"héllo";"#,
        "s:5:\"a\"b;\n\";",
        "a:0:{}",
        "a:3:{i:0;i:1;i:1;i:2;i:2;i:3;}",
        r#"a:1:{s:1:"x";a:1:{s:1:"y";a:2:{i:0;b:1;i:1;N;}}}"#,
        "N;",
        "b:0;",
        "b:1;",
        "i:-7;",
        "i:9223372036854775807;",
    ];
    for text in cases {
        let value = unser(text);
        assert_eq!(ser(value), text, "round trip of {text}");
    }
    assert_eq!(ser(Value::from("héllo")), r#"s:6:"héllo";"#);
    let list: Array = [(0i64, 1i64), (1, 2), (2, 3)].into_iter().collect();
    assert_eq!(ser(list), "a:3:{i:0;i:1;i:1;i:2;i:2;i:3;}");
}

#[test]
fn float_serialization_as_verified() {
    let cases: [(f64, &str); 15] = [
        (1.0, "d:1;"),
        (0.1, "d:0.1;"),
        (-2.5, "d:-2.5;"),
        (0.0001, "d:0.0001;"),
        (1.0e-5, "d:1.0E-5;"),
        (1.5e-5, "d:1.5E-5;"),
        (1.0e16, "d:10000000000000000;"),
        (1.0e17, "d:1.0E+17;"),
        (123456789012345678.0, "d:1.2345678901234568E+17;"),
        (0.1 + 0.2, "d:0.30000000000000004;"),
        (-0.0, "d:-0;"),
        (f64::INFINITY, "d:INF;"),
        (f64::NEG_INFINITY, "d:-INF;"),
        (f64::NAN, "d:NAN;"),
        (5.0e-324, "d:5.0E-324;"),
    ];
    for (x, text) in cases {
        assert_eq!(ser(x), text);
        match unser(text) {
            Value::Float(y) if x.is_nan() => assert!(y.is_nan()),
            Value::Float(y) => {
                assert_eq!(y.to_bits(), x.to_bits(), "{text} reads back exactly")
            }
            other => panic!("{text} read as {other:?}"),
        }
    }
    assert_eq!(float_to_string(0.1 + 0.2), "0.3");
}

#[test]
fn array_keys_follow_php_normalisation() {
    for (key, text) in [("10", "i:10;"), ("-5", "i:-5;"), ("0", "i:0;")] {
        let a: Array = [(key, 1i64)].into_iter().collect();
        assert_eq!(ser(a), format!("a:1:{{{text}i:1;}}"));
    }
    for key in ["010", "-0", "1.5", " 1", "9223372036854775808", "", "-"] {
        let a: Array = [(key, 1i64)].into_iter().collect();
        assert_eq!(
            ser(a),
            format!("a:1:{{s:{}:\"{key}\";i:1;}}", key.len()),
            "{key:?} stays a string"
        );
    }
    let a = unser(r#"a:1:{s:1:"5";i:1;}"#);
    assert_eq!(a.as_array().unwrap().keys().next(), Some(&Key::Int(5)));
    assert_eq!(Key::from("42"), Key::Int(42));
}

#[test]
fn unserialize_refuses_objects_references_and_junk() {
    use gatewire_proto::php::UnserializeError;
    assert!(matches!(
        unserialize(br#"O:8:"stdClass":0:{}"#),
        Err(UnserializeError::Object { tag: 'O', .. })
    ));
    assert!(matches!(
        unserialize(br#"a:2:{i:0;i:1;i:1;R:2;}"#),
        Err(UnserializeError::Reference { tag: 'R', .. })
    ));
    assert!(matches!(
        unserialize(b"i:1;x"),
        Err(UnserializeError::TrailingData { count: 1 })
    ));
    assert!(unserialize(b"s:10:\"abc\";").is_err());
    assert!(unserialize(b"a:99999999:{}").is_err());
    assert!(unserialize(b"i:99999999999999999999;").is_err());
    let deep = "a:1:{i:0;".repeat(200) + "N;" + &"}".repeat(200);
    assert!(matches!(
        unserialize(deep.as_bytes()),
        Err(UnserializeError::TooDeep { .. })
    ));
}

#[test]
fn array_replace_recursive_as_verified() {
    let base = unser(
        r#"a:5:{s:1:"a";i:1;s:1:"b";a:2:{s:1:"x";i:1;s:1:"y";i:2;}s:1:"c";a:1:{s:1:"p";i:1;}s:1:"d";i:5;s:1:"l";a:3:{i:0;i:1;i:1;i:2;i:2;i:3;}}"#,
    );
    let replacement = unser(
        r#"a:5:{s:1:"b";a:2:{s:1:"y";i:20;s:1:"z";i:30;}s:1:"c";i:7;s:1:"d";a:1:{s:1:"q";i:1;}s:1:"e";i:9;s:1:"l";a:1:{i:0;i:9;}}"#,
    );
    let expected = r#"a:6:{s:1:"a";i:1;s:1:"b";a:3:{s:1:"x";i:1;s:1:"y";i:20;s:1:"z";i:30;}s:1:"c";i:7;s:1:"d";a:1:{s:1:"q";i:1;}s:1:"l";a:3:{i:0;i:9;i:1;i:2;i:2;i:3;}s:1:"e";i:9;}"#;
    let mut merged = base.as_array().unwrap().clone();
    array_replace_recursive(&mut merged, replacement.as_array().unwrap());
    assert_eq!(ser(merged), expected);

    let stored = serialize(&base);
    let update = serialize(&replacement);
    assert_eq!(
        merge_session(&stored, &update).unwrap(),
        expected.as_bytes()
    );
    assert_eq!(
        merge_session(b"", &update).unwrap(),
        update,
        "an empty session takes the update as is"
    );
    assert_eq!(
        merge_session(&stored, b""),
        None,
        "an empty update is a no-op"
    );
    assert_eq!(merge_session(&stored, b"junk"), None);
}

// §10.1, §12 ----------------------------------------------------------------------------------

#[test]
fn parse_str_as_verified() {
    let got = parse_str(b"a.b=1&c d=2&e[x][]=3&f&g=%20+x&h[=5&1=one");
    let expected = r#"a:7:{s:3:"a_b";s:1:"1";s:3:"c_d";s:1:"2";s:1:"e";a:1:{s:1:"x";a:1:{i:0;s:1:"3";}}s:1:"f";s:0:"";s:1:"g";s:3:"  x";s:2:"h_";s:1:"5";i:1;s:3:"one";}"#;
    assert_eq!(ser(got), expected);
}

#[test]
fn parse_str_edge_rules() {
    let get = |q: &str| ser(parse_str(q.as_bytes()));
    assert_eq!(get("a[b.c=1"), r#"a:1:{s:5:"a_b_c";s:1:"1";}"#);
    assert_eq!(get("a[x]y=1"), r#"a:1:{s:1:"a";a:1:{s:1:"x";s:1:"1";}}"#);
    assert_eq!(
        get("e[][]][]=3"),
        r#"a:1:{s:1:"e";a:1:{i:0;a:1:{i:0;s:1:"3";}}}"#
    );
    assert_eq!(get("a[x][y=1"), r#"a:1:{s:1:"a";a:1:{s:1:"x";s:1:"1";}}"#);
    assert_eq!(get("a=1&a=2"), r#"a:1:{s:1:"a";s:1:"2";}"#);
    assert_eq!(get("=1&&  b=2"), r#"a:1:{s:1:"b";s:1:"2";}"#);
    assert_eq!(
        get("a%5B%5D=1&a[]=2"),
        r#"a:1:{s:1:"a";a:2:{i:0;s:1:"1";i:1;s:1:"2";}}"#
    );
    assert_eq!(get("p=%zz%4"), r#"a:1:{s:1:"p";s:5:"%zz%4";}"#);
    let deep = format!("ok=1&c{}=1", "[]".repeat(65));
    assert_eq!(
        get(&deep),
        r#"a:1:{s:2:"ok";s:1:"1";}"#,
        "too deep drops the variable"
    );
    let fine = format!("c{}=1", "[]".repeat(64));
    assert!(get(&fine).starts_with(r#"a:1:{s:1:"c";"#));
}

fn captured_request() -> Vec<u8> {
    b"GET /path/x?a=1&b[]=2&b[]=3&c HTTP/1.1\r\n\
Host: 127.0.0.1:8282\r\n\
Upgrade: websocket\r\n\
Connection: Upgrade\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
Sec-WebSocket-Version: 13\r\n\
Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\
Cookie: sid=abc%20d; theme=dark\r\n\
X-Custom: v1\r\n\
Origin: http://example.test\r\n\
User-Agent: Python/3.11 websockets/17.4\r\n\r\n"
        .to_vec()
}

#[test]
fn websocket_connect_data_as_captured() {
    let wire = captured_request();
    let (request, used) = parse_request(&wire, 65536).unwrap().unwrap();
    assert_eq!(used, wire.len());
    assert!(request.is_websocket_upgrade());
    let remote: SocketAddr = "127.0.0.1:44130".parse().unwrap();
    let data = connect_data(&request, remote, 8282);
    let bytes = String::from_utf8(serialize(&data)).unwrap();
    assert!(bytes.starts_with(
        r#"a:3:{s:3:"get";a:3:{s:1:"a";s:1:"1";s:1:"b";a:2:{i:0;s:1:"2";i:1;s:1:"3";}s:1:"c";s:0:"";}s:6:"server";a:19:{s:12:"QUERY_STRING";s:17:"a=1&b[]=2&b[]=3&c";"#
    ), "{bytes}");

    let data = data.as_array().unwrap();
    let server = data.get(&Key::from("server")).unwrap().as_array().unwrap();
    let keys: Vec<String> = server
        .keys()
        .map(|k| String::from_utf8(k.to_bytes().to_vec()).unwrap())
        .collect();
    assert_eq!(
        keys,
        [
            "QUERY_STRING",
            "REQUEST_METHOD",
            "REQUEST_URI",
            "SERVER_PROTOCOL",
            "SERVER_NAME",
            "CONTENT_TYPE",
            "REMOTE_ADDR",
            "REMOTE_PORT",
            "SERVER_PORT",
            "HTTP_HOST",
            "HTTP_UPGRADE",
            "HTTP_CONNECTION",
            "HTTP_SEC_WEBSOCKET_KEY",
            "HTTP_SEC_WEBSOCKET_VERSION",
            "HTTP_SEC_WEBSOCKET_EXTENSIONS",
            "HTTP_COOKIE",
            "HTTP_X_CUSTOM",
            "HTTP_ORIGIN",
            "HTTP_USER_AGENT",
        ]
    );
    let get = |k: &str| server.get(&Key::from(k)).unwrap().clone();
    assert_eq!(get("REQUEST_URI"), Value::from("/path/x?a=1&b[]=2&b[]=3&c"));
    assert_eq!(get("SERVER_PROTOCOL"), Value::from("HTTP/1.1"));
    assert_eq!(get("SERVER_NAME"), Value::from("127.0.0.1:8282"));
    assert_eq!(get("CONTENT_TYPE"), Value::Null);
    assert_eq!(get("REMOTE_ADDR"), Value::from("127.0.0.1"));
    assert_eq!(get("REMOTE_PORT"), Value::Int(44130));
    assert_eq!(get("SERVER_PORT"), Value::Int(8282));
    assert_eq!(
        get("HTTP_SEC_WEBSOCKET_EXTENSIONS"),
        Value::from("permessage-deflate; client_max_window_bits")
    );
    let cookie = data.get(&Key::from("cookie")).unwrap();
    assert_eq!(
        ser(cookie.clone()),
        r#"a:2:{s:3:"sid";s:7:"abc%20d";s:5:"theme";s:4:"dark";}"#
    );
}

#[test]
fn repeated_headers_are_joined_and_cookies_parsed_raw() {
    let wire = b"GET / HTTP/1.1\r\nX-A: 1\r\nx-a:  2 \r\nCookie: a=1; b ; c= x ;=z\r\n\r\n";
    let (request, _) = parse_request(wire, 65536).unwrap().unwrap();
    let data = connect_data(&request, "10.0.0.1:5".parse().unwrap(), 80);
    let data = data.as_array().unwrap();
    let server = data.get(&Key::from("server")).unwrap().as_array().unwrap();
    assert_eq!(
        server.get(&Key::from("HTTP_X_A")),
        Some(&Value::from("1,2"))
    );
    assert_eq!(server.get(&Key::from("SERVER_NAME")), Some(&Value::Null));
    assert_eq!(
        server.get(&Key::from("QUERY_STRING")),
        Some(&Value::from(""))
    );
    let cookie = data.get(&Key::from("cookie")).unwrap();
    assert_eq!(
        ser(cookie.clone()),
        r#"a:3:{s:1:"a";s:1:"1";s:1:"c";s:3:" x ";s:0:"";s:1:"z";}"#
    );
}

#[test]
fn upgrade_response_as_captured() {
    let wire = captured_request();
    let (request, _) = parse_request(&wire, 65536).unwrap().unwrap();
    let accept = request.accept_key().unwrap();
    assert_eq!(
        accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=",
        "RFC 6455 §1.3 example"
    );
    assert_eq!(
        response_101(&accept, ""),
        b"HTTP/1.1 101 Switching Protocol\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
    );
}

#[test]
fn handshake_rejections_follow_workerman() {
    assert_eq!(
        parse_request(b"POST / HTTP/1.1\r\n\r\n", 65536),
        Err(HandshakeError::NotGet)
    );
    assert_eq!(parse_request(b"PUT", 65536), Err(HandshakeError::NotGet));
    assert_eq!(parse_request(b"GE", 65536), Ok(None));
    assert_eq!(
        parse_request(b"GET / HTTP/1.1\r\nHost: x\r\n", 65536),
        Ok(None)
    );
    assert_eq!(
        parse_request(b"GET / HTTP/1.1\r\nHost: x", 16),
        Err(HandshakeError::TooLarge(16))
    );

    let check = |head: &str| {
        let (request, _) = parse_request(head.as_bytes(), 65536).unwrap().unwrap();
        request.accept_key()
    };
    let no_version = check("GET / HTTP/1.1\r\nUpgrade: websocket\r\nSec-WebSocket-Key: k\r\n\r\n");
    assert_eq!(no_version, Err(HandshakeError::MissingVersion));
    let error = no_version.unwrap_err();
    assert_eq!(error.status(), 400);
    assert!(
        error
            .response()
            .starts_with(b"HTTP/1.1 400 Bad Request\r\nSec-WebSocket-Version: 13\r\n")
    );

    let old = check("GET / HTTP/1.1\r\nSec-WebSocket-Version: 8\r\nSec-WebSocket-Key: k\r\n\r\n")
        .unwrap_err();
    assert_eq!(old.status(), 426);
    assert!(old.response().starts_with(b"HTTP/1.1 426 "));
    assert!(String::from_utf8_lossy(old.response()).contains("Sec-WebSocket-Version: 13\r\n"));

    let no_key = check("GET / HTTP/1.1\r\nSec-WebSocket-Version: 13\r\n\r\n").unwrap_err();
    assert_eq!(no_key, HandshakeError::MissingKey);
    assert_eq!(no_key.status(), 400);

    let (plain, _) = parse_request(b"GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n", 65536)
        .unwrap()
        .unwrap();
    assert!(
        !plain.is_websocket_upgrade(),
        "a plain GET is served as HTTP"
    );
    assert_eq!(plain.path(), "/index.html");
}

#[test]
fn control_frame_bytes_as_captured() {
    let mut pong = BytesMut::new();
    encode_frame(OpCode::Pong, b"pp", &mut pong);
    assert_eq!(&pong[..], b"\x8a\x02pp");
    assert_eq!(&close_frame(1000, "")[..], b"\x88\x02\x03\xe8");
    assert_eq!(
        &text_frame(b"")[..],
        b"\x81\x00",
        "a kick with an empty body still sends 81 00"
    );
}

#[test]
fn frame_length_encodings() {
    for (len, head) in [
        (125usize, vec![0x81u8, 125]),
        (126, vec![0x81, 126, 0, 126]),
        (65535, vec![0x81, 126, 0xff, 0xff]),
        (65536, vec![0x81, 127, 0, 0, 0, 0, 0, 1, 0, 0]),
    ] {
        let frame = text_frame(&vec![b'a'; len]);
        assert_eq!(&frame[..head.len()], &head[..], "length {len}");
        assert_eq!(frame.len(), head.len() + len);
    }
}

#[test]
fn binary_messages_arrive_as_raw_bytes() {
    let mut wire = BytesMut::new();
    encode_masked_frame(OpCode::Binary, b"\x00\x01binary", [9, 8, 7, 6], &mut wire);
    let message = FrameDecoder::default().decode(&mut wire).unwrap().unwrap();
    assert_eq!(
        message,
        Message::Binary(Bytes::from_static(b"\x00\x01binary"))
    );
}

#[test]
fn a_gatewire_worker_states_its_packet_limit_in_its_hello() {
    let body = worker_connect_body_with_limit("W:0", "k", 1_114_140);
    assert_eq!(
        body,
        r#"{"worker_key":"W:0","secret_key":"k","max_packet_size":1114140}"#
    );
    let auth = Auth::parse(body.as_bytes(), true).unwrap();
    assert_eq!(auth.max_packet_size, Some(1_114_140));
    assert_eq!(auth.worker_key.as_deref(), Some("W:0"));
    let php = Auth::parse(worker_connect_body("W:0", "").as_bytes(), true).unwrap();
    assert_eq!(php.max_packet_size, None, "PHP workers say nothing");
}
