//! What a load run measures: live counters shared by every thread (for progress lines), and
//! per-thread histograms and counts merged into the final report.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use hdrhistogram::Histogram;

use crate::conn::ConnectFailure;

/// Counters every thread bumps; read by the progress printer.
#[derive(Debug, Default)]
pub struct Live {
    pub connected: AtomicU64,
    pub connect_failed: AtomicU64,
    pub messages_sent: AtomicU64,
    pub deliveries: AtomicU64,
    pub disconnected: AtomicU64,
}

impl Live {
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    pub fn bump(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// One thread's measurements.
#[derive(Debug)]
pub struct ThreadStats {
    pub connected: u64,
    pub failures: BTreeMap<ConnectFailure, u64>,
    /// TCP connect + WebSocket upgrade, microseconds.
    pub connect_us: Histogram<u64>,
    /// Intended send time to receipt, microseconds.
    pub latency_us: Histogram<u64>,
    pub messages_sent: u64,
    /// Deliveries the sent messages should cause (each sender adds its audience per message).
    pub deliveries_expected: u64,
    pub deliveries: u64,
    pub duplicates: u64,
    /// Connections that ended without loadgen closing them.
    pub disconnected: u64,
    /// Connections loadgen closed and replaced (churn).
    pub churned: u64,
    /// Clients pinged by the liveness check at the end.
    pub pinged: u64,
    /// Clients that answered it.
    pub alive: u64,
    /// CPU seconds this thread used.
    pub cpu_seconds: f64,
    /// Latency per second of the run (index = whole seconds since the measurement started).
    pub latency_by_second: Vec<Histogram<u64>>,
}

/// A latency histogram: 1 µs to 10 minutes, 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid bounds")
}

impl ThreadStats {
    /// Records one latency both overall and in its second of the run.
    pub fn record_latency(&mut self, second: usize, us: u64) {
        let _ = self.latency_us.record(us);
        if second < 3600 {
            while self.latency_by_second.len() <= second {
                self.latency_by_second.push(new_histogram());
            }
            let _ = self.latency_by_second[second].record(us);
        }
    }
}

impl Default for ThreadStats {
    fn default() -> Self {
        ThreadStats {
            connected: 0,
            failures: BTreeMap::new(),
            connect_us: new_histogram(),
            latency_us: new_histogram(),
            messages_sent: 0,
            deliveries_expected: 0,
            deliveries: 0,
            duplicates: 0,
            disconnected: 0,
            churned: 0,
            pinged: 0,
            alive: 0,
            cpu_seconds: 0.0,
            latency_by_second: Vec::new(),
        }
    }
}

impl ThreadStats {
    pub fn merge(&mut self, other: &ThreadStats) {
        self.connected += other.connected;
        for (k, v) in &other.failures {
            *self.failures.entry(*k).or_insert(0) += v;
        }
        let _ = self.connect_us.add(&other.connect_us);
        let _ = self.latency_us.add(&other.latency_us);
        self.messages_sent += other.messages_sent;
        self.deliveries_expected += other.deliveries_expected;
        self.deliveries += other.deliveries;
        self.duplicates += other.duplicates;
        self.disconnected += other.disconnected;
        self.churned += other.churned;
        self.pinged += other.pinged;
        self.alive += other.alive;
        self.cpu_seconds += other.cpu_seconds;
        for (i, h) in other.latency_by_second.iter().enumerate() {
            if self.latency_by_second.len() <= i {
                self.latency_by_second.push(new_histogram());
            }
            let _ = self.latency_by_second[i].add(h);
        }
    }
}

/// The final figures of a run.
#[derive(Debug)]
pub struct Report {
    pub scenario: String,
    pub clients_requested: u64,
    pub threads: usize,
    pub totals: ThreadStats,
    pub ramp_seconds: f64,
    pub measure_seconds: f64,
    /// CPU seconds of each load thread.
    pub thread_cpu_seconds: Vec<f64>,
    /// CPUs the threads were pinned to (empty: not pinned).
    pub cpus: Vec<usize>,
    /// From the start of the measurement to the last delivery (past the measurement when the
    /// server falls behind).
    pub delivery_seconds: f64,
    pub wall_seconds: f64,
    pub server_rss_before_bytes: Option<u64>,
    pub server_rss_bytes: Option<u64>,
    /// loadgen's own resident memory at the end of the measurement.
    pub loadgen_rss_bytes: Option<u64>,
    /// CPU seconds the server (`--server-pid`) used during the measurement.
    pub server_cpu_seconds: Option<f64>,
    /// CPU seconds the worker (`--worker-pid`) used during the measurement.
    pub worker_cpu_seconds: Option<f64>,
    /// `(seconds since start, connected, deliveries)` sampled once a second.
    pub timeline: Vec<(f64, u64, u64)>,
}

fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    if h.is_empty() {
        return 0.0;
    }
    h.value_at_quantile(q) as f64 / 1000.0
}

impl Report {
    pub fn connect_per_sec(&self) -> f64 {
        self.totals.connected as f64 / self.ramp_seconds.max(1e-9)
    }

    /// Deliveries over the time they took: the measurement, or up to the last delivery when the
    /// server was still delivering after it (so a server that falls behind is not flattered).
    pub fn deliveries_per_sec(&self) -> f64 {
        let seconds = self.measure_seconds.max(self.delivery_seconds);
        self.totals.deliveries as f64 / seconds.max(1e-9)
    }

    pub fn loadgen_cpu_pct(&self) -> f64 {
        100.0 * self.totals.cpu_seconds / self.wall_seconds.max(1e-9)
    }

    pub fn lost(&self) -> u64 {
        self.totals
            .deliveries_expected
            .saturating_sub(self.totals.deliveries - self.totals.duplicates)
    }

    /// New connections per second in each second of the ramp (from the once-a-second samples).
    pub fn connect_ramp(&self) -> Vec<f64> {
        self.timeline
            .windows(2)
            .take_while(|w| w[0].0 < self.ramp_seconds)
            .map(|w| (w[1].1.saturating_sub(w[0].1)) as f64 / (w[1].0 - w[0].0).max(1e-9))
            .collect()
    }

    /// Per idle client: server RSS growth over the connected clients.
    pub fn server_rss_per_client(&self) -> Option<f64> {
        let (before, after) = (self.server_rss_before_bytes?, self.server_rss_bytes?);
        (self.totals.connected > 0)
            .then(|| after.saturating_sub(before) as f64 / self.totals.connected as f64)
    }

    /// The human-readable table.
    pub fn table(&self) -> String {
        let t = &self.totals;
        let mut out = String::new();
        let _ = writeln!(out, "scenario            {}", self.scenario);
        let _ = writeln!(out, "clients requested   {}", self.clients_requested);
        let _ = writeln!(out, "connected           {}", t.connected);
        let _ = writeln!(out, "connect failed      {}", self.failures_text());
        let _ = writeln!(out, "connect/s           {:.0}", self.connect_per_sec());
        let _ = writeln!(
            out,
            "connect ms          p50 {:.2}  p99 {:.2}  max {:.2}",
            ms(&t.connect_us, 0.5),
            ms(&t.connect_us, 0.99),
            ms(&t.connect_us, 1.0)
        );
        let _ = writeln!(out, "messages sent       {}", t.messages_sent);
        let _ = writeln!(out, "deliveries expected {}", t.deliveries_expected);
        let _ = writeln!(
            out,
            "deliveries received {}  (lost {}, duplicated {})",
            t.deliveries,
            self.lost(),
            t.duplicates
        );
        let _ = writeln!(out, "deliveries/s        {:.0}", self.deliveries_per_sec());
        let _ = writeln!(
            out,
            "latency ms          p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}",
            ms(&t.latency_us, 0.5),
            ms(&t.latency_us, 0.9),
            ms(&t.latency_us, 0.99),
            ms(&t.latency_us, 0.999),
            ms(&t.latency_us, 1.0)
        );
        let _ = writeln!(out, "disconnected        {}", t.disconnected);
        if t.pinged > 0 {
            let _ = writeln!(
                out,
                "alive at the end    {} of {} pinged clients answered",
                t.alive, t.pinged
            );
        }
        let ramp = self.connect_ramp();
        if ramp.len() > 1 {
            let per_second: Vec<String> = ramp.iter().map(|r| format!("{r:.0}")).collect();
            let _ = writeln!(out, "connect ramp        {} /s", per_second.join(" "));
        }
        if t.churned > 0 {
            let _ = writeln!(
                out,
                "churned             {} (closed and reopened by loadgen)",
                t.churned
            );
        }
        let busiest = self
            .thread_cpu_seconds
            .iter()
            .fold(0.0_f64, |a, b| a.max(*b));
        let busiest_pct = 100.0 * busiest / self.wall_seconds.max(1e-9);
        let _ = writeln!(
            out,
            "loadgen cpu         {:.0}% over {} threads and their receivers (busiest {:.0}%{}), {}",
            self.loadgen_cpu_pct(),
            self.threads,
            busiest_pct,
            if busiest_pct >= 90.0 {
                ": SATURATED, the figures above may be the loadgen's"
            } else {
                ""
            },
            match self.cpus.as_slice() {
                [] => "threads not pinned".to_owned(),
                cpus => format!("threads pinned to CPUs {cpus:?}"),
            }
        );
        if let Some(rss) = self.loadgen_rss_bytes {
            let _ = writeln!(
                out,
                "loadgen rss         {rss} bytes ({:.0} per client)",
                rss as f64 / t.connected.max(1) as f64
            );
        }
        if let Some(rss) = self.server_rss_bytes {
            let _ = writeln!(out, "server rss          {rss} bytes");
        }
        if let Some(cpu) = self.server_cpu_seconds {
            let pct = 100.0 * cpu / self.measure_seconds.max(1e-9);
            let _ = writeln!(
                out,
                "server cpu          {cpu:.2} s ({pct:.0} % over the measurement)"
            );
        }
        if let Some(cpu) = self.worker_cpu_seconds {
            let pct = 100.0 * cpu / self.measure_seconds.max(1e-9);
            let _ = writeln!(
                out,
                "worker cpu          {cpu:.2} s ({pct:.0} % over the measurement)"
            );
        }
        if let Some(per) = self.server_rss_per_client() {
            let _ = writeln!(out, "server rss/client   {per:.0} bytes");
        }
        out
    }

    fn failures_text(&self) -> String {
        let total: u64 = self.totals.failures.values().sum();
        if total == 0 {
            return "0".into();
        }
        let parts: Vec<String> = self
            .totals
            .failures
            .iter()
            .map(|(k, v)| format!("{}={v}", k.name()))
            .collect();
        format!("{total} ({})", parts.join(", "))
    }

    /// Every figure as JSON (field names documented in docs/loadgen.md).
    pub fn json(&self) -> String {
        let t = &self.totals;
        let opt = |v: Option<u64>| v.map_or("null".to_owned(), |v| v.to_string());
        let failures: Vec<String> = t
            .failures
            .iter()
            .map(|(k, v)| format!("\"{}\":{v}", k.name()))
            .collect();
        format!(
            concat!(
                "{{\"scenario\":\"{}\",\"clients_requested\":{},\"threads\":{},\"connected\":{},",
                "\"connect_failed\":{},\"connect_failed_by_reason\":{{{}}},\"connect_per_sec\":{:.1},",
                "\"connect_ms\":{{\"p50\":{:.3},\"p99\":{:.3},\"max\":{:.3}}},",
                "\"messages_sent\":{},\"deliveries_expected\":{},\"deliveries_received\":{},",
                "\"deliveries_lost\":{},\"deliveries_duplicated\":{},\"deliveries_per_sec\":{:.1},",
                "\"latency_ms\":{{\"p50\":{:.3},\"p90\":{:.3},\"p99\":{:.3},\"p999\":{:.3},\"max\":{:.3}}},",
                "\"disconnected\":{},\"churned\":{},\"pinged\":{},\"alive\":{},",
                "\"connect_ramp_per_sec\":[{}],\"loadgen_cpu_pct\":{:.1},\"ramp_seconds\":{:.3},",
                "\"measure_seconds\":{:.3},\"server_rss_before_bytes\":{},\"server_rss_bytes\":{},",
                "\"loadgen_rss_bytes\":{},",
                "\"server_rss_per_client_bytes\":{},\"server_cpu_seconds\":{},",
                "\"worker_cpu_seconds\":{},",
                "\"loadgen_cpu_pct_per_thread\":[{}],",
                "\"latency_p99_ms_by_second\":[{}]}}\n"
            ),
            self.scenario,
            self.clients_requested,
            self.threads,
            t.connected,
            t.failures.values().sum::<u64>(),
            failures.join(","),
            self.connect_per_sec(),
            ms(&t.connect_us, 0.5),
            ms(&t.connect_us, 0.99),
            ms(&t.connect_us, 1.0),
            t.messages_sent,
            t.deliveries_expected,
            t.deliveries,
            self.lost(),
            t.duplicates,
            self.deliveries_per_sec(),
            ms(&t.latency_us, 0.5),
            ms(&t.latency_us, 0.9),
            ms(&t.latency_us, 0.99),
            ms(&t.latency_us, 0.999),
            ms(&t.latency_us, 1.0),
            t.disconnected,
            t.churned,
            t.pinged,
            t.alive,
            self.connect_ramp()
                .iter()
                .map(|r| format!("{r:.0}"))
                .collect::<Vec<_>>()
                .join(","),
            self.loadgen_cpu_pct(),
            self.ramp_seconds,
            self.measure_seconds,
            opt(self.server_rss_before_bytes),
            opt(self.server_rss_bytes),
            opt(self.loadgen_rss_bytes),
            self.server_rss_per_client()
                .map_or("null".to_owned(), |v| format!("{v:.1}")),
            self.server_cpu_seconds
                .map_or("null".to_owned(), |v| format!("{v:.3}")),
            self.worker_cpu_seconds
                .map_or("null".to_owned(), |v| format!("{v:.3}")),
            self.thread_cpu_seconds
                .iter()
                .map(|c| format!("{:.1}", 100.0 * c / self.wall_seconds.max(1e-9)))
                .collect::<Vec<_>>()
                .join(","),
            t.latency_by_second
                .iter()
                .map(|h| match h.is_empty() {
                    true => "null".to_owned(),
                    false => format!("{:.3}", h.value_at_quantile(0.99) as f64 / 1000.0),
                })
                .collect::<Vec<_>>()
                .join(","),
        )
    }
}

/// Resident set size of process `pid`, from `/proc/<pid>/status`.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// CPU seconds (user + system) process `pid` used so far.
pub fn process_cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: f64 = fields.next()?.parse().ok()?;
    let stime: f64 = fields.next()?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Some((utime + stime) / ticks)
}

/// CPU seconds used so far by the calling thread.
pub fn thread_cpu_seconds() -> f64 {
    // SAFETY: getrusage writes into the zeroed struct we pass.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_THREAD, &mut usage);
        usage
    };
    let secs = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// One line of a plot: its name, its colour and its points.
type Series<'a> = (&'a str, &'a str, Vec<(f64, f64)>);

/// A polyline SVG of `series`, `x` and `y` from zero.
fn svg_plot(title: &str, y_label: &str, series: &[Series<'_>]) -> String {
    let (w, h, pad) = (720.0, 260.0, 48.0);
    let max_x = series
        .iter()
        .flat_map(|(_, _, p)| p.iter().map(|(x, _)| *x))
        .fold(1.0_f64, f64::max);
    let max_y = series
        .iter()
        .flat_map(|(_, _, p)| p.iter().map(|(_, y)| *y))
        .fold(1.0_f64, f64::max);
    let sx = |x: f64| pad + x / max_x * (w - 2.0 * pad);
    let sy = |y: f64| h - pad - y / max_y * (h - 2.0 * pad);
    let mut out = format!(
        "<h2>{title}</h2><svg width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" xmlns=\"http://www.w3.org/2000/svg\">\
         <rect width=\"100%\" height=\"100%\" fill=\"#fff\"/>\
         <line x1=\"{pad}\" y1=\"{y0}\" x2=\"{x1}\" y2=\"{y0}\" stroke=\"#888\"/>\
         <line x1=\"{pad}\" y1=\"{pad}\" x2=\"{pad}\" y2=\"{y0}\" stroke=\"#888\"/>\
         <text x=\"{pad}\" y=\"{ty}\" font-size=\"12\">{max_y:.1} {y_label}</text>\
         <text x=\"{x1}\" y=\"{bx}\" font-size=\"12\" text-anchor=\"end\">{max_x:.0} s</text>",
        y0 = h - pad,
        x1 = w - pad,
        ty = pad - 8.0,
        bx = h - pad + 18.0,
    );
    for (i, (name, colour, points)) in series.iter().enumerate() {
        let coords: Vec<String> = points
            .iter()
            .map(|(x, y)| format!("{:.1},{:.1}", sx(*x), sy(*y)))
            .collect();
        let _ = write!(
            out,
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\"{}\"/>\
             <text x=\"{}\" y=\"{}\" font-size=\"12\" fill=\"{colour}\">{name}</text>",
            coords.join(" "),
            w - pad - 120.0,
            pad + 16.0 * i as f64
        );
    }
    out.push_str("</svg>");
    out
}

impl Report {
    /// A self-contained HTML report: the table, latency over time, connections over time.
    pub fn html(&self) -> String {
        let seconds = &self.totals.latency_by_second;
        let at = |q: f64| -> Vec<(f64, f64)> {
            seconds
                .iter()
                .enumerate()
                .filter(|(_, h)| !h.is_empty())
                .map(|(i, h)| (i as f64, h.value_at_quantile(q) as f64 / 1000.0))
                .collect()
        };
        let latency = svg_plot(
            "Latency over the measurement (intended send → receipt)",
            "ms",
            &[
                ("p50", "#1f77b4", at(0.5)),
                ("p99", "#d62728", at(0.99)),
                ("max", "#999", at(1.0)),
            ],
        );
        let connected: Vec<(f64, f64)> = self
            .timeline
            .iter()
            .map(|(t, c, _)| (*t, *c as f64))
            .collect();
        let rate: Vec<(f64, f64)> = self
            .timeline
            .windows(2)
            .map(|w| {
                (
                    w[1].0,
                    (w[1].2 - w[0].2) as f64 / (w[1].0 - w[0].0).max(1e-9),
                )
            })
            .collect();
        let connections = svg_plot(
            "Connections over the run",
            "clients",
            &[("connected", "#2ca02c", connected)],
        );
        let deliveries = svg_plot(
            "Deliveries per second over the run",
            "/s",
            &[("deliveries/s", "#9467bd", rate)],
        );
        let escape = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;");
        format!(
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>loadgen report</title>\
             <style>body{{font-family:system-ui,sans-serif;margin:2em}}pre{{background:#f6f6f6;padding:1em}}</style>\
             </head><body><h1>loadgen: {}</h1><pre>{}</pre>{latency}{connections}{deliveries}</body></html>\n",
            escape(&self.scenario),
            escape(&self.table())
        )
    }
}
