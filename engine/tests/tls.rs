//! `wss://`: the gateway terminates TLS (rustls) and speaks WebSocket inside it.

mod common;

use std::net::TcpStream;
use std::sync::Arc;

use common::*;
use gatewire_proto::Cmd;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme, StreamOwned};

/// The test trusts the throwaway certificate it just made.
#[derive(Debug)]
struct TrustAnything;

impl ServerCertVerifier for TrustAnything {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A client that trusts whatever certificate the gateway presents.
fn client_config() -> Arc<ClientConfig> {
    Arc::new(
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(TrustAnything))
            .with_no_client_auth(),
    )
}

#[test]
fn wss_clients_talk_to_workers_through_tls() {
    let dir = tempfile::tempdir().unwrap();
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    let gw = Gatewire::start(Setup {
        scheme: "wss",
        extra: format!(
            "tls_cert = {:?}\ntls_key = {:?}",
            cert.display().to_string(),
            key.display().to_string()
        ),
        ..Setup::default()
    });
    let mut w = gw.workers("Tls", "").remove(0);

    let conn =
        ClientConnection::new(client_config(), ServerName::try_from("localhost").unwrap()).unwrap();
    let tcp = TcpStream::connect(gw.public).unwrap();
    tcp.set_read_timeout(Some(TIMEOUT)).unwrap();
    let tls = StreamOwned::new(conn, tcp);
    let (mut ws, _) =
        tungstenite::client::client(format!("wss://localhost:{}/", gw.public.port()), tls)
            .expect("websocket over tls");

    let id = w.expect(Cmd::OnConnect).header.connection_id;
    w.expect(Cmd::OnWebSocketConnect);
    ws.send(tungstenite::Message::text("secret hello")).unwrap();
    assert_eq!(&w.expect(Cmd::OnMessage).body[..], b"secret hello");
    w.command(Cmd::SendToOne, id, "", &"big ".repeat(50_000));
    let reply = loop {
        if let tungstenite::Message::Text(t) = ws.next_message().unwrap() {
            break t;
        }
    };
    assert_eq!(reply.len(), 200_000);
    drop(ws);
    assert_eq!(w.expect(Cmd::OnClose).header.connection_id, id);
}

#[test]
fn a_missing_certificate_stops_start_up_naming_the_key() {
    let run = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gatewire"))
        .args(["start", "--role", "gateway", "--set"])
        .arg(format!("run.dir={:?}", run.path()))
        .arg("--set")
        .arg("gateway.listen=\"wss://127.0.0.1:0\"")
        .args(["--set", "gateway.tls_cert=\"/nonexistent/cert.pem\""])
        .args(["--set", "gateway.tls_key=\"/nonexistent/key.pem\""])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("gateway.tls_cert"), "{stderr}");
}

/// A throwaway certificate for `name`, written as the gateway's pair; returns its DER.
fn write_pair(dir: &std::path::Path, name: &str) -> Vec<u8> {
    let certified = rcgen::generate_simple_self_signed(vec![name.to_owned()]).unwrap();
    std::fs::write(dir.join("cert.pem"), certified.cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), certified.signing_key.serialize_pem()).unwrap();
    certified.cert.der().to_vec()
}

/// A finished TLS handshake with the gateway: the connection and the certificate it presented.
fn handshake(addr: std::net::SocketAddr) -> (StreamOwned<ClientConnection, TcpStream>, Vec<u8>) {
    let mut conn =
        ClientConnection::new(client_config(), ServerName::try_from("localhost").unwrap()).unwrap();
    let mut tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(TIMEOUT)).unwrap();
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp).expect("handshake");
    }
    let presented = conn.peer_certificates().expect("a certificate")[0].to_vec();
    (StreamOwned::new(conn, tcp), presented)
}

fn reload_tls(gw: &Gatewire) -> (i32, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gatewire"))
        .args(["reload", "--tls", "-c"])
        .arg(gw.path("gatewire.toml"))
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn a_renewed_certificate_is_used_without_a_restart_and_a_bad_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let first = write_pair(dir.path(), "first.test");
    let gw = Gatewire::start(Setup {
        scheme: "wss",
        roles: "register,gateway,worker",
        shards: 2,
        app: "echo",
        extra: format!(
            "tls_cert = {:?}\ntls_key = {:?}",
            dir.path().join("cert.pem").display().to_string(),
            dir.path().join("key.pem").display().to_string()
        ),
        ..Setup::default()
    });
    let (open_before, presented) = handshake(gw.public);
    assert_eq!(presented, first);

    // Renewed: new handshakes get the new certificate; the open connection keeps working.
    let second = write_pair(dir.path(), "second.test");
    let (code, said) = reload_tls(&gw);
    assert_eq!(code, 0, "{said}");
    assert!(said.contains("new handshakes use them"), "{said}");
    for _ in 0..4 {
        assert_eq!(
            handshake(gw.public).1,
            second,
            "every shard presents the new one"
        );
    }
    let (mut ws, _) = tungstenite::client::client(
        format!("wss://localhost:{}/", gw.public.port()),
        open_before,
    )
    .expect("the connection opened before the reload still works");
    ws.send(tungstenite::Message::text("still here")).unwrap();
    assert!(
        matches!(ws.next_message().unwrap(), tungstenite::Message::Text(t) if t == "still here")
    );

    // A bad pair is refused with the reason; the one in use stays.
    std::fs::write(dir.path().join("key.pem"), "not a key").unwrap();
    let (code, said) = reload_tls(&gw);
    assert_eq!(code, 1, "{said}");
    assert!(
        said.contains("gateway.tls_key") && said.contains("stays"),
        "{said}"
    );
    assert_eq!(handshake(gw.public).1, second);

    // SIGHUP to the gateway process does the same.
    let third = write_pair(dir.path(), "third.test");
    // SAFETY: a pid of a process this test started (through the supervisor).
    unsafe { libc::kill(gw.role_pid("gateway") as i32, libc::SIGHUP) };
    eventually("SIGHUP reloads the certificate", || {
        handshake(gw.public).1 == third
    });
    let (_ws, presented) = handshake(gw.public);
    assert_eq!(presented, third, "the gateway still serves after SIGHUP");
}
