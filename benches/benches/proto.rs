//! Criterion benchmarks of the codec hot paths: inner packets, WebSocket frames, PHP sessions and
//! JSON ext payloads. `cargo bench -p gatewire-benches` runs them; CI runs them in quick mode.

use std::hint::black_box;

use bytes::BytesMut;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use gatewire_proto::ext::{SendToAllTarget, SendToGroup};
use gatewire_proto::php::{Array, Value, serialize, unserialize};
use gatewire_proto::websocket::{FrameDecoder, OpCode, encode_frame, encode_masked_frame};
use gatewire_proto::{Cmd, Flags, Header, Packet, PacketDecoder};

fn on_message_header() -> Header {
    Header {
        cmd: Cmd::OnMessage,
        local_ip: "127.0.0.1".parse().unwrap(),
        local_port: 2900,
        client_ip: "127.0.0.1".parse().unwrap(),
        client_port: 44130,
        connection_id: 1,
        flag: Flags::SCALAR,
        gateway_port: 8282,
    }
}

/// A session like a chat app keeps: a name, a room, a uid, a few counters.
fn typical_session() -> Value {
    let mut s = Array::new();
    s.insert("name", "alice");
    s.insert("room", "lobby");
    s.insert("uid", 4242i64);
    s.insert("joined_at", 1_763_726_400i64);
    s.insert("score", 12.5);
    let mut flags = Array::new();
    flags.insert("admin", false);
    flags.insert("muted", false);
    s.insert("flags", flags);
    Value::Array(s)
}

fn packets(c: &mut Criterion) {
    let session = serialize(&typical_session());
    let packet = Packet::new(on_message_header(), session, vec![b'x'; 64]);
    let wire = packet.to_bytes().unwrap();
    let mut g = c.benchmark_group("packet");
    g.throughput(Throughput::Bytes(wire.len() as u64));
    g.bench_function("encode_on_message_64B", |b| {
        let mut dst = BytesMut::with_capacity(4096);
        b.iter(|| {
            dst.clear();
            black_box(&packet).encode(&mut dst).unwrap();
            black_box(dst.len())
        })
    });
    g.bench_function("decode_on_message_64B", |b| {
        let mut decoder = PacketDecoder::default();
        b.iter(|| {
            let mut buf = BytesMut::from(&wire[..]);
            black_box(decoder.decode(&mut buf).unwrap().unwrap())
        })
    });
    g.finish();
}

fn frames(c: &mut Criterion) {
    let mut g = c.benchmark_group("ws_frame");
    for size in [64usize, 1024, 65536] {
        let payload = vec![b'a'; size];
        let mut masked = BytesMut::new();
        encode_masked_frame(OpCode::Text, &payload, [1, 2, 3, 4], &mut masked);
        let masked = masked.freeze();
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(
            BenchmarkId::new("decode_masked_text", size),
            &masked,
            |b, wire| {
                let mut decoder = FrameDecoder::server(16 << 20);
                b.iter(|| {
                    let mut buf = BytesMut::from(&wire[..]);
                    black_box(decoder.decode(&mut buf).unwrap().unwrap())
                })
            },
        );
        g.bench_with_input(
            BenchmarkId::new("encode_text", size),
            &payload,
            |b, payload| {
                let mut dst = BytesMut::with_capacity(size + 16);
                b.iter(|| {
                    dst.clear();
                    encode_frame(OpCode::Text, black_box(payload), &mut dst);
                    black_box(dst.len())
                })
            },
        );
    }
    g.finish();
}

fn sessions(c: &mut Criterion) {
    let value = typical_session();
    let bytes = serialize(&value);
    let mut g = c.benchmark_group("php_session");
    g.throughput(Throughput::Bytes(bytes.len() as u64));
    g.bench_function("serialize", |b| {
        b.iter(|| black_box(serialize(black_box(&value))))
    });
    g.bench_function("unserialize", |b| {
        b.iter(|| black_box(unserialize(black_box(&bytes)).unwrap()))
    });
    g.finish();
}

fn json_ext(c: &mut Criterion) {
    let exclude: Vec<u32> = (1..=16).collect();
    let to_all = SendToAllTarget::Except(exclude.clone()).to_ext();
    let to_group = SendToGroup::to_ext(&["room-1", "room-2"], &exclude);
    let mut g = c.benchmark_group("json_ext");
    g.bench_function("send_to_all_exclude_16", |b| {
        b.iter(|| black_box(SendToAllTarget::parse(black_box(to_all.as_bytes())).unwrap()))
    });
    g.bench_function("send_to_group_2_groups_exclude_16", |b| {
        b.iter(|| black_box(SendToGroup::parse(black_box(to_group.as_bytes())).unwrap()))
    });
    g.finish();
}

criterion_group!(benches, packets, frames, sessions, json_ext);
criterion_main!(benches);
