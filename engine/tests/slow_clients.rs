//! Slow consumers: past `send_to_client_buffer_size` a client's messages are dropped (default,
//! as GatewayWorker) or the client is closed, and nobody else is affected; past the shard's
//! `max_pending_output_bytes` messages for clients already behind are shed.

mod common;

use std::net::TcpStream;
use std::time::Duration;

use common::*;
use gatewire_proto::Cmd;
use socket2::{Domain, Socket, Type};

/// A WebSocket client with a tiny receive buffer that does not read until told to.
fn sluggish_client(gw: &Gatewire) -> Ws {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(&gw.public.into()).unwrap();
    let stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    let url = format!("ws://{}/", gw.public);
    let (ws, _) =
        tungstenite::client::client(url, tungstenite::stream::MaybeTlsStream::Plain(stream))
            .unwrap();
    ws
}

/// A gateway with a 256 KiB client cap, a sluggish and a fast client, and 300 × 64 KiB queued
/// for the sluggish one.
fn flood(policy: &str) -> (Gatewire, TestWorker, Ws, u32, Ws, u32) {
    let gw = Gatewire::start(Setup {
        extra: format!("send_to_client_buffer_size = 262144\nslow_client_policy = \"{policy}\""),
        metrics: true,
        capture_log: true,
        ..Setup::default()
    });
    let mut w = gw.workers("Flood", "").remove(0);
    let slow = sluggish_client(&gw);
    let slow_id = w.expect(Cmd::OnConnect).header.connection_id;
    w.expect(Cmd::OnWebSocketConnect);
    let fast = ws_connect(gw.public, "/");
    let fast_id = w.expect(Cmd::OnConnect).header.connection_id;
    w.expect(Cmd::OnWebSocketConnect);
    let chunk = "z".repeat(64 * 1024);
    for _ in 0..300 {
        w.command(Cmd::SendToOne, slow_id, "", &chunk);
    }
    (gw, w, slow, slow_id, fast, fast_id)
}

#[test]
fn drop_policy_drops_messages_but_keeps_the_client() {
    let (gw, mut w, mut slow, slow_id, mut fast, fast_id) = flood("drop");
    // The fast client is served while the slow one is backed up.
    w.command(Cmd::SendToOne, fast_id, "", "hi fast");
    assert_eq!(ws_read(&mut fast), "hi fast");
    // The slow client is still connected, and got fewer than 300 messages.
    std::thread::sleep(Duration::from_millis(300));
    w.command(Cmd::SendToOne, slow_id, "", "last");
    let mut got = 0;
    loop {
        let m = ws_read(&mut slow);
        if m == "last" {
            break;
        }
        got += 1;
    }
    assert!(got < 300, "some messages were dropped ({got} arrived)");
    assert!(got > 0);
    assert_eq!(
        query_text(gw.inner(0), Cmd::IsOnline, slow_id, ""),
        "i:1;",
        "the slow client stays connected"
    );
    assert_eq!(gw.metric("gatewire_slow_client_drops_total"), 300 - got);
    assert_eq!(
        gw.metric("gatewire_limit_hits_total{limit=\"client_output\"}"),
        300 - got
    );
    // Visible in the log: one line with the count, not one per message.
    let log = gw.log();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("dropped for clients whose output queue is full"))
        .collect();
    assert_eq!(lines.len(), 1, "one line per interval: {log}");
    let logged: u64 = lines[0]
        .split_whitespace()
        .find_map(|w| w.parse().ok())
        .expect("the line carries the count");
    assert!(logged > 0 && logged <= 300 - got, "{}", lines[0]);
}

#[test]
fn close_policy_closes_the_slow_client_only() {
    let (gw, mut w, _slow, slow_id, mut fast, fast_id) = flood("close");
    assert_eq!(w.expect(Cmd::OnClose).header.connection_id, slow_id);
    w.command(Cmd::SendToOne, fast_id, "", "still fine");
    assert_eq!(ws_read(&mut fast), "still fine");
    assert_eq!(query_text(gw.inner(0), Cmd::IsOnline, slow_id, ""), "i:0;");
    assert_eq!(
        gw.metric("gatewire_closed_total{reason=\"slow_client\"}"),
        1
    );
}

#[test]
fn an_overloaded_shard_sheds_for_clients_behind_and_its_output_stays_bounded() {
    // Eight clients that do not read, each allowed 256 KiB, on a shard allowed 1 MiB in all:
    // 2 MiB of broadcasts would be queued without the shard bound.
    let gw = Gatewire::start(Setup {
        extra: "send_to_client_buffer_size = 262144\nmax_pending_output_bytes = 1048576".into(),
        metrics: true,
        capture_log: true,
        ..Setup::default()
    });
    let mut w = gw.workers("Flood", "").remove(0);
    let mut sluggish = Vec::new();
    for _ in 0..8 {
        sluggish.push(sluggish_client(&gw));
        w.expect(Cmd::OnConnect);
        w.expect(Cmd::OnWebSocketConnect);
    }
    let chunk = "z".repeat(64 * 1024);
    let all = gatewire_proto::ext::SendToAllTarget::Everyone.to_ext();
    // 200 × 64 KiB each: more than the kernel's socket buffers of a client that does not read.
    for _ in 0..200 {
        w.command(Cmd::SendToAll, 0, &all, &chunk);
    }
    let queued = gw.metric("gatewire_output_queue_bytes{queue=\"clients\"}");
    // Over the budget only by frames queued for clients that had nothing queued (the kernel's
    // socket buffers take the rest, as they would anyway).
    assert!(
        queued <= (1 << 20) + 8 * (64 * 1024 + 10),
        "{queued} bytes queued"
    );
    let shed = gw.metric("gatewire_limit_hits_total{limit=\"shard_output\"}");
    assert!(shed > 0, "some deliveries were shed");
    // Every client is still there and a newcomer is served at once.
    let mut fresh = ws_connect(gw.public, "/");
    let fresh_id = w.expect(Cmd::OnConnect).header.connection_id;
    w.expect(Cmd::OnWebSocketConnect);
    w.command(Cmd::SendToOne, fresh_id, "", "hi");
    assert_eq!(ws_read(&mut fresh), "hi");
    assert_eq!(gw.metric("gatewire_connections"), 9);
    // A shed client that catches up gets what was queued for it, then new messages again.
    let mut first = sluggish.remove(0);
    let tcp = |ws: &Ws| match ws.get_ref() {
        tungstenite::stream::MaybeTlsStream::Plain(s) => s.try_clone().unwrap(),
        _ => unreachable!("plain test client"),
    };
    tcp(&first)
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut got = 0;
    while let Ok(m) = first.next_message() {
        assert_eq!(m.len(), 64 * 1024);
        got += 1;
    }
    assert!(
        got > 0 && got < 200,
        "{got} of 200 reached it: some were shed"
    );
    tcp(&first).set_read_timeout(Some(TIMEOUT)).unwrap();
    w.command(Cmd::SendToAll, 0, &all, "after");
    assert_eq!(ws_read(&mut first), "after");
    let log = gw.log();
    assert!(
        log.contains("the shard's client output is over its budget"),
        "the shedding is logged: {log}"
    );
}
