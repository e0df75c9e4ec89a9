//! The BusinessWorker runtime and the built-in apps, end to end: register, gateway and worker
//! roles in one `gatewire` process, WebSocket clients outside.

mod common;

use common::*;

fn all_roles(app: &'static str, shards: u16) -> Gatewire {
    Gatewire::start(Setup {
        roles: "register,gateway,worker",
        app,
        shards,
        ..Setup::default()
    })
}

#[test]
fn echo_app_answers_every_message_text_and_binary() {
    let gw = all_roles("echo", 2);
    let mut ws = ws_connect_when_served(gw.public, "/");
    ws.send(tungstenite::Message::text("ping 1")).unwrap();
    assert_eq!(ws_read(&mut ws), "ping 1");
    ws.send(tungstenite::Message::binary(vec![0u8, 255, 7]))
        .unwrap();
    loop {
        match ws.next_message().unwrap() {
            tungstenite::Message::Binary(b) => {
                assert_eq!(&b[..], &[0u8, 255, 7]);
                break;
            }
            tungstenite::Message::Text(t) => panic!("binary came back as text {t:?}"),
            _ => continue,
        }
    }
}

#[test]
fn broadcast_app_reaches_clients_on_every_shard() {
    let gw = all_roles("broadcast", 2);
    let mut clients: Vec<Ws> = (0..6)
        .map(|_| ws_connect_when_served(gw.public, "/"))
        .collect();
    // Every worker links to both shards before the broadcast: clients were accepted, so each
    // shard had a worker; wait a moment for both links of the (single) worker thread.
    std::thread::sleep(std::time::Duration::from_millis(300));
    clients[0]
        .send(tungstenite::Message::text("to all"))
        .unwrap();
    for ws in &mut clients {
        assert_eq!(ws_read(ws), "to all");
    }
}

/// One client's binary message reaches every client as a binary frame: as a text frame its bytes
/// (not UTF-8) make every conforming client close with 1007, so one client disconnected all.
#[test]
fn broadcast_app_keeps_binary_messages_binary() {
    let gw = all_roles("broadcast", 2);
    let mut clients: Vec<Ws> = (0..4)
        .map(|_| ws_connect_when_served(gw.public, "/"))
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let bytes = vec![0xffu8, 0x00, 0xfe, 0x80];
    clients[0]
        .send(tungstenite::Message::binary(bytes.clone()))
        .unwrap();
    for ws in &mut clients {
        // tungstenite validates text frames: invalid UTF-8 would be an error here.
        match ws.next_message().expect("a valid frame") {
            tungstenite::Message::Binary(b) => assert_eq!(&b[..], &bytes[..]),
            other => panic!("expected a binary frame, got {other:?}"),
        }
    }
    clients[1]
        .send(tungstenite::Message::text("still text"))
        .unwrap();
    for ws in &mut clients {
        assert!(
            matches!(ws.next_message().unwrap(), tungstenite::Message::Text(t) if t == "still text")
        );
    }
}

/// The client id from the chat's "Hello <id>" greeting, and the "You are …" line after it.
fn greeting(ws: &mut Ws) -> (String, String) {
    let hello = ws_read(ws);
    assert!(hello.starts_with("Hello "), "{hello}");
    let you = ws_read(ws);
    assert!(you.starts_with("You are "), "{you}");
    (hello.trim_start_matches("Hello ").to_owned(), you)
}

fn say(ws: &mut Ws, text: &str) {
    ws.send(tungstenite::Message::text(text)).unwrap();
}

/// Reads lines until one starting with `prefix` (the user list, sent after a join once every
/// gateway answered, may come before or after other lines): returns it and the lines before it.
fn read_until(ws: &mut Ws, prefix: &str) -> (String, Vec<String>) {
    let mut before = Vec::new();
    loop {
        let line = ws_read(ws);
        if line.starts_with(prefix) {
            return (line, before);
        }
        before.push(line);
    }
}

/// Nothing arrives for a moment.
fn quiet(ws: &mut Ws) {
    if let tungstenite::stream::MaybeTlsStream::Plain(s) = ws.get_mut() {
        s.set_read_timeout(Some(std::time::Duration::from_millis(400)))
            .unwrap();
    }
    match ws.next_message() {
        Err(tungstenite::Error::Io(e))
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) => {}
        other => panic!("expected nothing, got {other:?}"),
    }
    if let tungstenite::stream::MaybeTlsStream::Plain(s) = ws.get_mut() {
        s.set_read_timeout(Some(TIMEOUT)).unwrap();
    }
}

#[test]
fn chat_app_rooms_presence_names_whispers_and_errors() {
    use std::io::{Read, Write};
    let gw = all_roles("chat", 2);
    // The page remembers a name and a room and connects with them.
    let mut alice = ws_connect_when_served(gw.public, "/?name=alice&room=r1");
    let (_, you) = greeting(&mut alice);
    assert!(you.starts_with("You are alice in r1."), "{you}");
    assert_eq!(ws_read(&mut alice), "* alice joined r1");
    assert_eq!(ws_read(&mut alice), "* in r1: alice");

    // A page load, a favicon request and a bare TCP connect are not users: nothing is told.
    for request in [
        "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET /favicon.ico HTTP/1.1\r\nHost: x\r\n\r\n",
        "",
    ] {
        let mut s = std::net::TcpStream::connect(gw.public).unwrap();
        s.set_read_timeout(Some(TIMEOUT)).unwrap();
        s.write_all(request.as_bytes()).unwrap();
        if !request.is_empty() {
            let mut answer = Vec::new();
            let _ = s.read_to_end(&mut answer);
        }
    }
    quiet(&mut alice);

    // A client without a remembered name is a guest in the lobby.
    let mut bob = ws_connect_when_served(gw.public, "/");
    let (_, you) = greeting(&mut bob);
    let guest = you
        .strip_prefix("You are ")
        .and_then(|rest| rest.split_once(' '))
        .map(|(name, _)| name.to_owned())
        .unwrap();
    assert!(guest.starts_with("guest-"), "{you}");
    assert_eq!(
        you,
        format!("You are {guest} in lobby. Commands: /nick NAME, /join ROOM, /msg NAME TEXT, /who")
    );
    assert_eq!(ws_read(&mut bob), format!("* {guest} joined lobby"));
    assert_eq!(ws_read(&mut bob), format!("* in lobby: {guest}"));
    quiet(&mut alice);

    // A room switch: the lobby hears the leave, the room the join (by name), the joiner the list.
    say(&mut bob, "/nick bob");
    assert_eq!(ws_read(&mut bob), "You are now bob");
    assert_eq!(ws_read(&mut bob), format!("* {guest} is now bob"));
    say(&mut bob, "/join r1");
    assert_eq!(ws_read(&mut bob), "You joined r1");
    let (list, before) = read_until(&mut bob, "* in r1: ");
    assert_eq!(list, "* in r1: alice, bob");
    assert!(before.iter().all(|l| l == "* bob joined r1"), "{before:?}");
    assert_eq!(ws_read(&mut alice), "* bob joined r1");

    // Room talk stays in the room; whispers go by name; the user list on demand.
    say(&mut alice, "hello bob");
    assert_eq!(ws_read(&mut bob), "alice said hello bob");
    assert_eq!(ws_read(&mut alice), "alice said hello bob");
    say(&mut bob, "/msg alice psst");
    assert_eq!(ws_read(&mut alice), "bob whispers psst");
    assert_eq!(ws_read(&mut bob), "You whisper to alice: psst");
    say(&mut bob, "/who");
    assert_eq!(ws_read(&mut bob), "* in r1: alice, bob");

    // Mistakes are answered to the sender only, with a short error.
    for (mistake, error) in [
        (
            "/nick",
            "error: usage: /nick NAME (up to 24 letters, digits, - _ .)",
        ),
        (
            "/join",
            "error: usage: /join ROOM (up to 24 letters, digits, - _ .)",
        ),
        (
            "/frobnicate x",
            "error: unknown command /frobnicate (try /nick NAME, /join ROOM, /msg NAME TEXT, /who)",
        ),
        ("/msg nobody hi", "error: no one called nobody is here"),
        ("/msg alice", "error: usage: /msg NAME TEXT"),
    ] {
        say(&mut bob, mistake);
        assert_eq!(ws_read(&mut bob), error, "{mistake}");
    }
    quiet(&mut alice);

    // Commands sent back to back: the later events see the earlier ones' session writes.
    say(&mut bob, "/nick bobby");
    say(&mut bob, "quick");
    assert_eq!(ws_read(&mut bob), "You are now bobby");
    assert_eq!(ws_read(&mut bob), "* bob is now bobby");
    assert_eq!(ws_read(&mut bob), "bobby said quick");
    assert_eq!(ws_read(&mut alice), "* bob is now bobby");
    assert_eq!(ws_read(&mut alice), "bobby said quick");

    // Leaving tells the room, by name.
    drop(bob);
    assert_eq!(ws_read(&mut alice), "* bobby left r1");
}

#[test]
fn the_chat_app_serves_its_page_when_no_static_dir_is_set() {
    use std::io::{Read, Write};
    let gw = all_roles("chat", 1);
    let _ws = ws_connect_when_served(gw.public, "/");
    let mut s = std::net::TcpStream::connect(gw.public).unwrap();
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut page = String::new();
    let _ = s.read_to_string(&mut page);
    assert!(page.starts_with("HTTP/1.1 200 OK"), "{page}");
    assert!(page.contains("<title>gatewire chat</title>"));
}

#[test]
fn sigterm_stops_every_role_and_workers_say_goodbye() {
    let gw = all_roles("echo", 1);
    let _ws = ws_connect_when_served(gw.public, "/");
    // A second worker process on this host needs its own name: one claiming a worker key that a
    // live link holds takes it over, and the two would take it from each other.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_gatewire"))
        .args([
            "start",
            "--role",
            "worker",
            "--set",
            "worker.name=Second",
            "-c",
        ])
        .arg(gw.path("gatewire.toml"))
        // A deployment of its own: its own run directory.
        .arg("--set")
        .arg(format!("run.dir={:?}", gw.path("second-run")))
        .env("GATEWIRE_LOG", "info")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    // SAFETY: signalling a child process this test started.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let started = std::time::Instant::now();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert!(started.elapsed() < std::time::Duration::from_secs(3));
    let mut log = String::new();
    use std::io::Read;
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    assert!(log.contains("worker stopped"), "{log}");
}

/// Answers every message with the key of the worker that handled it.
#[derive(Clone, Default)]
struct WhoAmI {
    key: String,
}

impl gatewire::Events for WhoAmI {
    fn on_worker_start(&mut self, worker: &gatewire::worker::WorkerInfo) {
        self.key = worker.worker_key.clone();
    }
    fn on_message(&mut self, ctx: &mut gatewire::Context<'_>, _message: &[u8]) {
        ctx.reply(&self.key);
    }
}

/// Two worker groups (as two processes would be: different names, their own threads) serve one
/// gateway: clients are spread over every worker, each client's events always go to the same
/// worker, and when one group stops its clients stay connected and move to the other.
#[test]
fn several_workers_share_clients_and_each_client_sticks_to_one() {
    let gw = Gatewire::start(Setup {
        shards: 2,
        ..Setup::default()
    });
    let group = |name: &str, count: usize| {
        let config = gatewire::config::WorkerConfig {
            name: name.into(),
            count,
            register_address: vec![gw.register],
            ..Default::default()
        };
        gatewire::worker::start(&config, &Default::default(), WhoAmI::default()).unwrap()
    };
    let a = group("A", 2);
    let b = group("B", 1);
    eventually("both groups linked to both shards", || {
        a.control.ready() && b.control.ready()
    });
    let mut clients: Vec<Ws> = (0..12)
        .map(|_| ws_connect_when_served(gw.public, "/"))
        .collect();
    let mut owner = Vec::new();
    for ws in &mut clients {
        let mut seen = std::collections::BTreeSet::new();
        for i in 0..5 {
            ws.send(tungstenite::Message::text(format!("m{i}")))
                .unwrap();
            seen.insert(ws_read(ws));
        }
        assert_eq!(seen.len(), 1, "one client, several workers: {seen:?}");
        owner.push(seen.into_iter().next().unwrap());
    }
    let distinct: std::collections::BTreeSet<&String> = owner.iter().collect();
    assert_eq!(
        distinct.len(),
        3,
        "least-connections spreads clients over A:0, A:1 and B:0: {owner:?}"
    );

    // Group A retires (drain: the gateways confirm they route it nothing new before it exits):
    // its clients keep their connections and are served by B from now on.
    a.control.drain();
    for t in a.threads {
        t.join().unwrap();
    }
    for ws in &mut clients {
        ws.send(tungstenite::Message::text("after")).unwrap();
        assert_eq!(ws_read(ws), "B:0");
    }
    b.control.stop();
}

#[test]
fn the_first_line_of_a_chat_start_says_where_to_open_the_page() {
    let gw = Gatewire::start(Setup {
        roles: "register,gateway,worker",
        app: "chat",
        capture_log: true,
        log: "info",
        ..Setup::default()
    });
    let _ws = ws_connect_when_served(gw.public, "/");
    let log = gw.log();
    let first = log.lines().next().unwrap_or_default();
    assert!(
        first.contains(&format!("chat page: open http://{}/", gw.public)),
        "{log}"
    );
}

/// The body of `GET /` on `addr`.
fn get_page(addr: std::net::SocketAddr) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut page = String::new();
    let _ = s.read_to_string(&mut page);
    page
}

#[test]
fn a_gateway_only_host_serves_the_chat_page_when_told() {
    // The gateway's `gatewire start` runs no worker (its worker is another `gatewire start`, as
    // on another host): no page unless gateway.chat_page says so.
    for (extra, served) in [("", false), ("chat_page = true", true)] {
        let gw = Gatewire::start(Setup {
            roles: "register,gateway",
            app: "chat",
            extra: extra.into(),
            ..Setup::default()
        });
        let mut worker = std::process::Command::new(env!("CARGO_BIN_EXE_gatewire"))
            .args(["start", "--single-process", "--role", "worker", "-c"])
            .arg(gw.path("gatewire.toml"))
            .current_dir(gw.path(""))
            .env("GATEWIRE_LOG", "warn")
            .spawn()
            .unwrap();
        let _ws = ws_connect_when_served(gw.public, "/");
        let page = get_page(gw.public);
        let _ = worker.kill();
        let _ = worker.wait();
        assert_eq!(
            page.contains("<title>gatewire chat</title>"),
            served,
            "{extra:?}: {page}"
        );
    }
}
