//! The runtime backends end to end: each serves clients through a worker, `auto` falls back to
//! epoll where io_uring is refused (a seccomp filter like a default container's) and says why,
//! and naming io_uring there stops with the cause and the fix.

mod common;

use std::process::{Command, Stdio};

use common::*;

fn echo(backend: Option<&'static str>, block_io_uring: bool) -> Setup {
    Setup {
        roles: "register,gateway,worker",
        app: "echo",
        shards: 2,
        capture_log: true,
        log: "info",
        backend,
        block_io_uring,
        ..Setup::default()
    }
}

/// The start-up line that names the backend and why.
fn backend_line(log: &str) -> &str {
    log.lines()
        .find(|l| l.contains("runtime backend"))
        .unwrap_or_else(|| panic!("no backend line in:\n{log}"))
}

fn round_trips(gw: &Gatewire) {
    let mut clients: Vec<Ws> = (0..4)
        .map(|_| ws_connect_when_served(gw.public, "/"))
        .collect();
    for round in 0..3 {
        for (i, ws) in clients.iter_mut().enumerate() {
            let text = format!("client {i} round {round}");
            ws.send(tungstenite::Message::text(text.clone())).unwrap();
            assert_eq!(ws_read(ws), text);
        }
    }
}

#[test]
fn every_backend_serves_clients_through_a_worker() {
    for backend in ["io_uring", "epoll", "glommio"] {
        let gw = Gatewire::start(echo(Some(backend), false));
        round_trips(&gw);
        let log = gw.log();
        assert!(
            log.lines()
                .any(|l| l.contains("runtime backend") && l.contains(&format!("backend={backend}"))),
            "{backend}: no start-up line naming the backend in:\n{log}"
        );
    }
}

#[test]
fn auto_runs_on_epoll_where_a_seccomp_filter_refuses_io_uring_and_says_why() {
    let gw = Gatewire::start(echo(Some("auto"), true));
    round_trips(&gw);
    let log = gw.log();
    let line = backend_line(&log);
    assert!(line.contains("backend=epoll"), "{line}");
    assert!(line.contains("seccomp"), "the cause is named: {line}");
    // The same profiles refuse unshare: the shards share one fd table, and say so once.
    assert_eq!(
        log.matches("unshare(CLONE_FILES) is refused here").count(),
        1,
        "{log}"
    );
}

/// Where io_uring works, `auto` takes the own io_uring reactor, which locks no memory: a
/// locked-memory limit below glommio's 512 KiB does not stop it.
#[test]
fn auto_runs_on_the_own_io_uring_reactor_where_io_uring_works() {
    let gw = Gatewire::start(Setup {
        memlock: Some(256 * 1024),
        ..echo(Some("auto"), false)
    });
    round_trips(&gw);
    let log = gw.log();
    let line = backend_line(&log);
    assert!(line.contains("backend=io_uring"), "{line}");
    assert!(
        line.contains("io_uring works here"),
        "the cause is named: {line}"
    );
}

#[test]
fn naming_io_uring_where_it_is_refused_stops_with_the_cause_and_the_fix() {
    for backend in ["io_uring", "glommio"] {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let config = format!("[gateway]\nlisten = \"websocket://127.0.0.1:{port}\"\n");
        std::fs::write(dir.path().join("gatewire.toml"), config).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_gatewire"));
        command
            .args(["start", "--single-process", "-c", "gatewire.toml"])
            .current_dir(dir.path())
            .env("GATEWIRE_RUN_BACKEND", backend)
            .stdin(Stdio::null());
        common::seccomp::block_io_uring(&mut command);
        let out = command.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{backend}: {stderr}");
        assert!(
            stderr.contains("io_uring is not available here") && stderr.contains("seccomp"),
            "{backend}: the cause: {stderr}"
        );
        assert!(
            stderr.contains("seccomp-io_uring.json") && stderr.contains("\"epoll\""),
            "{backend}: the fix: {stderr}"
        );
    }
}

/// A client closed for a protocol error while it keeps sending (its next frame arrives a byte
/// at a time, as Autobahn's chopped cases send it) gets the close frame and then the end of the
/// connection, on every backend. On the own io_uring reactor a poll still armed on the closed
/// socket could keep it open, the peer never told (a few clients in a hundred).
#[test]
fn a_client_closed_for_a_protocol_error_sees_its_connection_end() {
    use std::io::{Read, Write};
    use std::time::{Duration, Instant};
    let masked = |first: u8, payload: &[u8]| {
        let mask = [0x11u8, 0x22, 0x33, 0x44];
        let mut frame = vec![first, 0x80 | payload.len() as u8];
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        frame
    };
    for backend in ["io_uring", "epoll", "glommio"] {
        let gw = Gatewire::start(echo(Some(backend), false));
        round_trips(&gw);
        let mut late = Vec::new();
        for client in 0..150 {
            let mut stream = raw_websocket(&gw);
            stream.set_nodelay(true).unwrap();
            // A text frame, one with reserved bits set (a protocol error), then a ping.
            let mut bytes = masked(0x81, b"Hello, world!");
            bytes.extend(masked(0xF1, b"Hello, world!"));
            bytes.extend(masked(0x89, b""));
            let started = Instant::now();
            for b in bytes {
                if stream.write_all(&[b]).is_err() {
                    break;
                }
            }
            stream
                .set_read_timeout(Some(Duration::from_secs(3)))
                .unwrap();
            let mut sink = [0u8; 4096];
            let ended = loop {
                match stream.read(&mut sink) {
                    Ok(0) => break true,
                    Ok(_) => {}
                    Err(e)
                        if e.kind() == std::io::ErrorKind::WouldBlock
                            || e.kind() == std::io::ErrorKind::TimedOut =>
                    {
                        break false;
                    }
                    Err(_) => break true, // reset: ended too
                }
            };
            if !ended {
                late.push((client, started.elapsed()));
            }
        }
        assert!(
            late.is_empty(),
            "{backend}: connections the server did not end within 3 s: {late:?}"
        );
    }
}
