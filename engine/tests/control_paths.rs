//! The control paths at scale (issue: hardening, second round): what registers and workers do
//! when the other side of a register link sends far more than a real cluster would.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::process::cpu_seconds;
use common::*;

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
        let mut list = self.list.lock().unwrap();
        *list = (list.0 + 1, list_line(addresses));
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
