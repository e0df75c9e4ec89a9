//! The store (`[store] backend = "redis"`) on one host, against a real `redis-server` each test
//! starts on a unix socket of its own: gateways record exactly which shard holds each uid and
//! group, uid and group commands and queries reach only those shards, a worker's own bind is
//! seen by its next send at once, Redis going away falls back to every gateway without losing a
//! message, and a restarted Redis is filled again. Skipped (with a line) without redis-server.

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::redis::{Listen, RedisServer};
use common::*;
use gatewire::client::GatewayClient;
use gatewire::config::{StoreBackend, StoreConfig};
use gatewire::store::ROUTING;
use gatewire_proto::ClientId;

/// The routing counters are the process's: the tests that read them run one at a time.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// What every test here starts from: its turn, and a Redis of its own on a unix socket
/// (requiring `password` when given); `None`, with a line, without redis-server.
struct Start {
    _turn: std::sync::MutexGuard<'static, ()>,
    redis: RedisServer,
    _dir: tempfile::TempDir,
}

fn start(test: &str, password: Option<&str>) -> Option<Start> {
    let turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(why) = common::redis::unavailable() {
        eprintln!("SKIPPED {test}: {why}");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let socket = Listen::Unix(dir.path().join("r.sock"));
    let redis = match password {
        Some(password) => RedisServer::start_with_password(dir.path(), socket, password),
        None => RedisServer::start(dir.path(), socket),
    };
    Some(Start {
        _turn: turn,
        redis,
        _dir: dir,
    })
}

fn store_config(redis: &RedisServer) -> StoreConfig {
    StoreConfig {
        backend: StoreBackend::Redis,
        redis_url: redis.url(),
        prefix: "t:".into(),
        ttl: 3.0,
        // Generous: a loaded test machine must not turn routing into fallbacks.
        timeout: 2.0,
        ..StoreConfig::default()
    }
}

/// Register, gateway (two shards) and worker, with `extra` in `[gateway]` (a store section).
fn every_role_on_two_shards(extra: String) -> Gatewire {
    Gatewire::start(Setup {
        roles: "register,gateway,worker",
        shards: 2,
        extra,
        ..Setup::default()
    })
}

/// What `gatewire status` prints for the deployment.
fn status_of(gw: &Gatewire) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gatewire"))
        .args(["status", "-c"])
        .arg(gw.path("gatewire.toml"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn store_section(redis: &RedisServer) -> String {
    format!(
        "\n[store]\nbackend = \"redis\"\nredis_url = \"{}\"\nprefix = \"t:\"\nttl = 3.0\ntimeout = 2.0\n",
        redis.url()
    )
}

/// A chat client with nickname `nick`, and its id (whose gateway part is its shard).
fn chatter(gw: &Gatewire, nick: &str) -> (Ws, ClientId) {
    let mut ws = ws_connect_when_served(gw.public, "/");
    let id: ClientId = loop {
        if let Some(id) = ws_read(&mut ws).strip_prefix("Hello ") {
            break id.parse().unwrap();
        }
    };
    ws.send(tungstenite::Message::text(format!("/nick {nick}")))
        .unwrap();
    while ws_read(&mut ws) != format!("You are now {nick}") {}
    (ws, id)
}

/// Reads until `expected`, skipping the chat's announcements.
fn expect_line(ws: &mut Ws, expected: &str) {
    expect_line_skipping(ws, expected, |line| {
        line.starts_with("* ") || line.contains(" said ") || line.starts_with("You ")
    });
}

/// Packets a uid or group command or query took, counted by this process's routing.
fn packets_of(f: impl FnOnce()) -> u64 {
    let before = ROUTING.packets.load(Ordering::Relaxed);
    f();
    ROUTING.packets.load(Ordering::Relaxed) - before
}

/// Chat clients until both shards hold at least one, named u0, u1, …
fn clients_on_both_shards(gw: &Gatewire) -> Vec<(Ws, ClientId, String)> {
    let mut clients = Vec::new();
    for i in 0..40 {
        let nick = format!("u{i}");
        let (ws, id) = chatter(gw, &nick);
        clients.push((ws, id, nick));
        let shards: std::collections::BTreeSet<_> =
            clients.iter().map(|(_, id, _)| id.gateway()).collect();
        if shards.len() == 2 && clients.len() >= 4 {
            return clients;
        }
    }
    panic!("40 clients all landed on one shard");
}

#[test]
fn uid_commands_and_queries_reach_only_the_holding_shard_and_survive_redis_going_away() {
    let Some(Start {
        mut redis,
        _turn,
        _dir,
    }) = start("store", None)
    else {
        return;
    };
    let gw = every_role_on_two_shards(store_section(&redis));
    let mut clients = clients_on_both_shards(&gw);

    // The store lists each uid's shard, and both shards as writers.
    for (_, id, nick) in &clients {
        eventually(&format!("{nick} recorded"), || {
            redis.members(&format!("t:uid:{nick}")) == [id.gateway().to_string()]
        });
    }
    let mut shards: Vec<String> = (0..2).map(|i| gw.inner(i).to_string()).collect();
    shards.sort();
    eventually("both shards are writers", || {
        redis.members("t:gateways") == shards
    });

    // `gatewire status` shows both sides of the store.
    let status = status_of(&gw);
    // A uid per client, and the chat's first room (the lobby) on each shard.
    let held = format!(
        "connected to {}, {} uid/group entries held",
        redis.url(),
        clients.len() + 2
    );
    assert!(status.contains(&held), "{status}");
    assert!(
        status.contains("sent to every gateway because the store did not answer"),
        "{status}"
    );

    let routed = GatewayClient::new(vec![gw.register], "").with_store(&store_config(&redis));
    let everywhere = GatewayClient::new(vec![gw.register], "");
    let (ws, id, nick) = &mut clients[0];
    assert_eq!(packets_of(|| everywhere.send_to_uid(&[nick], "to all")), 2);
    expect_line(ws, "to all");
    assert_eq!(packets_of(|| routed.send_to_uid(&[nick], "to one")), 1);
    expect_line(ws, "to one");
    let mut found = Vec::new();
    assert_eq!(
        packets_of(|| found = routed.get_client_id_by_uid(nick).value),
        1
    );
    assert_eq!(found, [*id]);
    assert_eq!(
        packets_of(|| assert!(!routed.is_uid_online("nobody").value)),
        0
    );

    // Redis gone: every gateway gets the command again, counted as a fallback, nothing lost.
    redis.kill();
    // …and the gateway's store thread waits for its next attempt instead of spinning (it did:
    // a whole core while Redis was down).
    let gateway_pid = gw.role_pid("gateway");
    let before = common::process::cpu_seconds(gateway_pid);
    std::thread::sleep(Duration::from_secs(2));
    let used = common::process::cpu_seconds(gateway_pid) - before;
    assert!(
        used < 1.0,
        "the gateway used {used:.2} s of CPU in 2 s with Redis down (spinning?)"
    );
    let fallbacks = ROUTING.fallbacks.load(Ordering::Relaxed);
    let (ws, _, nick) = &mut clients[1];
    assert_eq!(packets_of(|| routed.send_to_uid(&[nick], "no store")), 2);
    expect_line(ws, "no store");
    assert!(ROUTING.fallbacks.load(Ordering::Relaxed) > fallbacks);
    // A client that takes a nick meanwhile is recorded once Redis is back.
    let (mut late, late_id) = chatter(&gw, "late");

    // Back, empty: each gateway writes everything again within a second or two.
    redis.restart();
    let started = Instant::now();
    for (_, id, nick) in clients
        .iter()
        .map(|(_, id, nick)| ((), *id, nick.clone()))
        .chain([((), late_id, "late".to_owned())])
    {
        eventually(&format!("{nick} recorded again"), || {
            redis.members(&format!("t:uid:{nick}")) == [id.gateway().to_string()]
        });
    }
    let refilled = started.elapsed();
    assert!(
        refilled < Duration::from_secs(3),
        "refilled after {refilled:?}"
    );
    // The resolver retries a second after its failure.
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(packets_of(|| routed.send_to_uid(&["late"], "back")), 1);
    expect_line(&mut late, "back");

    // A client that leaves is removed; a stopped gateway withdraws everything.
    let (ws, _, nick) = clients.pop().unwrap();
    drop(ws);
    eventually(&format!("{nick} removed"), || {
        redis.members(&format!("t:uid:{nick}")).is_empty()
    });
    drop(gw);
    eventually("the stopped gateway withdrew its entries", || {
        redis.members("t:uid:u0").is_empty() && redis.members("t:gateways").is_empty()
    });
}

/// Binds the client to the uid it sends, then greets that uid — in one callback, the pattern
/// that must not lose the greeting even though the store learns of the bind a little later.
#[derive(Clone, Default)]
struct BindThenSend;

impl gatewire::Events for BindThenSend {
    fn on_message(&mut self, ctx: &mut gatewire::Context<'_>, message: &[u8]) {
        let uid = String::from_utf8_lossy(message).into_owned();
        ctx.gateway().bind_uid(ctx.client_id, &uid);
        ctx.gateway()
            .send_to_uid(&[uid.as_str()], format!("welcome {uid}"));
        ctx.gateway().join_group(ctx.client_id, &uid);
        ctx.gateway()
            .send_to_group(&[uid.as_str()], format!("room {uid}"), &[]);
    }
}

#[test]
fn a_workers_own_bind_is_seen_by_its_next_send() {
    let Some(Start { redis, _turn, _dir }) = start("store", None) else {
        return;
    };
    let gw = Gatewire::start(Setup {
        shards: 2,
        extra: store_section(&redis),
        ..Setup::default()
    });
    let mut shards: Vec<String> = (0..2).map(|i| gw.inner(i).to_string()).collect();
    shards.sort();
    eventually("both shards are writers", || {
        redis.members("t:gateways") == shards
    });
    let config = gatewire::config::WorkerConfig {
        count: 1,
        register_address: vec![gw.register],
        ..Default::default()
    };
    let workers = gatewire::worker::start(&config, &store_config(&redis), BindThenSend).unwrap();
    eventually("worker linked", || workers.control.ready());
    let packets = ROUTING.packets.load(Ordering::Relaxed);
    let sends = ROUTING.sends.load(Ordering::Relaxed);
    let fallbacks = ROUTING.fallbacks.load(Ordering::Relaxed);
    for i in 0..20 {
        let mut ws = ws_connect_when_served(gw.public, "/");
        ws.send(tungstenite::Message::text(format!("fresh{i}")))
            .unwrap();
        assert_eq!(ws_read(&mut ws), format!("welcome fresh{i}"));
        assert_eq!(ws_read(&mut ws), format!("room fresh{i}"));
    }
    // Each send went to the one shard holding its fresh uid or group, not to both.
    let sent = ROUTING.sends.load(Ordering::Relaxed) - sends;
    assert_eq!(sent, 40);
    assert_eq!(
        ROUTING.packets.load(Ordering::Relaxed) - packets,
        40,
        "fallbacks: {}, writers: {:?}",
        ROUTING.fallbacks.load(Ordering::Relaxed) - fallbacks,
        redis.members("t:gateways")
    );
    workers.control.stop();
}

/// A gateway that does not write to the store (here gatewire with the store off; a PHP gateway
/// is the same to the store) keeps getting every uid command, so its clients miss nothing.
#[test]
fn a_gateway_that_does_not_write_to_the_store_still_gets_uid_commands() {
    let Some(Start { redis, _turn, _dir }) = start("store", None) else {
        return;
    };
    let writing = Gatewire::start(Setup {
        extra: store_section(&redis),
        ..Setup::default()
    });
    let silent = Gatewire::start(Setup {
        roles: "gateway",
        register_port: Some(writing.register.port()),
        ..Setup::default()
    });
    eventually("the writing gateway is listed", || {
        redis.members("t:gateways") == [writing.inner(0).to_string()]
    });
    let config = gatewire::config::WorkerConfig {
        count: 1,
        register_address: vec![writing.register],
        ..Default::default()
    };
    let workers = gatewire::worker::start(&config, &store_config(&redis), BindThenSend).unwrap();
    eventually("worker linked to both gateways", || workers.control.ready());
    let mut on_silent = ws_connect_when_served(silent.public, "/");
    on_silent.send(tungstenite::Message::text("quiet")).unwrap();
    assert_eq!(ws_read(&mut on_silent), "welcome quiet");
    let mut on_writing = ws_connect_when_served(writing.public, "/");
    on_writing.send(tungstenite::Message::text("loud")).unwrap();
    assert_eq!(ws_read(&mut on_writing), "welcome loud");
    eventually("loud recorded", || {
        redis.members("t:uid:loud") == [writing.inner(0).to_string()]
    });
    assert!(
        redis.members("t:uid:quiet").is_empty(),
        "nobody records quiet"
    );

    let routed = GatewayClient::new(vec![writing.register], "").with_store(&store_config(&redis));
    // quiet's gateway is not a writer: it gets the command (and the writing one, which does not
    // hold quiet, does not).
    assert_eq!(packets_of(|| routed.send_to_uid(&["quiet"], "psst")), 1);
    expect_line(&mut on_silent, "room quiet");
    expect_line(&mut on_silent, "psst");
    // loud's holder, plus the gateway the store cannot speak for.
    assert_eq!(packets_of(|| routed.send_to_uid(&["loud"], "hey")), 2);
    expect_line(&mut on_writing, "room loud");
    expect_line(&mut on_writing, "hey");
    workers.control.stop();
}

/// `store.password` is sent as AUTH; a wrong one is reported naming the URL, and the gateway
/// stays out of the writers' list (so it would get every command) instead of failing.
#[test]
fn the_store_password_is_used_and_a_wrong_one_is_reported() {
    let Some(Start { redis, _turn, _dir }) = start("store", Some("s3cret")) else {
        return;
    };
    let right = Gatewire::start(Setup {
        extra: store_section(&redis) + "password = \"s3cret\"\n",
        ..Setup::default()
    });
    eventually("the gateway with the password is listed", || {
        redis.members("t:gateways") == [right.inner(0).to_string()]
    });
    let wrong = Gatewire::start(Setup {
        extra: store_section(&redis) + "password = \"nope\"\n",
        capture_log: true,
        ..Setup::default()
    });
    eventually("the wrong password is reported", || {
        wrong.log().contains("store.redis_url") && wrong.log().contains("cannot connect")
    });
    assert_eq!(
        redis.members("t:gateways"),
        [right.inner(0).to_string()],
        "the gateway that cannot write is not listed"
    );
    // `config check` masks the password.
    let shown = std::process::Command::new(env!("CARGO_BIN_EXE_gatewire"))
        .args(["config", "check", "-c"])
        .arg(right.path("gatewire.toml"))
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(!shown.contains("s3cret"), "{shown}");
    assert!(shown.contains("********"), "{shown}");
}

/// Chat clients named p0, p1, … in room `hall` until both shards hold some (at least 4), each
/// read up to its own "* in hall" list.
fn hall_on_both_shards(gw: &Gatewire) -> Vec<(Ws, ClientId)> {
    let mut clients: Vec<(Ws, ClientId)> = Vec::new();
    for i in 0..40 {
        let mut ws = ws_connect_when_served(gw.public, &format!("/?name=p{i}&room=hall"));
        let id: ClientId = ws_read(&mut ws)
            .strip_prefix("Hello ")
            .expect("the greeting")
            .parse()
            .unwrap();
        while !ws_read(&mut ws).starts_with("* in hall: ") {}
        clients.push((ws, id));
        let shards: std::collections::BTreeSet<_> =
            clients.iter().map(|(_, id)| id.gateway()).collect();
        if shards.len() == 2 && clients.len() >= 4 {
            return clients;
        }
    }
    panic!("40 clients all landed on one shard");
}

/// The presence lines (`* … joined hall` / `* … left hall`) `ws` receives until none has come for
/// a second.
fn presence_lines(ws: &mut Ws) -> Vec<String> {
    if let tungstenite::stream::MaybeTlsStream::Plain(s) = ws.get_mut() {
        s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    }
    let mut lines = Vec::new();
    while let Ok(message) = ws.next_message() {
        if let tungstenite::Message::Text(t) = message
            && (t.ends_with(" joined hall") || t.ends_with(" left hall"))
        {
            lines.push(t.to_string());
        }
    }
    lines
}

/// Every join and leave in a room spread over two shards is told to each member exactly once.
fn presence_is_told_once_per_change(extra: String) {
    let gw = every_role_on_two_shards(extra);
    let mut clients = hall_on_both_shards(&gw);
    let n = clients.len();
    let first = &mut clients[0].0;
    let expected: Vec<String> = (1..n).map(|i| format!("* p{i} joined hall")).collect();
    assert_eq!(
        presence_lines(first),
        expected,
        "the first member saw each join once"
    );
    let (last, _) = clients.pop().unwrap();
    drop(last);
    let leave = format!("* p{} left hall", n - 1);
    assert_eq!(
        presence_lines(&mut clients[0].0),
        std::slice::from_ref(&leave)
    );
    for (k, (ws, _)) in clients.iter_mut().enumerate().skip(1) {
        // Member k saw the joins after its own, then the leave; each once.
        let mut expected: Vec<String> = (k + 1..n).map(|i| format!("* p{i} joined hall")).collect();
        expected.push(leave.clone());
        assert_eq!(presence_lines(ws), expected, "member p{k}");
    }
}

#[test]
fn presence_is_told_once_per_member_change_with_the_store_off() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    presence_is_told_once_per_change(String::new());
}

#[test]
fn presence_is_told_once_per_member_change_with_the_store_on() {
    let Some(Start {
        redis, _turn, _dir, ..
    }) = start("presence with the store", None)
    else {
        return;
    };
    presence_is_told_once_per_change(store_section(&redis));
}

#[test]
fn entries_gone_during_a_refresh_cost_the_store_connection_nothing() {
    let Some(Start {
        redis, _turn, _dir, ..
    }) = start("entries gone during a refresh", None)
    else {
        return;
    };
    let gw = every_role_on_two_shards(store_section(&redis));
    // store.ttl is 3 s: a refresh period is 1 s, its entries written over its first 0.75 s.
    // Clients that leave mid-period leave refresh slices holding only entries gone since, which
    // once made an empty pipeline: Redis refused it, and the connection was dropped and resynced.
    for round in 0..3 {
        let clients: Vec<_> = (0..6)
            .map(|i| chatter(&gw, &format!("r{round}c{i}")))
            .collect();
        std::thread::sleep(Duration::from_millis(1300));
        drop(clients);
        std::thread::sleep(Duration::from_millis(1100));
    }
    let status = status_of(&gw);
    assert!(
        status.contains("uid/group entries held, 0 errors"),
        "{status}"
    );
}
