//! The non-WebSocket client protocols and register restarts, end to end.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;

use common::*;
use gatewire_proto::Cmd;

fn gateway(scheme: &'static str) -> Gatewire {
    Gatewire::start(Setup {
        scheme,
        ..Setup::default()
    })
}

fn raw_client(gw: &Gatewire) -> TcpStream {
    let s = TcpStream::connect(gw.public).unwrap();
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    s
}

#[test]
fn text_protocol_is_newline_framed() {
    let gw = gateway("text");
    let mut w = gw.workers("Text", "").remove(0);
    let mut c = raw_client(&gw);
    let id = w.expect(Cmd::OnConnect).header.connection_id;
    c.write_all(b"one\r\ntw").unwrap();
    assert_eq!(&w.expect(Cmd::OnMessage).body[..], b"one");
    c.write_all(b"o\n").unwrap();
    assert_eq!(&w.expect(Cmd::OnMessage).body[..], b"two");
    w.command(Cmd::SendToOne, id, "", "back");
    let mut got = [0u8; 5];
    c.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"back\n");
}

#[test]
fn frame_protocol_is_length_prefixed() {
    let gw = gateway("frame");
    let mut w = gw.workers("Frame", "").remove(0);
    let mut c = raw_client(&gw);
    let id = w.expect(Cmd::OnConnect).header.connection_id;
    c.write_all(&[0, 0, 0, 7, b'h', b'e', b'y']).unwrap();
    assert_eq!(&w.expect(Cmd::OnMessage).body[..], b"hey");
    w.command(Cmd::SendToOne, id, "", "ok");
    let mut got = [0u8; 6];
    c.read_exact(&mut got).unwrap();
    assert_eq!(&got, &[0, 0, 0, 6, b'o', b'k']);
    // A length below 4 is a protocol error: this client alone is closed.
    c.write_all(&[0, 0, 0, 1]).unwrap();
    assert_eq!(w.expect(Cmd::OnClose).header.connection_id, id);
}

#[test]
fn tcp_protocol_passes_bytes_through() {
    let gw = gateway("tcp");
    let mut w = gw.workers("Raw", "").remove(0);
    let mut c = raw_client(&gw);
    let id = w.expect(Cmd::OnConnect).header.connection_id;
    c.write_all(b"\x00raw\xff").unwrap();
    assert_eq!(&w.expect(Cmd::OnMessage).body[..], b"\x00raw\xff");
    w.command(Cmd::SendToOne, id, "", "as is");
    let mut got = [0u8; 5];
    c.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"as is");
}

#[test]
fn a_restarted_register_learns_the_gateways_again() {
    let register_port = free_port();
    let gw = Gatewire::start(Setup {
        roles: "gateway",
        register_port: Some(register_port),
        ..Setup::default()
    });
    let register_only = |gw: &Gatewire| {
        // The port can be briefly held by a connection the old register left behind; a real
        // operator's restart retries the same way.
        let child = loop {
            // A deployment of its own: its own run directory beside the gateway's.
            let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_gatewire"))
                .args(["start", "--role", "register", "-c"])
                .arg(gw.path("gatewire.toml"))
                .arg("--set")
                .arg(format!("run.dir={:?}", gw.path("register-run")))
                .env("GATEWIRE_LOG", "off")
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
            std::thread::sleep(std::time::Duration::from_millis(300));
            if child.try_wait().unwrap().is_none() {
                break KillOnDrop(child);
            }
        };
        wait_listening(gw.register);
        let listed = |expected: &str| {
            let mut s = TcpStream::connect(gw.register).unwrap();
            s.set_read_timeout(Some(TIMEOUT)).unwrap();
            s.write_all(gatewire_proto::register::worker_connect_line("").as_bytes())
                .unwrap();
            let mut line = String::new();
            let mut byte = [0u8; 1];
            while s.read(&mut byte).unwrap_or(0) == 1 && byte[0] != b'\n' {
                line.push(byte[0] as char);
            }
            line.contains(expected)
        };
        let inner = gw.inner(0).to_string();
        eventually("the gateway re-announced itself", || listed(&inner));
        drop(child);
    };
    register_only(&gw);
    // Again: the gateway reconnects 1 s after the drop.
    register_only(&gw);
}

/// A child process that is killed when the test ends, even by a panic.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
