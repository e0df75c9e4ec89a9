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

    let config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(TrustAnything))
            .with_no_client_auth();
    let conn = ClientConnection::new(Arc::new(config), ServerName::try_from("localhost").unwrap())
        .unwrap();
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
        if let tungstenite::Message::Text(t) = ws.read().unwrap() {
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
