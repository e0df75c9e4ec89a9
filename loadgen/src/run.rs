//! One load thread: its own executor (`rt::`, the backend `--backend` chose) and fd table, its share of the clients, their
//! readers and (for the broadcast and echo scenarios) their senders. Threads meet at the end of the
//! ramp so every scenario measures with all clients connected.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use gatewire::rt;
use gatewire_proto::websocket::{OpCode, encode_masked_frame};

use crate::conn::{self, Conn, ConnectFailure};
use crate::plan::SourcePlan;
use crate::receive::{ALIVE, MARK, Receiver};
use crate::shared::{Phase, Shared};
use crate::stats::{Live, ThreadStats, thread_cpu_seconds};

/// Connects in flight across all threads during the ramp (each thread takes its share, at
/// least [`MIN_INFLIGHT_PER_THREAD`]): more than a server's accept queues hold only overflows
/// them, and a dropped SYN comes back a second or more later (a million-client ramp with 256
/// per thread, 17,000 in all, overflowed 14,601 times and lost 18,226 clients to the timeout).
const MAX_INFLIGHT_CONNECTS: usize = 4096;
const MIN_INFLIGHT_PER_THREAD: usize = 16;
/// Time allowed after the measurement for the last deliveries to arrive.
pub const DRAIN: Duration = Duration::from_secs(2);
/// A connect (TCP + upgrade) slower than this counts as failed.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// What the clients do once connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// Ramp to N clients and hold them.
    Idle,
    /// Every client sends; each times its own echo.
    Echo,
    /// P publishers send; every client times every delivery.
    Broadcast,
    /// Clients join G groups with the chat app's `/join`; publishers send to their group.
    Group,
    /// Client i takes uid `u<i>` with `/nick` (the chat app, or benches' uid-app); publishers
    /// send each message to one uid picked at random with `/msg` (one delivery per message).
    Uid,
    /// Connections are closed and reopened at `--rate` per second while the rest stay.
    Churn,
}

/// Everything a thread needs to know about the run.
#[derive(Debug)]
pub struct RunConfig {
    pub server: SocketAddr,
    pub host: String,
    pub path: String,
    pub scenario: Scenario,
    pub clients: u64,
    pub threads: usize,
    /// CPUs the threads are pinned to, round-robin; empty: not pinned.
    pub cpus: Vec<usize>,
    pub connect_rate: f64,
    pub publishers: u64,
    /// Messages per second across all senders.
    pub rate: f64,
    pub payload: usize,
    /// Pad payloads with JSON-like quotes instead of one letter (`--json-payload`).
    pub json_payload: bool,
    /// Offer permessage-deflate (`--deflate`).
    pub deflate: bool,
    pub duration: Duration,
    /// A sender wakes at most once per tick (see `--send-tick-us`).
    pub send_tick: Duration,
    pub plan: Option<SourcePlan>,
    /// Groups for the group scenario.
    pub groups: u64,
    /// After the drain, ping every client and count the pongs (a liveness check).
    pub ping_at_end: bool,
}

/// Starts thread `index`; its result is the measurements of that thread and of its receiver.
/// On glommio it also returns the thread's nudge: a byte written to it wakes the thread's
/// executor (see [`nudged`]); the own backends need none.
pub fn spawn(
    index: usize,
    config: Arc<RunConfig>,
    shared: Arc<Shared>,
) -> std::io::Result<(
    std::thread::JoinHandle<Vec<ThreadStats>>,
    Option<std::os::unix::net::UnixStream>,
)> {
    let backend = rt::backend::selected();
    // The thread's end stays open in this thread's fd table too (the load thread copies the
    // table when it unshares it): one descriptor per load thread until loadgen exits.
    let (nudge, nudged_end) = match backend {
        rt::Backend::Glommio => {
            let (nudge, nudged_end) = std::os::unix::net::UnixStream::pair()?;
            nudge.set_nonblocking(true)?;
            (Some(nudge), Some(nudged_end))
        }
        rt::Backend::IoUring | rt::Backend::Epoll => (None, None),
    };
    let cpu = match config.cpus.as_slice() {
        [] => rt::Cpu::Any,
        cpus => rt::Cpu::Fixed(cpus[index % cpus.len()]),
    };
    let spec = rt::ExecutorSpec::new(format!("loadgen-{index}"), cpu)
        .ring_depth(4096)
        .backend(backend);
    let executor = rt::start(spec, move || async move {
        if let Some(end) = nudged_end {
            rt::spawn(nudged(end));
        }
        run_thread(index, config, shared).await
    })
    .map_err(|e| std::io::Error::other(e.to_string()))?;
    let joined = std::thread::spawn(move || {
        executor.join().unwrap_or_else(|e| {
            eprintln!("loadgen: {e}");
            Vec::new()
        })
    });
    Ok((joined, nudge))
}

/// Reads the nudges the main thread writes until it hangs up. glommio 0.9 can miss the wake-up
/// of a timer when its executor has nothing else to wait for (it sleeps on one io_uring while the
/// timer fires on another): a load thread whose sockets all belong to its receiver once slept
/// forever in the drain's 2 s sleep, in 3 of 8 million-client runs, its 15,000 clients open.
/// A readable socket on the ring the executor sleeps on wakes it, and its timers are then seen.
/// The own backends keep their timers in the loop that parks, so they need no nudge.
async fn nudged(end: std::os::unix::net::UnixStream) {
    use futures_lite::AsyncReadExt;
    let Ok(mut end) = rt::unix_stream(end.into()) else {
        return;
    };
    let mut buf = [0u8; 64];
    while matches!(end.read(&mut buf).await, Ok(n) if n > 0) {}
}

async fn run_thread(index: usize, config: Arc<RunConfig>, shared: Arc<Shared>) -> Vec<ThreadStats> {
    // SAFETY: unshare(CLONE_FILES) only affects this thread's fd table.
    if unsafe { libc::unshare(libc::CLONE_FILES) } != 0 {
        eprintln!("loadgen: thread {index}: unshare(CLONE_FILES) failed; sharing the fd table");
    }
    // Started after the unshare: the receiver shares this thread's fd table.
    let receiver = match Receiver::start(index, shared.clone()) {
        Ok(r) => Rc::new(RefCell::new(r)),
        Err(e) => {
            eprintln!("loadgen: thread {index}: cannot start its receiver: {e}");
            shared.ramped.fetch_add(1, Ordering::SeqCst);
            return Vec::new();
        }
    };
    let stats = Rc::new(RefCell::new(ThreadStats::default()));
    let conns: Rc<RefCell<Vec<(u64, Conn)>>> = Rc::new(RefCell::new(Vec::new()));
    let mine: Vec<u64> = (index as u64..config.clients)
        .step_by(config.threads)
        .collect();

    ramp(&mine, &config, &shared, &stats, &conns, &receiver).await;
    shared.enter(index, Phase::WaitingForTheOthers);

    shared.ramped.fetch_add(1, Ordering::SeqCst);
    while shared.ramped.load(Ordering::SeqCst) < config.threads {
        rt::sleep(Duration::from_millis(5)).await;
    }
    if matches!(config.scenario, Scenario::Group | Scenario::Uid) {
        // Publish only once every join (or bind) is confirmed, so each message's audience is
        // known.
        let deadline = Instant::now() + Duration::from_secs(10);
        while Live::get(&shared.joined) < Live::get(&shared.live.connected)
            && Instant::now() < deadline
        {
            rt::sleep(Duration::from_millis(5)).await;
        }
    }
    shared.enter(index, Phase::Sending);
    let start = *shared.measure_start.get_or_init(Instant::now);
    let end = start + config.duration;

    // Publishers are the first connected clients of each thread, spread evenly over threads, so
    // a failed connect never silences a publisher.
    let my_publishers = (config.publishers / config.threads as u64
        + u64::from((index as u64) < config.publishers % config.threads as u64))
        as usize;
    let senders: Vec<(u64, Conn)> = {
        let conns = conns.borrow();
        match config.scenario {
            Scenario::Idle | Scenario::Churn => Vec::new(),
            Scenario::Echo => conns.clone(),
            Scenario::Broadcast | Scenario::Group | Scenario::Uid => {
                conns.iter().take(my_publishers).cloned().collect()
            }
        }
    };
    let per_sender = match config.scenario {
        Scenario::Idle | Scenario::Churn => 0.0,
        Scenario::Echo => config.rate / config.clients.max(1) as f64,
        Scenario::Broadcast | Scenario::Group | Scenario::Uid => {
            config.rate / config.publishers.max(1) as f64
        }
    };
    // Publishers each send on their own schedule; echo clients share one round-robin sender per
    // thread (thousands of timer tasks would cost more than the traffic they make).
    let groups: Vec<Vec<(u64, Conn)>> = match config.scenario {
        Scenario::Echo if !senders.is_empty() => vec![senders],
        _ => senders.into_iter().map(|s| vec![s]).collect(),
    };
    let mut tasks = Vec::new();
    for group in groups {
        let rate = per_sender * group.len() as f64;
        let (shared, stats, config) = (shared.clone(), stats.clone(), config.clone());
        tasks.push(rt::spawn_cancellable(async move {
            send_loop(group, rate, start, end, &config, &shared, &stats).await;
        }));
    }
    if config.scenario == Scenario::Churn {
        churn(index, &config, &shared, &stats, &conns, &receiver, end).await;
    }
    for t in tasks {
        t.await;
    }
    sleep_until_or_stop(end, &shared).await;
    if index == 0 {
        shared
            .measure_end_ns
            .store(shared.now_ns(), Ordering::SeqCst);
        shared.measured.store(true, Ordering::SeqCst);
    }
    shared.enter(index, Phase::Draining);
    rt::sleep(DRAIN).await;
    if config.ping_at_end {
        shared.enter(index, Phase::Pinging);
        let everyone = conns.borrow().clone();
        let alive = receiver.borrow().alive.clone();
        ping_everyone(&everyone, &alive, &shared.pongs, &stats).await;
    }
    shared.enter(index, Phase::Closing);
    let mut result = std::mem::take(&mut *stats.borrow_mut());
    result.cpu_seconds = thread_cpu_seconds();
    let received = match Rc::try_unwrap(receiver) {
        Ok(r) => r.into_inner().finish(),
        Err(_) => ThreadStats::default(),
    };
    drop(conns);
    shared.enter(index, Phase::Done);
    vec![result, received]
}

/// The liveness check ends when every client has answered, or when no answer has come to any
/// thread for this long (a server wakes parked clients at its own pace, one shard after another;
/// a million can take a while).
const PING_WAIT: Duration = Duration::from_secs(5);
/// ... and it ends after this long in any case.
const PING_LIMIT: Duration = Duration::from_secs(60);

/// Pings every client of this thread and waits until each has answered (`alive`), until answers
/// stop coming to every thread (`pongs`) for [`PING_WAIT`], or for [`PING_LIMIT`] at most.
async fn ping_everyone(
    conns: &[(u64, Conn)],
    alive: &AtomicU64,
    pongs: &AtomicU64,
    stats: &RefCell<ThreadStats>,
) {
    let mut frame = BytesMut::new();
    encode_masked_frame(OpCode::Ping, ALIVE, [2, 4, 6, 8], &mut frame);
    let mut sent = 0u64;
    for (_, conn) in conns {
        // Without waiting: a socket too full to take 14 bytes belongs to a client the server
        // no longer reads, which is counted as not answering rather than stalling the check.
        if conn.try_write(&frame) {
            sent += 1;
        }
    }
    stats.borrow_mut().pinged += conns.len() as u64;
    let (mut heard, mut last_news, started) = (0, Instant::now(), Instant::now());
    while alive.load(Ordering::Relaxed) < sent
        && last_news.elapsed() < PING_WAIT
        && started.elapsed() < PING_LIMIT
    {
        rt::sleep(Duration::from_millis(10)).await;
        let now = pongs.load(Ordering::Relaxed);
        if now > heard {
            (heard, last_news) = (now, Instant::now());
        }
    }
}

/// Opens this thread's clients at its share of the connect rate.
async fn ramp(
    mine: &[u64],
    config: &Arc<RunConfig>,
    shared: &Arc<Shared>,
    stats: &Rc<RefCell<ThreadStats>>,
    conns: &Rc<RefCell<Vec<(u64, Conn)>>>,
    receiver: &Rc<RefCell<Receiver>>,
) {
    let per_thread_rate = (config.connect_rate / config.threads as f64).max(1.0);
    let started = Instant::now();
    let inflight = Rc::new(RefCell::new(0usize));
    let inflight_cap = (MAX_INFLIGHT_CONNECTS / config.threads).max(MIN_INFLIGHT_PER_THREAD);
    // Connect tasks are detached and counted in `unfinished`: a finished task's allocation (the
    // size of its connect future) lives as long as its handle, so keeping a handle per client
    // until the end of the ramp cost loadgen hundreds of bytes per client at its peak.
    let unfinished = Rc::new(std::cell::Cell::new(0usize));
    for (k, &i) in mine.iter().enumerate() {
        if shared.stop.load(Ordering::Relaxed) {
            break;
        }
        sleep_until(started + Duration::from_secs_f64(k as f64 / per_thread_rate)).await;
        while *inflight.borrow() >= inflight_cap {
            rt::sleep(Duration::from_millis(1)).await;
        }
        *inflight.borrow_mut() += 1;
        unfinished.set(unfinished.get() + 1);
        let (config, shared, stats, conns, inflight, receiver, unfinished) = (
            config.clone(),
            shared.clone(),
            stats.clone(),
            conns.clone(),
            inflight.clone(),
            receiver.clone(),
            unfinished.clone(),
        );
        rt::spawn(async move {
            let source = config.plan.as_ref().map(|p| p.source(i));
            let t0 = Instant::now();
            let attempt = conn::connect(
                config.server,
                source,
                &config.host,
                &config.path,
                config.deflate,
            );
            let outcome = futures_lite::future::or(attempt, async {
                rt::sleep(CONNECT_TIMEOUT).await;
                Err(ConnectFailure::Timeout)
            })
            .await;
            *inflight.borrow_mut() -= 1;
            match outcome {
                Ok((conn, leftover)) => {
                    let us = t0.elapsed().as_micros().max(1) as u64;
                    {
                        let mut s = stats.borrow_mut();
                        s.connected += 1;
                        let _ = s.connect_us.record(us);
                    }
                    Live::bump(&shared.live.connected, 1);
                    match config.scenario {
                        Scenario::Group => join_group(&conn, i, &config).await,
                        Scenario::Uid => take_uid(&conn, i).await,
                        _ => {}
                    }
                    watch(&receiver, &conn, &leftover, &shared, &stats);
                    conns.borrow_mut().push((i, conn));
                }
                Err(failure) => {
                    *stats.borrow_mut().failures.entry(failure).or_insert(0) += 1;
                    Live::bump(&shared.live.connect_failed, 1);
                }
            }
            unfinished.set(unfinished.get() - 1);
        });
    }
    while unfinished.get() > 0 {
        rt::sleep(Duration::from_millis(5)).await;
    }
}

/// Sends timestamped messages at `rate` per second from `start` to `end`, taking `senders` in
/// turn. Each message carries its *intended* send time, so a stalled sender shows up as latency
/// (no coordinated omission).
async fn send_loop(
    senders: Vec<(u64, Conn)>,
    rate: f64,
    start: Instant,
    end: Instant,
    config: &RunConfig,
    shared: &Shared,
    stats: &RefCell<ThreadStats>,
) {
    if rate <= 0.0 || senders.is_empty() {
        return;
    }
    let period = Duration::from_secs_f64(1.0 / rate);
    // Spread single senders over the first period so publishers do not fire in lockstep.
    let offset = period.mul_f64((senders[0].0 % 1000) as f64 / 1000.0);
    let mut k = 0u64;
    let mut frame = BytesMut::new();
    let mut woke = Instant::now();
    loop {
        let intended = start + offset + period.mul_f64(k as f64);
        if intended >= end || shared.stop.load(Ordering::Relaxed) {
            return;
        }
        let (sender, conn) = &senders[(k % senders.len() as u64) as usize];
        let (sender, seq) = (*sender, k / senders.len() as u64);
        k += 1;
        // One wake-up per tick sends every message due by then: a timer and a park of the
        // executor per message cost the box more than the server's work at high rates. A message
        // sent late by the tick is timed from its intended time all the same.
        if intended > Instant::now() {
            sleep_until(intended.max(woke + config.send_tick)).await;
            woke = Instant::now();
        }
        let intended_ns = intended.duration_since(shared.epoch).as_nanos() as u64;
        let mut text = match config.scenario {
            Scenario::Uid => format!("/msg u{} ", uid_target(sender, seq, config.clients)),
            _ => String::new(),
        };
        let starts = text.len();
        text.push_str(&format!("{MARK}{sender}:{seq}:{intended_ns}:"));
        pad(&mut text, starts + config.payload, config.json_payload, seq);
        frame.clear();
        encode_masked_frame(OpCode::Text, text.as_bytes(), [7, 3, 1, 9], &mut frame);
        if conn.write_all(&frame).await.is_err() {
            return;
        }
        let audience = match config.scenario {
            Scenario::Echo | Scenario::Uid => 1,
            Scenario::Group => {
                shared.group_members[(sender % config.groups) as usize].load(Ordering::Relaxed)
            }
            _ => Live::get(&shared.live.connected),
        };
        {
            let mut s = stats.borrow_mut();
            s.messages_sent += 1;
            s.deliveries_expected += audience;
        }
        Live::bump(&shared.live.messages_sent, 1);
    }
}

/// Hands a connected client to the receiver; one it cannot watch counts as disconnected.
fn watch(
    receiver: &RefCell<Receiver>,
    conn: &Conn,
    leftover: &[u8],
    shared: &Shared,
    stats: &RefCell<ThreadStats>,
) {
    if let Err(e) = receiver.borrow_mut().watch(conn.fd(), leftover) {
        let mut s = stats.borrow_mut();
        if s.disconnected == 0 {
            eprintln!("loadgen: cannot watch a client: {e}");
        }
        s.disconnected += 1;
        Live::bump(&shared.live.disconnected, 1);
    }
}

/// Sleeps until `when`, or until Ctrl-C asks the run to stop.
async fn sleep_until_or_stop(when: Instant, shared: &Shared) {
    while Instant::now() < when && !shared.stop.load(Ordering::Relaxed) {
        let left = when.saturating_duration_since(Instant::now());
        rt::sleep(left.min(Duration::from_millis(50))).await;
    }
}

async fn sleep_until(when: Instant) {
    let now = Instant::now();
    if when > now {
        rt::sleep(when - now).await;
    }
}

/// Joins client `i` to group `i mod G` through the chat app's `/join`.
async fn join_group(conn: &Conn, i: u64, config: &RunConfig) {
    send_text(conn, &format!("/join g{}", i % config.groups.max(1))).await;
}

/// Binds client `i` to uid `u<i>` through the chat app's `/nick`.
async fn take_uid(conn: &Conn, i: u64) {
    send_text(conn, &format!("/nick u{i}")).await;
}

/// One masked text frame (a command to the app, not a measured message).
async fn send_text(conn: &Conn, text: &str) {
    let mut frame = BytesMut::new();
    encode_masked_frame(OpCode::Text, text.as_bytes(), [5, 6, 7, 8], &mut frame);
    let _ = conn.write_all(&frame).await;
}

/// The uid message `seq` of `sender` goes to: spread evenly over every client, the same in
/// every run (splitmix64 of the pair).
fn uid_target(sender: u64, seq: u64, clients: u64) -> u64 {
    let mut x = sender
        .wrapping_mul(0x9e37_79b9_7f4a_7c15)
        .wrapping_add(seq)
        .wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (x ^ (x >> 31)) % clients.max(1)
}

/// Replaces this thread's connections, oldest first, at its share of `--rate` until `end`.
async fn churn(
    index: usize,
    config: &Arc<RunConfig>,
    shared: &Arc<Shared>,
    stats: &Rc<RefCell<ThreadStats>>,
    conns: &Rc<RefCell<Vec<(u64, Conn)>>>,
    receiver: &Rc<RefCell<Receiver>>,
    end: Instant,
) {
    let rate = config.rate / config.threads as f64;
    if rate <= 0.0 {
        return;
    }
    let period = Duration::from_secs_f64(1.0 / rate);
    let start = Instant::now();
    let mut k = 0u64;
    loop {
        let at = start + period.mul_f64(k as f64);
        if at >= end || shared.stop.load(Ordering::Relaxed) {
            return;
        }
        sleep_until(at).await;
        let oldest = {
            let mut list = conns.borrow_mut();
            (!list.is_empty()).then(|| list.remove(0))
        };
        if let Some((_, conn)) = oldest {
            stats.borrow_mut().churned += 1;
            receiver.borrow_mut().forget(conn.fd());
            conn.shutdown();
        }
        // A fresh client index past the initial ones, so its source pair is unused.
        let i = config.clients + k * config.threads as u64 + index as u64;
        let source = config.plan.as_ref().map(|p| p.source(i));
        let t0 = Instant::now();
        match conn::connect(
            config.server,
            source,
            &config.host,
            &config.path,
            config.deflate,
        )
        .await
        {
            Ok((conn, leftover)) => {
                let _ = stats
                    .borrow_mut()
                    .connect_us
                    .record(t0.elapsed().as_micros().max(1) as u64);
                watch(receiver, &conn, &leftover, shared, stats);
                conns.borrow_mut().push((i, conn));
            }
            Err(failure) => {
                *stats.borrow_mut().failures.entry(failure).or_insert(0) += 1;
                Live::bump(&shared.live.connect_failed, 1);
            }
        }
        k += 1;
    }
}

/// Pads `text` to `len` bytes: one letter, or JSON-like quotes whose numbers vary with `seq` (so
/// a compressor finds the structure real messages have, not a run of one byte).
fn pad(text: &mut String, len: usize, json: bool, seq: u64) {
    use std::fmt::Write;
    // What is there already (the marker) stays whole, even past `len`.
    let floor = text.len();
    let mut i = 0u64;
    while json && text.len() < len {
        let n = seq.wrapping_mul(31).wrapping_add(i * 7);
        let _ = write!(
            text,
            "{{\"symbol\":\"S{:03}\",\"price\":{}.{:02},\"volume\":{}}},",
            n % 500,
            100 + n % 900,
            n % 100,
            1000 + n % 9000
        );
        i += 1;
    }
    text.truncate(len.max(floor));
    while text.len() < len {
        text.push('x');
    }
}
