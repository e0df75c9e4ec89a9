//! A worker (in this process) against a gateway played by the test: answers that come late, a
//! gateway that stops reading its link.

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::BytesMut;
use common::*;
use gatewire::config::WorkerConfig;
use gatewire::{Context, Events};
use gatewire_proto::{Cmd, Flags, Header, Packet, PacketDecoder, query_reply};

/// A gateway address announced to a real register, with the worker links and queries it
/// accepts handled by the test.
struct FakeGateway {
    listener: TcpListener,
    address: SocketAddr,
    _register: Gatewire,
    _announce: TcpStream,
}

impl FakeGateway {
    fn start() -> FakeGateway {
        let register = Gatewire::start(Setup {
            roles: "register",
            ..Setup::default()
        });
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let mut announce = TcpStream::connect(register.register).unwrap();
        announce
            .write_all(
                gatewire_proto::register::gateway_connect_line(&address.to_string(), "").as_bytes(),
            )
            .unwrap();
        let gateway = FakeGateway {
            listener,
            address,
            _register: register,
            _announce: announce,
        };
        // The register lists the address once a query there is answered.
        let mut check = gateway.accept();
        assert_eq!(read_query(&mut check).header.cmd, Cmd::IsOnline);
        let mut reply = BytesMut::new();
        query_reply::encode(b"i:0;", &mut reply).unwrap();
        check.write_all(&reply).unwrap();
        gateway
    }

    fn worker_config(&self) -> WorkerConfig {
        WorkerConfig {
            count: 1,
            register_address: vec![self._register.register],
            ..WorkerConfig::default()
        }
    }

    /// The next inner connection (within 10 s), with a 10 s read timeout.
    fn accept(&self) -> TcpStream {
        self.listener.set_nonblocking(true).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let stream = loop {
            match self.listener.accept() {
                Ok((stream, _)) => break stream,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    assert!(std::time::Instant::now() < deadline, "nothing connected");
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => panic!("accept: {e}"),
            }
        };
        stream.set_nonblocking(false).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream
    }

    /// The next worker link, past its WORKER_CONNECT.
    fn accept_worker(&self) -> (TcpStream, BytesMut) {
        let mut link = self.accept();
        let mut buf = BytesMut::new();
        assert_eq!(
            read_packet(&mut link, &mut buf).header.cmd,
            Cmd::WorkerConnect
        );
        (link, buf)
    }

    /// An ON_MESSAGE event from client `id` of this gateway.
    fn message(&self, id: u32, body: &str) -> Vec<u8> {
        let event = Header {
            cmd: Cmd::OnMessage,
            local_ip: Ipv4Addr::LOCALHOST,
            local_port: self.address.port(),
            client_ip: Ipv4Addr::LOCALHOST,
            client_port: 40000,
            connection_id: id,
            flag: Flags::SCALAR,
            gateway_port: 8282,
        };
        Packet::new(event, "", body.to_owned())
            .to_bytes()
            .unwrap()
            .to_vec()
    }
}

/// The request on a query connection, past its hello (CMD_GATEWAY_CLIENT_CONNECT).
fn read_query(stream: &mut TcpStream) -> Packet {
    let mut buf = BytesMut::new();
    let first = read_packet(stream, &mut buf);
    assert_eq!(
        first.header.cmd,
        Cmd::GatewayClientConnect,
        "a query starts with a hello"
    );
    read_packet(stream, &mut buf)
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

/// The worker's executor thread waits through the runtime's timer interrupts until the answer or
/// the query timeout (a blocking read there used to fail with EINTR after 100 ms).
#[test]
fn a_query_from_a_worker_waits_for_a_slow_gateway() {
    let gateway = FakeGateway::start();
    let _workers =
        gatewire::worker::start(&gateway.worker_config(), &Default::default(), AskOnline).unwrap();
    let (mut link, mut link_buf) = gateway.accept_worker();
    for (delay, id) in [(Duration::from_millis(200), 1), (Duration::from_secs(3), 2)] {
        link.write_all(&gateway.message(id, "hi")).unwrap();
        let mut query = gateway.accept();
        let asked = read_query(&mut query);
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

/// "ask" asks whether the client is online without holding the thread; anything else is
/// answered at once.
#[derive(Clone)]
struct AskInTheBackground;

impl Events for AskInTheBackground {
    fn on_message(&mut self, ctx: &mut Context<'_>, message: &[u8]) {
        if message != b"ask" {
            ctx.send("pong");
            return;
        }
        let (gateway, client) = (ctx.gateway().clone(), ctx.client_id);
        ctx.spawn(async move {
            let answer = match gateway.nonblocking().is_online(client).await {
                Ok(online) => format!("online: {online}"),
                Err(e) => format!("error: {e}"),
            };
            gateway.send_to_client(client, answer);
        });
    }
}

/// A query made from a task waits without holding the worker thread: while the gateway sits on
/// the reply, the worker keeps handling other clients' events (the reply is sent only after the
/// test saw that), and the answer still arrives.
#[test]
fn a_nonblocking_query_leaves_the_worker_serving_other_events() {
    let gateway = FakeGateway::start();
    let _workers = gatewire::worker::start(
        &gateway.worker_config(),
        &Default::default(),
        AskInTheBackground,
    )
    .unwrap();
    let (mut link, mut link_buf) = gateway.accept_worker();
    link.write_all(&gateway.message(1, "ask")).unwrap();
    let mut query = gateway.accept();
    let asked = read_query(&mut query);
    assert_eq!(asked.header.cmd, Cmd::IsOnline);
    // The query is pending: another client's event is still handled.
    link.write_all(&gateway.message(2, "ping")).unwrap();
    let next_send = |link: &mut TcpStream, buf: &mut BytesMut| loop {
        let p = read_packet(link, buf);
        if p.header.cmd == Cmd::SendToOne {
            break p;
        }
    };
    let pong = next_send(&mut link, &mut link_buf);
    assert_eq!(
        (pong.header.connection_id, &pong.body[..]),
        (2, &b"pong"[..]),
        "client 2 is served while client 1's query waits"
    );
    let mut reply = BytesMut::new();
    query_reply::encode(b"i:1;", &mut reply).unwrap();
    query.write_all(&reply).unwrap();
    let answer = next_send(&mut link, &mut link_buf);
    assert_eq!(
        (answer.header.connection_id, &answer.body[..]),
        (1, &b"online: true"[..])
    );
}

/// Sends 100 × 1 MiB back on "flood", "ok" on anything else.
#[derive(Clone)]
struct Flood;

impl Events for Flood {
    fn on_message(&mut self, ctx: &mut Context<'_>, message: &[u8]) {
        if message != b"flood" {
            ctx.send("ok");
            return;
        }
        let chunk = vec![b'f'; 1 << 20];
        for _ in 0..100 {
            ctx.send(&chunk);
        }
    }
}

#[test]
fn a_gateway_that_never_reads_its_link_gets_it_dropped_and_made_again() {
    let gateway = FakeGateway::start();
    let workers =
        gatewire::worker::start(&gateway.worker_config(), &Default::default(), Flood).unwrap();
    let (mut link, _) = gateway.accept_worker();
    let before = rss_bytes(std::process::id());
    link.write_all(&gateway.message(1, "flood")).unwrap();
    // 100 MiB for a gateway that reads nothing: past 10 MB the link is dropped...
    let mut relinked = gateway.accept_worker().0;
    let stats = &workers.control.threads[0];
    eventually("the overflow is counted", || {
        stats.link_overflows.load(Ordering::SeqCst) == 1
    });
    // The worker (in this process) held at most about the cap, not the 100 MiB it was asked to
    // send.
    let grown = rss_bytes(std::process::id()).saturating_sub(before);
    assert!(grown < 50 << 20, "the worker grew by {} MiB", grown >> 20);
    // ...its queue freed (the old socket is closed), and a new link serves the next message.
    link.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut sink = vec![0u8; 1 << 20];
    let mut drained = 0;
    loop {
        match link.read(&mut sink) {
            Ok(0) => break,
            Ok(n) => drained += n,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("the old link stays open: {e}"),
        }
    }
    assert!(
        drained < 40 << 20,
        "{drained} bytes arrived on the dropped link"
    );
    relinked.write_all(&gateway.message(2, "again")).unwrap();
    let mut buf = BytesMut::new();
    let first = loop {
        let p = read_packet(&mut relinked, &mut buf);
        if p.header.cmd == Cmd::SendToOne {
            break p;
        }
    };
    assert_eq!(first.header.connection_id, 2);
    assert_eq!(&first.body[..], b"ok");
}
