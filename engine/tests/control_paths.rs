//! The control paths at scale (issue: hardening, second round): what registers and workers do
//! when the other side of a register link sends far more than a real cluster would.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::process::cpu_seconds;
use common::*;
use gatewire_proto::register::{RegisterMessage, gateway_connect_line};

/// A register that answers every worker with the list the test sets (and sends the new list to
/// every connected worker when it changes).
struct FakeRegister {
    address: SocketAddr,
    list: Arc<Mutex<(u64, String)>>,
}

impl FakeRegister {
    fn start(addresses: &[String]) -> FakeRegister {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let list = Arc::new(Mutex::new((0, list_line(addresses))));
        let shared = list.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let list = shared.clone();
                std::thread::spawn(move || serve_worker(stream, &list));
            }
        });
        FakeRegister { address, list }
    }

    fn set(&self, addresses: &[String]) {
        self.say(list_line(addresses));
    }

    /// From now on, says `text` to every worker instead of a list.
    fn say(&self, text: String) {
        let mut list = self.list.lock().unwrap();
        *list = (list.0 + 1, text);
    }
}

fn list_line(addresses: &[String]) -> String {
    let quoted: Vec<String> = addresses.iter().map(|a| format!("\"{a}\"")).collect();
    format!(
        "{{\"event\":\"broadcast_addresses\",\"addresses\":[{}]}}\n",
        quoted.join(",")
    )
}

fn serve_worker(stream: TcpStream, list: &Mutex<(u64, String)>) {
    let mut hello = String::new();
    if BufReader::new(stream.try_clone().unwrap())
        .read_line(&mut hello)
        .is_err()
    {
        return;
    }
    let mut stream = stream;
    let mut sent = None;
    loop {
        let (version, line) = list.lock().unwrap().clone();
        if sent != Some(version) {
            if stream.write_all(line.as_bytes()).is_err() {
                return;
            }
            sent = Some(version);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `n` loopback addresses nobody listens on (a connect to them is refused at once).
fn dead_addresses(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("127.{}.{}.{}:9", 1 + (i >> 16), (i >> 8) & 255, i & 255))
        .collect()
}

#[test]
fn a_worker_fed_a_huge_gateway_list_stays_light_and_recovers_when_it_shrinks() {
    let gateway = Gatewire::start(Setup::default());
    let real = gateway.inner(0).to_string();
    // 200,000 dead addresses, the real gateway last (beyond worker.max_gateways).
    let mut huge = dead_addresses(200_000);
    huge.push(real.clone());
    let register = FakeRegister::start(&huge);
    let worker = Gatewire::start(Setup {
        roles: "worker",
        register_port: Some(register.address.port()),
        app: "echo",
        worker_extra: "ready_timeout = 2".into(),
        metrics: true,
        ..Setup::default()
    });
    let pid = worker.role_pid("worker");
    let started = Instant::now();
    let cpu_before = cpu_seconds(pid);
    std::thread::sleep(Duration::from_secs(5));
    let busy = cpu_seconds(pid) - cpu_before;
    let took = started.elapsed().as_secs_f64();
    let rss = rss_bytes(pid);
    assert!(
        busy < 0.5 * took,
        "the worker used {busy:.2} s of CPU in {took:.1} s with a huge gateway list"
    );
    assert!(
        rss < 150 << 20,
        "the worker holds {} MB with a huge gateway list",
        rss >> 20
    );

    // The list shrinks to the one real gateway: the worker links and serves at once.
    register.set(std::slice::from_ref(&real));
    let mut ws = ws_connect_when_served(gateway.public, "/");
    ws.send(tungstenite::Message::text("still here?")).unwrap();
    assert_eq!(ws_read(&mut ws), "still here?");
    std::thread::sleep(Duration::from_secs(2));
    let cpu_before = cpu_seconds(pid);
    std::thread::sleep(Duration::from_secs(3));
    let idle = cpu_seconds(pid) - cpu_before;
    assert!(
        idle < 0.3,
        "the worker used {idle:.2} s of CPU in 3 s after its list shrank to one gateway"
    );
    assert!(
        worker.metric("gatewire_worker_gateway_cap_hits_total") >= 1,
        "the list over worker.max_gateways is counted"
    );
    assert_eq!(worker.metric("gatewire_worker_gateways_over_cap"), 0);
}

/// A worker's view of a register: every list it was sent, as address counts.
struct Follower {
    lists: Arc<Mutex<Vec<usize>>>,
    stream: TcpStream,
}

impl Drop for Follower {
    fn drop(&mut self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }
}

impl Follower {
    fn join(register: SocketAddr) -> Follower {
        let mut stream = TcpStream::connect(register).unwrap();
        stream
            .write_all(gatewire_proto::register::worker_connect_line("").as_bytes())
            .unwrap();
        let lists = Arc::new(Mutex::new(Vec::new()));
        let seen = lists.clone();
        let reader = stream.try_clone().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(reader).split(b'\n') {
                let Ok(line) = line else { return };
                if let Ok(RegisterMessage::BroadcastAddresses { addresses }) =
                    RegisterMessage::parse(&line)
                {
                    seen.lock().unwrap().push(addresses.len());
                }
            }
        });
        Follower { lists, stream }
    }

    /// Waits up to `wait` for a list of `n` addresses; false if none came.
    fn sees(&self, n: usize, wait: Duration) -> bool {
        let deadline = Instant::now() + wait;
        while Instant::now() < deadline {
            if self.lists.lock().unwrap().last() == Some(&n) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    fn received(&self) -> usize {
        self.lists.lock().unwrap().len()
    }
}

/// `n` loopback ports where something answers any query like a gateway (one reply per
/// connection), as the register's check of an announced address needs.
fn answering_gateways(n: usize) -> Vec<String> {
    (0..n)
        .map(|_| {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let address = listener.local_addr().unwrap().to_string();
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    let Ok(mut stream) = stream else { return };
                    let mut request = [0u8; 4096];
                    if std::io::Read::read(&mut stream, &mut request).unwrap_or(0) > 0 {
                        let _ = stream.write_all(b"\0\0\0\x04i:0;");
                    }
                }
            });
            address
        })
        .collect()
}

/// Connections to `register`, each announcing one of `addresses`.
fn announce(register: SocketAddr, addresses: &[String]) -> Vec<TcpStream> {
    addresses
        .iter()
        .map(|address| {
            let mut s = TcpStream::connect(register).unwrap();
            s.write_all(gateway_connect_line(address, "").as_bytes())
                .unwrap();
            s
        })
        .collect()
}

#[test]
fn a_register_flooded_with_announcements_stays_bounded_and_serves_afterwards() {
    let register = Gatewire::start(Setup {
        roles: "register",
        metrics: true,
        ..Setup::default()
    });
    let pid = register.role_pid("register");
    let follower = Follower::join(register.register);
    assert!(follower.sees(0, Duration::from_secs(5)), "the empty list");
    let cpu_before = cpu_seconds(pid);

    // 5,000 announcements of addresses where nothing answers: none is listed.
    const FLOOD: usize = 5_000;
    // Not 127.0.0.1: ports there may be another test's gateway, which would answer.
    let dead = dead_addresses(FLOOD);
    let flood = announce(register.register, &dead);
    // 300 gateways that answer, announced in the same burst: listed, in a few lists.
    const REAL: usize = 300;
    let real = answering_gateways(REAL);
    let serving = announce(register.register, &real);
    assert!(
        follower.sees(REAL, Duration::from_secs(20)),
        "the follower never got the {REAL} answering gateways (last list: {:?})",
        follower.lists.lock().unwrap().last()
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        follower.lists.lock().unwrap().last(),
        Some(&REAL),
        "an address where no gateway answers is never listed"
    );
    let rss = rss_bytes(pid);
    drop((flood, serving));
    assert!(
        follower.sees(0, Duration::from_secs(20)),
        "the list never emptied after the announcers left"
    );
    let busy = cpu_seconds(pid) - cpu_before;
    assert!(
        busy < 5.0,
        "{FLOOD} + {REAL} announcers cost the register {busy:.1} s of CPU"
    );
    assert!(rss < 100 << 20, "the register grew to {} MB", rss >> 20);
    let lists = follower.received();
    assert!(
        lists < 100,
        "the follower was sent {lists} lists for {REAL} joins and leaves (not coalesced)"
    );

    // Normal service afterwards: a gateway announced now reaches the follower at once.
    let _gateway = announce(register.register, &answering_gateways(1));
    assert!(follower.sees(1, Duration::from_secs(1)));
}

#[test]
fn the_register_lists_neither_itself_nor_a_closed_port() {
    let gw = Gatewire::start(Setup {
        roles: "register,gateway,worker",
        app: "echo",
        ..Setup::default()
    });
    let follower = Follower::join(gw.register);
    assert!(follower.sees(1, Duration::from_secs(5)), "the real gateway");
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let _bogus = announce(gw.register, &[gw.register.to_string(), closed.to_string()]);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(follower.lists.lock().unwrap().last(), Some(&1));
    // A reload links the new worker to every listed gateway: nothing holds it up.
    let started = Instant::now();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gatewire"))
        .args(["reload", "-c"])
        .arg(gw.path("gatewire.toml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "reload failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "reload took {:?}",
        started.elapsed()
    );
    let mut ws = ws_connect_when_served(gw.public, "/");
    ws.send(tungstenite::Message::text("after reload")).unwrap();
    assert_eq!(ws_read(&mut ws), "after reload");
}

#[test]
fn a_register_holds_at_most_max_members_connections() {
    let register = Gatewire::start(Setup {
        roles: "register",
        metrics: true,
        register_extra: "max_members = 50".into(),
        ..Setup::default()
    });
    let followers: Vec<Follower> = (0..60).map(|_| Follower::join(register.register)).collect();
    std::thread::sleep(Duration::from_millis(500));
    let served = followers
        .iter()
        .filter(|f| f.sees(0, Duration::from_millis(50)))
        .count();
    let refused = register.metric("gatewire_register_member_cap_hits_total");
    // The harness's own probes (start-up, status) may hold a place or be refused too.
    assert!(
        (48..=50).contains(&served) && served as u64 + refused >= 60,
        "{served} of 60 served, {refused} refused at max_members = 50"
    );
    drop(followers);
    // Served again once the register has seen them leave (a refused member retries).
    let deadline = Instant::now() + Duration::from_secs(10);
    while !Follower::join(register.register).sees(0, Duration::from_millis(500)) {
        assert!(
            Instant::now() < deadline,
            "not served again after members left"
        );
    }
}

#[test]
fn a_register_that_sends_garbage_is_closed_and_logged_once_per_interval() {
    let register = FakeRegister::start(&[]);
    register.say("this is not json\n".repeat(20_000));
    let worker = Gatewire::start(Setup {
        roles: "worker",
        register_port: Some(register.address.port()),
        worker_extra: "ready_timeout = 1".into(),
        capture_log: true,
        ..Setup::default()
    });
    std::thread::sleep(Duration::from_secs(5));
    let log = worker.log();
    let garbage = log.matches("not a register message").count();
    assert!(
        (1..=3).contains(&garbage),
        "the garbage was logged {garbage} times in 5 s:\n{log}"
    );
    assert!(
        !log.contains("secret_key"),
        "garbage is not a wrong secret:\n{log}"
    );
}
