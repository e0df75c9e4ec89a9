//! The Gateway API through GatewayClient and `gatewire send` / `gatewire query`, against all roles
//! running with the chat app on two shards.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;

use common::*;
use gatewire::client::GatewayClient;
use gatewire_proto::ClientId;

/// Connects a chat client, sets its nickname and room, and returns it with its id.
fn chatter(gw: &Gatewire, nick: &str, room: &str) -> (Ws, ClientId) {
    let mut ws = ws_connect_when_served(gw.public, "/");
    let id: ClientId = loop {
        let line = ws_read(&mut ws);
        if let Some(id) = line.strip_prefix("Hello ") {
            break id.parse().unwrap();
        }
    };
    ws.send(tungstenite::Message::text(format!("/nick {nick}")))
        .unwrap();
    while ws_read(&mut ws) != format!("You are now {nick}") {}
    ws.send(tungstenite::Message::text(format!("/join {room}")))
        .unwrap();
    while ws_read(&mut ws) != format!("You joined {room}") {}
    (ws, id)
}

/// Reads until `expected` arrives, skipping the chat's presence lines (`* …`); fails on anything
/// else.
fn expect_line(ws: &mut Ws, expected: &str) {
    expect_line_skipping(ws, expected, |line| line.starts_with("* "));
}

#[test]
fn gateway_client_queries_and_commands_span_every_shard() {
    let gw = Gatewire::start(Setup {
        roles: "register,gateway,worker",
        shards: 2,
        ..Setup::default()
    });
    let (mut alice, alice_id) = chatter(&gw, "alice", "red");
    let (mut bob, bob_id) = chatter(&gw, "bob", "red");
    let (mut carol, carol_id) = chatter(&gw, "carol", "blue");
    let client = GatewayClient::new(vec![gw.register], "");

    let count = client.get_all_client_id_count();
    assert!(count.is_complete());
    assert_eq!(count.value, 3);
    assert_eq!(client.get_client_id_count_by_group("red").value, 2);
    let mut ids = client.get_all_client_id_list().value;
    ids.sort();
    let mut expected = vec![alice_id, bob_id, carol_id];
    expected.sort();
    assert_eq!(ids, expected);
    assert_eq!(
        client
            .get_all_uid_list()
            .value
            .into_iter()
            .collect::<Vec<_>>(),
        ["alice", "bob", "carol"]
    );
    assert_eq!(client.get_uid_count_by_group(&["red"]).value, 2);
    assert_eq!(
        client
            .get_all_group_id_list()
            .value
            .into_iter()
            .collect::<Vec<_>>(),
        ["blue", "red"]
    );
    let group_uids = client.get_all_group_uid_list().value;
    assert_eq!(
        group_uids["red"].iter().collect::<Vec<_>>(),
        ["alice", "bob"]
    );
    assert_eq!(client.get_all_group_client_id_count().value["blue"], 1);
    assert_eq!(client.get_client_id_by_uid("bob").value, vec![bob_id]);
    assert!(client.is_uid_online("carol").value);
    assert!(!client.is_uid_online("dave").value);
    assert_eq!(
        client.get_uid_by_client_id(alice_id).unwrap().as_deref(),
        Some("alice")
    );
    assert!(client.is_online(alice_id).unwrap());
    let session = client.get_session(alice_id).unwrap().unwrap();
    assert_eq!(
        session.get(&"name".into()),
        Some(&gatewire_proto::php::Value::from("alice"))
    );
    let sessions = client.get_all_client_sessions().value;
    assert_eq!(sessions.len(), 3);
    let online = client.is_uids_online(&["alice", "dave"]).value;
    assert_eq!((online["alice"], online["dave"]), (true, false));
    assert_eq!(
        client
            .batch_get_client_count_by_group(&["red", "none"])
            .value["red"],
        2
    );

    // Commands through GatewayClient reach clients on either shard.
    client.send_to_uid(&["carol"], "for carol");
    expect_line(&mut carol, "for carol");
    client.send_to_group(&["red"], "for red", &[bob_id]);
    expect_line(&mut alice, "for red");
    assert!(client.send_to_client(bob_id, "for bob"));
    expect_line(&mut bob, "for bob");

    // sendToAll with excludes, and to a list of clients, across both shards.
    client.send_to_all_except("not for carol", &[carol_id]);
    expect_line(&mut alice, "not for carol");
    expect_line(&mut bob, "not for carol");
    client.send_to_clients("for alice and carol", &[alice_id, carol_id]);
    expect_line(&mut alice, "for alice and carol");
    expect_line(&mut carol, "for alice and carol");
    client.send_to_client(carol_id, "carol: nothing else came");
    expect_line(&mut carol, "carol: nothing else came");
    client.send_to_client(bob_id, "bob: nothing else came");
    expect_line(&mut bob, "bob: nothing else came");

    // setSession replaces the session, updateSession merges into it.
    let mut session = gatewire_proto::php::Array::default();
    session.insert("name", "alicia");
    session.insert("level", 3i64);
    assert!(client.set_session(alice_id, &session));
    let mut update = gatewire_proto::php::Array::default();
    update.insert("level", 4i64);
    assert!(client.update_session(alice_id, &update));
    let stored = client.get_session(alice_id).unwrap().unwrap();
    use gatewire_proto::php::Value;
    assert_eq!(stored.get(&"name".into()), Some(&Value::from("alicia")));
    assert_eq!(stored.get(&"level".into()), Some(&Value::from(4i64)));

    // The command line does the same.
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_gatewire"))
            .args(args)
            .arg("-c")
            .arg(gw.path("gatewire.toml"))
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    assert_eq!(cli(&["query", "client-count"]), (Some(0), "3\n".to_owned()));
    assert_eq!(cli(&["send", "--uid", "alice", "hi from cli"]).0, Some(0));
    expect_line(&mut alice, "hi from cli");
}

#[test]
fn an_unreachable_gateway_makes_answers_partial_not_hung() {
    let gw = Gatewire::start(Setup {
        roles: "register,gateway,worker",
        ..Setup::default()
    });
    let (_alice, _) = chatter(&gw, "alice", "red");
    // A register that lists the real shard and one where nobody listens.
    let dead = format!("127.0.0.1:{}", free_port());
    let fake = TcpListener::bind("127.0.0.1:0").unwrap();
    let fake_addr = fake.local_addr().unwrap();
    let list = format!(
        "{{\"event\":\"broadcast_addresses\",\"addresses\":[\"{}\",\"{dead}\"]}}\n",
        gw.inner(0)
    );
    std::thread::spawn(move || {
        for stream in fake.incoming().flatten() {
            let mut line = String::new();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let _ = reader.read_line(&mut line);
            let _ = (&stream).write_all(list.as_bytes());
        }
    });
    let client = GatewayClient::new(vec![fake_addr], "");
    let started = std::time::Instant::now();
    let count = client.get_all_client_id_count();
    assert_eq!(count.value, 1);
    assert_eq!(count.unreachable.len(), 1);
    assert!(started.elapsed() < std::time::Duration::from_secs(6));
}

/// A gateway that is listed but frozen (SIGSTOP: it accepts connections in the kernel but never
/// answers) makes an answer partial after the query timeout — never a hang — and the other
/// gateway's part is still there.
#[test]
fn a_frozen_gateway_makes_answers_partial_after_the_timeout() {
    let gw = Gatewire::start(Setup {
        roles: "register,gateway,worker",
        shards: 1,
        ..Setup::default()
    });
    let second = Gatewire::start(Setup {
        roles: "gateway",
        shards: 1,
        register_port: Some(gw.register.port()),
        ..Setup::default()
    });
    let (_alice, _) = chatter(&gw, "alice", "red");
    let second_inner = second.inner(0).to_string();
    eventually("the register lists the second gateway", || {
        let mut stream = std::net::TcpStream::connect(gw.register).unwrap();
        stream
            .write_all(gatewire_proto::register::worker_connect_line("").as_bytes())
            .unwrap();
        let mut line = String::new();
        BufReader::new(stream).read_line(&mut line).unwrap();
        line.contains(&second_inner)
    });
    // Made after the register lists both, so its one-second address cache holds both.
    let client = GatewayClient::new(vec![gw.register], "");
    let pid = second.role_pid("gateway");
    let listener = gatewire::net::port_owner::listener_on(second.inner(0));
    // SAFETY: a pid of a process this test started (through the supervisor).
    unsafe { libc::kill(pid as i32, libc::SIGSTOP) };
    let _resume = Frozen(pid);
    // The stop takes effect as each of its threads handles the signal: wait for it, so
    // the query below meets a gateway that cannot answer.
    eventually("the second gateway is stopped", || {
        process_state(pid) == Some('T')
    });

    let started = std::time::Instant::now();
    let count = client.get_all_client_id_count();
    let took = started.elapsed();
    assert_eq!(count.value, 1, "the live gateway's client is counted");
    assert_eq!(
        count.unreachable.len(),
        1,
        "{:?}; stopped pid {pid}, the listener on the second gateway's inner port: {listener:?}",
        count.unreachable
    );
    assert!(
        count.unreachable[0]
            .to_string()
            .contains(&second.inner(0).to_string()),
        "{:?}",
        count.unreachable
    );
    assert!(
        took < std::time::Duration::from_secs(15),
        "the query timeout (5 s) bounds the wait, took {took:?}"
    );
}

/// `gatewire ARGS` run in `dir` with `XDG_RUNTIME_DIR=xdg`: exit code, stdout, stderr.
fn gatewire_in(
    dir: &std::path::Path,
    xdg: &std::path::Path,
    args: &[&str],
) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gatewire"))
        .args(args)
        .current_dir(dir)
        .env("XDG_RUNTIME_DIR", xdg)
        .env("GATEWIRE_LOG", "warn")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn send_and_query_reach_the_named_deployment_or_the_gateway_hosts_register() {
    let (home, elsewhere, xdg) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let (register, public, inner) = (free_port(), free_port(), free_port_range(1));
    // A deployment on ports of its own, started by name (its run directory is the well-known one
    // for that name, not the configuration's directory).
    std::fs::write(
        home.path().join("gatewire.toml"),
        format!(
            "[register]\nlisten = \"127.0.0.1:{register}\"\n[gateway]\n\
             listen = \"websocket://127.0.0.1:{public}\"\nstart_port = {inner}\nshards = 1\n\
             register_address = \"127.0.0.1:{register}\"\n[worker]\ncount = 1\n\
             register_address = \"127.0.0.1:{register}\"\n"
        ),
    )
    .unwrap();
    let name = format!("named-{}", std::process::id());
    let deployment = Stopped(
        std::process::Command::new(env!("CARGO_BIN_EXE_gatewire"))
            .args(["start", "--name", &name])
            .current_dir(home.path())
            .env("XDG_RUNTIME_DIR", xdg.path())
            .env("GATEWIRE_LOG", "warn")
            .spawn()
            .unwrap(),
    );
    let public: std::net::SocketAddr = format!("127.0.0.1:{public}").parse().unwrap();
    wait_listening(public);
    let mut ws = ws_connect_when_served(public, "/");
    // Its control socket opens once every role reported ready (a moment after clients are
    // served).
    eventually("the deployment answers by name", || {
        gatewire_in(elsewhere.path(), xdg.path(), &["status", "--name", &name]).0 == 0
    });

    // From a directory with no configuration, by name only.
    let (code, out, err) = gatewire_in(
        elsewhere.path(),
        xdg.path(),
        &["query", "--name", &name, "client-count"],
    );
    assert_eq!((code, out.trim()), (0, "1"), "{err}");
    let (code, _, err) = gatewire_in(
        elsewhere.path(),
        xdg.path(),
        &["send", "--name", &name, "by name"],
    );
    assert_eq!(code, 0, "{err}");
    let chat_lines =
        |l: &str| l.starts_with("Hello ") || l.starts_with("You are ") || l.starts_with("* ");
    expect_line_skipping(&mut ws, "by name", chat_lines);

    // A gateway host's configuration: its register is the gateway's, not a worker's default.
    std::fs::write(
        elsewhere.path().join("gatewire.toml"),
        format!("[run]\ndir = \"run\"\n[gateway]\nregister_address = \"127.0.0.1:{register}\"\n"),
    )
    .unwrap();
    let (code, _, err) = gatewire_in(
        elsewhere.path(),
        xdg.path(),
        &["send", "from the gateway host"],
    );
    assert_eq!(code, 0, "{err}");
    expect_line_skipping(&mut ws, "from the gateway host", chat_lines);

    // A name with nothing running (and no configuration here): exit 3, naming the register tried
    // and why that one.
    let (code, _, err) = gatewire_in(
        xdg.path(),
        xdg.path(),
        &["send", "--name", "nosuch", "lost"],
    );
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("127.0.0.1:1236") && err.contains("no deployment running in"),
        "{err}"
    );

    let (code, _, err) = gatewire_in(xdg.path(), xdg.path(), &["stop", "--name", &name]);
    assert_eq!(code, 0, "{err}");
    drop(deployment);
}

/// A `gatewire start` stopped (SIGTERM, then waited for) when the test ends, also by a panic.
struct Stopped(std::process::Child);

impl Drop for Stopped {
    fn drop(&mut self) {
        // SAFETY: kill on the pid of a child this test started and has not reaped.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let _ = self.0.wait();
    }
}
