//! A minimal business worker for conformance runs (Autobahn) until the worker runtime lands: it
//! asks the register for the gateway list, connects to every shard, and sends each message back
//! to its sender — binary as binary, thanks to gatewire's `BINARY` flag bit.
//!
//! `cargo run --example echo_worker -- 127.0.0.1:1236`

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::BytesMut;
use gatewire_proto::auth::worker_connect_body;
use gatewire_proto::register::{RegisterMessage, worker_connect_line};
use gatewire_proto::{Cmd, Flags, Header, Packet, PacketDecoder};

fn main() {
    let register = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:1236".to_owned());
    let addresses = loop {
        match gateway_list(&register) {
            Ok(list) if !list.is_empty() => break list,
            Ok(_) => eprintln!("echo_worker: no gateway registered yet"),
            Err(e) => eprintln!("echo_worker: register {register}: {e}"),
        }
        std::thread::sleep(Duration::from_secs(1));
    };
    let threads: Vec<_> = addresses
        .into_iter()
        .map(|address| std::thread::spawn(move || serve_forever(&address)))
        .collect();
    for t in threads {
        let _ = t.join();
    }
}

fn gateway_list(register: &str) -> std::io::Result<Vec<String>> {
    let mut stream = TcpStream::connect(register)?;
    stream.write_all(worker_connect_line("").as_bytes())?;
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line)?;
    match RegisterMessage::parse(line.trim_end().as_bytes()) {
        Ok(RegisterMessage::BroadcastAddresses { addresses }) => Ok(addresses),
        other => Err(std::io::Error::other(format!(
            "unexpected answer {other:?}"
        ))),
    }
}

fn serve_forever(address: &str) {
    loop {
        if let Err(e) = serve(address) {
            eprintln!("echo_worker: {address}: {e}; reconnecting in 1 s");
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn serve(address: &str) -> std::io::Result<()> {
    let mut stream = TcpStream::connect(address)?;
    stream.set_nodelay(true)?;
    let hello = Packet::new(
        Header::for_connection(Cmd::WorkerConnect, 0, Flags::SCALAR),
        "",
        worker_connect_body("EchoWorker:0", ""),
    );
    stream.write_all(&hello.to_bytes().map_err(std::io::Error::other)?)?;
    let mut decoder = PacketDecoder::new(64 << 20);
    let mut buf = BytesMut::new();
    let mut out = BytesMut::new();
    let mut chunk = vec![0u8; 256 * 1024];
    loop {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::Error::other("gateway closed the link"));
        }
        buf.extend_from_slice(&chunk[..n]);
        while let Some(packet) = decoder.decode(&mut buf).map_err(std::io::Error::other)? {
            if packet.header.cmd != Cmd::OnMessage {
                continue;
            }
            let flag = Flags::SCALAR.with_binary(packet.header.flag.binary());
            let reply = Packet::new(
                Header::for_connection(Cmd::SendToOne, packet.header.connection_id, flag),
                "",
                packet.body,
            );
            reply.encode(&mut out).map_err(std::io::Error::other)?;
        }
        if !out.is_empty() {
            stream.write_all(&out)?;
            out.clear();
        }
    }
}
