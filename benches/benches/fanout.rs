//! The gateway core's fanout cost without the kernel: one SEND_TO_ALL applied to a shard holding
//! 1k / 10k / 100k clients, and one SEND_TO_GROUP to 10k of 100k, then every client's queue
//! taken as a writer would. Reported per delivery (criterion's elements/s). The shard is driven
//! directly (no sockets, no runtime), so this is gatewire's own work per recipient.

use std::hint::black_box;
use std::net::SocketAddr;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use gatewire::config::{GatewayConfig, RouterMode};
use gatewire::gateway::{Router, Shard, ShardSettings};
use gatewire_proto::auth::worker_connect_body;
use gatewire_proto::ext::SendToGroup;
use gatewire_proto::{Cmd, Flags, Header, Packet};

/// A shard with one worker and `clients` WebSocket clients past their handshake; the worker link
/// id is returned with it.
fn shard_with(clients: u32) -> (Shard, u64, Vec<u32>) {
    let config = GatewayConfig::default();
    let mut shard = Shard::new(
        ShardSettings::new(&config, 0, 8282),
        Router::new(RouterMode::LeastConnections, 1),
    );
    let worker = shard.link_opened("127.0.0.1:50000".parse().unwrap());
    shard.link_packet(
        worker,
        Packet::new(
            Header::command(Cmd::WorkerConnect),
            "",
            worker_connect_body("B:0", ""),
        ),
    );
    let ids: Vec<u32> = (0..clients)
        .map(|i| {
            let remote = SocketAddr::from(([10, 0, (i >> 16) as u8, (i >> 8) as u8], i as u16));
            let id = shard.accept_client(remote).expect("a worker is linked");
            shard.client_outbox(id).unwrap().release();
            id
        })
        .collect();
    drain_link(&mut shard, worker);
    (shard, worker, ids)
}

fn drain_link(shard: &mut Shard, link: u64) {
    let outbox = shard.link_outbox(link).unwrap();
    outbox.consume(outbox.queued_bytes());
}

/// Takes the queued frames of `ids`, as each client's writer would after its write.
fn drain_clients(shard: &mut Shard, ids: &[u32]) {
    for id in ids {
        let outbox = shard.client_outbox(*id).unwrap();
        outbox.consume(outbox.queued_bytes());
    }
}

fn message(cmd: Cmd, ext: String) -> Packet {
    Packet::new(
        Header::for_connection(cmd, 0, Flags::SCALAR),
        ext,
        vec![b'x'; 64],
    )
}

fn send_to_all(c: &mut Criterion) {
    let mut group = c.benchmark_group("core_send_to_all_64B");
    for clients in [1_000u32, 10_000, 100_000] {
        let (mut shard, worker, ids) = shard_with(clients);
        let packet = message(Cmd::SendToAll, String::new());
        group.throughput(Throughput::Elements(u64::from(clients)));
        group.bench_with_input(BenchmarkId::from_parameter(clients), &clients, |b, _| {
            b.iter(|| {
                shard.link_packet(worker, black_box(packet.clone()));
                drain_clients(&mut shard, &ids);
            })
        });
    }
    group.finish();
}

fn send_to_group(c: &mut Criterion) {
    let mut group = c.benchmark_group("core_send_to_group_64B");
    let (mut shard, worker, ids) = shard_with(100_000);
    let members: Vec<u32> = ids.iter().copied().step_by(10).collect();
    for &id in &members {
        let join = Packet::new(
            Header::for_connection(Cmd::JoinGroup, id, Flags::SCALAR),
            "g",
            "",
        );
        shard.link_packet(worker, join);
    }
    let packet = message(Cmd::SendToGroup, SendToGroup::to_ext(&["g"], &[]));
    group.throughput(Throughput::Elements(10_000));
    group.bench_function("10000_of_100000", |b| {
        b.iter(|| {
            shard.link_packet(worker, black_box(packet.clone()));
            drain_clients(&mut shard, &members);
        })
    });
    group.finish();
}

criterion_group!(benches, send_to_all, send_to_group);
criterion_main!(benches);
