//! The WebSocket frame decoder's rules (RFC 6455 §5), each as a behaviour.

use bytes::{Bytes, BytesMut};
use gatewire_proto::websocket::{
    CloseCode, FrameDecoder, Message, OpCode, WsError, encode_frame, encode_masked_frame,
};
use tungstenite::protocol::frame::Frame as RefFrame;
use tungstenite::protocol::frame::coding::{Data, OpCode as RefOpCode};

const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// A client frame with explicit FIN, opcode bits and payload.
fn raw_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = BytesMut::new();
    encode_masked_frame(OpCode::Binary, payload, MASK, &mut out);
    out[0] = if fin { 0x80 } else { 0 } | opcode;
    out.to_vec()
}

fn decode_all(wire: &[u8]) -> Result<Vec<Message>, WsError> {
    let mut decoder = FrameDecoder::server(1 << 20);
    let mut buf = BytesMut::from(wire);
    let mut out = Vec::new();
    while let Some(message) = decoder.decode(&mut buf)? {
        out.push(message);
    }
    Ok(out)
}

#[test]
fn reads_frames_masked_by_an_independent_client_implementation() {
    let mut frame = RefFrame::message(
        Bytes::from_static(b"Hello"),
        RefOpCode::Data(Data::Text),
        true,
    );
    frame.header_mut().mask = Some(MASK);
    let mut wire = Vec::new();
    frame.format(&mut wire).unwrap();
    assert_eq!(
        decode_all(&wire).unwrap(),
        vec![Message::Text(Bytes::from_static(b"Hello"))]
    );
}

#[test]
fn unmasked_client_frame_is_refused() {
    let mut wire = BytesMut::new();
    encode_frame(OpCode::Text, b"hi", &mut wire);
    assert_eq!(decode_all(&wire), Err(WsError::Unmasked));
    assert_eq!(WsError::Unmasked.close_code(), CloseCode::PROTOCOL_ERROR);
}

#[test]
fn client_mode_refuses_masked_server_frames() {
    let mut wire = BytesMut::new();
    encode_masked_frame(OpCode::Text, b"hi", MASK, &mut wire);
    assert_eq!(
        FrameDecoder::client(1024).decode(&mut wire),
        Err(WsError::Masked)
    );
    let mut wire = BytesMut::new();
    encode_frame(OpCode::Text, b"hi", &mut wire);
    assert_eq!(
        FrameDecoder::client(1024).decode(&mut wire).unwrap(),
        Some(Message::Text(Bytes::from_static(b"hi")))
    );
}

#[test]
fn fragments_are_reassembled_with_control_frames_between() {
    let mut wire = raw_frame(false, 1, b"Hel");
    wire.extend(raw_frame(true, 9, b"ping!"));
    wire.extend(raw_frame(false, 0, b"lo, "));
    wire.extend(raw_frame(true, 0, b"world"));
    assert_eq!(
        decode_all(&wire).unwrap(),
        vec![
            Message::Ping(Bytes::from_static(b"ping!")),
            Message::Text(Bytes::from_static(b"Hello, world")),
        ]
    );
}

#[test]
fn byte_by_byte_input_gives_the_same_messages() {
    let mut wire = raw_frame(false, 2, &[1, 2, 3]);
    wire.extend(raw_frame(true, 0, &[4; 300]));
    wire.extend(raw_frame(true, 1, "ünïcode".as_bytes()));
    let mut decoder = FrameDecoder::server(1 << 20);
    let mut buf = BytesMut::new();
    let mut got = Vec::new();
    for byte in wire {
        buf.extend_from_slice(&[byte]);
        while let Some(m) = decoder.decode(&mut buf).unwrap() {
            got.push(m);
        }
    }
    let mut binary = vec![1, 2, 3];
    binary.extend([4; 300]);
    assert_eq!(
        got,
        vec![
            Message::Binary(Bytes::from(binary)),
            Message::Text(Bytes::from("ünïcode"))
        ]
    );
}

#[test]
fn continuation_without_start_and_interleaved_data_frames_are_errors() {
    assert_eq!(
        decode_all(&raw_frame(true, 0, b"x")),
        Err(WsError::UnexpectedContinuation)
    );
    let mut wire = raw_frame(false, 1, b"a");
    wire.extend(raw_frame(true, 1, b"b"));
    assert_eq!(decode_all(&wire), Err(WsError::ExpectedContinuation));
}

#[test]
fn control_frame_rules() {
    assert_eq!(
        decode_all(&raw_frame(false, 9, b"x")),
        Err(WsError::FragmentedControl)
    );
    assert_eq!(
        decode_all(&raw_frame(true, 9, &[0; 126])),
        Err(WsError::ControlTooLong(126))
    );
    assert_eq!(
        decode_all(&raw_frame(true, 10, b"p")).unwrap(),
        vec![Message::Pong(Bytes::from_static(b"p"))]
    );
}

#[test]
fn reserved_bits_and_opcodes_are_errors() {
    let mut wire = raw_frame(true, 1, b"x");
    wire[0] |= 0x40;
    assert_eq!(decode_all(&wire), Err(WsError::ReservedBits));
    for opcode in [3u8, 7, 11, 15] {
        assert_eq!(
            decode_all(&raw_frame(true, opcode, b"")),
            Err(WsError::ReservedOpcode(opcode))
        );
    }
}

#[test]
fn invalid_utf8_in_text_closes_with_1007() {
    let err = decode_all(&raw_frame(true, 1, &[0xce, 0xba, 0xff])).unwrap_err();
    assert_eq!(err, WsError::InvalidUtf8);
    assert_eq!(err.close_code(), CloseCode::INVALID_PAYLOAD);
    // Binary messages are not checked.
    assert!(decode_all(&raw_frame(true, 2, &[0xff])).is_ok());
}

#[test]
fn utf8_split_across_fragments_is_fine_but_bad_bytes_fail_at_once() {
    let euro = "€".as_bytes();
    let mut wire = raw_frame(false, 1, &euro[..1]);
    wire.extend(raw_frame(true, 0, &euro[1..]));
    assert_eq!(
        decode_all(&wire).unwrap(),
        vec![Message::Text(Bytes::from("€"))]
    );

    // The first fragment is already invalid: no need to wait for the rest.
    let mut decoder = FrameDecoder::server(1024);
    let mut buf = BytesMut::from(&raw_frame(false, 1, &[b'a', 0xff])[..]);
    assert_eq!(decoder.decode(&mut buf), Err(WsError::InvalidUtf8));

    // A sequence still cut at the final fragment is invalid.
    assert_eq!(
        decode_all(&raw_frame(true, 1, &euro[..2])),
        Err(WsError::InvalidUtf8)
    );
}

#[test]
fn close_frames_are_validated() {
    assert_eq!(
        decode_all(&raw_frame(true, 8, b"")).unwrap(),
        vec![Message::Close(None)]
    );
    assert_eq!(
        decode_all(&raw_frame(true, 8, &[0x03, 0xe8, b'o', b'k'])).unwrap(),
        vec![Message::Close(Some((1000, Bytes::from_static(b"ok"))))]
    );
    assert_eq!(
        decode_all(&raw_frame(true, 8, &[0x03])),
        Err(WsError::BadClosePayload)
    );
    for code in [
        0u16, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
    ] {
        assert_eq!(
            decode_all(&raw_frame(true, 8, &code.to_be_bytes())),
            Err(WsError::BadCloseCode(code)),
            "code {code}"
        );
    }
    for code in [
        1000u16, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999,
    ] {
        assert!(
            decode_all(&raw_frame(true, 8, &code.to_be_bytes())).is_ok(),
            "code {code}"
        );
    }
    assert_eq!(
        decode_all(&raw_frame(true, 8, &[0x03, 0xe8, 0xff])),
        Err(WsError::InvalidUtf8)
    );
}

#[test]
fn oversize_messages_are_refused_before_they_are_buffered() {
    let mut decoder = FrameDecoder::server(1000);
    // Only the header of a 1 MiB frame has arrived: refuse now, not after buffering it.
    let mut header = BytesMut::from(&[0x82u8, 0xff, 0, 0, 0, 0, 0, 0x10, 0, 0][..]);
    let err = decoder.decode(&mut header).unwrap_err();
    assert_eq!(
        err,
        WsError::TooLarge {
            len: 1 << 20,
            max: 1000
        }
    );
    assert_eq!(err.close_code(), CloseCode::TOO_BIG);

    // Fragments count together.
    let mut decoder = FrameDecoder::server(1000);
    let mut wire = BytesMut::from(&raw_frame(false, 2, &[0; 600])[..]);
    assert_eq!(decoder.decode(&mut wire), Ok(None));
    assert!(decoder.has_partial());
    let mut wire = BytesMut::from(&raw_frame(true, 0, &[0; 600])[..]);
    assert!(matches!(
        decoder.decode(&mut wire),
        Err(WsError::TooLarge { len: 1200, .. })
    ));
}

#[test]
fn an_unfragmented_message_shares_the_receive_buffer() {
    let wire = raw_frame(true, 2, &[7; 4096]);
    let mut buf = BytesMut::with_capacity(8192);
    buf.extend_from_slice(&wire);
    let start = buf.as_ptr() as usize;
    let Some(Message::Binary(payload)) = FrameDecoder::server(1 << 20).decode(&mut buf).unwrap()
    else {
        panic!("expected a binary message");
    };
    let at = payload.as_ptr() as usize;
    assert!(
        (start..start + 8192).contains(&at),
        "payload points into the receive buffer (no copy)"
    );
}
