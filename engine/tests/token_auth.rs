//! `[gateway.auth]` end to end: a JWT checked before the 101 (from the Authorization header, a
//! `bearer.<token>` subprotocol entry or the `token` query parameter), 401 for a missing, bad or
//! expired one with no worker event, the claims applied before the worker hears of the client
//! (uid, session, groups) and handed to it in `onWebSocketConnect`, the close at `exp` and the
//! refresh that postpones it. The keys under `tests/fixtures/jwt` were made for these tests
//! (openssl genpkey); they protect nothing.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;
use gatewire::net::jwt::sign_hs256;
use gatewire_proto::Cmd;
use gatewire_proto::php::{Key, Value, unserialize};
use serde_json::{Value as Json, json};
use tungstenite::client::IntoClientRequest;

const SECRET: &str = "test-secret";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn token(claims: Json) -> String {
    sign_hs256(SECRET, &claims).unwrap()
}

fn gateway(extra: &str) -> Gatewire {
    Gatewire::start(Setup {
        extra: format!("\n[gateway.auth]\n{extra}\n"),
        metrics: true,
        capture_log: true,
        ..Setup::default()
    })
}

/// The status line a raw upgrade request gets, with `headers` and `target`.
fn upgrade_status(gw: &Gatewire, target: &str, headers: &str) -> String {
    let mut s = TcpStream::connect(gw.public).unwrap();
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    write!(
        s,
        "GET {target} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{headers}\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer.lines().next().unwrap_or_default().to_owned()
}

/// A client connected with `request` (headers already set).
fn ws_with(request: tungstenite::handshake::client::Request, gw: &Gatewire) -> Ws {
    let stream = TcpStream::connect(gw.public).unwrap();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    let (ws, _) =
        tungstenite::client::client(request, tungstenite::stream::MaybeTlsStream::Plain(stream))
            .unwrap();
    ws
}

#[test]
fn bad_tokens_get_401_and_no_worker_hears_of_them() {
    let gw = gateway(&format!("secret = \"{SECRET}\""));
    let mut w = gw.workers("Auth", "").remove(0);
    let expired = token(json!({"sub": "ann", "exp": now() - 10}));
    let forged = sign_hs256("another-secret", &json!({"sub": "ann"})).unwrap();
    assert!(upgrade_status(&gw, "/", "").starts_with("HTTP/1.1 401"));
    assert!(
        upgrade_status(&gw, "/", &format!("Authorization: Bearer {forged}\r\n"))
            .starts_with("HTTP/1.1 401")
    );
    assert!(upgrade_status(&gw, &format!("/?token={expired}"), "").starts_with("HTTP/1.1 401"));
    assert!(upgrade_status(&gw, "/?token=not-a-jwt", "").starts_with("HTTP/1.1 401"));
    // The first event any worker gets is the good client's connect.
    let good = token(json!({"sub": "ben"}));
    let _ws = ws_connect(gw.public, &format!("/?token={good}"));
    let first = w.next();
    assert_eq!(
        first.header.cmd,
        Cmd::OnConnect,
        "no event for refused clients"
    );
    assert_eq!(
        query_text(gw.inner(0), Cmd::GetClientIdByUid, 0, "ben"),
        format!("a:1:{{i:0;i:{};}}", first.header.connection_id)
    );
    let refused = |reason: &str| {
        gw.metric(&format!(
            "gatewire_auth_refusals_total{{reason=\"{reason}\"}}"
        ))
    };
    assert_eq!(refused("missing"), 1);
    assert_eq!(refused("invalid"), 2);
    assert_eq!(refused("expired"), 1);
    assert_eq!(gw.metric("gatewire_closed_total{reason=\"auth\"}"), 4);
    assert!(
        gw.log().contains("token refused"),
        "logged once per interval"
    );
}

#[test]
fn claims_bind_the_uid_set_the_session_join_groups_and_reach_the_worker() {
    let gw = gateway(&format!("secret = \"{SECRET}\""));
    let mut w = gw.workers("Auth", "").remove(0);
    let tok = token(
        json!({"sub": "ann", "groups": ["red", "blue"], "info": {"name": "Ann"},
                           "exp": now() + 600, "role": "admin"}),
    );
    // From a subprotocol entry, as a browser sends it: the 101 selects the other entry.
    let mut request = format!("ws://{}/", gw.public)
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        format!("bearer, bearer.{tok}").parse().unwrap(),
    );
    let _ws = ws_with(request, &gw);
    let connect = w.expect(Cmd::OnConnect);
    let id = connect.header.connection_id;
    assert_eq!(
        &connect.ext[..],
        br#"a:1:{s:4:"name";s:3:"Ann";}"#,
        "the session from info, already there for onConnect"
    );
    let hello = w.expect(Cmd::OnWebSocketConnect);
    let data = unserialize(&hello.body).unwrap();
    let auth = data.as_array().unwrap().get(&Key::from("auth")).unwrap();
    let auth = auth.as_array().unwrap();
    assert_eq!(auth.get(&Key::from("sub")), Some(&Value::from("ann")));
    assert_eq!(auth.get(&Key::from("role")), Some(&Value::from("admin")));
    let inner = gw.inner(0);
    assert_eq!(
        query_text(inner, Cmd::GetClientIdByUid, 0, "ann"),
        format!("a:1:{{i:0;i:{id};}}")
    );
    assert_eq!(
        query_text(inner, Cmd::GetClientCountByGroup, 0, "red"),
        "i:1;"
    );
    assert_eq!(
        query_text(inner, Cmd::GetClientCountByGroup, 0, "blue"),
        "i:1;"
    );
    // From the Authorization header too.
    let mut request = format!("ws://{}/", gw.public)
        .into_client_request()
        .unwrap();
    let tok = token(json!({"sub": "cat"}));
    request
        .headers_mut()
        .insert("Authorization", format!("Bearer {tok}").parse().unwrap());
    let _ws2 = ws_with(request, &gw);
    let id2 = w.expect(Cmd::OnConnect).header.connection_id;
    assert_eq!(
        query_text(inner, Cmd::GetClientIdByUid, 0, "cat"),
        format!("a:1:{{i:0;i:{id2};}}")
    );
}

#[test]
fn an_expired_token_closes_its_client_unless_refreshed() {
    let gw = gateway(&format!("secret = \"{SECRET}\"\nexpired_close_code = 4011"));
    let mut w = gw.workers("Auth", "").remove(0);
    let soon = now() + 2;
    let mut lapsing = ws_connect(
        gw.public,
        &format!("/?token={}", token(json!({"sub": "a", "exp": soon}))),
    );
    let lapsing_id = w.expect(Cmd::OnConnect).header.connection_id;
    let mut kept = ws_connect(
        gw.public,
        &format!("/?token={}", token(json!({"sub": "b", "exp": soon}))),
    );
    let kept_id = w.expect(Cmd::OnConnect).header.connection_id;
    // A refresh for another user is refused; one for the same user moves the expiry.
    let other = token(json!({"sub": "x", "exp": now() + 60}));
    kept.send(tungstenite::Message::text(format!(
        r#"{{"gatewire":"refresh","token":"{other}"}}"#
    )))
    .unwrap();
    let answer: Json = serde_json::from_str(&ws_read(&mut kept)).unwrap();
    assert_eq!(answer["gatewire"], "refresh_refused");
    let later = now() + 60;
    let fresh = token(json!({"sub": "b", "exp": later}));
    kept.send(tungstenite::Message::text(format!(
        r#"{{"gatewire":"refresh","token":"{fresh}"}}"#
    )))
    .unwrap();
    let answer: Json = serde_json::from_str(&ws_read(&mut kept)).unwrap();
    assert_eq!(answer, json!({"gatewire": "refreshed", "exp": later}));
    // The lapsing client gets the close code once its exp passes (within the 1 s sweep).
    let close = loop {
        match lapsing.next_message() {
            Ok(tungstenite::Message::Close(frame)) => break frame,
            Ok(_) => continue,
            Err(e) => panic!("no close frame: {e}"),
        }
    };
    assert_eq!(u16::from(close.unwrap().code), 4011);
    let closed = w.expect(Cmd::OnClose);
    assert_eq!(closed.header.connection_id, lapsing_id);
    // The refreshed one is still served, and its refreshes never reached the worker.
    w.command(Cmd::SendToOne, kept_id, "", "still here");
    assert_eq!(ws_read(&mut kept), "still here");
    kept.send(tungstenite::Message::text("hello")).unwrap();
    let message = w.expect(Cmd::OnMessage);
    assert_eq!(
        &message.body[..],
        b"hello",
        "the first message the worker sees"
    );
    assert_eq!(gw.metric("gatewire_auth_expired_closes_total"), 1);
    assert_eq!(gw.metric("gatewire_auth_refreshes_total"), 1);
    std::thread::sleep(Duration::from_millis(10));
}

#[test]
fn rs256_and_es256_tokens_verify_with_their_public_keys() {
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/jwt");
    for (alg, algorithm) in [
        ("rs256", jsonwebtoken::Algorithm::RS256),
        ("es256", jsonwebtoken::Algorithm::ES256),
    ] {
        let public = fixtures.join(format!("{alg}-public.pem"));
        let private = std::fs::read(fixtures.join(format!("{alg}-private.pem"))).unwrap();
        let gw = gateway(&format!("public_key = {:?}", public.display().to_string()));
        let mut w = gw.workers("Auth", "").remove(0);
        let key = match algorithm {
            jsonwebtoken::Algorithm::RS256 => jsonwebtoken::EncodingKey::from_rsa_pem(&private),
            _ => jsonwebtoken::EncodingKey::from_ec_pem(&private),
        }
        .unwrap();
        let signed = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(algorithm),
            &json!({"sub": alg}),
            &key,
        )
        .unwrap();
        let _ws = ws_connect(gw.public, &format!("/?token={signed}"));
        let id = w.expect(Cmd::OnConnect).header.connection_id;
        assert_eq!(
            query_text(gw.inner(0), Cmd::GetClientIdByUid, 0, alg),
            format!("a:1:{{i:0;i:{id};}}")
        );
        // An HS256 token signed with the public key's bytes is the classic confusion attack.
        let confused = sign_hs256(
            &std::fs::read_to_string(&public).unwrap(),
            &json!({"sub": "x"}),
        )
        .unwrap();
        assert!(
            upgrade_status(&gw, &format!("/?token={confused}"), "").starts_with("HTTP/1.1 401"),
            "{alg}: an HS256 token is refused"
        );
    }
}

/// A PHP BusinessWorker (GatewayWorker's, with GATEWAYWORKER_DIR) behind a gatewire gateway with
/// auth on sees what a gatewire worker sees: the claims in `$data['auth']`, the uid bound, the
/// session from `info`. Skipped (with a line) without php or GatewayWorker's sources.
#[test]
fn a_php_business_worker_sees_the_claims() {
    let Some(gatewayworker) = std::env::var_os("GATEWAYWORKER_DIR") else {
        return eprintln!("SKIPPED: GATEWAYWORKER_DIR is not set (GatewayWorker's sources)");
    };
    if !std::process::Command::new("php")
        .arg("-v")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        return eprintln!("SKIPPED: no `php` on PATH");
    }
    let mut setup = Setup {
        roles: "register,gateway",
        extra: format!("\n[gateway.auth]\nsecret = \"{SECRET}\"\n"),
        ..Setup::default()
    };
    let register = *setup.register_port.get_or_insert_with(free_port);
    let gw = Gatewire::start(setup);
    let dir = tempfile::tempdir().unwrap();
    let script = format!(
        r#"<?php
require getenv('GATEWAYWORKER_DIR') . '/vendor/autoload.php';
use GatewayWorker\BusinessWorker;
use GatewayWorker\Lib\Gateway;
use Workerman\Worker;
class Events {{
    public static function onWebSocketConnect($client_id, $data) {{
        Gateway::sendToClient($client_id, json_encode([
            'auth' => $data['auth'],
            'uid' => Gateway::getUidByClientId($client_id),
            'session' => $_SESSION,
        ]));
    }}
    public static function onMessage($client_id, $message) {{}}
}}
$worker = new BusinessWorker();
$worker->name = 'PhpAuth';
$worker->count = 1;
$worker->registerAddress = '127.0.0.1:{register}';
$worker->eventHandler = 'Events';
Worker::$pidFile = __DIR__ . '/php.pid';
Worker::$logFile = __DIR__ . '/php.log';
Worker::$stdoutFile = __DIR__ . '/php.out';
Worker::runAll();
"#
    );
    std::fs::write(dir.path().join("start.php"), script).unwrap();
    let php = std::process::Command::new("php")
        .args(["start.php", "start"])
        .current_dir(dir.path())
        .env("GATEWAYWORKER_DIR", &gatewayworker)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    struct Stop(std::process::Child);
    impl Drop for Stop {
        fn drop(&mut self) {
            // SAFETY: SIGINT to the workerman master this test started and has not reaped.
            unsafe { libc::kill(self.0.id() as i32, libc::SIGINT) };
            let _ = self.0.wait();
        }
    }
    let _php = Stop(php);
    // The PHP worker needs a moment to find the gateway: until then clients are refused.
    let tok = token(json!({"sub": "ann", "info": {"name": "Ann"}, "role": "admin"}));
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let answer = loop {
        let stream = TcpStream::connect(gw.public).unwrap();
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        let url = format!("ws://{}/?token={tok}", gw.public);
        if let Ok((mut ws, _)) =
            tungstenite::client::client(url, tungstenite::stream::MaybeTlsStream::Plain(stream))
            && let Ok(tungstenite::Message::Text(text)) = ws.next_message()
        {
            break text.to_string();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the PHP worker never answered: {}",
            std::fs::read_to_string(dir.path().join("php.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let answer: Json = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer["auth"]["sub"], "ann");
    assert_eq!(answer["auth"]["role"], "admin");
    assert_eq!(answer["uid"], "ann");
    assert_eq!(answer["session"], json!({"name": "Ann"}));
}
