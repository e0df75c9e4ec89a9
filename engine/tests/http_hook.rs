//! The `http` app end to end: real `gatewire` processes whose worker POSTs every event to a real
//! HTTP backend (the Python chat backend of examples/http-backend, and backends written here to
//! misbehave), with real WebSocket clients: the commands in the answers reach the clients, one
//! client's events keep their order, failed deliveries are retried, and a client whose event
//! could not be delivered hears so and is closed.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use serde_json::{Value as Json, json};

/// Every role with `app = "http"` posting to `url`, and `extra` lines in `[worker.http]`.
fn with_hook(url: &str, extra: &str) -> Gatewire {
    Gatewire::start(Setup {
        roles: "register,gateway,worker",
        app: "http",
        shards: 2,
        metrics: true,
        worker_extra: format!("\n[worker.http]\nurl = \"{url}\"\n{extra}\n"),
        ..Setup::default()
    })
}

/// A backend that answers each event with `answer(event, attempt)`: the status and the JSON
/// body (`attempt` counts the times this exact event body was seen). Every event is recorded.
struct Backend {
    addr: SocketAddr,
    events: Arc<Mutex<Vec<Json>>>,
}

type Answer = dyn Fn(&Json, usize) -> (u16, Json) + Send + Sync;

impl Backend {
    fn start(answer: impl Fn(&Json, usize) -> (u16, Json) + Send + Sync + 'static) -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let events: Arc<Mutex<Vec<Json>>> = Arc::default();
        let seen: Arc<Mutex<std::collections::HashMap<String, usize>>> = Arc::default();
        let answer: Arc<Answer> = Arc::new(answer);
        let recorded = events.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (answer, recorded, seen) = (answer.clone(), recorded.clone(), seen.clone());
                std::thread::spawn(move || serve(stream, &*answer, &recorded, &seen));
            }
        });
        Backend { addr, events }
    }

    fn url(&self) -> String {
        format!("http://{}/events", self.addr)
    }

    fn events(&self) -> Vec<Json> {
        self.events.lock().unwrap().clone()
    }
}

fn serve(
    stream: TcpStream,
    answer: &Answer,
    recorded: &Mutex<Vec<Json>>,
    seen: &Mutex<std::collections::HashMap<String, usize>>,
) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut out = stream;
    loop {
        let mut length = 0usize;
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        loop {
            line.clear();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap();
            }
        }
        let mut body = vec![0u8; length];
        reader.read_exact(&mut body).unwrap();
        let event: Json = serde_json::from_slice(&body).unwrap();
        let attempt = {
            let mut seen = seen.lock().unwrap();
            let n = seen.entry(event.to_string()).or_insert(0);
            *n += 1;
            *n
        };
        recorded.lock().unwrap().push(event.clone());
        let (status, reply) = answer(&event, attempt);
        let reply = reply.to_string();
        let head = format!(
            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            reply.len()
        );
        if out
            .write_all(head.as_bytes())
            .and_then(|()| out.write_all(reply.as_bytes()))
            .is_err()
        {
            return;
        }
    }
}

fn commands(list: Json) -> (u16, Json) {
    (200, json!({ "commands": list }))
}

/// The client's messages until it is closed: texts, and the close.
fn read_until_closed(ws: &mut Ws) -> Vec<String> {
    let mut lines = Vec::new();
    loop {
        match ws.next_message() {
            Ok(tungstenite::Message::Text(t)) => lines.push(t.to_string()),
            Ok(tungstenite::Message::Close(_)) | Err(_) => return lines,
            Ok(_) => {}
        }
    }
}

#[test]
fn the_python_chat_backend_runs_the_chat_over_the_hook() {
    chat_over_the_hook("python3", "chat.py");
}

#[test]
fn the_node_chat_backend_runs_the_chat_over_the_hook() {
    chat_over_the_hook("node", "chat.js");
}

/// Runs examples/http-backend/`script` with `interpreter` (skipped with a line without it) as
/// the backend of a deployment, and chats through it.
fn chat_over_the_hook(interpreter: &str, script: &str) {
    if std::process::Command::new(interpreter)
        .arg("--version")
        .output()
        .is_err()
    {
        return eprintln!("SKIPPED {script}: no {interpreter}");
    }
    let port = free_port();
    let script = format!(
        "{}/../examples/http-backend/{script}",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut backend = std::process::Command::new(interpreter)
        .args([script.as_str(), &port.to_string()])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    struct Kill<'a>(&'a mut std::process::Child);
    impl Drop for Kill<'_> {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _kill = Kill(&mut backend);
    wait_listening(SocketAddr::from(([127, 0, 0, 1], port)));
    let gw = with_hook(&format!("http://127.0.0.1:{port}/events"), "");

    let mut ann = ws_connect_when_served(gw.public, "/?name=ann&room=red");
    assert!(ws_read(&mut ann).starts_with("Hello "));
    assert_eq!(ws_read(&mut ann), "* ann joined red");
    let mut ben = ws_connect_when_served(gw.public, "/?name=ben&room=red");
    assert!(ws_read(&mut ben).starts_with("Hello "));
    assert_eq!(ws_read(&mut ben), "* ben joined red");
    assert_eq!(ws_read(&mut ann), "* ben joined red");

    ann.send(tungstenite::Message::text("hello ben")).unwrap();
    assert_eq!(ws_read(&mut ann), "ann said hello ben");
    assert_eq!(ws_read(&mut ben), "ann said hello ben");
    ben.send(tungstenite::Message::text("/msg ann psst"))
        .unwrap();
    assert_eq!(ws_read(&mut ann), "ben whispers psst");
    assert_eq!(ws_read(&mut ben), "You whisper to ann: psst");

    // Back to back: the second message sees the name the first one's answer set.
    ben.send(tungstenite::Message::text("/nick benny")).unwrap();
    ben.send(tungstenite::Message::text("quick")).unwrap();
    assert_eq!(ws_read(&mut ben), "You are now benny");
    assert_eq!(ws_read(&mut ben), "benny said quick");
    assert_eq!(ws_read(&mut ann), "benny said quick");

    drop(ben);
    assert_eq!(ws_read(&mut ann), "* benny left red");
    assert!(gw.metric("gatewire_hook_events_delivered_total") >= 8);
    assert_eq!(gw.metric("gatewire_hook_events_failed_total"), 0);
}

#[test]
fn one_clients_events_keep_their_order_and_failed_attempts_are_retried() {
    // Every event's first attempt is answered 503; messages are echoed after a random pause.
    let backend = Backend::start(|event, attempt| {
        if attempt == 1 {
            return (503, json!({}));
        }
        match event["event"].as_str() {
            Some("message") => {
                let pause = event["message"].as_str().unwrap_or("").len() % 7;
                std::thread::sleep(Duration::from_millis(pause as u64));
                commands(
                    json!([{"method": "sendToCurrentClient", "args": {"message": event["message"]}}]),
                )
            }
            _ => commands(json!([])),
        }
    });
    let gw = with_hook(&backend.url(), "retries = 2\nmax_in_flight = 4");
    let mut clients: Vec<Ws> = (0..3)
        .map(|_| ws_connect_when_served(gw.public, "/"))
        .collect();
    for round in 0..20 {
        for (i, ws) in clients.iter_mut().enumerate() {
            ws.send(tungstenite::Message::text(format!(
                "c{i} m{round} {}",
                "x".repeat(round)
            )))
            .unwrap();
        }
    }
    for (i, ws) in clients.iter_mut().enumerate() {
        for round in 0..20 {
            assert_eq!(ws_read(ws), format!("c{i} m{round} {}", "x".repeat(round)));
        }
    }
    // Each client's messages reached the backend in the order sent (first attempts included).
    let events = backend.events();
    for i in 0..3 {
        let seen: Vec<String> = events
            .iter()
            .filter(|e| e["event"] == "message")
            .filter_map(|e| e["message"].as_str())
            .filter(|m| m.starts_with(&format!("c{i} ")))
            .map(str::to_owned)
            .collect();
        let mut expected = Vec::new();
        for round in 0..20 {
            let m = format!("c{i} m{round} {}", "x".repeat(round));
            expected.push(m.clone());
            expected.push(m);
        }
        assert_eq!(
            seen, expected,
            "client {i}: each event twice (503, then 200), in order"
        );
    }
    assert!(gw.metric("gatewire_hook_attempts_retried_total") >= 60);
    assert_eq!(gw.metric("gatewire_hook_events_failed_total"), 0);
}

#[test]
fn a_client_whose_event_cannot_be_delivered_hears_so_and_is_closed() {
    // A refusal (4xx) is not retried.
    let backend = Backend::start(|event, _| match event["event"].as_str() {
        Some("message") if event["message"] == "forbidden" => (403, json!({"no": true})),
        Some("message") => {
            commands(json!([{"method": "sendToCurrentClient", "args": {"message": "ok"}}]))
        }
        _ => commands(json!([])),
    });
    let gw = with_hook(&backend.url(), "failure_message = \"service unavailable\"");
    let mut ws = ws_connect_when_served(gw.public, "/");
    ws.send(tungstenite::Message::text("fine")).unwrap();
    assert_eq!(ws_read(&mut ws), "ok");
    ws.send(tungstenite::Message::text("forbidden")).unwrap();
    assert_eq!(read_until_closed(&mut ws), ["service unavailable"]);
    assert_eq!(gw.metric("gatewire_hook_events_failed_total"), 1);
    let refusals = backend
        .events()
        .iter()
        .filter(|e| e["message"] == "forbidden")
        .count();
    assert_eq!(refusals, 1, "a 4xx is not tried again");

    // A backend that is not there: every attempt fails, then the client is told and closed.
    let nobody = free_port();
    let gw = with_hook(
        &format!("http://127.0.0.1:{nobody}/events"),
        "retries = 1\ntimeout = 1.0\nfailure_message = \"service unavailable\"",
    );
    let mut ws = ws_connect_when_served(gw.public, "/");
    assert_eq!(read_until_closed(&mut ws), ["service unavailable"]);
    assert!(gw.metric("gatewire_hook_events_failed_total") >= 1);
    assert!(gw.metric("gatewire_hook_attempts_retried_total") >= 1);
}

#[test]
fn commands_that_cannot_run_are_counted_and_the_rest_still_run() {
    let backend = Backend::start(|event, _| match event["event"].as_str() {
        Some("message") => commands(json!([
            {"method": "getAllClientIdCount"},
            {"method": "frobnicate"},
            {"method": "sendToCurrentClient", "args": {"message": "still here"}},
        ])),
        _ => commands(json!([])),
    });
    let gw = with_hook(&backend.url(), "");
    let mut ws = ws_connect_when_served(gw.public, "/");
    ws.send(tungstenite::Message::text("go")).unwrap();
    assert_eq!(ws_read(&mut ws), "still here");
    assert_eq!(gw.metric("gatewire_hook_command_errors_total"), 2);
    // The events carry what the backend needs: the kind, the client, its session, the message.
    let events = backend.events();
    let message = events.iter().find(|e| e["event"] == "message").unwrap();
    assert_eq!(message["message"], "go");
    assert!(
        message["client_id"]
            .as_str()
            .is_some_and(|id| id.len() == 20)
    );
    let handshake = events
        .iter()
        .find(|e| e["event"] == "websocket_connect")
        .unwrap();
    assert!(handshake["request"]["server"].is_object(), "{handshake}");
}

#[test]
fn only_the_events_asked_for_are_posted() {
    let backend = Backend::start(|event, _| match event["event"].as_str() {
        Some("message") => {
            commands(json!([{"method": "sendToCurrentClient", "args": {"message": "ok"}}]))
        }
        _ => commands(json!([])),
    });
    let gw = with_hook(&backend.url(), "events = [\"message\", \"close\"]");
    let mut ws = ws_connect_when_served(gw.public, "/");
    ws.send(tungstenite::Message::text("hi")).unwrap();
    assert_eq!(ws_read(&mut ws), "ok");
    drop(ws);
    eventually("the close is posted", || {
        backend.events().iter().any(|e| e["event"] == "close")
    });
    let kinds: Vec<String> = backend
        .events()
        .iter()
        .map(|e| e["event"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(kinds, ["message", "close"]);
}

#[test]
fn group_presence_is_posted_when_asked_for_in_the_clients_order() {
    // The backend puts each client in "red" at its handshake and greets the room on each join.
    let backend = Backend::start(|event, _| match event["event"].as_str() {
        Some("websocket_connect") => {
            commands(json!([{"method": "joinGroup", "args": {"group": "red"}}]))
        }
        Some("group_join") => commands(json!([{"method": "sendToGroup",
            "args": {"group": event["group"], "message": format!("joined {}", event["client_id"].as_str().unwrap_or(""))}}])),
        _ => commands(json!([])),
    });
    let gw = with_hook(
        &backend.url(),
        "events = [\"websocket_connect\", \"message\", \"close\", \"group_join\", \"group_leave\"]",
    );
    let mut ann = ws_connect_when_served(gw.public, "/");
    let ann_joined = ws_read(&mut ann);
    assert!(ann_joined.starts_with("joined "), "{ann_joined}");
    let mut ben = ws_connect_when_served(gw.public, "/");
    let ben_joined = ws_read(&mut ben);
    assert_eq!(ws_read(&mut ann), ben_joined, "ann hears ben join the room");
    let ben_id = ben_joined.trim_start_matches("joined ").to_owned();
    drop(ben);
    eventually("ben's close is posted", || {
        backend
            .events()
            .iter()
            .any(|e| e["event"] == "close" && e["client_id"] == ben_id.as_str())
    });
    let bens: Vec<(String, String)> = backend
        .events()
        .iter()
        .filter(|e| e["client_id"] == ben_id.as_str())
        .map(|e| {
            let kind = e["event"].as_str().unwrap_or("").to_owned();
            (kind, e["group"].as_str().unwrap_or("").to_owned())
        })
        .collect();
    let expected: Vec<(String, String)> = [
        ("websocket_connect", ""),
        ("group_join", "red"),
        ("group_leave", "red"),
        ("close", ""),
    ]
    .iter()
    .map(|(k, g)| ((*k).to_owned(), (*g).to_owned()))
    .collect();
    assert_eq!(bens, expected, "ben's events, in order");
}

#[test]
fn without_presence_events_asked_for_no_join_is_posted() {
    let backend = Backend::start(|event, _| match event["event"].as_str() {
        Some("websocket_connect") => commands(json!([
            {"method": "joinGroup", "args": {"group": "red"}},
            {"method": "sendToCurrentClient", "args": {"message": "in"}}])),
        _ => commands(json!([])),
    });
    let gw = with_hook(&backend.url(), "");
    let mut ws = ws_connect_when_served(gw.public, "/");
    assert_eq!(ws_read(&mut ws), "in");
    drop(ws);
    eventually("the close is posted", || {
        backend.events().iter().any(|e| e["event"] == "close")
    });
    assert!(
        !backend
            .events()
            .iter()
            .any(|e| e["event"] == "group_join" || e["event"] == "group_leave"),
        "{:?}",
        backend.events()
    );
}
