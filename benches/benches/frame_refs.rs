//! What one delivery's reference to a fanout frame costs: the frame queued for 10,000 clients
//! (a clone each into a queue, then every queue drained), with
//! - `bytes`: a `Bytes` frame (an atomic increment and decrement per client), one thread;
//! - `frame`: gatewire's `Frame::shared` (a plain `Rc` count), one thread;
//! - `bytes_across_2_threads`: one `Bytes` frame delivered by two threads at once, as two shards
//!   would if they shared a frame (its count's cache line moves between the cores);
//! - `frame_per_thread`: two threads, each copying the frame once and delivering its copy (what
//!   the shards do).
//!
//! The two-thread cases need two free cores to mean anything; they report the time for both
//! threads' deliveries (20,000 per iteration).
//!
//! And what permessage-deflate costs per delivery of a compressible 1 KB JSON message to 1,000
//! clients: `shared` compresses once and queues the same frame to each (gatewire's way),
//! `per_client` compresses for every client (the usual way).

use std::collections::VecDeque;
use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use gatewire::net::Frame;

const CLIENTS: usize = 10_000;

/// Clones `frame` into every queue, then drains them all, as a writer would.
fn deliver<T: Clone>(frame: &T, queues: &mut [VecDeque<T>]) {
    for queue in queues.iter_mut() {
        queue.push_back(frame.clone());
    }
    for queue in queues.iter_mut() {
        black_box(queue.pop_front());
    }
}

fn queues<T>() -> Vec<VecDeque<T>> {
    (0..CLIENTS).map(|_| VecDeque::with_capacity(4)).collect()
}

/// `iters` rounds on each of two threads at once; the wall time of the slower.
fn on_two_threads(iters: u64, round: impl Fn() + Sync) -> Duration {
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                for _ in 0..iters {
                    round();
                }
            });
        }
    });
    start.elapsed()
}

fn frame_refs(c: &mut Criterion) {
    let payload = vec![b'x'; 66];
    let mut group = c.benchmark_group("frame_ref_per_delivery_10000_clients");
    group.throughput(Throughput::Elements(CLIENTS as u64));
    let bytes = Bytes::from(payload.clone());
    let mut bq = queues::<Bytes>();
    group.bench_function("bytes", |b| b.iter(|| deliver(&bytes, &mut bq)));
    let frame = Frame::shared(&payload);
    let mut fq = queues::<Frame>();
    group.bench_function("frame", |b| b.iter(|| deliver(&frame, &mut fq)));

    group.throughput(Throughput::Elements(2 * CLIENTS as u64));
    group.bench_function("bytes_across_2_threads", |b| {
        b.iter_custom(|iters| {
            let shared = Bytes::from(payload.clone());
            on_two_threads(iters, || {
                thread_local!(static Q: std::cell::RefCell<Vec<VecDeque<Bytes>>> =
                    std::cell::RefCell::new(queues()));
                Q.with(|q| deliver(&shared, &mut q.borrow_mut()));
            })
        })
    });
    group.bench_function("frame_per_thread", |b| {
        b.iter_custom(|iters| {
            on_two_threads(iters, || {
                thread_local!(static Q: std::cell::RefCell<Vec<VecDeque<Frame>>> =
                    std::cell::RefCell::new(queues()));
                let own = Frame::shared(&payload);
                Q.with(|q| deliver(&own, &mut q.borrow_mut()));
            })
        })
    });
    group.finish();
}

fn deflate_per_delivery(c: &mut Criterion) {
    use gatewire_proto::websocket::OpCode;
    use gatewire_proto::websocket::compressed_frame;
    use gatewire_proto::websocket::deflate::compress;
    const RECIPIENTS: usize = 1_000;
    let message: Vec<u8> = {
        let mut m = String::from("[");
        for i in 0..16 {
            m.push_str(&format!(
                "{{\"symbol\":\"SYM{i:02}\",\"price\":{}.{:02},\"volume\":{}}},",
                100 + i,
                i * 7 % 100,
                1000 + i * 13
            ));
        }
        m.push(']');
        m.into_bytes()
    };
    let mut group = c.benchmark_group(format!("deflate_per_delivery_{}B_json", message.len()));
    group.throughput(Throughput::Elements(RECIPIENTS as u64));
    let mut q = queues::<Frame>();
    q.truncate(RECIPIENTS);
    group.bench_function("shared", |b| {
        b.iter(|| {
            let wire = compressed_frame(OpCode::Text, &compress(black_box(&message)));
            deliver(&Frame::shared(&wire), &mut q);
        })
    });
    group.bench_function("per_client", |b| {
        b.iter(|| {
            for queue in q.iter_mut() {
                let wire = compressed_frame(OpCode::Text, &compress(black_box(&message)));
                queue.push_back(Frame::from(wire));
            }
            for queue in q.iter_mut() {
                black_box(queue.pop_front());
            }
        })
    });
    group.finish();
}

criterion_group!(benches, frame_refs, deflate_per_delivery);
criterion_main!(benches);
