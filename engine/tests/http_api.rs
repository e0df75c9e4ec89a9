//! The HTTP API (the `api` role) end to end: real `gatewire` processes, real HTTP requests on
//! sockets, real WebSocket clients of the chat app receiving what the API sends, and every error
//! path with its status and code.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use common::*;
use serde_json::{Value as Json, json};

/// A deployment with every role and the API on a free loopback port (with `key`, when given).
fn with_api(key: &str, shards: u16) -> (Gatewire, SocketAddr) {
    let port = free_port();
    let mut setup = Setup {
        roles: "register,gateway,worker,api",
        shards,
        ..Setup::default()
    };
    let register = setup.register_port.get_or_insert_with(free_port);
    setup.worker_extra = format!(
        "\n[api]\nlisten = \"127.0.0.1:{port}\"\napi_key = \"{key}\"\n\
         register_address = \"127.0.0.1:{register}\"\n"
    );
    let gw = Gatewire::start(setup);
    let api = SocketAddr::from(([127, 0, 0, 1], port));
    wait_listening(api);
    (gw, api)
}

/// Sends raw request bytes on a fresh connection and returns the status and the JSON body.
fn raw(api: SocketAddr, request: &[u8]) -> (u16, Json) {
    let mut s = TcpStream::connect(api).unwrap();
    // Longer than a query's wait for a gateway that does not answer.
    s.set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    s.write_all(request).unwrap();
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    parse(&answer)
}

fn parse(answer: &[u8]) -> (u16, Json) {
    let text = String::from_utf8_lossy(answer);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, serde_json::from_str(body).unwrap_or(Json::Null))
}

fn post_with(api: SocketAddr, method: &str, body: &Json, headers: &str) -> (u16, Json) {
    let body = body.to_string();
    let request = format!(
        "POST /api/{method} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n{headers}\r\n{body}",
        body.len()
    );
    raw(api, request.as_bytes())
}

/// `POST /api/<method>`: its `result`, failing the test on an error answer.
fn call(api: SocketAddr, method: &str, args: Json) -> Json {
    let (status, answer) = post_with(api, method, &args, "");
    assert_eq!(status, 200, "{method} {args}: {answer}");
    assert!(answer.get("partial").is_none(), "{method}: {answer}");
    answer["result"].clone()
}

/// A chat client named `name` in `room`, and its client id.
fn chatter(gw: &Gatewire, name: &str, room: &str) -> (Ws, String) {
    let mut ws = ws_connect_when_served(gw.public, &format!("/?name={name}&room={room}"));
    let id = ws_read(&mut ws).trim_start_matches("Hello ").to_owned();
    while !ws_read(&mut ws).starts_with(&format!("* in {room}: ")) {}
    (ws, id)
}

/// The next message that is not the chat's own (presence lines and greetings are skipped).
fn next_pushed(ws: &mut Ws) -> tungstenite::Message {
    loop {
        match ws.next_message().expect("a message") {
            tungstenite::Message::Text(t) if t.starts_with("* ") => {}
            m @ (tungstenite::Message::Text(_) | tungstenite::Message::Binary(_)) => return m,
            _ => {}
        }
    }
}

fn text(ws: &mut Ws) -> String {
    match next_pushed(ws) {
        tungstenite::Message::Text(t) => t.to_string(),
        other => panic!("expected text, got {other:?}"),
    }
}

#[test]
fn sends_membership_sessions_and_queries_reach_real_clients_across_shards() {
    let (gw, api) = with_api("", 2);
    let (mut ann, ann_id) = chatter(&gw, "ann", "red");
    let (mut ben, ben_id) = chatter(&gw, "ben", "red");
    let (mut cat, cat_id) = chatter(&gw, "cat", "blue");

    // Sends: to a uid, a group (less one), everyone, one client (binary as base64).
    assert_eq!(
        call(api, "sendToUid", json!({"uid": "ann", "message": "to ann"})),
        true
    );
    assert_eq!(text(&mut ann), "to ann");
    call(
        api,
        "sendToGroup",
        json!({"group": "red", "message": "to red", "exclude_client_id": [ben_id]}),
    );
    assert_eq!(text(&mut ann), "to red");
    call(api, "sendToAll", json!({"message": "to all"}));
    for ws in [&mut ann, &mut ben, &mut cat] {
        assert_eq!(text(ws), "to all");
    }
    assert_eq!(
        call(
            api,
            "sendToClient",
            json!({"client_id": cat_id, "message_base64": "AAEC/w=="})
        ),
        true
    );
    assert_eq!(
        next_pushed(&mut cat),
        tungstenite::Message::binary(vec![0u8, 1, 2, 255])
    );
    call(
        api,
        "sendToAll",
        json!({"message": "two of you", "client_id_array": [ann_id, cat_id]}),
    );
    assert_eq!(text(&mut ann), "two of you");
    assert_eq!(text(&mut cat), "two of you");

    // Queries, the PHP way, across both shards.
    assert_eq!(call(api, "getAllClientIdCount", json!({})), 3);
    assert_eq!(
        call(api, "getClientIdCountByGroup", json!({"group": "red"})),
        2
    );
    assert_eq!(
        call(api, "getUidListByGroup", json!({"group": "red"})),
        json!(["ann", "ben"])
    );
    assert_eq!(call(api, "isUidOnline", json!({"uid": "ben"})), true);
    assert_eq!(call(api, "isUidOnline", json!({"uid": "nobody"})), false);
    assert_eq!(
        call(api, "getClientIdByUid", json!({"uid": "cat"})),
        json!([cat_id])
    );
    assert_eq!(
        call(api, "getUidByClientId", json!({"client_id": ann_id})),
        "ann"
    );
    assert_eq!(call(api, "isOnline", json!({"client_id": ben_id})), true);
    let groups = call(api, "getAllGroupIdList", json!({}));
    assert_eq!(groups, json!(["blue", "red"]));
    let red = call(api, "getClientSessionsByGroup", json!({"group": "red"}));
    assert_eq!(red[&ann_id]["name"], "ann");
    assert_eq!(red[&ben_id]["room"], "red");

    // Membership and sessions.
    assert_eq!(
        call(
            api,
            "joinGroup",
            json!({"client_id": cat_id, "group": "red"})
        ),
        true
    );
    assert_eq!(
        call(api, "getClientIdCountByGroup", json!({"group": "red"})),
        3
    );
    assert_eq!(
        call(
            api,
            "leaveGroup",
            json!({"client_id": cat_id, "group": "red"})
        ),
        true
    );
    assert_eq!(
        call(api, "bindUid", json!({"client_id": cat_id, "uid": 42})),
        true
    );
    assert_eq!(
        call(api, "getClientIdByUid", json!({"uid": "42"})),
        json!([cat_id])
    );
    call(
        api,
        "setSession",
        json!({"client_id": ben_id, "session": {"name": "ben", "level": 3}}),
    );
    call(
        api,
        "updateSession",
        json!({"client_id": ben_id, "session": {"vip": true}}),
    );
    assert_eq!(
        call(api, "getSession", json!({"client_id": ben_id})),
        json!({"name": "ben", "level": 3, "vip": true})
    );
    call(api, "ungroup", json!({"group": "blue"}));
    assert_eq!(
        call(api, "getClientIdCountByGroup", json!({"group": "blue"})),
        0
    );

    // Many calls in one request, in order, each with its own answer.
    let (status, answer) = post_with(
        api,
        "batch",
        &json!({"calls": [
            {"method": "sendToUid", "args": {"uid": "ben", "message": "batched"}},
            {"method": "getAllClientIdCount"},
            {"method": "frobnicate"},
        ]}),
        "",
    );
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["result"][0], json!({"result": true}));
    assert_eq!(answer["result"][1], json!({"result": 3}));
    assert_eq!(answer["result"][2]["error"]["code"], "unknown_method");
    assert_eq!(text(&mut ben), "batched");

    // closeClient with last words; the client is gone afterwards.
    assert_eq!(
        call(
            api,
            "closeClient",
            json!({"client_id": cat_id, "message": "bye"})
        ),
        true
    );
    assert_eq!(text(&mut cat), "bye");
    eventually("cat is offline", || {
        call(api, "isOnline", json!({"client_id": cat_id})) == false
    });
}

#[test]
fn keep_alive_serves_many_requests_on_one_connection() {
    let (_gw, api) = with_api("", 1);
    let mut s = TcpStream::connect(api).unwrap();
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    for _ in 0..3 {
        let body = "{}";
        let request = format!(
            "POST /api/getAllClientIdCount HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        s.write_all(request.as_bytes()).unwrap();
        let mut answer = Vec::new();
        let mut chunk = [0u8; 4096];
        while !String::from_utf8_lossy(&answer).contains("{\"result\"") {
            let n = s.read(&mut chunk).unwrap();
            assert!(n > 0, "the connection stays open between requests");
            answer.extend_from_slice(&chunk[..n]);
        }
        assert_eq!(parse(&answer).0, 200);
    }
}

#[test]
fn a_request_waiting_across_a_stop_and_continue_of_the_api_is_answered() {
    // A read with a timeout fails with EINTR when its process is stopped and continued (an
    // operator's `kill -STOP`, a debugger, a frozen container), even without a signal handler:
    // the API reads the client again instead of dropping it.
    let (gw, api) = with_api("", 1);
    let pid = gw.role_pid("api").to_string();
    let body = "{}";
    let request = format!(
        "POST /api/getAllClientIdCount HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let (head, rest) = request.split_at(20);
    let mut s = TcpStream::connect(api).unwrap();
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    s.write_all(head.as_bytes()).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
    for signal in ["-STOP", "-CONT"] {
        let status = std::process::Command::new("kill")
            .args([signal, &pid])
            .status()
            .unwrap();
        assert!(status.success());
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    s.write_all(rest.as_bytes()).unwrap();
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    while !String::from_utf8_lossy(&answer).contains("{\"result\"") {
        let n = s.read(&mut chunk).unwrap();
        assert!(
            n > 0,
            "the API answers instead of closing: {:?}",
            String::from_utf8_lossy(&answer)
        );
        answer.extend_from_slice(&chunk[..n]);
    }
    assert_eq!(parse(&answer).0, 200);
}

#[test]
fn every_error_path_has_its_status_and_code() {
    let (gw, api) = with_api("sekrit", 1);
    let auth = "Authorization: Bearer sekrit\r\n";
    let code = |(status, answer): (u16, Json)| {
        (
            status,
            answer["error"]["code"].as_str().unwrap_or("").to_owned(),
        )
    };
    let expect = |got: (u16, String), status: u16, name: &str| {
        assert_eq!(got, (status, name.to_owned()));
    };
    // The key: missing, wrong, and right in either header.
    expect(
        code(post_with(api, "getAllClientIdCount", &json!({}), "")),
        401,
        "unauthorized",
    );
    expect(
        code(post_with(
            api,
            "getAllClientIdCount",
            &json!({}),
            "X-API-Key: nope\r\n",
        )),
        401,
        "unauthorized",
    );
    assert_eq!(
        post_with(api, "getAllClientIdCount", &json!({}), auth).0,
        200
    );
    assert_eq!(
        post_with(
            api,
            "getAllClientIdCount",
            &json!({}),
            "X-API-Key: sekrit\r\n"
        )
        .0,
        200
    );
    // Requests that are not calls.
    expect(
        code(raw(
            api,
            b"GET /api/isOnline HTTP/1.1\r\nAuthorization: Bearer sekrit\r\nConnection: close\r\n\r\n",
        )),
        405,
        "method_not_allowed",
    );
    expect(
        code(raw(
            api,
            b"POST /other HTTP/1.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        )),
        404,
        "not_found",
    );
    expect(
        code(post_with(api, "frobnicate", &json!({}), auth)),
        404,
        "unknown_method",
    );
    let bad_json = format!(
        "POST /api/sendToAll HTTP/1.1\r\n{auth}Connection: close\r\nContent-Length: 4\r\n\r\n{{nop"
    );
    expect(code(raw(api, bad_json.as_bytes())), 400, "bad_json");
    let chunked = format!(
        "POST /api/sendToAll HTTP/1.1\r\n{auth}Transfer-Encoding: chunked\r\n\r\n2\r\n{{}}\r\n0\r\n\r\n"
    );
    expect(code(raw(api, chunked.as_bytes())), 411, "length_required");
    let huge = format!("POST /api/sendToAll HTTP/1.1\r\n{auth}Content-Length: 99999999999\r\n\r\n");
    expect(code(raw(api, huge.as_bytes())), 413, "body_too_large");
    expect(
        code(raw(api, b"NOT HTTP AT ALL\r\n\r\n")),
        400,
        "bad_request",
    );
    // Arguments.
    for (method, args) in [
        (
            "sendToClient",
            json!({"client_id": "short", "message": "x"}),
        ),
        ("sendToUid", json!({"message": "x"})),
        (
            "sendToAll",
            json!({"message": "x", "message_base64": "eA=="}),
        ),
        ("sendToAll", json!({"message_base64": "***"})),
        (
            "setSession",
            json!({"client_id": "7f0000010b5400000001", "session": [1]}),
        ),
        ("sendToAll", json!(["not", "an", "object"])),
    ] {
        expect(
            code(post_with(api, method, &args, auth)),
            400,
            "bad_argument",
        );
    }
    let (status, answer) = post_with(api, "batch", &json!({"calls": "no"}), auth);
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (400, Some("bad_argument"))
    );
    drop(gw);
}

#[test]
fn with_no_gateway_to_reach_a_call_is_refused_naming_the_register() {
    // A register and the API, no gateway: the register lists nothing.
    let port = free_port();
    let mut setup = Setup {
        roles: "register,api",
        ..Setup::default()
    };
    let register = *setup.register_port.get_or_insert_with(free_port);
    setup.worker_extra = format!(
        "\n[api]\nlisten = \"127.0.0.1:{port}\"\nregister_address = \"127.0.0.1:{register}\"\n"
    );
    let _gw = Gatewire::start(setup);
    let api = SocketAddr::from(([127, 0, 0, 1], port));
    wait_listening(api);
    let (status, answer) = post_with(api, "sendToAll", &json!({"message": "lost"}), "");
    assert_eq!(status, 503, "{answer}");
    assert_eq!(answer["error"]["code"], "no_gateway");
    let message = answer["error"]["message"].as_str().unwrap_or("");
    assert!(message.contains(&register.to_string()), "{message}");
}

/// PHP's Register, Gateway and BusinessWorker (echo) in one workerman master, on free loopback
/// ports: the master, and the register's and the gateway's public addresses. Needs `php` and
/// GATEWAYWORKER_DIR (GatewayWorker's sources with `vendor/autoload.php`); `None` without them.
fn php_gatewayworker(dir: &std::path::Path) -> Option<(std::process::Child, u16, SocketAddr)> {
    let gatewayworker = std::env::var("GATEWAYWORKER_DIR").ok()?;
    if std::process::Command::new("php")
        .arg("-v")
        .output()
        .is_err()
    {
        return None;
    }
    let (register, public, inner) = (free_port(), free_port(), free_port_range(1));
    let script = format!(
        r#"<?php
require '{gatewayworker}/vendor/autoload.php';
use GatewayWorker\BusinessWorker;
use GatewayWorker\Gateway;
use GatewayWorker\Lib\Gateway as Api;
use GatewayWorker\Register;
use Workerman\Worker;
class Events {{
    public static function onMessage($client_id, $message) {{
        Api::sendToCurrentClient($message);
    }}
}}
new Register('text://127.0.0.1:{register}');
$gateway = new Gateway('websocket://127.0.0.1:{public}');
$gateway->count = 1;
$gateway->lanIp = '127.0.0.1';
$gateway->startPort = {inner};
$gateway->registerAddress = '127.0.0.1:{register}';
$worker = new BusinessWorker();
$worker->count = 1;
$worker->registerAddress = '127.0.0.1:{register}';
$worker->eventHandler = 'Events';
Worker::$pidFile = __DIR__ . '/php.pid';
Worker::$logFile = __DIR__ . '/php.log';
Worker::$stdoutFile = __DIR__ . '/php.out';
Worker::runAll();
"#
    );
    std::fs::write(dir.join("start.php"), script).unwrap();
    let child = std::process::Command::new("php")
        .args(["start.php", "start"])
        .current_dir(dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()?;
    Some((child, register, SocketAddr::from(([127, 0, 0, 1], public))))
}

#[test]
fn the_api_reaches_clients_of_a_php_gateway() {
    let dir = tempfile::tempdir().unwrap();
    let Some((mut php, register, public)) = php_gatewayworker(dir.path()) else {
        return eprintln!("SKIPPED: GATEWAYWORKER_DIR is not set or no php (PHP GatewayWorker)");
    };
    struct Stop<'a>(&'a mut std::process::Child);
    impl Drop for Stop<'_> {
        fn drop(&mut self) {
            // SAFETY: kill on the pid of a child this test started and has not reaped.
            unsafe { libc::kill(self.0.id() as i32, libc::SIGINT) };
            let _ = self.0.wait();
        }
    }
    let _stop = Stop(&mut php);
    // The api role alone, following PHP's register.
    let port = free_port();
    let gw = Gatewire::start(Setup {
        roles: "api",
        worker_extra: format!(
            "\n[api]\nlisten = \"127.0.0.1:{port}\"\nregister_address = \"127.0.0.1:{register}\"\n"
        ),
        ..Setup::default()
    });
    let api = SocketAddr::from(([127, 0, 0, 1], port));
    wait_listening(api);
    let mut ws = ws_connect_when_served(public, "/");
    ws.send(tungstenite::Message::text("echo?")).unwrap();
    assert_eq!(ws_read(&mut ws), "echo?", "PHP's worker serves the client");
    eventually("PHP's gateway counts the client", || {
        post_with(api, "getAllClientIdCount", &json!({}), "").1["result"] == 1
    });
    let ids = call(api, "getAllClientIdList", json!({}));
    let id = ids[0].as_str().unwrap().to_owned();
    assert_eq!(
        call(api, "sendToAll", json!({"message": "from the api"})),
        true
    );
    assert_eq!(ws_read(&mut ws), "from the api");
    call(api, "bindUid", json!({"client_id": id, "uid": "u7"}));
    call(api, "sendToUid", json!({"uid": "u7", "message": "to u7"}));
    assert_eq!(ws_read(&mut ws), "to u7");
    call(
        api,
        "setSession",
        json!({"client_id": id, "session": {"k": "v"}}),
    );
    assert_eq!(
        call(api, "getSession", json!({"client_id": id})),
        json!({"k": "v"})
    );
    drop(gw);
}

#[test]
fn a_gateway_that_does_not_answer_makes_the_answer_partial_naming_it() {
    let (gw, api) = with_api("", 1);
    let second = Gatewire::start(Setup {
        roles: "gateway",
        register_port: Some(gw.register.port()),
        ..Setup::default()
    });
    let _ann = chatter(&gw, "ann", "red");
    let second_inner = second.inner(0).to_string();
    eventually("the api sees both gateways", || {
        call(api, "getAllClientIdCount", json!({})) == 1
            && post_with(api, "getAllGroupIdList", &json!({}), "").0 == 200
    });
    std::thread::sleep(std::time::Duration::from_millis(1200)); // the gateway list cache
    let _frozen = Frozen::stop(second.role_pid("gateway"));
    let (status, answer) = post_with(api, "getAllClientIdCount", &json!({}), "");
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["result"], 1,
        "the live gateway's client is counted: {answer}"
    );
    assert_eq!(answer["partial"], true, "{answer}");
    let unreachable = answer["unreachable"].to_string();
    assert!(unreachable.contains(&second_inner), "{answer}");
}
