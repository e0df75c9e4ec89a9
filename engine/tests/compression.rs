//! permessage-deflate through real sockets (`gateway.compression`): the negotiation answer, a
//! broadcast compressed for the client that asked and plain for the one that did not, a
//! compressed client message inflated for the worker, and a zip bomb refused at
//! `max_message_size` (1009, counted). Autobahn's 12.* and 13.* run in CI besides
//! (`COMPRESSION=1 .ci/autobahn`).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;

use bytes::BytesMut;
use common::*;
use gatewire_proto::Cmd;
use gatewire_proto::ext::SendToAllTarget;
use gatewire_proto::websocket::deflate::{compress, inflate};
use gatewire_proto::websocket::{OpCode, encode_masked_frame};

/// A raw WebSocket client: the 101's headers, and the stream past them.
fn connect(gw: &Gatewire, extensions: Option<&str>) -> (String, TcpStream, BytesMut) {
    let mut s = TcpStream::connect(gw.public).unwrap();
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    let ext = extensions
        .map(|e| format!("Sec-WebSocket-Extensions: {e}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{ext}\r\n"
    )
    .unwrap();
    let mut got = Vec::new();
    let mut byte = [0u8; 1];
    while !got.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut byte).unwrap();
        got.push(byte[0]);
    }
    (String::from_utf8(got).unwrap(), s, BytesMut::new())
}

/// The next frame's first byte and payload, as sent (not inflated).
fn raw_frame(s: &mut TcpStream, buf: &mut BytesMut) -> (u8, Vec<u8>) {
    loop {
        if buf.len() >= 2 {
            let len7 = usize::from(buf[1] & 0x7f);
            let (header, len) = match len7 {
                126 if buf.len() >= 4 => (4, usize::from(u16::from_be_bytes([buf[2], buf[3]]))),
                126 => (usize::MAX, 0),
                n => (2, n),
            };
            if header != usize::MAX && buf.len() >= header + len {
                let frame = buf.split_to(header + len);
                return (frame[0], frame[header..].to_vec());
            }
        }
        let mut chunk = [0u8; 4096];
        let n = s.read(&mut chunk).unwrap();
        assert!(n > 0, "closed");
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn gateway() -> Gatewire {
    Gatewire::start(Setup {
        extra: "compression = true\ncompression_min_size = 64\nmax_message_size = 100000".into(),
        metrics: true,
        ..Setup::default()
    })
}

#[test]
fn a_broadcast_is_compressed_for_clients_that_asked_and_plain_for_the_others() {
    let gw = gateway();
    let mut w = gw.workers("Deflate", "").remove(0);
    let (head, mut asked, mut abuf) =
        connect(&gw, Some("permessage-deflate; client_max_window_bits"));
    assert!(
        head.contains(
            "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover\r\n"
        ),
        "{head}"
    );
    w.expect(Cmd::OnWebSocketConnect);
    let (head, mut plain, mut pbuf) = connect(&gw, None);
    assert!(!head.contains("Sec-WebSocket-Extensions"), "{head}");
    w.expect(Cmd::OnWebSocketConnect);
    let json = r#"{"symbol":"ABC","price":101.25,"volume":1200},"#.repeat(24);
    w.command(
        Cmd::SendToAll,
        0,
        &SendToAllTarget::Everyone.to_ext(),
        &json,
    );
    let (b0, payload) = raw_frame(&mut asked, &mut abuf);
    assert_eq!(b0, 0x80 | 0x40 | 0x1, "FIN, RSV1, text");
    assert!(
        payload.len() < json.len() / 4,
        "{} of {}",
        payload.len(),
        json.len()
    );
    assert_eq!(&inflate(&payload, 1 << 20).unwrap()[..], json.as_bytes());
    let (b0, payload) = raw_frame(&mut plain, &mut pbuf);
    assert_eq!(b0, 0x81);
    assert_eq!(payload, json.as_bytes());
    assert_eq!(gw.metric("gatewire_compressions_total"), 1);
    assert_eq!(gw.metric("gatewire_compressed_deliveries_total"), 1);

    // A compressed message from the client reaches the worker inflated.
    let text = "hello compressed world ".repeat(10);
    let mut frame = BytesMut::new();
    encode_masked_frame(
        OpCode::Text,
        &compress(text.as_bytes()),
        [1, 2, 3, 4],
        &mut frame,
    );
    frame[0] |= 0x40;
    asked.write_all(&frame).unwrap();
    let message = w.expect(Cmd::OnMessage);
    assert_eq!(&message.body[..], text.as_bytes());
}

#[test]
fn a_zip_bomb_closes_its_client_at_max_message_size() {
    let gw = gateway();
    let mut w = gw.workers("Deflate", "").remove(0);
    let (_, mut bomber, mut buf) = connect(&gw, Some("permessage-deflate"));
    w.expect(Cmd::OnWebSocketConnect);
    let bomb = compress(&vec![b'a'; 10 << 20]); // 10 MiB of one letter, a few KiB compressed
    let mut frame = BytesMut::new();
    encode_masked_frame(OpCode::Text, &bomb, [9, 8, 7, 6], &mut frame);
    frame[0] |= 0x40;
    bomber.write_all(&frame).unwrap();
    let (b0, payload) = raw_frame(&mut bomber, &mut buf);
    assert_eq!(b0 & 0x0f, 0x8, "a close frame");
    assert_eq!(u16::from_be_bytes([payload[0], payload[1]]), 1009);
    w.expect(Cmd::OnClose);
    assert_eq!(
        gw.metric("gatewire_limit_hits_total{limit=\"inflated_message\"}"),
        1
    );
}
