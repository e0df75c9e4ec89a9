//! Hostile peers and careless operators: every buffer a peer can fill is bounded, and what the
//! gateway refuses is counted, never lost silently. Memory checks compare the gateway process's
//! RSS before and after (a ratio of what the attack would cost unbounded, not an absolute).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;
use gatewire_proto::{Cmd, Header, Packet};

const MIB: u64 = 1 << 20;

/// A masked client frame header announcing `len` payload bytes (no payload follows).
fn announcing_header(len: u64) -> Vec<u8> {
    let mut header = vec![0x82, 0x80 | 127];
    header.extend_from_slice(&len.to_be_bytes());
    header.extend_from_slice(&[1, 2, 3, 4]);
    header
}

/// `n` connections to shard 0's inner port, each announcing a 10 MiB packet and sending none of
/// it (before any hello).
fn strangers_announcing_10_mib(gw: &Gatewire, n: usize) -> Vec<TcpStream> {
    (0..n)
        .map(|_| {
            let mut s = TcpStream::connect(gw.inner(0)).unwrap();
            let mut head = (10 * MIB as u32).to_be_bytes().to_vec();
            head.extend_from_slice(&[0; 24]);
            s.write_all(&head).unwrap();
            s
        })
        .collect()
}

/// Reads and discards a worker's events on a thread, so its link never backs up.
fn drain_events(mut worker: TestWorker) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || while worker.try_next_any().is_some() {})
}

#[test]
fn announced_sizes_reserve_nothing_on_client_or_inner_ports() {
    let gw = Gatewire::start(Setup {
        secret: "k",
        extra: "max_message_size = 16777216".into(),
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
    let mut strangers = strangers_announcing_10_mib(&gw, 200);
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

#[test]
fn without_a_secret_inner_links_are_bounded_before_their_hello_and_closed_when_silent() {
    let gw = Gatewire::start(Setup {
        metrics: true,
        ..Setup::default()
    });
    // An oversized first packet is refused at its header, secret or not.
    let mut strangers = strangers_announcing_10_mib(&gw, 100);
    for s in &mut strangers {
        assert!(
            closed_within(s, Duration::from_secs(2)),
            "an oversized packet before a hello closes the link"
        );
    }
    // Connections that say nothing are closed after the hello timeout (5 s).
    let mut silent: Vec<TcpStream> = (0..300)
        .map(|_| TcpStream::connect(gw.inner(0)).unwrap())
        .collect();
    let opened = Instant::now();
    for s in &mut silent {
        let left = Duration::from_secs(8).saturating_sub(opened.elapsed());
        assert!(closed_within(s, left), "a silent inner link is closed");
    }
    assert!(
        opened.elapsed() >= Duration::from_secs(4),
        "not before the timeout"
    );
    assert_eq!(
        gw.metric("gatewire_limit_hits_total{limit=\"inner_hello_timeout\"}"),
        300
    );
    // PHP's GatewayClient sends no hello without a secret: its commands still work.
    assert_eq!(
        query_text(gw.inner(0), Cmd::GetGroupIdList, 0, ""),
        "a:0:{}"
    );
}

/// Writes `n` bytes of masked payload (zeros masked with 1,2,3,4) in 64 KiB writes.
fn write_payload(stream: &mut TcpStream, n: u64) -> std::io::Result<()> {
    let chunk = vec![0u8; 64 * 1024];
    let mut left = n;
    while left > 0 {
        let now = left.min(chunk.len() as u64) as usize;
        stream.write_all(&chunk[..now])?;
        left -= now as u64;
    }
    Ok(())
}

#[test]
fn half_received_messages_stay_within_the_shards_budget_and_memory_returns() {
    let gw = Gatewire::start(Setup {
        metrics: true,
        extra: "max_pending_input_bytes = 67108864".into(),
        ..Setup::default()
    });
    let _events = drain_events(gw.workers("Halves", "").remove(0));
    let pid = gw.role_pid("gateway");
    let warm: Vec<TcpStream> = (0..10).map(|_| raw_websocket(&gw)).collect();
    std::thread::sleep(Duration::from_millis(300));
    let before = rss_bytes(pid);

    // 50 clients each send 9 MiB of a 10 MiB message and stop.
    let mut writers = Vec::new();
    for _ in 0..50 {
        let mut c = raw_websocket(&gw);
        writers.push(std::thread::spawn(move || {
            c.write_all(&announcing_header(10 * MIB - 16)).unwrap();
            let _ = write_payload(&mut c, 9 * MIB);
            c
        }));
    }
    let mut clients: Vec<TcpStream> = writers.into_iter().map(|w| w.join().unwrap()).collect();
    // What the refused clients held goes back on the shard's next publishing tick.
    std::thread::sleep(Duration::from_secs(1));
    let grown = rss_bytes(pid).saturating_sub(before);
    assert!(
        // The budget, plus up to a quarter of it in the spare room of growing buffers (backed
        // by pages the refused clients gave up), plus the rest of the process.
        grown < (64 + 16 + 12) * MIB,
        "the gateway grew by {} MiB holding half-received messages (budget 64 MiB)",
        grown >> 20
    );
    let refused = gw.metric("gatewire_limit_hits_total{limit=\"pending_input\"}");
    assert!(refused >= 40, "only {refused} clients closed at the budget");
    let mut closed = 0;
    for c in &mut clients {
        if closed_within(c, Duration::from_millis(100)) {
            closed += 1;
        }
    }
    assert_eq!(closed as u64, refused, "each refused client was closed");

    // Once they are gone, the memory goes back.
    drop(clients);
    std::thread::sleep(Duration::from_secs(3));
    let after = rss_bytes(pid).saturating_sub(before);
    assert!(
        after < 16 * MIB,
        "{} MiB still held 3 s after the clients closed",
        after >> 20
    );
    drop(warm);
}

#[test]
fn a_message_not_finished_in_time_closes_its_client() {
    let gw = Gatewire::start(Setup {
        metrics: true,
        extra: "message_timeout = 2".into(),
        ..Setup::default()
    });
    let _events = drain_events(gw.workers("Slow", "").remove(0));
    let mut slow = raw_websocket(&gw);
    slow.write_all(&announcing_header(1000)).unwrap();
    slow.write_all(&[0u8; 10]).unwrap();
    let started = Instant::now();
    assert!(closed_within(&mut slow, Duration::from_secs(5)), "closed");
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "not before the timeout"
    );
    assert_eq!(
        gw.metric("gatewire_limit_hits_total{limit=\"message_timeout\"}"),
        1
    );
}

#[test]
fn a_message_larger_than_its_worker_accepts_closes_the_client_visibly() {
    // The gateway host accepts 16 MiB messages; the worker host runs from its own config, with
    // the default bounds (packets up to 10 MiB + 64 KiB).
    let gw = Gatewire::start(Setup {
        metrics: true,
        extra: "max_message_size = 16777216".into(),
        ..Setup::default()
    });
    let _worker = Gatewire::start(Setup {
        roles: "worker",
        register_port: Some(gw.register.port()),
        app: "echo",
        ..Setup::default()
    });
    let mut ws = ws_connect_when_served(gw.public, "/");
    let fits = "a".repeat(500_000);
    ws.send(tungstenite::Message::text(fits.clone())).unwrap();
    assert_eq!(
        ws_read(&mut ws),
        fits,
        "a message the worker accepts is served"
    );
    ws.send(tungstenite::Message::text("b".repeat(11 << 20)))
        .unwrap();
    let code = loop {
        match ws.next_message() {
            Ok(tungstenite::Message::Close(frame)) => break frame.map(|f| u16::from(f.code)),
            Ok(_) => continue,
            Err(e) => panic!("no close frame: {e}"),
        }
    };
    assert_eq!(code, Some(1009), "refused as too big, not lost silently");
    assert_eq!(
        gw.metric("gatewire_limit_hits_total{limit=\"worker_packet\"}"),
        1
    );
    // The worker kept its link: the next client is served.
    let mut next = ws_connect_when_served(gw.public, "/");
    next.send(tungstenite::Message::text("still linked"))
        .unwrap();
    assert_eq!(ws_read(&mut next), "still linked");
}

/// Opens a raw WebSocket handshake on `gw`'s public port and returns the response's status line
/// (empty when the connection closed without one).
fn handshake_status(gw: &Gatewire) -> (TcpStream, String) {
    let mut stream = TcpStream::connect(gw.public).unwrap();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    let _ = stream.write_all(
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    );
    let mut response = Vec::new();
    let mut byte = [0u8; 1];
    while !response.ends_with(b"\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => response.push(byte[0]),
            _ => break,
        }
    }
    (stream, String::from_utf8_lossy(&response).trim().to_owned())
}

#[test]
fn over_max_connections_a_client_gets_503_and_the_next_is_served_once_room_is_made() {
    let gw = Gatewire::start(Setup {
        metrics: true,
        extra: "max_connections = 20".into(),
        ..Setup::default()
    });
    let _events = drain_events(gw.workers("Cap", "").remove(0));
    let mut held: Vec<TcpStream> = (0..20).map(|_| raw_websocket(&gw)).collect();
    let (_refused, status) = handshake_status(&gw);
    assert!(status.starts_with("HTTP/1.1 503"), "got {status:?}");
    assert_eq!(
        gw.metric("gatewire_limit_hits_total{limit=\"max_connections\"}"),
        1
    );
    drop(held.pop());
    eventually("a place is free again", || {
        handshake_status(&gw).1.starts_with("HTTP/1.1 101")
    });
}

#[test]
fn with_few_descriptors_the_gateway_refuses_cleanly_or_backs_off() {
    // Auto (max_connections = 0): the shard keeps what its descriptor table allows, less a
    // reserve, and refuses the rest with a 503 instead of running out.
    let auto = Gatewire::start(Setup {
        metrics: true,
        nofile: Some(400),
        ..Setup::default()
    });
    let _events = drain_events(auto.workers("Fds", "").remove(0));
    let mut statuses = std::collections::HashMap::new();
    let mut held = Vec::new();
    for _ in 0..300 {
        let (stream, status) = handshake_status(&auto);
        *statuses
            .entry(status[..12.min(status.len())].to_owned())
            .or_insert(0) += 1;
        held.push(stream);
    }
    assert_eq!(statuses.get("HTTP/1.1 101"), Some(&144), "{statuses:?}");
    assert_eq!(statuses.get("HTTP/1.1 503"), Some(&156), "{statuses:?}");
    assert_eq!(
        auto.metric("gatewire_limit_hits_total{limit=\"accept_no_fd\"}"),
        0
    );
    drop(held);

    // A cap above what the descriptors allow: accepts fail, and the shard backs off instead of
    // spinning on its listener.
    let over = Gatewire::start(Setup {
        metrics: true,
        nofile: Some(400),
        extra: "max_connections = 1000".into(),
        ..Setup::default()
    });
    let _events = drain_events(over.workers("Fds", "").remove(0));
    let pid = over.role_pid("gateway");
    let held: Vec<TcpStream> = (0..600)
        .map(|_| TcpStream::connect(over.public).unwrap())
        .collect();
    std::thread::sleep(Duration::from_secs(1));
    let cpu = common::process::cpu_seconds(pid);
    std::thread::sleep(Duration::from_secs(3));
    let busy = common::process::cpu_seconds(pid) - cpu;
    assert!(
        busy < 0.5,
        "the gateway spun {busy:.2} s of CPU in 3 s without descriptors"
    );
    assert!(over.metric("gatewire_limit_hits_total{limit=\"accept_no_fd\"}") > 0);
    drop(held);
}

/// Sends SIGCONT to a process this test stopped, when dropped (also when the test fails).
struct Stopped(u32);

impl Stopped {
    fn stop(pid: u32) -> Stopped {
        // SAFETY: signalling a worker process this test started.
        unsafe { libc::kill(pid as i32, libc::SIGSTOP) };
        Stopped(pid)
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        // SAFETY: as above.
        unsafe { libc::kill(self.0 as i32, libc::SIGCONT) };
    }
}

#[test]
fn with_worker_stall_timeout_a_stopped_workers_clients_move_to_a_live_one() {
    let gw = Gatewire::start(Setup {
        metrics: true,
        extra: "worker_stall_timeout = 1".into(),
        ..Setup::default()
    });
    let worker = |name: &str| {
        Gatewire::start(Setup {
            roles: "worker",
            register_port: Some(gw.register.port()),
            app: "echo",
            worker_extra: format!("name = \"{name}\""),
            ..Setup::default()
        })
    };
    let (a, _b) = (worker("A"), worker("B"));
    eventually("both workers linked", || {
        gw.metric("gatewire_worker_links") == 2
    });
    let mut clients: Vec<Ws> = (0..10)
        .map(|_| ws_connect_when_served(gw.public, "/"))
        .collect();
    for ws in &mut clients {
        ws.send(tungstenite::Message::text("hi")).unwrap();
        assert_eq!(ws_read(ws), "hi");
    }
    let _stopped = Stopped::stop(a.role_pid("worker"));
    std::thread::sleep(Duration::from_secs(2));
    for ws in &mut clients {
        ws.send(tungstenite::Message::text("again")).unwrap();
        assert_eq!(
            ws_read(ws),
            "again",
            "every client is served while A is stopped"
        );
    }
    assert_eq!(
        gw.metric("gatewire_limit_hits_total{limit=\"worker_stall\"}"),
        1
    );
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

/// Sends masked pings with 125-byte payloads as fast as the socket takes them, for `duration`,
/// never reading. Returns the bytes written.
fn ping_flood(stream: &mut TcpStream, duration: Duration) -> u64 {
    let mut ping = vec![0x89, 0x80 | 125, 9, 8, 7, 6];
    ping.extend_from_slice(&[b'p'; 125]);
    let burst: Vec<u8> = ping
        .iter()
        .copied()
        .cycle()
        .take(ping.len() * 500)
        .collect();
    stream
        .set_write_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let deadline = Instant::now() + duration;
    let mut written = 0;
    while Instant::now() < deadline {
        match stream.write(&burst) {
            Ok(n) => written += n as u64,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => panic!("the gateway closed the flooding client: {e}"),
        }
    }
    written
}

#[test]
fn a_ping_flood_from_a_client_that_never_reads_stays_bounded() {
    let gw = Gatewire::start(Setup::default());
    let _events = drain_events(gw.workers("Pings", "").remove(0));
    let pid = gw.role_pid("gateway");
    let mut flooder = raw_websocket(&gw);
    let before = rss_bytes(pid);
    let written = ping_flood(&mut flooder, Duration::from_secs(3));
    let grown = rss_bytes(pid).saturating_sub(before);
    eprintln!(
        "ping flood: {} KiB written, gateway grew {} KiB",
        written / 1024,
        grown / 1024
    );
    // Unbounded, every ping became a queued pong (hundreds of MB a second); bounded, the pongs
    // stop at the 1 MiB output cap and the gateway stops reading the client.
    assert!(
        grown < 24 * MIB,
        "gateway grew by {} KiB while a client sent {} KiB of pings",
        grown / 1024,
        written / 1024
    );
    // Another client is served meanwhile, and the flooder still gets a pong once it reads.
    let mut other = ws_connect(gw.public, "/");
    other
        .send(tungstenite::Message::Ping(vec![1, 2, 3].into()))
        .unwrap();
    loop {
        match other.next_message().unwrap() {
            tungstenite::Message::Pong(p) => break assert_eq!(&p[..], &[1, 2, 3]),
            _ => continue,
        }
    }
    assert!(
        written > MIB,
        "the flood ran ({} KiB written)",
        written / 1024
    );
}

#[test]
fn half_open_handshakes_are_closed_after_the_handshake_timeout() {
    let gw = Gatewire::start(Setup {
        extra: "handshake_timeout = 1".into(),
        metrics: true,
        ..Setup::default()
    });
    let _events = drain_events(gw.workers("Handshakes", "").remove(0));
    let mut upgraded = ws_connect(gw.public, "/");
    // 1,000 connections that never finish their upgrade request (half of them send a part).
    let mut half_open: Vec<TcpStream> = (0..1000)
        .map(|i| {
            let mut s = TcpStream::connect(gw.public).unwrap();
            if i % 2 == 0 {
                s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap();
            }
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    for s in &mut half_open {
        assert!(
            closed_within(s, Duration::from_secs(2)),
            "a half-open handshake stays open"
        );
    }
    assert_eq!(
        gw.metric("gatewire_limit_hits_total{limit=\"handshake_timeout\"}"),
        1000
    );
    // A client past its handshake is not affected.
    upgraded
        .send(tungstenite::Message::Ping(vec![7].into()))
        .unwrap();
    assert!(matches!(
        upgraded.next_message().unwrap(),
        tungstenite::Message::Pong(_)
    ));
}

/// `gatewire config check` on `config`: exit code and stderr.
fn config_check(config: &str) -> (Option<i32>, String) {
    let out = gatewire_with(config, &["config", "check", "-c", "gatewire.toml"]);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `gatewire ARGS` run in a fresh directory holding `config` as gatewire.toml.
fn gatewire_with(config: &str, args: &[&str]) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("gatewire.toml"), config).unwrap();
    std::process::Command::new(env!("CARGO_BIN_EXE_gatewire"))
        .args(args)
        .current_dir(dir.path())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn message_and_packet_sizes_must_agree() {
    // A message bound the inner packets cannot carry is refused, naming both keys.
    let (code, err) =
        config_check("[gateway]\nmax_message_size = 16777216\nmax_packet_size = 16777216\n");
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("gateway.max_message_size") && err.contains("gateway.max_packet_size"),
        "{err}"
    );
    let (code, err) = config_check(
        "[gateway]\nmax_message_size = 16777216\n[worker]\nmax_packet_size = 1000000\n",
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("worker.max_packet_size"), "{err}");
    // Raising the message bound alone raises the unset packet bounds with it.
    let (code, err) = config_check("[gateway]\nmax_message_size = 16777216\n");
    assert_eq!(code, Some(0), "{err}");
}

#[test]
fn a_gateway_client_that_never_reads_its_replies_is_closed_at_the_cap() {
    let gw = Gatewire::start(Setup {
        metrics: true,
        ..Setup::default()
    });
    let mut w = gw.workers("Replies", "").remove(0);
    let _client = raw_websocket(&gw);
    let id = w.expect(Cmd::OnConnect).header.connection_id;
    // A 1 MiB session makes every GET_ALL_CLIENT_SESSIONS reply about 1 MiB.
    let big = "z".repeat(1 << 20);
    let session = format!("a:1:{{s:1:\"k\";s:{}:\"{big}\";}}", big.len());
    w.command(Cmd::SetSession, id, &session, "");
    eventually("the session is stored", || {
        query(gw.inner(0), "", Cmd::GetAllClientSessions, 0, "").len() > 1 << 20
    });
    let _events = drain_events(w);

    let pid = gw.role_pid("gateway");
    let before = rss_bytes(pid);
    let mut asker = TcpStream::connect(gw.inner(0)).unwrap();
    let ask = Packet::new(Header::command(Cmd::GetAllClientSessions), "", "")
        .to_bytes()
        .unwrap();
    for _ in 0..60 {
        asker.write_all(&ask).unwrap();
    }
    std::thread::sleep(Duration::from_millis(500));
    let grown = rss_bytes(pid).saturating_sub(before);
    // 60 unread replies are 60 MiB; the cap (send_to_worker_buffer_size, 10 MB) closes the link.
    assert!(grown < 30 * MIB, "gateway grew by {} MiB", grown / MIB);
    assert!(
        closed_within(&mut asker, TIMEOUT),
        "the link is closed at the cap"
    );
    assert_eq!(
        gw.metric("gatewire_limit_hits_total{limit=\"inner_reply\"}"),
        1
    );
}

/// A worker with the wrong secret: both sides say so, naming the other, and the worker's retries
/// back off (1 s, 2 s, 4 s…) instead of knocking every second.
#[test]
fn a_wrong_secret_is_logged_on_both_sides_and_retried_with_backoff() {
    let gw = Gatewire::start(Setup {
        secret: "s3cret",
        metrics: true,
        capture_log: true,
        ..Setup::default()
    });
    let log = gw.path("worker.log");
    let config = gw.path("worker.toml");
    std::fs::write(
        &config,
        format!(
            "[run]\ndir = \"worker-run\"\n[worker]\ncount = 1\nregister_address = \"{}\"\n\
             secret_key = \"nope\"\n",
            gw.register
        ),
    )
    .unwrap();
    let mut worker = std::process::Command::new(env!("CARGO_BIN_EXE_gatewire"))
        .args(["start", "--single-process", "--role", "worker", "-c"])
        .arg(&config)
        .current_dir(gw.dir.path())
        .env("GATEWIRE_LOG", "warn")
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(4500));
    let attempts = gw.metric("gatewire_register_refused_total");
    let _ = worker.kill();
    let _ = worker.wait();
    let worker_log = std::fs::read_to_string(&log).unwrap();
    assert!(
        worker_log.contains(&format!("register {} closed the connection", gw.register))
            && worker_log.contains("secret_key"),
        "{worker_log}"
    );
    assert!(
        gw.log().contains("register: secret key mismatch") && gw.log().contains("from 127.0.0.1:"),
        "{}",
        gw.log()
    );
    // Attempts at 0, 1 and 3 s (then 7 s): three in 4.5 s; every second would be five.
    assert!((2..=3).contains(&attempts), "{attempts} attempts in 4.5 s");
}

/// `gatewire start` with `config`, expected to refuse before binding anything.
fn refused_start(config: &str) -> (Option<i32>, String) {
    let out = gatewire_with(config, &["start", "-c", "gatewire.toml"]);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_cluster_port_reachable_from_other_hosts_needs_a_secret() {
    let (code, err) =
        refused_start("[run]\nroles = [\"register\"]\n[register]\nlisten = \"0.0.0.0:0\"\n");
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("register.secret_key") && err.contains("allow_insecure"),
        "{err}"
    );
    let (code, err) = refused_start(
        "[run]\nroles = [\"gateway\"]\n[gateway]\nlan_ip = \"10.1.2.3\"\nlisten = \"websocket://127.0.0.1:0\"\n",
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("gateway.secret_key") && err.contains("10.1.2.3"),
        "{err}"
    );
    // With a secret (or run.allow_insecure) the check passes: config check shows it masked.
    let (code, err) =
        config_check("[register]\nlisten = \"0.0.0.0:1236\"\nsecret_key = \"hunter2\"\n");
    assert_eq!(code, Some(0), "{err}");
}

#[test]
fn config_check_masks_secrets() {
    let out = gatewire_with(
        "[gateway]\nsecret_key = \"hunter2\"\n",
        &["config", "check", "-c", "gatewire.toml"],
    );
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(
        !shown.contains("hunter2") && shown.contains("********"),
        "{shown}"
    );
}

/// A second deployment on the same public port is refused, naming the port and the process that
/// holds it (with SO_REUSEPORT it would silently take half of the first one's clients).
#[test]
fn a_second_gateway_on_a_taken_public_port_is_refused() {
    let first = Gatewire::start(Setup::default());
    let holder = first.role_pid("gateway");
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "[run]\nroles = [\"gateway\"]\ndir = \"run\"\n[gateway]\nlisten = \"websocket://{}\"\nstart_port = {}\n\
         shards = 1\nregister_address = \"127.0.0.1:{}\"\n",
        first.public,
        free_port(),
        free_port()
    );
    std::fs::write(dir.path().join("gatewire.toml"), config).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gatewire"))
        .args(["start", "-c", "gatewire.toml"])
        .current_dir(dir.path())
        .env("GATEWIRE_LOG", "error")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&first.public.to_string()) && err.contains(&format!("process {holder}")),
        "{err}"
    );
}

/// A gateway that workers could not reach is refused at start, saying what to set: a `lan_ip`
/// that is not this host's, or loopback while the register is on another host.
#[test]
fn a_gateway_lan_ip_workers_cannot_reach_is_refused() {
    let (code, err) = refused_start(
        "[run]\nroles = [\"gateway\"]\n[gateway]\nlan_ip = \"10.1.2.3\"\nsecret_key = \"k\"\n\
         listen = \"websocket://127.0.0.1:0\"\n",
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("gateway.lan_ip is 10.1.2.3, which is not an address of this host"),
        "{err}"
    );
    // (A loopback lan_ip with a remote register is checked without starting anything: a
    // start that got past the check would dial that address. See config's unit tests.)
}
