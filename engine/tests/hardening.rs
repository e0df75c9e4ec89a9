//! Hostile peers and careless operators: every buffer a peer can fill is bounded, and what the
//! gateway refuses is counted, never lost silently. Memory checks compare the gateway process's
//! RSS before and after (a ratio of what the attack would cost unbounded, not an absolute).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;

const MIB: u64 = 1 << 20;

/// A WebSocket client past its handshake, as a raw socket the test writes frames to itself.
fn raw_websocket(gw: &Gatewire) -> TcpStream {
    let mut stream = TcpStream::connect(gw.public).unwrap();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    stream
        .write_all(
            b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        )
        .unwrap();
    let mut response = Vec::new();
    let mut byte = [0u8; 1];
    while !response.ends_with(b"\r\n\r\n") {
        assert_eq!(stream.read(&mut byte).unwrap(), 1, "handshake answered");
        response.push(byte[0]);
    }
    assert!(response.starts_with(b"HTTP/1.1 101"), "upgraded");
    stream
}

/// A masked client frame header announcing `len` payload bytes (no payload follows).
fn announcing_header(len: u64) -> Vec<u8> {
    let mut header = vec![0x82, 0x80 | 127];
    header.extend_from_slice(&len.to_be_bytes());
    header.extend_from_slice(&[1, 2, 3, 4]);
    header
}

/// Reads and discards a worker's events on a thread, so its link never backs up.
fn drain_events(mut worker: TestWorker) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || while worker.try_next_any().is_some() {})
}

#[test]
fn announced_sizes_reserve_nothing_on_client_or_inner_ports() {
    let gw = Gatewire::start(Setup {
        secret: "k",
        extra: "max_message_size = 16777216\nmax_packet_size = 16777216".into(),
        ..Setup::default()
    });
    let _events = drain_events(gw.workers("Sizes", "k").remove(0));
    let pid = gw.role_pid("gateway");
    let warm: Vec<TcpStream> = (0..10).map(|_| raw_websocket(&gw)).collect();
    let before = rss_bytes(pid);

    // 200 clients each announce a 10 MiB message and send none of it.
    let clients: Vec<TcpStream> = (0..200)
        .map(|_| {
            let mut c = raw_websocket(&gw);
            c.write_all(&announcing_header(10 * MIB)).unwrap();
            c
        })
        .collect();
    // 200 strangers on the inner port announce a 10 MiB packet before authenticating.
    let mut strangers: Vec<TcpStream> = (0..200)
        .map(|_| {
            let mut s = TcpStream::connect(gw.inner(0)).unwrap();
            let mut head = (10 * MIB as u32).to_be_bytes().to_vec();
            head.extend_from_slice(&[0; 24]);
            s.write_all(&head).unwrap();
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let grown = rss_bytes(pid).saturating_sub(before);
    // Unbounded, this costs hundreds of MB (2 MB and more per connection); allow 64 KiB each.
    assert!(
        grown < 400 * 64 * 1024,
        "gateway grew by {} KiB for 400 announced 10 MiB messages",
        grown / 1024
    );
    for s in &mut strangers {
        assert!(
            closed_within(s, TIMEOUT),
            "an oversized unauthenticated packet closes the link"
        );
    }
    drop((warm, clients));
}

/// Whether the peer closed `stream` within `wait` (anything it sends is read and ignored).
fn closed_within(stream: &mut TcpStream, wait: Duration) -> bool {
    let deadline = Instant::now() + wait;
    stream.set_read_timeout(Some(wait)).unwrap();
    let mut chunk = [0u8; 4096];
    while Instant::now() < deadline {
        match stream.read(&mut chunk) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
    false
}
