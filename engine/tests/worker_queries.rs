//! Queries made from inside a worker callback, against a gateway that answers slowly: the
//! worker's executor thread must keep waiting through the runtime's timer interrupts until the
//! answer or the query timeout (a blocking read there used to fail with EINTR after 100 ms).

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::time::Duration;

use bytes::BytesMut;
use common::*;
use gatewire::config::WorkerConfig;
use gatewire::{Context, Events};
use gatewire_proto::{Cmd, Flags, Header, Packet, PacketDecoder, query_reply};

/// Answers every message with the result of an `isOnline` query about its sender.
#[derive(Clone)]
struct AskOnline;

impl Events for AskOnline {
    fn on_message(&mut self, ctx: &mut Context<'_>, _message: &[u8]) {
        let answer = match ctx.gateway().is_online(ctx.client_id) {
            Ok(online) => format!("online: {online}"),
            Err(e) => format!("error: {e}"),
        };
        ctx.send(answer);
    }
}

/// The next packet on a blocking inner connection.
fn read_packet(stream: &mut TcpStream, buf: &mut BytesMut) -> Packet {
    let mut decoder = PacketDecoder::default();
    loop {
        if let Some(p) = decoder.decode(buf).unwrap() {
            return p;
        }
        let mut chunk = [0u8; 65536];
        let n = stream.read(&mut chunk).unwrap();
        assert!(n > 0, "connection closed");
        buf.extend_from_slice(&chunk[..n]);
    }
}

#[test]
fn a_query_from_a_worker_waits_for_a_slow_gateway() {
    let register = Gatewire::start(Setup {
        roles: "register",
        ..Setup::default()
    });
    // A gateway played by the test: announced to the register, answering queries late.
    let gateway = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = gateway.local_addr().unwrap();
    let mut announce = TcpStream::connect(register.register).unwrap();
    announce
        .write_all(
            gatewire_proto::register::gateway_connect_line(&address.to_string(), "").as_bytes(),
        )
        .unwrap();

    let config = WorkerConfig {
        count: 1,
        register_address: vec![register.register],
        ..WorkerConfig::default()
    };
    let _workers = gatewire::worker::start(&config, AskOnline).unwrap();
    let (mut link, _) = gateway.accept().unwrap();
    link.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut link_buf = BytesMut::new();
    assert_eq!(
        read_packet(&mut link, &mut link_buf).header.cmd,
        Cmd::WorkerConnect
    );

    for (delay, id) in [(Duration::from_millis(200), 1), (Duration::from_secs(3), 2)] {
        let event = Header {
            cmd: Cmd::OnMessage,
            local_ip: Ipv4Addr::LOCALHOST,
            local_port: address.port(),
            client_ip: Ipv4Addr::LOCALHOST,
            client_port: 40000,
            connection_id: id,
            flag: Flags::SCALAR,
            gateway_port: 8282,
        };
        link.write_all(&Packet::new(event, "", "hi").to_bytes().unwrap())
            .unwrap();
        let (mut query, _) = gateway.accept().unwrap();
        query
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let asked = read_packet(&mut query, &mut BytesMut::new());
        assert_eq!(asked.header.cmd, Cmd::IsOnline);
        assert_eq!(asked.header.connection_id, id);
        std::thread::sleep(delay);
        let mut reply = BytesMut::new();
        query_reply::encode(b"i:1;", &mut reply).unwrap();
        query.write_all(&reply).unwrap();
        let answer = loop {
            let p = read_packet(&mut link, &mut link_buf);
            if p.header.cmd == Cmd::SendToOne {
                break p;
            }
        };
        assert_eq!(answer.header.connection_id, id);
        assert_eq!(
            String::from_utf8_lossy(&answer.body),
            "online: true",
            "answered after {delay:?}"
        );
    }
}
