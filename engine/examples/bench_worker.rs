//! A minimal business worker for conformance and load runs until the worker runtime lands. It
//! asks the register for the gateway list, connects to every shard, and either sends each message
//! back to its sender (`echo`, binary kept binary through gatewire's `BINARY` flag bit) or to every
//! client of every shard (`broadcast`).
//!
//! `cargo run --release --example bench_worker -- echo 127.0.0.1:1236`

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use gatewire_proto::auth::worker_connect_body;
use gatewire_proto::register::{RegisterMessage, worker_connect_line};
use gatewire_proto::{Cmd, Flags, Header, Packet, PacketDecoder};

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Echo,
    Broadcast,
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = match args.next().as_deref() {
        Some("echo") => Mode::Echo,
        Some("broadcast") => Mode::Broadcast,
        _ => {
            eprintln!("usage: bench_worker echo|broadcast [REGISTER_ADDR]");
            std::process::exit(2);
        }
    };
    let register = args.next().unwrap_or_else(|| "127.0.0.1:1236".to_owned());
    let addresses = loop {
        match gateway_list(&register) {
            Ok(list) if !list.is_empty() => break list,
            Ok(_) => eprintln!("bench_worker: no gateway registered yet"),
            Err(e) => eprintln!("bench_worker: register {register}: {e}"),
        }
        std::thread::sleep(Duration::from_secs(1));
    };
    let links: Vec<(TcpStream, Arc<Mutex<TcpStream>>)> = addresses
        .iter()
        .map(|a| {
            let stream = connect(a).unwrap_or_else(|e| panic!("bench_worker: {a}: {e}"));
            let writer = Arc::new(Mutex::new(stream.try_clone().expect("clone socket")));
            (stream, writer)
        })
        .collect();
    let writers: Arc<Vec<Arc<Mutex<TcpStream>>>> =
        Arc::new(links.iter().map(|(_, w)| w.clone()).collect());
    let threads: Vec<_> = links
        .into_iter()
        .map(|(reader, own)| {
            let writers = writers.clone();
            std::thread::spawn(move || {
                if let Err(e) = serve(reader, &own, &writers, mode) {
                    eprintln!("bench_worker: {e}");
                }
            })
        })
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

fn connect(address: &str) -> std::io::Result<TcpStream> {
    let mut stream = TcpStream::connect(address)?;
    stream.set_nodelay(true)?;
    let hello = Packet::new(
        Header::for_connection(Cmd::WorkerConnect, 0, Flags::SCALAR),
        "",
        worker_connect_body("BenchWorker:0", ""),
    );
    stream.write_all(&hello.to_bytes().map_err(std::io::Error::other)?)?;
    Ok(stream)
}

fn serve(
    mut reader: TcpStream,
    own: &Mutex<TcpStream>,
    all: &[Arc<Mutex<TcpStream>>],
    mode: Mode,
) -> std::io::Result<()> {
    let mut decoder = PacketDecoder::new(64 << 20);
    let mut buf = BytesMut::new();
    let mut out = BytesMut::new();
    let mut chunk = vec![0u8; 256 * 1024];
    loop {
        let n = reader.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::Error::other("gateway closed the link"));
        }
        buf.extend_from_slice(&chunk[..n]);
        while let Some(packet) = decoder.decode(&mut buf).map_err(std::io::Error::other)? {
            if packet.header.cmd != Cmd::OnMessage {
                continue;
            }
            let flag = Flags::SCALAR.with_binary(packet.header.flag.binary());
            let reply = match mode {
                Mode::Echo => Packet::new(
                    Header::for_connection(Cmd::SendToOne, packet.header.connection_id, flag),
                    "",
                    packet.body,
                ),
                Mode::Broadcast => Packet::new(
                    Header::for_connection(Cmd::SendToAll, 0, flag),
                    "",
                    packet.body,
                ),
            };
            reply.encode(&mut out).map_err(std::io::Error::other)?;
        }
        if out.is_empty() {
            continue;
        }
        match mode {
            Mode::Echo => own.lock().expect("writer lock").write_all(&out)?,
            Mode::Broadcast => {
                for writer in all {
                    writer.lock().expect("writer lock").write_all(&out)?;
                }
            }
        }
        out.clear();
    }
}
