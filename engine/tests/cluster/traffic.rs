//! The traffic checker every cluster scenario uses: WebSocket clients on a client host, spread
//! over the gateway hosts, each sending numbered messages at a steady rate and matching the
//! answers. With the echo app the answer is the message; with the chat app each client first
//! takes a nickname (session + uid) and a room of its own (group), and the answer is
//! "NICK said MESSAGE" sent to that room — so a lost session or group shows as lost answers.
//! At the end it reports, per gateway host: messages sent, answered, lost, duplicated; clients
//! disconnected and how; the slowest answer and the longest gap between answers.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tungstenite::Message;
use tungstenite::stream::MaybeTlsStream;

use super::bed::{self, Bed};
use crate::next_message::NextMessage;

type Ws = tungstenite::WebSocket<MaybeTlsStream<TcpStream>>;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum App {
    Echo,
    Chat,
}

/// Messages per second each client sends.
pub const RATE: f64 = 10.0;
/// How long the checker waits for the last answers after it stops sending.
const SETTLE: Duration = Duration::from_secs(3);

pub struct Traffic {
    app: App,
    stop: Arc<AtomicBool>,
    clients: Vec<(String, JoinHandle<ClientReport>)>,
    next_id: usize,
}

/// What one client saw.
#[derive(Default, Debug, Clone)]
pub struct ClientReport {
    pub connected: bool,
    pub sent: u64,
    pub answered: u64,
    pub duplicated: u64,
    /// Answers that were not for this client's messages and no push (a foreign answer).
    pub foreign: u64,
    /// How the connection ended before the checker closed it: "close frame", "eof", "reset"...
    pub disconnected: Option<String>,
    pub max_latency: Duration,
    pub longest_gap: Duration,
    /// Messages starting with "push" (sent with `gatewire send` by a scenario).
    pub pushes: Vec<String>,
}

/// Sums over a set of clients.
#[derive(Default, Debug, Clone)]
pub struct Totals {
    pub clients: u64,
    pub never_connected: u64,
    pub sent: u64,
    pub answered: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub foreign: u64,
    pub disconnected: u64,
    pub max_latency: Duration,
    pub longest_gap: Duration,
    pub pushes: u64,
}

#[derive(Default, Debug)]
pub struct Report {
    /// Per gateway host the clients were connected to.
    pub per_gateway: BTreeMap<String, Vec<ClientReport>>,
}

impl Traffic {
    pub fn new(app: App) -> Traffic {
        Traffic {
            app,
            stop: Arc::new(AtomicBool::new(false)),
            clients: Vec::new(),
            next_id: 0,
        }
    }

    /// Connects `count` clients from host `from` to `gateway`'s public port and starts their
    /// traffic; returns once every one is connected (and, for chat, has its nick and room).
    pub fn connect(&mut self, bed: &Bed, from: &str, gateway: &str, count: usize) {
        let ns = bed::netns_path(&bed.ns(from));
        let addr = bed.public(gateway);
        let (ready_tx, ready_rx) = mpsc::channel();
        for k in 0..count {
            let id = self.next_id;
            self.next_id += 1;
            let stop = self.stop.clone();
            let ns = ns.clone();
            let ready = ready_tx.clone();
            let app = self.app;
            // Spread the clients' sends over one period.
            let offset = Duration::from_secs_f64(k as f64 / count as f64 / RATE);
            let handle = std::thread::Builder::new()
                .stack_size(256 * 1024)
                .spawn(move || {
                    bed::enter(&ns);
                    run_client(id, app, addr, offset, &stop, ready)
                })
                .unwrap();
            self.clients.push((gateway.to_owned(), handle));
        }
        drop(ready_tx);
        let deadline = Instant::now() + Duration::from_secs(30);
        for _ in 0..count {
            let left = deadline.saturating_duration_since(Instant::now());
            ready_rx
                .recv_timeout(left)
                .expect("every client connects within 30 s");
        }
    }

    /// Stops sending, waits for the last answers, closes the clients and reports.
    pub fn finish(self) -> Report {
        self.stop.store(true, Ordering::Relaxed);
        let mut report = Report::default();
        for (gateway, handle) in self.clients {
            let client = handle.join().expect("client thread");
            report.per_gateway.entry(gateway).or_default().push(client);
        }
        report
    }
}

fn run_client(
    id: usize,
    app: App,
    addr: SocketAddr,
    offset: Duration,
    stop: &AtomicBool,
    ready: mpsc::Sender<()>,
) -> ClientReport {
    let mut report = ClientReport::default();
    let Some(mut ws) = connect(addr) else {
        let _ = ready.send(());
        return report;
    };
    report.connected = true;
    if app == App::Chat {
        for (command, answer) in [
            (format!("/nick c{id}"), format!("You are now c{id}")),
            (format!("/join r{id}"), format!("You joined r{id}")),
        ] {
            ws.send(Message::text(command)).unwrap();
            loop {
                match ws.next_message() {
                    Ok(Message::Text(t)) if t.as_str() == answer => break,
                    Ok(_) => continue,
                    Err(e) => panic!("client {id}: no answer to its setup: {e}"),
                }
            }
        }
    }
    let _ = ready.send(());
    let prefix = match app {
        App::Echo => format!("m{id}."),
        App::Chat => format!("c{id} said m{id}."),
    };
    let period = Duration::from_secs_f64(1.0 / RATE);
    let mut sent_at: Vec<Instant> = Vec::new();
    let mut answers: Vec<u32> = Vec::new();
    let mut next_send = Instant::now() + offset;
    let mut last_answer = Instant::now();
    let mut stopped_at: Option<Instant> = None;
    loop {
        let now = Instant::now();
        if stopped_at.is_none() && stop.load(Ordering::Relaxed) {
            stopped_at = Some(now);
        }
        match stopped_at {
            Some(at) => {
                let all = answers.iter().all(|&n| n > 0);
                if all || now.duration_since(at) > SETTLE {
                    break;
                }
            }
            None if now >= next_send => {
                let seq = sent_at.len();
                if ws.send(Message::text(format!("m{id}.{seq}"))).is_err() {
                    report.disconnected = Some("send failed".into());
                    break;
                }
                sent_at.push(now);
                answers.push(0);
                next_send += period;
                continue;
            }
            None => {}
        }
        let wait = match stopped_at {
            Some(_) => Duration::from_millis(50),
            None => next_send.saturating_duration_since(now),
        };
        if let MaybeTlsStream::Plain(s) = ws.get_ref() {
            let _ = s.set_read_timeout(Some(wait.max(Duration::from_millis(1))));
        }
        match ws.next_message() {
            Ok(Message::Text(t)) => {
                let t = t.as_str();
                if let Some(seq) = t
                    .strip_prefix(&prefix)
                    .and_then(|s| s.parse::<usize>().ok())
                    && seq < answers.len()
                {
                    let now = Instant::now();
                    answers[seq] += 1;
                    if answers[seq] == 1 {
                        report.max_latency = report.max_latency.max(now - sent_at[seq]);
                        if stopped_at.is_none() {
                            report.longest_gap = report.longest_gap.max(now - last_answer);
                        }
                        last_answer = now;
                    }
                } else if t.starts_with("push") {
                    report.pushes.push(t.to_owned());
                } else if app == App::Echo || t.contains(" said m") {
                    // Chat's join/leave announcements and hellos are expected; another client's
                    // numbered message is not.
                    report.foreign += 1;
                }
            }
            Ok(Message::Close(frame)) => {
                let code = frame.map_or(0, |f| u16::from(f.code));
                report.disconnected = Some(format!("close frame {code}"));
                break;
            }
            Ok(_) => {}
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => {
                report.disconnected = Some(match e {
                    tungstenite::Error::Io(e) => format!("{:?}", e.kind()),
                    tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed => {
                        "eof".into()
                    }
                    tungstenite::Error::Protocol(p) => format!("{p}"),
                    other => format!("{other}"),
                });
                break;
            }
        }
    }
    report.sent = sent_at.len() as u64;
    report.answered = answers.iter().filter(|&&n| n > 0).count() as u64;
    report.duplicated = answers
        .iter()
        .map(|&n| u64::from(n.saturating_sub(1)))
        .sum();
    if report.disconnected.is_none() {
        let _ = ws.close(None);
        let _ = ws.flush();
    }
    report
}

/// A WebSocket connection, retried for 10 s while no worker serves the gateway yet.
fn connect(addr: SocketAddr) -> Option<Ws> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let Ok(stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
            std::thread::sleep(Duration::from_millis(100));
            continue;
        };
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        stream.set_nodelay(true).unwrap();
        match tungstenite::client::client(format!("ws://{addr}/"), MaybeTlsStream::Plain(stream)) {
            Ok((ws, _)) => return Some(ws),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
    None
}

impl Report {
    pub fn totals(&self, gateway: Option<&str>) -> Totals {
        let mut t = Totals::default();
        for (g, clients) in &self.per_gateway {
            if gateway.is_some_and(|want| want != g) {
                continue;
            }
            for c in clients {
                t.clients += 1;
                t.never_connected += u64::from(!c.connected);
                t.sent += c.sent;
                t.answered += c.answered;
                t.lost += c.sent - c.answered;
                t.duplicated += c.duplicated;
                t.foreign += c.foreign;
                t.disconnected += u64::from(c.disconnected.is_some());
                t.max_latency = t.max_latency.max(c.max_latency);
                t.longest_gap = t.longest_gap.max(c.longest_gap);
                t.pushes += c.pushes.len() as u64;
            }
        }
        t
    }

    /// The report as a table. Every scenario prints one; it goes straight to stderr, past the
    /// test harness's capture, so CI's log shows the figures of passing scenarios too.
    pub fn print(&self, scenario: &str) {
        let mut out = format!("\n{scenario}\n");
        out += &format!(
            "  {:<8} {:>7} {:>8} {:>8} {:>5} {:>5} {:>7} {:>12} {:>12} {:>11} {:>6}\n",
            "gateway",
            "clients",
            "sent",
            "answered",
            "lost",
            "dup",
            "foreign",
            "disconnected",
            "max_latency",
            "longest_gap",
            "pushes"
        );
        let mut rows: Vec<(String, Totals)> = self
            .per_gateway
            .keys()
            .map(|g| (g.clone(), self.totals(Some(g))))
            .collect();
        rows.push(("all".into(), self.totals(None)));
        for (g, t) in rows {
            out += &format!(
                "  {:<8} {:>7} {:>8} {:>8} {:>5} {:>5} {:>7} {:>12} {:>10}ms {:>9}ms {:>6}\n",
                g,
                t.clients,
                t.sent,
                t.answered,
                t.lost,
                t.duplicated,
                t.foreign,
                t.disconnected,
                t.max_latency.as_millis(),
                t.longest_gap.as_millis(),
                t.pushes
            );
        }
        let mut causes: BTreeMap<&str, u64> = BTreeMap::new();
        for c in self.per_gateway.values().flatten() {
            if let Some(why) = &c.disconnected {
                *causes.entry(why).or_default() += 1;
            }
        }
        if !causes.is_empty() {
            out += &format!("  disconnections by cause: {causes:?}\n");
        }
        bed::say(out.trim_end().to_owned());
    }
}
