//! `loadgen`: a WebSocket load generator that holds very many clients on the same box as the
//! server. Threads are executors of the engine's runtime (`--backend`: glommio, or gatewire's own
//! over io_uring or epoll) with their own fd tables; clients connect from source
//! (address, port) pairs the plan chooses; latency is measured from each message's intended send
//! time. It only ever targets loopback.

mod conn;
mod plan;
mod receive;
mod reference;
mod run;
mod scan;
mod shared;
mod stats;

use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use clap::Parser;
use gatewire::rt;

use crate::plan::SourcePlan;
use crate::run::{RunConfig, Scenario};
use crate::shared::Shared;
use crate::stats::{Live, Report, ThreadStats, process_cpu_seconds, rss_bytes};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Clients per thread by default: each thread's fd table stays under a 20000 fd limit.
const CLIENTS_PER_THREAD: u64 = 15_000;

/// WebSocket load generator for gatewire and its peers.
#[derive(Debug, Parser)]
#[command(name = "loadgen", version)]
struct Args {
    /// Server URL, e.g. ws://127.0.0.1:8282/ (loopback only).
    #[arg(long, required_unless_present = "calibrate")]
    url: Option<String>,
    /// Measure loadgen's own floor: run against a minimal server inside loadgen (one thread,
    /// gathered writes, no worker) instead of --url: it broadcasts, or echoes with the echo
    /// scenario.
    #[arg(long, conflicts_with = "url")]
    calibrate: bool,
    /// Number of clients.
    #[arg(long, default_value_t = 1000)]
    clients: u64,
    #[arg(long, value_enum, default_value_t = Scenario::Idle)]
    scenario: Scenario,
    /// New connections per second across all threads.
    #[arg(long, default_value_t = 20_000.0)]
    connect_rate: f64,
    /// Publishers (broadcast scenario).
    #[arg(long, default_value_t = 1)]
    publishers: u64,
    /// Messages per second across all senders (publishers, or every client for echo).
    #[arg(long, default_value_t = 10.0)]
    rate: f64,
    /// Message size in bytes (at least the timestamp header).
    #[arg(long, default_value_t = 64)]
    payload: usize,
    /// Fill each message's payload after its marker with JSON-like quotes (compressible the way
    /// real messages are) instead of one repeated letter.
    #[arg(long)]
    json_payload: bool,
    /// Offer permessage-deflate in the handshake: the server may compress what it sends, and
    /// loadgen inflates each compressed message to find its marker.
    #[arg(long)]
    deflate: bool,
    /// Groups for the group scenario (client i joins group i mod G).
    #[arg(long, default_value_t = 10)]
    groups: u64,
    /// Seconds to measure after the ramp.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Microseconds a sender thread waits at least between two wake-ups; each wake-up sends
    /// every message due by then (each still timed from its intended send time). 0 wakes for
    /// every message, which at tens of thousands of messages per second costs loadgen's threads
    /// more than the sends (docs/loadgen.md).
    #[arg(long, default_value_t = 250)]
    send_tick_us: u64,
    /// Source addresses, e.g. 127.1.0.1-127.1.0.200 (default: the kernel picks).
    #[arg(long)]
    source_ips: Option<String>,
    /// Threads (default: one per core it may use — the CPUs of `--cpus` when given — more when
    /// that leaves a thread over 15000 clients).
    #[arg(long)]
    threads: Option<usize>,
    /// CPUs to pin the threads to, thread i on the (i mod n)-th: a list like 1 or 0,2-3.
    /// Default: not pinned (the kernel places them beside the server under test).
    #[arg(long, value_parser = parse_cpus, default_value = "")]
    cpus: Cpus,
    /// Server process id, to report its memory.
    #[arg(long)]
    server_pid: Option<u32>,
    /// A second server-side process (a worker run apart from its gateway), whose CPU over the
    /// measurement is reported too.
    #[arg(long)]
    worker_pid: Option<u32>,
    /// Write every figure as JSON to this file.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
    /// After the measurement, ping every client and report how many answered (a liveness check
    /// of every connection, through the server's own pong).
    #[arg(long)]
    ping_at_end: bool,
    /// The runtime backend of the load threads, as gatewire's `run.backend`: auto (what
    /// `gatewire start` picks: the own io_uring reactor where io_uring works, epoll where it is
    /// refused), io_uring, epoll or glommio.
    #[arg(long, value_enum, env = "LOADGEN_BACKEND", default_value_t = BackendArg::Auto)]
    backend: BackendArg,
    /// Write a self-contained HTML report (latency and connections over time) to this file.
    #[arg(long)]
    html: Option<std::path::PathBuf>,
}

/// `--backend`: the engine's `run.backend` choices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum BackendArg {
    Auto,
    #[value(name = "io_uring")]
    IoUring,
    Epoll,
    Glommio,
}

impl BackendArg {
    fn choice(self) -> rt::BackendChoice {
        match self {
            BackendArg::Auto => rt::BackendChoice::Auto,
            BackendArg::IoUring => rt::BackendChoice::IoUring,
            BackendArg::Epoll => rt::BackendChoice::Epoll,
            BackendArg::Glommio => rt::BackendChoice::Glommio,
        }
    }
}

/// Cores the load threads may run on: the distinct CPUs of `--cpus`, or else what this process
/// may use. Two threads pinned to one CPU only take turns on it, and each one's receiver is one
/// more thread for the server's replies to wake (measured: 11% more loadgen CPU per echo and
/// 9% more gateway CPU than one thread, docs/benchmarks.md).
fn usable_cores(pinned: &[usize]) -> usize {
    let mut distinct = pinned.to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.is_empty() {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        distinct.len()
    }
}

/// CPUs given to `--cpus`.
#[derive(Debug, Clone)]
struct Cpus(Vec<usize>);

/// A CPU list in taskset's syntax: `1`, `0,2`, `0-3,6`; empty means none.
fn parse_cpus(text: &str) -> Result<Cpus, String> {
    let mut cpus = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let number = |s: &str| {
            s.trim()
                .parse::<usize>()
                .map_err(|_| format!("{s:?} in --cpus is not a CPU number"))
        };
        match part.split_once('-') {
            Some((first, last)) => cpus.extend(number(first)?..=number(last)?),
            None => cpus.push(number(part)?),
        }
    }
    Ok(Cpus(cpus))
}

/// How often each load thread's executor is nudged awake on glommio (see `run::spawn`).
const NUDGE_EVERY: Duration = Duration::from_millis(250);

/// How long after the first load thread ends the ones still running are reported.
const LAG_REPORT_AFTER: Duration = Duration::from_secs(30);

fn main() -> ExitCode {
    let args = Args::parse();
    // No transparent huge pages: the heap asks for them, and with a million sockets' small
    // records spread over 2 MiB pages the load generator's memory would grow several times over.
    // SAFETY: PR_SET_THP_DISABLE only sets a flag on this process's memory map.
    unsafe {
        libc::prctl(
            libc::PR_SET_THP_DISABLE,
            1 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    };
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("loadgen: {message}");
            ExitCode::from(2)
        }
    }
}

/// `ws://host:port/path` → (address, host header, path). Only loopback targets are accepted.
fn parse_url(url: &str) -> Result<(SocketAddr, String, String), String> {
    let rest = url
        .strip_prefix("ws://")
        .ok_or_else(|| format!("{url}: only ws:// URLs are supported"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].to_owned()),
        None => (rest, "/".to_owned()),
    };
    let addr = authority
        .to_socket_addrs()
        .map_err(|e| format!("{authority}: {e}"))?
        .next()
        .ok_or_else(|| format!("{authority}: no address"))?;
    if !addr.ip().is_loopback() {
        return Err(format!(
            "{addr} is not a loopback address: loadgen only targets loopback"
        ));
    }
    Ok((addr, authority.to_owned(), path))
}

fn run(args: Args) -> Result<(), String> {
    let selection = rt::select(args.backend.choice()).map_err(|e| e.to_string())?;
    let why = match args.backend {
        BackendArg::Auto => selection.why,
        _ => "--backend".into(),
    };
    eprintln!("loadgen: runtime backend {} ({why})", selection.backend);
    let url = match (&args.url, args.calibrate) {
        (_, true) => {
            let echo = args.scenario == Scenario::Echo;
            let addr = reference::start(echo)?;
            eprintln!("calibrating: loadgen against its reference server on {addr}");
            format!("ws://{addr}/")
        }
        (Some(url), false) => url.clone(),
        (None, false) => return Err("--url or --calibrate is needed".into()),
    };
    let (server, host, path) = parse_url(&url)?;
    let plan = args
        .source_ips
        .as_deref()
        .map(SourcePlan::parse)
        .transpose()?
        .map(|p| p.rotated(args.clients));
    if let Some(plan) = &plan
        && plan.capacity() < args.clients
    {
        return Err(format!(
            "--source-ips gives room for {} clients, fewer than {}",
            plan.capacity(),
            args.clients
        ));
    }
    let cores = usable_cores(&args.cpus.0);
    let threads = args
        .threads
        .unwrap_or_else(|| (args.clients.div_ceil(CLIENTS_PER_THREAD) as usize).max(cores))
        .clamp(1, args.clients.max(1) as usize);
    let config = Arc::new(RunConfig {
        server,
        host,
        path,
        scenario: args.scenario,
        clients: args.clients,
        threads,
        cpus: args.cpus.0.clone(),
        connect_rate: args.connect_rate,
        publishers: args.publishers.min(args.clients).max(1),
        rate: args.rate,
        payload: args.payload,
        json_payload: args.json_payload,
        deflate: args.deflate,
        duration: Duration::from_secs_f64(args.duration),
        send_tick: Duration::from_micros(args.send_tick_us),
        plan,
        groups: args.groups.max(1),
        ping_at_end: args.ping_at_end,
    });
    let shared = Arc::new(Shared::new(config.groups, threads));
    stop_on_signal(shared.clone());
    let rss_before = args.server_pid.and_then(rss_bytes);
    let started = Instant::now();
    let started_threads: Vec<_> = (0..threads)
        .map(|i| run::spawn(i, config.clone(), shared.clone()))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("cannot start a thread: {e}"))?;
    let (handles, nudges): (Vec<_>, Vec<_>) = started_threads.into_iter().unzip();
    let mut last_nudge = Instant::now();

    let mut rss_after = None;
    let mut loadgen_rss = None;
    let mut ramp_seconds = None;
    let (mut cpu_at_start, mut cpu_at_end) = (None, None);
    let (mut worker_cpu_at_start, mut worker_cpu_at_end) = (None, None);
    let mut last_print = Instant::now();
    let mut timeline: Vec<(f64, u64, u64)> = vec![(0.0, 0, 0)];
    let progress = std::io::IsTerminal::is_terminal(&std::io::stderr()).then(|| {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    });
    let mut first_done: Option<Instant> = None;
    let mut lag_reported = false;
    while handles.iter().any(|h| !h.is_finished()) {
        std::thread::sleep(Duration::from_millis(50));
        if last_nudge.elapsed() >= NUDGE_EVERY {
            last_nudge = Instant::now();
            for (h, nudge) in handles.iter().zip(&nudges) {
                if let Some(mut nudge) = nudge.as_ref()
                    && !h.is_finished()
                {
                    // A full socket already holds a nudge: nothing is lost by not writing.
                    let _ = std::io::Write::write(&mut nudge, &[0]);
                }
            }
        }
        // A thread far behind the others that have ended is named, with where it is.
        if first_done.is_none() && handles.iter().any(|h| h.is_finished()) {
            first_done = Some(Instant::now());
        }
        if !lag_reported && first_done.is_some_and(|t| t.elapsed() >= LAG_REPORT_AFTER) {
            lag_reported = true;
            for (i, h) in handles.iter().enumerate() {
                if !h.is_finished() {
                    eprintln!(
                        "loadgen: thread {i} is still {} {} s after the first thread ended",
                        shared.phase(i).name(),
                        LAG_REPORT_AFTER.as_secs()
                    );
                }
            }
        }
        if ramp_seconds.is_none()
            && let Some(at) = shared.measure_start.get()
        {
            ramp_seconds = Some(at.duration_since(started).as_secs_f64());
            cpu_at_start = args.server_pid.and_then(process_cpu_seconds);
            worker_cpu_at_start = args.worker_pid.and_then(process_cpu_seconds);
        }
        if rss_after.is_none() && shared.measured.load(Ordering::SeqCst) {
            loadgen_rss = rss_bytes(std::process::id());
            rss_after = args.server_pid.and_then(rss_bytes);
            cpu_at_end = args.server_pid.and_then(process_cpu_seconds);
            worker_cpu_at_end = args.worker_pid.and_then(process_cpu_seconds);
        }
        if last_print.elapsed() >= Duration::from_secs(1) {
            last_print = Instant::now();
            let live = &shared.live;
            let line = format!(
                "[{:>6.1}s] connected {} failed {} sent {} deliveries {} disconnected {}",
                started.elapsed().as_secs_f64(),
                Live::get(&live.connected),
                Live::get(&live.connect_failed),
                Live::get(&live.messages_sent),
                Live::get(&live.deliveries),
                Live::get(&live.disconnected),
            );
            timeline.push((
                started.elapsed().as_secs_f64(),
                Live::get(&live.connected),
                Live::get(&live.deliveries),
            ));
            match &progress {
                Some(bar) => bar.set_message(line),
                None => eprintln!("{line}"),
            }
        }
    }
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    let mut totals = ThreadStats::default();
    let mut thread_cpu_seconds = Vec::with_capacity(threads);
    for h in handles {
        for stats in h.join().map_err(|_| "a load thread panicked".to_string())? {
            thread_cpu_seconds.push(stats.cpu_seconds);
            totals.merge(&stats);
        }
    }
    let measured_for = shared.measure_start.get().map(|start| {
        let end = shared.epoch + Duration::from_nanos(shared.measure_end_ns.load(Ordering::SeqCst));
        end.saturating_duration_since(*start).as_secs_f64()
    });
    let report = Report {
        scenario: format!("{:?}", config.scenario).to_lowercase(),
        clients_requested: config.clients,
        threads,
        totals,
        ramp_seconds: ramp_seconds.unwrap_or_else(|| started.elapsed().as_secs_f64()),
        measure_seconds: measured_for
            .filter(|s| *s > 0.0)
            .unwrap_or(config.duration.as_secs_f64()),
        thread_cpu_seconds,
        cpus: config.cpus.clone(),
        delivery_seconds: shared.measure_start.get().map_or(0.0, |start| {
            let last = shared.epoch
                + Duration::from_nanos(shared.last_delivery_ns.load(Ordering::Relaxed));
            last.saturating_duration_since(*start).as_secs_f64()
        }),
        wall_seconds: started.elapsed().as_secs_f64(),
        server_rss_before_bytes: rss_before,
        server_rss_bytes: rss_after,
        loadgen_rss_bytes: loadgen_rss,
        server_cpu_seconds: cpu_at_start.zip(cpu_at_end).map(|(a, b)| b - a),
        worker_cpu_seconds: worker_cpu_at_start
            .zip(worker_cpu_at_end)
            .map(|(a, b)| b - a),
        timeline,
    };
    print!("{}", report.table());
    if let Some(path) = &args.json {
        std::fs::write(path, report.json()).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    if let Some(path) = &args.html {
        std::fs::write(path, report.html()).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}

/// Ctrl-C or SIGTERM: stop connecting and sending, let deliveries drain, print the report.
fn stop_on_signal(shared: Arc<Shared>) {
    // SAFETY: builds a signal set and blocks it in this thread (inherited by threads started
    // later); the watcher thread below is the only one that receives these signals.
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    };
    std::thread::spawn(move || {
        let mut signal = 0;
        // SAFETY: waits for one of the blocked signals.
        unsafe { libc::sigwait(&set, &mut signal) };
        eprintln!("loadgen: stopping early (signal {signal}); draining and reporting");
        shared.stop.store(true, Ordering::SeqCst);
    });
}

#[cfg(test)]
mod tests {
    use super::usable_cores;

    #[test]
    fn pinned_threads_default_to_one_per_distinct_cpu() {
        assert_eq!(usable_cores(&[1]), 1);
        assert_eq!(usable_cores(&[1, 1]), 1);
        assert_eq!(usable_cores(&[0, 2, 3]), 3);
    }
}
