//! The Gateway end to end: a real `gatewire` process, a test worker speaking GatewayProtocol,
//! real WebSocket clients.

mod common;

use std::time::Duration;
use tungstenite::stream::MaybeTlsStream;

use common::*;
use gatewire_proto::php::{Key, Value, unserialize};
use gatewire_proto::{ClientId, Cmd, Flags, Header, Packet};

/// Connects a WebSocket client and returns it with its ON_CONNECT connection id.
fn client(gw: &Gatewire, worker: &mut TestWorker, path: &str) -> (Ws, u32) {
    let ws = ws_connect(gw.public, path);
    let id = worker.expect(Cmd::OnConnect).header.connection_id;
    worker.expect(Cmd::OnWebSocketConnect);
    (ws, id)
}

#[test]
fn events_reach_the_worker_as_gatewayworker_sends_them() {
    let gw = Gatewire::start(Setup::default());
    let mut w = gw.workers("Events", "").remove(0);
    let mut ws = ws_connect(gw.public, "/chat?room=lobby&tags[]=a");

    let connect = w.expect(Cmd::OnConnect);
    assert_eq!(connect.header.local_port, gw.start_port);
    assert_eq!(connect.header.gateway_port, gw.public.port());
    assert_eq!(connect.header.flag, Flags::SCALAR);
    assert!(connect.ext.is_empty() && connect.body.is_empty());
    let id = connect.header.connection_id;

    let hello = w.expect(Cmd::OnWebSocketConnect);
    assert_eq!(hello.header.flag, Flags(0), "the body is serialized");
    let data = unserialize(&hello.body).unwrap();
    let data = data.as_array().unwrap();
    let get = data.get(&Key::from("get")).unwrap().as_array().unwrap();
    assert_eq!(get.get(&Key::from("room")), Some(&Value::from("lobby")));
    let server = data.get(&Key::from("server")).unwrap().as_array().unwrap();
    assert_eq!(
        server.get(&Key::from("REQUEST_URI")),
        Some(&Value::from("/chat?room=lobby&tags[]=a"))
    );

    ws.send(tungstenite::Message::text("hello gateway"))
        .unwrap();
    let message = w.expect(Cmd::OnMessage);
    assert_eq!(message.header.connection_id, id);
    assert_eq!(&message.body[..], b"hello gateway");

    // Binary frames arrive as raw bytes too.
    ws.send(tungstenite::Message::binary(vec![0u8, 1, 2]))
        .unwrap();
    assert_eq!(&w.expect(Cmd::OnMessage).body[..], &[0u8, 1, 2]);

    drop(ws);
    let close = w.expect(Cmd::OnClose);
    assert_eq!(close.header.connection_id, id);
}

#[test]
fn send_to_one_all_uid_and_group_with_exclusions() {
    let gw = Gatewire::start(Setup::default());
    let mut w = gw.workers("Send", "").remove(0);
    let (mut a, ida) = client(&gw, &mut w, "/");
    let (mut b, idb) = client(&gw, &mut w, "/");
    let (mut c, idc) = client(&gw, &mut w, "/");

    w.command(Cmd::SendToOne, idb, "", "just b");
    assert_eq!(ws_read(&mut b), "just b");

    w.command(Cmd::SendToAll, 0, "", "everyone");
    for ws in [&mut a, &mut b, &mut c] {
        assert_eq!(ws_read(ws), "everyone");
    }
    w.command(
        Cmd::SendToAll,
        0,
        &format!("{{\"exclude\":{{\"{ida}\":{ida}}}}}"),
        "not a",
    );
    assert_eq!(ws_read(&mut b), "not a");
    assert_eq!(ws_read(&mut c), "not a");
    w.command(
        Cmd::SendToAll,
        0,
        &format!("{{\"connections\":{{\"{ida}\":{ida}}}}}"),
        "only a",
    );
    assert_eq!(ws_read(&mut a), "only a");

    w.command(Cmd::BindUid, ida, "42", "");
    w.command(Cmd::BindUid, idc, "42", "");
    w.command(Cmd::SendToUid, 0, "[\"42\"]", "to uid 42");
    assert_eq!(ws_read(&mut a), "to uid 42");
    assert_eq!(ws_read(&mut c), "to uid 42");

    w.command(Cmd::JoinGroup, ida, "room", "");
    w.command(Cmd::JoinGroup, idb, "room", "");
    w.command(Cmd::JoinGroup, idb, "other", "");
    w.command(
        Cmd::SendToGroup,
        0,
        &format!("{{\"group\":[\"room\",\"other\"],\"exclude\":{{\"{ida}\":{ida}}}}}"),
        "group msg",
    );
    // b is in both groups: it gets the message twice, as in GatewayWorker.
    assert_eq!(ws_read(&mut b), "group msg");
    assert_eq!(ws_read(&mut b), "group msg");

    // Nothing else was queued for a: the next thing it reads is this.
    w.command(Cmd::SendToOne, ida, "", "sentinel");
    assert_eq!(ws_read(&mut a), "sentinel");
    w.command(Cmd::SendToOne, idc, "", "sentinel");
    assert_eq!(ws_read(&mut c), "sentinel");
}

#[test]
fn non_scalar_bodies_are_json_and_raw_bodies_are_verbatim() {
    let gw = Gatewire::start(Setup::default());
    let mut w = gw.workers("Body", "").remove(0);
    let (mut a, ida) = client(&gw, &mut w, "/");
    w.send(Packet::new(
        Header::for_connection(Cmd::SendToOne, ida, Flags(0)),
        "",
        r#"a:1:{s:1:"k";a:2:{i:0;i:1;i:1;s:1:"x";}}"#,
    ));
    assert_eq!(ws_read(&mut a), r#"{"k":[1,"x"]}"#);
    // Raw: the worker supplies a whole frame.
    w.send(Packet::new(
        Header::for_connection(Cmd::SendToOne, ida, Flags(0x03)),
        "",
        &b"\x81\x03raw"[..],
    ));
    assert_eq!(ws_read(&mut a), "raw");
}

#[test]
fn sessions_ride_on_events_and_update_merges() {
    let gw = Gatewire::start(Setup::default());
    let mut w = gw.workers("Sess", "").remove(0);
    let (mut a, ida) = client(&gw, &mut w, "/");
    let inner = gw.inner(0);

    assert_eq!(
        query_text(inner, Cmd::GetSessionByClientId, ida, ""),
        "a:0:{}"
    );
    assert_eq!(
        query_text(inner, Cmd::GetSessionByClientId, 999_999, ""),
        "N;"
    );

    let session = r#"a:2:{s:1:"a";i:1;s:1:"b";a:1:{s:1:"x";i:1;}}"#;
    w.command(Cmd::SetSession, ida, session, "");
    a.send(tungstenite::Message::text("m1")).unwrap();
    assert_eq!(&w.expect(Cmd::OnMessage).ext[..], session.as_bytes());

    w.command(
        Cmd::UpdateSession,
        ida,
        r#"a:2:{s:1:"b";a:1:{s:1:"y";i:2;}s:1:"c";i:3;}"#,
        "",
    );
    let merged = r#"a:3:{s:1:"a";i:1;s:1:"b";a:2:{s:1:"x";i:1;s:1:"y";i:2;}s:1:"c";i:3;}"#;
    assert_eq!(
        query_text(inner, Cmd::GetSessionByClientId, ida, ""),
        merged
    );
    a.send(tungstenite::Message::text("m2")).unwrap();
    assert_eq!(&w.expect(Cmd::OnMessage).ext[..], merged.as_bytes());

    drop(a);
    assert_eq!(
        &w.expect(Cmd::OnClose).ext[..],
        merged.as_bytes(),
        "ON_CLOSE carries the last session"
    );
}

#[test]
fn queries_answer_as_captured() {
    let gw = Gatewire::start(Setup::default());
    let mut w = gw.workers("Query", "").remove(0);
    let (_a, ida) = client(&gw, &mut w, "/");
    let (_b, idb) = client(&gw, &mut w, "/");
    let inner = gw.inner(0);
    w.command(Cmd::BindUid, ida, "7", "");
    w.command(Cmd::JoinGroup, ida, "g1", "");
    w.command(Cmd::SetSession, ida, r#"a:1:{s:4:"name";s:3:"bob";}"#, "");

    assert_eq!(query_text(inner, Cmd::IsOnline, ida, ""), "i:1;");
    assert_eq!(query_text(inner, Cmd::IsOnline, 999, ""), "i:0;");
    assert_eq!(query_text(inner, Cmd::GetClientCountByGroup, 0, ""), "i:2;");
    assert_eq!(
        query_text(inner, Cmd::GetClientCountByGroup, 0, "g1"),
        "i:1;"
    );
    assert_eq!(
        query_text(inner, Cmd::GetClientIdByUid, 0, "7"),
        format!("a:1:{{i:0;i:{ida};}}")
    );
    assert_eq!(
        query_text(inner, Cmd::BatchGetClientIdByUid, 0, r#"["7","8"]"#),
        format!("a:2:{{i:7;a:1:{{i:0;i:{ida};}}i:8;a:0:{{}}}}")
    );
    assert_eq!(
        query_text(inner, Cmd::BatchGetClientCountByGroup, 0, r#"["g1","g2"]"#),
        r#"a:2:{s:2:"g1";i:1;s:2:"g2";i:0;}"#
    );
    assert_eq!(
        query_text(inner, Cmd::GetGroupIdList, 0, ""),
        r#"a:1:{i:0;s:2:"g1";}"#
    );
    let session = r#"a:1:{s:4:"name";s:3:"bob";}"#;
    assert_eq!(
        query_text(inner, Cmd::GetAllClientSessions, 0, ""),
        format!(
            r#"a:2:{{i:{ida};s:{}:"{session}";i:{idb};s:0:"";}}"#,
            session.len()
        )
    );
    assert_eq!(
        query_text(inner, Cmd::GetClientSessionsByGroup, 0, "g1"),
        format!(r#"a:1:{{i:{ida};s:{}:"{session}";}}"#, session.len())
    );
    assert_eq!(
        query_text(
            inner,
            Cmd::Select,
            0,
            r#"{"fields":["uid","groups","session"],"where":{"uid":["7"]}}"#
        ),
        format!(
            r#"a:1:{{i:{ida};a:3:{{s:3:"uid";s:1:"7";s:6:"groups";a:1:{{s:2:"g1";s:2:"g1";}}s:7:"session";s:{}:"{session}";}}}}"#,
            session.len()
        )
    );
    assert_eq!(
        query_text(
            inner,
            Cmd::Select,
            0,
            r#"{"fields":["uid","groups"],"where":[]}"#
        ),
        format!(
            r#"a:2:{{i:{ida};a:2:{{s:3:"uid";s:1:"7";s:6:"groups";a:1:{{s:2:"g1";s:2:"g1";}}}}i:{idb};a:2:{{s:3:"uid";N;s:6:"groups";N;}}}}"#
        )
    );
    // Leave, unbind, ungroup keep the indexes consistent.
    w.command(Cmd::LeaveGroup, ida, "g1", "");
    w.command(Cmd::UnbindUid, ida, "", "");
    assert_eq!(query_text(inner, Cmd::GetGroupIdList, 0, ""), "a:0:{}");
    assert_eq!(query_text(inner, Cmd::GetClientIdByUid, 0, "7"), "a:0:{}");
    w.command(Cmd::JoinGroup, idb, "g2", "");
    w.command(Cmd::Ungroup, 0, "g2", "");
    assert_eq!(
        query_text(inner, Cmd::GetClientCountByGroup, 0, "g2"),
        "i:0;"
    );
}

#[test]
fn kick_flushes_then_closes_without_a_close_frame_and_destroy_is_immediate() {
    let gw = Gatewire::start(Setup::default());
    let mut w = gw.workers("Kick", "").remove(0);
    let (mut a, ida) = client(&gw, &mut w, "/");
    let (mut b, idb) = client(&gw, &mut w, "/");

    w.command(Cmd::Kick, ida, "", "bye");
    assert_eq!(ws_read(&mut a), "bye");
    match a.next_message() {
        Err(tungstenite::Error::Protocol(_)) | Err(tungstenite::Error::Io(_)) => {}
        Err(tungstenite::Error::ConnectionClosed) | Err(tungstenite::Error::AlreadyClosed) => {}
        other => panic!("expected the TCP connection to end without a close frame, got {other:?}"),
    }
    assert_eq!(w.expect(Cmd::OnClose).header.connection_id, ida);

    w.command(Cmd::Destroy, idb, "", "");
    assert!(b.next_message().is_err());
    assert_eq!(w.expect(Cmd::OnClose).header.connection_id, idb);
}

#[test]
fn several_shards_give_client_ids_with_their_own_inner_ports() {
    let gw = Gatewire::start(Setup {
        shards: 3,
        ..Setup::default()
    });
    let mut workers = gw.workers("Multi", "");
    let mut seen_ports = std::collections::HashSet::new();
    let mut clients = Vec::new();
    for _ in 0..24 {
        clients.push(ws_connect(gw.public, "/"));
    }
    for w in &mut workers {
        while let Some(p) = {
            w.stream
                .set_read_timeout(Some(Duration::from_millis(300)))
                .unwrap();
            w.try_next()
        } {
            if p.header.cmd == Cmd::OnConnect {
                let id = ClientId::new(
                    p.header.local_ip,
                    p.header.local_port,
                    p.header.connection_id,
                );
                assert_eq!(id.gateway().port(), p.header.local_port);
                seen_ports.insert(p.header.local_port);
                w.command(Cmd::SendToOne, p.header.connection_id, "", &id.to_string());
            }
        }
    }
    assert!(
        seen_ports.len() > 1,
        "SO_REUSEPORT spread clients over shards: {seen_ports:?}"
    );
    for ws in &mut clients {
        let id: ClientId = ws_read(ws).parse().unwrap();
        assert!(seen_ports.contains(&id.port));
    }
}

#[test]
fn the_register_lists_every_shard_to_workers() {
    let gw = Gatewire::start(Setup {
        shards: 2,
        ..Setup::default()
    });
    let expected: Vec<String> = (0..2).map(|i| gw.inner(i).to_string()).collect();
    eventually("both shards registered", || {
        let line = register_list(gw.register, "");
        expected.iter().all(|a| line.contains(a.as_str()))
    });
}

/// Asks the register for the gateway list like a worker does; returns the line.
fn register_list(register: std::net::SocketAddr, secret: &str) -> String {
    use std::io::{BufRead, BufReader, Write};
    let mut s = std::net::TcpStream::connect(register).unwrap();
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    s.write_all(gatewire_proto::register::worker_connect_line(secret).as_bytes())
        .unwrap();
    let mut line = String::new();
    let _ = BufReader::new(s).read_line(&mut line);
    line
}

#[test]
fn secret_keys_are_enforced_on_the_inner_port_and_the_register() {
    let gw = Gatewire::start(Setup {
        secret: "s3cret",
        capture_log: true,
        ..Setup::default()
    });
    // A wrong key: the link is closed, and the gateway says so naming the peer.
    let mut wrong = TestWorker::connect(gw.inner(0), "Bad:0", "nope");
    let wrong_addr = wrong.stream.local_addr().unwrap();
    assert!(wrong.closed_within(Duration::from_secs(3)));
    assert!(
        gw.log()
            .contains(&format!("secret key mismatch from {wrong_addr}")),
        "{}",
        gw.log()
    );
    // A command without authenticating: closed.
    let mut stream = std::net::TcpStream::connect(gw.inner(0)).unwrap();
    use std::io::{Read, Write};
    stream
        .write_all(
            &Packet::new(Header::command(Cmd::GetGroupIdList), "", "")
                .to_bytes()
                .unwrap(),
        )
        .unwrap();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    assert_eq!(stream.read(&mut [0u8; 16]).unwrap_or(0), 0);
    // The right key works, for workers and for query clients.
    let mut w = TestWorker::connect(gw.inner(0), "Good:0", "s3cret");
    let (_a, _) = client(&gw, &mut w, "/");
    assert_eq!(
        query(gw.inner(0), "s3cret", Cmd::GetClientCountByGroup, 0, ""),
        b"i:1;"
    );
    // The register checks the key too, and closes without a word as PHP's does (PHP clients
    // would take a reason line for data); its log names the peer.
    assert_eq!(register_list(gw.register, "nope"), "");
    assert!(
        gw.log().contains("register: secret key mismatch"),
        "{}",
        gw.log()
    );
    assert!(register_list(gw.register, "s3cret").contains("broadcast_addresses"));
}

/// A gateway may announce only an address of its own host: a stranger pointing every worker at
/// another machine is refused.
#[test]
fn the_register_refuses_a_gateway_address_of_another_host() {
    use std::io::Read;
    let gw = Gatewire::start(Setup::default());
    let mut stranger = std::net::TcpStream::connect(gw.register).unwrap();
    stranger.set_read_timeout(Some(TIMEOUT)).unwrap();
    std::io::Write::write_all(
        &mut stranger,
        gatewire_proto::register::gateway_connect_line("10.9.9.9:2900", "").as_bytes(),
    )
    .unwrap();
    assert_eq!(stranger.read(&mut [0u8; 64]).unwrap_or(0), 0, "closed");
    let real = format!("127.0.0.1:{}", gw.start_port);
    eventually("the real gateway is listed", || {
        register_list(gw.register, "").contains(&real)
    });
    let list = register_list(gw.register, "");
    assert!(!list.contains("10.9.9.9"), "{list}");
}

/// A worker key claimed by a newcomer is taken over, as in GatewayWorker 4.0 (a restarted
/// worker's new link replaces the one its old process left half-open): the holder's link is
/// closed, logged with both addresses and counted, and events go to the newcomer.
#[test]
fn a_newcomer_takes_over_a_worker_key_and_the_holder_is_closed() {
    let gw = Gatewire::start(Setup {
        metrics: true,
        capture_log: true,
        ..Setup::default()
    });
    let mut first = TestWorker::connect(gw.inner(0), "Same:0", "");
    let _before = ws_connect(gw.public, "/");
    first.expect(Cmd::OnConnect);
    let mut second = TestWorker::connect(gw.inner(0), "Same:0", "");
    assert!(
        first.closed_within(Duration::from_secs(3)),
        "the holder's link is closed"
    );
    let (old, new) = (
        first.stream.local_addr().unwrap(),
        second.stream.local_addr().unwrap(),
    );
    let log = gw.log();
    assert!(
        log.contains(&old.to_string()) && log.contains(&new.to_string()),
        "logged with both addresses: {log}"
    );
    assert_eq!(gw.metric("gatewire_worker_key_takeovers_total"), 1);
    assert_eq!(gw.metric("gatewire_worker_links"), 1);
    // The newcomer gets the events, of a new client and of the holder's.
    let _after = ws_connect(gw.public, "/");
    second.expect(Cmd::OnConnect);
}

#[test]
fn without_a_worker_clients_wait_until_one_links() {
    let gw = Gatewire::start(Setup::default());
    let stream = std::net::TcpStream::connect(gw.public).unwrap();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    let url = format!("ws://{}/", gw.public);
    let client = std::thread::spawn(move || {
        tungstenite::client::client(url, tungstenite::stream::MaybeTlsStream::Plain(stream))
            .map(|_| ())
            .map_err(|e| e.to_string())
    });
    std::thread::sleep(Duration::from_millis(500));
    let mut w = gw.workers("Late", "").remove(0);
    // The waiting client is accepted once the worker links, and its handshake is answered.
    w.expect(Cmd::OnConnect);
    let data = w.expect(Cmd::OnWebSocketConnect);
    assert!(!data.body.is_empty());
    assert!(client.join().unwrap().is_ok(), "the handshake was answered");
}

#[test]
fn bad_clients_are_closed_alone() {
    let gw = Gatewire::start(Setup {
        extra: "max_message_size = 1000".into(),
        metrics: true,
        ..Setup::default()
    });
    let mut w = gw.workers("Bad", "").remove(0);
    let (mut good, idgood) = client(&gw, &mut w, "/");

    // An unmasked frame.
    let (mut bad, idbad) = client(&gw, &mut w, "/");
    {
        use std::io::Write;
        let stream = match bad.get_mut() {
            tungstenite::stream::MaybeTlsStream::Plain(s) => s,
            _ => unreachable!(),
        };
        stream.write_all(b"\x81\x02hi").unwrap();
    }
    assert_eq!(w.expect(Cmd::OnClose).header.connection_id, idbad);

    // An oversize message.
    let (mut big, idbig) = client(&gw, &mut w, "/");
    let _ = big.send(tungstenite::Message::text("x".repeat(5000)));
    assert_eq!(w.expect(Cmd::OnClose).header.connection_id, idbig);

    // A bad handshake is answered with 400 and closed.
    {
        use std::io::{Read, Write};
        let mut raw = std::net::TcpStream::connect(gw.public).unwrap();
        raw.set_read_timeout(Some(TIMEOUT)).unwrap();
        raw.write_all(b"POST / HTTP/1.1\r\n\r\n").unwrap();
        let mut answer = String::new();
        let _ = raw.read_to_string(&mut answer);
        assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
        raw = std::net::TcpStream::connect(gw.public).unwrap();
        raw.set_read_timeout(Some(TIMEOUT)).unwrap();
        raw.write_all(b"GET / HTTP/1.1\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 8\r\nSec-WebSocket-Key: x\r\n\r\n").unwrap();
        answer.clear();
        let _ = raw.read_to_string(&mut answer);
        assert!(answer.starts_with("HTTP/1.1 426"), "{answer}");
    }

    // The good client is unaffected.
    good.send(tungstenite::Message::text("still here")).unwrap();
    let m = w.expect(Cmd::OnMessage);
    assert_eq!(
        (m.header.connection_id, &m.body[..]),
        (idgood, &b"still here"[..])
    );
    w.command(Cmd::SendToOne, idgood, "", "yes");
    assert_eq!(ws_read(&mut good), "yes");
    let _ = &mut bad;

    // The counters moved: unmasked + oversize + 400 + 426 closed for bad input.
    assert_eq!(gw.metric("gatewire_closed_total{reason=\"bad_input\"}"), 4);
    assert_eq!(gw.metric("gatewire_connections"), 1);
    assert!(gw.metric("gatewire_messages_in_total") >= 1);
    assert_eq!(gw.metric("gatewire_worker_links"), 1);
}

#[test]
fn websocket_ping_is_answered_with_pong() {
    let gw = Gatewire::start(Setup::default());
    let mut w = gw.workers("Ping", "").remove(0);
    let (mut a, _) = client(&gw, &mut w, "/");
    a.send(tungstenite::Message::Ping(b"pp".to_vec().into()))
        .unwrap();
    loop {
        match a.next_message().unwrap() {
            tungstenite::Message::Pong(p) => {
                assert_eq!(&p[..], b"pp");
                break;
            }
            _ => continue,
        }
    }
}

#[test]
fn heartbeat_pings_silent_clients_and_drops_them() {
    let gw = Gatewire::start(Setup {
        extra: "ping_interval = 0.4\nping_not_response_limit = 1\nping_data = \"ping\"".into(),
        ..Setup::default()
    });
    let mut w = gw.workers("Beat", "").remove(0);
    let (mut silent, id) = client(&gw, &mut w, "/");
    let started = std::time::Instant::now();
    assert_eq!(ws_read(&mut silent), "ping");
    let close = w.expect(Cmd::OnClose);
    assert_eq!(close.header.connection_id, id);
    let elapsed = started.elapsed();
    // Dropped between (limit + 0.5) and (limit + 1) intervals after its last message.
    assert!(elapsed >= Duration::from_millis(500), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
}

#[test]
fn plain_get_serves_the_static_dir_or_404() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("index.html"), "<h1>chat</h1>").unwrap();
    let gw = Gatewire::start(Setup {
        extra: format!("static_dir = {:?}", dir.path().display().to_string()),
        ..Setup::default()
    });
    let _w = gw.workers("Static", "");
    let get = |path: &str| {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(gw.public).unwrap();
        s.set_read_timeout(Some(TIMEOUT)).unwrap();
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .unwrap();
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        answer
    };
    let page = get("/");
    assert!(page.starts_with("HTTP/1.1 200 OK"), "{page}");
    assert!(page.contains("text/html") && page.ends_with("<h1>chat</h1>"));
    assert!(get("/missing.js").starts_with("HTTP/1.1 404"));
    assert!(get("/../etc/passwd").starts_with("HTTP/1.1 404"));
}

/// GatewayWorker's rule: a gateway whose lan_ip is not exactly 127.0.0.1 pings its workers
/// (CMD_PING) every `worker_ping_interval`; on 127.0.0.1 it does not.
#[test]
fn workers_are_pinged_when_lan_ip_is_not_127_0_0_1() {
    let pinging = Gatewire::start(Setup {
        lan_ip: std::net::Ipv4Addr::new(127, 0, 0, 2),
        extra: "worker_ping_interval = 0.2".into(),
        ..Setup::default()
    });
    let mut w = pinging.workers("Pinged", "").remove(0);
    let p = w
        .try_next_any()
        .expect("a CMD_PING within the read timeout");
    assert_eq!(p.header.cmd, Cmd::Ping);

    let quiet = Gatewire::start(Setup {
        extra: "worker_ping_interval = 0.2".into(),
        ..Setup::default()
    });
    let mut w = quiet.workers("Quiet", "").remove(0);
    w.stream
        .set_read_timeout(Some(std::time::Duration::from_secs(1)))
        .unwrap();
    assert!(w.try_next_any().is_none(), "no ping on 127.0.0.1");
}

/// Idle clients are parked (task and stream dropped) and everything still works: output reaches
/// a parked client directly, a big output wakes it, input wakes it, a kick closes it after its
/// output, and a parked client that hangs up produces ON_CLOSE.
#[test]
fn parked_clients_keep_working() {
    let gw = Gatewire::start(Setup {
        extra: "park_after = 0.1\nsend_to_client_buffer_size = 67108864".into(),
        metrics: true,
        ..Setup::default()
    });
    let mut w = gw.workers("Parker", "").remove(0);
    let (mut a, a_id) = client(&gw, &mut w, "/");
    let (b, b_id) = client(&gw, &mut w, "/");
    let (mut d, d_id) = client(&gw, &mut w, "/");
    eventually("the clients parked", || {
        gw.metric("gatewire_parked_total") >= 3
    });

    // A destroyed parked client's socket is closed at once.
    w.command(Cmd::Destroy, d_id, "", "");
    assert!(
        d.next_message().is_err(),
        "the destroyed client's connection ends"
    );
    assert_eq!(connection_id(&w.expect(Cmd::OnClose)), d_id);

    // Output to a parked client is written straight from the shard.
    w.command(Cmd::SendToOne, a_id, "", "while parked");
    assert_eq!(ws_read(&mut a), "while parked");

    // More than the socket buffers hold: the client gets a task to write the rest, and parks
    // again once idle.
    // The burst must outgrow what the sockets hold: loopback receive buffers autotune up to
    // tcp_rmem's maximum (32 MiB on some hosts), which swallowed all 16 MiB about one run in
    // five and left nothing for the unpark path. A fixed small receive buffer keeps it full.
    if let MaybeTlsStream::Plain(stream) = a.get_ref() {
        socket2::SockRef::from(stream)
            .set_recv_buffer_size(128 * 1024)
            .unwrap();
    }
    let parked = gw.metric("gatewire_parked_total");
    let big = "x".repeat(64 * 1024);
    for _ in 0..256 {
        w.command(Cmd::SendToOne, a_id, "", &big);
    }
    for _ in 0..256 {
        assert_eq!(ws_read(&mut a).len(), big.len());
    }
    // Metrics are published by the shard on a timer: under load the count may come a
    // publication later.
    eventually("a unparked", || gw.metric("gatewire_unparked_total") >= 1);
    eventually("a parked again", || {
        gw.metric("gatewire_parked_total") > parked
    });

    // Input wakes a parked client; its messages reach the worker in order.
    let unparked = gw.metric("gatewire_unparked_total");
    let parked = gw.metric("gatewire_parked_total");
    a.send(tungstenite::Message::text("one")).unwrap();
    a.send(tungstenite::Message::text("two")).unwrap();
    assert_eq!(&w.expect(Cmd::OnMessage).body[..], b"one");
    assert_eq!(&w.expect(Cmd::OnMessage).body[..], b"two");
    assert!(gw.metric("gatewire_unparked_total") > unparked);

    // A kick of a parked client: its queued output first, then the close.
    eventually("a parked once more", || {
        gw.metric("gatewire_parked_total") > parked
    });
    w.command(Cmd::SendToOne, a_id, "", "last words");
    w.command(Cmd::Kick, a_id, "", "");
    assert_eq!(ws_read(&mut a), "last words");
    // (the kick's empty body arrives as an empty message, as in GatewayWorker)
    loop {
        match a.next_message() {
            Ok(tungstenite::Message::Text(t)) if t.is_empty() => continue,
            Err(_) | Ok(tungstenite::Message::Close(_)) => break,
            other => panic!("closed after the kick, got {other:?}"),
        }
    }
    assert_eq!(
        connection_id(&w.expect(Cmd::OnClose)),
        a_id,
        "ON_CLOSE for the kicked client"
    );

    // A parked client that hangs up.
    drop(b);
    assert_eq!(connection_id(&w.expect(Cmd::OnClose)), b_id);
}

/// Group lists come back in creation order, as PHP's arrays keep them (order-dependent PHP code
/// saw hash order before).
#[test]
fn group_id_lists_keep_creation_order() {
    let gw = Gatewire::start(Setup::default());
    let mut w = gw.workers("Order", "").remove(0);
    let (_a, id) = client(&gw, &mut w, "/");
    let names = [
        "zeta", "alpha", "k9", "beta", "omega", "a", "room-7", "m", "x1", "gamma",
    ];
    for g in names {
        w.command(Cmd::JoinGroup, id, g, "");
    }
    let expected = format!(
        "a:{}:{{{}}}",
        names.len(),
        names
            .iter()
            .enumerate()
            .map(|(i, g)| format!("i:{i};s:{}:\"{g}\";", g.len()))
            .collect::<String>()
    );
    eventually("every group joined", || {
        query_text(gw.inner(0), Cmd::GetGroupIdList, 0, "").starts_with("a:10:")
    });
    assert_eq!(
        query_text(gw.inner(0), Cmd::GetGroupIdList, 0, ""),
        expected
    );
}

/// A worker too busy to read its link for a while (its receive window closed) is slow, not
/// dead: its link stays, and every event queued meanwhile reaches it once it reads again. (The
/// kernel's TCP_USER_TIMEOUT, which the link timeout once used, aborts a connection whose window
/// stays closed that long: a million clients connecting at 22,000/s starved the one worker
/// thread of a 2-core box, and every shard dropped its worker link and refused clients.)
#[test]
fn a_worker_that_stops_reading_for_a_while_keeps_its_link() {
    let gw = Gatewire::start(Setup {
        extra: "link_timeout = 1".into(),
        metrics: true,
        ..Setup::default()
    });
    let inner = gw.inner(0);
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    // A small receive buffer: the window closes after a few events.
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(&inner.into()).unwrap();
    let mut worker = TestWorker::over(socket.into(), inner, "Slow:0", "");
    let (mut ws, _) = client(&gw, &mut worker, "/");

    // The worker reads nothing while a client sends 4 MB: its window closes, the gateway's
    // socket fills, the rest waits in the link's queue (under send_to_worker_buffer_size).
    let message = "x".repeat(1000);
    let sent = 4000;
    for _ in 0..sent {
        ws.send(tungstenite::Message::text(message.clone()))
            .unwrap();
    }
    ws.flush().unwrap();
    std::thread::sleep(Duration::from_secs(4));

    let mut received = 0;
    while received < sent {
        match worker.try_next() {
            Some(p) if p.header.cmd == Cmd::OnMessage => received += 1,
            Some(_) => {}
            None => panic!("the link closed after {received} of {sent} messages"),
        }
    }
    assert_eq!(gw.metric("gatewire_worker_buffer_drops_total"), 0);
}
