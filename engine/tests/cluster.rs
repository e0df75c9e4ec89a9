//! The cluster across hosts, as GatewayWorker users deploy it: every scenario runs real
//! `gatewire` processes on "hosts" that are network namespaces joined by a bridge (see
//! `cluster/bed.rs`), with the traffic checker's clients on a host of their own, and prints the
//! checker's table (`cargo test --test cluster -- --nocapture --test-threads 1`). The numbers in
//! the test names are the scenarios' numbers in docs/deployment.md.

mod cluster {
    pub mod bed;
    pub mod traffic;
}

#[path = "common/next_message.rs"]
mod next_message;

#[path = "common/redis.rs"]
#[allow(dead_code)]
mod redis_server;

#[path = "common/process.rs"]
#[allow(dead_code)]
mod process_info;

use std::time::Duration;

use cluster::bed::{Bed, INNER_PORT, REGISTER_PORT, SECRET, within};
use cluster::traffic::{App, Report, Traffic};

/// A line past the test harness's capture (see `bed::say`).
macro_rules! say {
    ($($t:tt)*) => { cluster::bed::say(format!($($t)*)) };
}

/// Clients per gateway host in a scenario.
const CLIENTS: usize = 100;

/// `[register]` on `host`.
fn register(bed: &Bed, host: &str) -> String {
    format!(
        "[register]\nlisten = \"{}:{REGISTER_PORT}\"\nsecret_key = \"{SECRET}\"\n\n",
        bed.addr(host)
    )
}

/// The `register_address` list for these register hosts.
fn registers(bed: &Bed, hosts: &[&str]) -> String {
    let list: Vec<String> = hosts
        .iter()
        .map(|h| format!("\"{}:{REGISTER_PORT}\"", bed.addr(h)))
        .collect();
    format!("[{}]", list.join(", "))
}

/// `[gateway]` on `host`, announcing itself to the registers on `regs`.
fn gateway(bed: &Bed, host: &str, shards: u16, regs: &[&str]) -> String {
    format!(
        "[gateway]\nlisten = \"websocket://{addr}:8282\"\nlan_ip = \"{addr}\"\n\
         start_port = {INNER_PORT}\nshards = {shards}\nregister_address = {regs}\n\
         secret_key = \"{SECRET}\"\nworker_ping_interval = 1.0\n\n",
        addr = bed.addr(host),
        regs = registers(bed, regs),
    )
}

/// `[worker]` with `count` threads running `app`, following the registers on `regs`.
fn worker(bed: &Bed, regs: &[&str], app: App, count: u16) -> String {
    let app = match app {
        App::Echo => "echo",
        App::Chat => "chat",
    };
    format!(
        "[worker]\ncount = {count}\nregister_address = {regs}\nsecret_key = \"{SECRET}\"\n\
         app = \"{app}\"\n\n",
        regs = registers(bed, regs),
    )
}

/// Lets the traffic run for `d`.
fn run_for(d: Duration) {
    std::thread::sleep(d);
}

fn assert_clean(report: &Report, gateway: Option<&str>) {
    let t = report.totals(gateway);
    let which = gateway.unwrap_or("all gateways");
    assert_eq!(t.never_connected, 0, "{which}: clients never connected");
    assert_eq!(t.disconnected, 0, "{which}: clients disconnected");
    assert_eq!(t.lost, 0, "{which}: messages lost");
    assert_eq!(t.duplicated, 0, "{which}: messages duplicated");
    assert_eq!(t.foreign, 0, "{which}: answers to the wrong client");
    assert!(t.sent > 0, "{which}: nothing sent");
}

/// Scenario 1: The seeds' layout: Register + Gateway on A, BusinessWorkers on B and C. Clients on A are
/// served by both B and C.
#[test]
fn s01_register_and_gateway_on_one_host_workers_on_two() {
    let Some(bed) = Bed::new("s01", &["a", "b", "c", "x"]) else {
        return;
    };
    let nodes = seeds(&bed, App::Echo, &["b", "c"], "");
    let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);
    let a_ip = bed.addr("a");
    let mut traffic = Traffic::new(App::Echo);
    traffic.connect(&bed, "x", "a", CLIENTS);
    run_for(Duration::from_secs(4));
    let report = traffic.finish();
    report.print("1. register+gateway on A, workers on B and C");
    assert_clean(&report, None);
    let (on_b, on_c) = (b.worker_events(), c.worker_events());
    say!("  events handled: B {on_b}, C {on_c}");
    assert!(
        on_b > 0 && on_c > 0,
        "both worker hosts serve: B {on_b}, C {on_c}"
    );
    // What an operator sees on A: the gateway's worker links per host, the register's members
    // with their addresses.
    let status = String::from_utf8_lossy(&a.cli(&["status"]).stdout).into_owned();
    say!("  `gatewire status` on A:\n{status}");
    let gateway = &a.rows("gateway")[0];
    let hosts: Vec<(String, u64)> = gateway["worker_hosts"]
        .as_array()
        .expect("worker_hosts in A's gateway row")
        .iter()
        .map(|h| {
            (
                h["host"].as_str().unwrap().to_owned(),
                h["links"].as_u64().unwrap(),
            )
        })
        .collect();
    let (b_ip, c_ip) = (bed.addr("b").to_string(), bed.addr("c").to_string());
    assert_eq!(
        hosts,
        [(b_ip.clone(), 4), (c_ip.clone(), 4)],
        "2 threads × 2 shards each"
    );
    let members = a.rows("register")[0]["members"]
        .as_array()
        .cloned()
        .unwrap();
    let from = |kind: &str, ip: &str| {
        members
            .iter()
            .filter(|m| m["kind"] == kind && m["from"].as_str().unwrap().starts_with(ip))
            .count()
    };
    let a_ip = a_ip.to_string();
    assert_eq!(from("gateway", &a_ip), 2, "A's two shards: {members:?}");
    assert_eq!(from("worker", &b_ip), 2, "B's two threads: {members:?}");
    assert_eq!(from("worker", &c_ip), 2, "C's two threads: {members:?}");
}

/// The seeds' layout: A runs register + gateway (2 shards), each of `workers` a worker host
/// (2 threads of `app`); `extra` is appended to every host's configuration. Returns the nodes, A
/// first, once every worker links to both shards.
fn seeds(bed: &Bed, app: App, workers: &[&str], extra: &str) -> Vec<cluster::bed::Node> {
    let mut nodes = vec![bed.start(
        "a",
        &["register", "gateway"],
        &(register(bed, "a") + &gateway(bed, "a", 2, &["a"]) + extra),
    )];
    for w in workers {
        nodes.push(bed.start(w, &["worker"], &(worker(bed, &["a"], app, 2) + extra)));
    }
    let a_ip = bed.addr("a");
    within(
        Duration::from_secs(10),
        "every worker links to both shards",
        || nodes[1..].iter().all(|n| n.links_up_to(a_ip) == 4),
    );
    nodes
}

/// Scenario 2: Scale out workers: host D's workers start under load; D serves new clients' events within
/// seconds; no client disconnects, nothing is lost.
#[test]
fn s02_scale_out_workers() {
    let Some(bed) = Bed::new("s02", &["a", "b", "c", "d", "x"]) else {
        return;
    };
    let _nodes = seeds(&bed, App::Echo, &["b", "c"], "");
    let mut traffic = Traffic::new(App::Echo);
    traffic.connect(&bed, "x", "a", CLIENTS);
    run_for(Duration::from_secs(2));
    let d = bed.start("d", &["worker"], &worker(&bed, &["a"], App::Echo, 2));
    let a_ip = bed.addr("a");
    let linked = within(Duration::from_secs(10), "D links to both shards", || {
        d.links_up_to(a_ip) == 4
    });
    traffic.connect(&bed, "x", "a", CLIENTS / 2);
    run_for(Duration::from_secs(3));
    let report = traffic.finish();
    report.print("2. scale out workers: D started under load");
    say!(
        "  D linked {linked:?} after its start was ready; events handled by D: {}",
        d.worker_events()
    );
    assert_clean(&report, None);
    assert!(d.worker_events() > 0, "D serves new clients");
}

/// Scenario 3: Scale in workers: C stops gracefully (`stop -g`) under load; its clients move to B and D on
/// their next message with their sessions (the chat answer carries the nick and room kept in
/// the session); nothing is lost.
#[test]
fn s03_scale_in_workers_gracefully() {
    let Some(bed) = Bed::new("s03", &["a", "b", "c", "d", "x"]) else {
        return;
    };
    let mut nodes = seeds(&bed, App::Chat, &["b", "c", "d"], "");
    let mut traffic = Traffic::new(App::Chat);
    traffic.connect(&bed, "x", "a", CLIENTS);
    run_for(Duration::from_secs(2));
    let c_before = nodes[2].worker_events();
    let out = nodes[2].cli(&["stop", "-g"]);
    assert!(out.status.success(), "stop -g on C: {out:?}");
    assert!(
        nodes[2].wait_exit(Duration::from_secs(20)),
        "C stopped within 20 s"
    );
    run_for(Duration::from_secs(3));
    let report = traffic.finish();
    report.print("3. scale in workers: C stopped with stop -g under load");
    say!("  C had handled {c_before} events before its stop");
    assert!(c_before > 0, "C served before it stopped");
    assert_clean(&report, None);
}

/// Gateway host E (one shard) announcing itself to A's register.
fn gateway_host(bed: &Bed, host: &str, regs: &[&str]) -> cluster::bed::Node {
    bed.start(host, &["gateway"], &gateway(bed, host, 1, regs))
}

/// Scenario 4: Scale out gateways: E starts; the workers on B and D link to it through the register; E's
/// clients are served; `gatewire send` reaches clients on A and on E, to all, a uid and a group.
#[test]
fn s04_scale_out_gateways() {
    let Some(bed) = Bed::new("s04", &["a", "b", "d", "e", "x"]) else {
        return;
    };
    let nodes = seeds(&bed, App::Chat, &["b", "d"], "");
    let mut traffic = Traffic::new(App::Chat);
    traffic.connect(&bed, "x", "a", CLIENTS);
    run_for(Duration::from_secs(1));
    let _e = gateway_host(&bed, "e", &["a"]);
    let e_ip = bed.addr("e");
    let linked = within(Duration::from_secs(10), "B and D link to E", || {
        nodes[1].links_up_to(e_ip) == 2 && nodes[2].links_up_to(e_ip) == 2
    });
    traffic.connect(&bed, "x", "e", CLIENTS);
    run_for(Duration::from_secs(1));
    // Client k of the checker is c{k}: 0..100 on A, 100..200 on E.
    for args in [
        &["send", "push-all"][..],
        &["send", "--uid", "c5", "push-uid-5"],
        &["send", "--uid", "c150", "push-uid-150"],
        &["send", "--group", "r170", "push-group-170"],
    ] {
        let out = nodes[1].cli(args);
        assert!(out.status.success(), "gatewire {args:?} on B: {out:?}");
    }
    run_for(Duration::from_secs(2));
    let report = traffic.finish();
    report.print("4. scale out gateways: E started under load");
    say!("  B and D linked to E {linked:?} after E was ready");
    assert_clean(&report, None);
    let clients: Vec<_> = report.per_gateway.values().flatten().collect();
    assert_eq!(clients.len(), 2 * CLIENTS);
    for c in &clients {
        assert_eq!(
            c.pushes.iter().filter(|p| *p == "push-all").count(),
            1,
            "every client gets push-all once"
        );
    }
    let got = |gateway: &str, k: usize, what: &str| {
        let offset = if gateway == "a" { 0 } else { CLIENTS };
        report.per_gateway[gateway][k - offset]
            .pushes
            .iter()
            .any(|p| p == what)
    };
    assert!(got("a", 5, "push-uid-5"), "uid c5 on A");
    assert!(got("e", 150, "push-uid-150"), "uid c150 on E");
    assert!(got("e", 170, "push-group-170"), "group r170 on E");
    assert_eq!(report.totals(None).pushes, 2 * CLIENTS as u64 + 3);
}

/// Scenario 5: Scale in gateways: E stops; only E's clients are disconnected; the workers drop their
/// links to E; A's clients are unaffected.
#[test]
fn s05_scale_in_gateways() {
    let Some(bed) = Bed::new("s05", &["a", "b", "d", "e", "x"]) else {
        return;
    };
    let nodes = seeds(&bed, App::Chat, &["b", "d"], "");
    let mut e = gateway_host(&bed, "e", &["a"]);
    let e_ip = bed.addr("e");
    within(Duration::from_secs(10), "B and D link to E", || {
        nodes[1].links_up_to(e_ip) == 2 && nodes[2].links_up_to(e_ip) == 2
    });
    let mut traffic = Traffic::new(App::Chat);
    traffic.connect(&bed, "x", "a", CLIENTS);
    traffic.connect(&bed, "x", "e", CLIENTS);
    run_for(Duration::from_secs(2));
    let out = e.cli(&["stop"]);
    assert!(out.status.success(), "stop on E: {out:?}");
    assert!(e.wait_exit(Duration::from_secs(10)), "E stopped");
    let dropped = within(
        Duration::from_secs(10),
        "B and D drop their links to E",
        || nodes[1].links_up_to(e_ip) == 0 && nodes[2].links_up_to(e_ip) == 0,
    );
    run_for(Duration::from_secs(2));
    let report = traffic.finish();
    report.print("5. scale in gateways: E stopped under load");
    say!("  workers dropped their links to E {dropped:?} after E exited");
    assert_clean(&report, Some("a"));
    let on_e = report.totals(Some("e"));
    assert_eq!(
        on_e.disconnected, CLIENTS as u64,
        "every client of E is disconnected"
    );
}

/// The register's membership as its status row reports it: (gateways, workers).
fn membership(node: &cluster::bed::Node) -> Option<(u64, u64)> {
    let row = node.rows("register").into_iter().next()?;
    Some((row["gateways"].as_u64()?, row["workers"].as_u64()?))
}

/// Scenario 6: Register restart: the register is killed with SIGKILL under load; traffic keeps flowing;
/// the supervisor restarts it and its membership is complete again within 2 s of that; a worker
/// host started afterwards joins.
#[test]
fn s06_register_killed_and_restarted() {
    let Some(bed) = Bed::new("s06", &["a", "b", "c", "d", "x"]) else {
        return;
    };
    let nodes = seeds(&bed, App::Echo, &["b", "c"], "");
    let a = &nodes[0];
    let full = membership(a).expect("register row");
    let mut traffic = Traffic::new(App::Echo);
    traffic.connect(&bed, "x", "a", CLIENTS);
    run_for(Duration::from_secs(1));
    let old = a.rows("register")[0]["pid"].as_u64().unwrap();
    // SAFETY: the register child of the supervisor this bed started on A.
    unsafe { libc::kill(old as i32, libc::SIGKILL) };
    let restarted = within(Duration::from_secs(10), "the register runs again", || {
        a.rows("register")
            .first()
            .and_then(|r| r["pid"].as_u64())
            .is_some_and(|p| p != old)
    });
    let complete = within(
        Duration::from_secs(10),
        "the register knows every member again",
        || membership(a) == Some(full),
    );
    let d = bed.start("d", &["worker"], &worker(&bed, &["a"], App::Echo, 2));
    let a_ip = bed.addr("a");
    within(Duration::from_secs(10), "D links to both shards", || {
        d.links_up_to(a_ip) == 4
    });
    traffic.connect(&bed, "x", "a", CLIENTS / 2);
    run_for(Duration::from_secs(2));
    let report = traffic.finish();
    report.print("6. register killed (SIGKILL) and restarted under load");
    say!(
        "  register back {restarted:?} after the kill; membership {full:?} complete {complete:?} \
         after that; D events {}",
        d.worker_events()
    );
    assert_clean(&report, None);
    assert!(
        complete <= Duration::from_secs(2),
        "membership complete within 2 s of the restart, took {complete:?}"
    );
    assert!(d.worker_events() > 0, "D joined after the restart");
}

/// Scenario 7: Worker host failure: every process on B is killed with SIGKILL under load. Clients stay
/// connected and their events go to C; the events in flight to B are lost (GatewayWorker loses
/// those too), and the test states how many.
#[test]
fn s07_worker_host_killed() {
    let Some(bed) = Bed::new("s07", &["a", "b", "c", "x"]) else {
        return;
    };
    let nodes = seeds(&bed, App::Echo, &["b", "c"], "");
    let mut traffic = Traffic::new(App::Echo);
    traffic.connect(&bed, "x", "a", CLIENTS);
    run_for(Duration::from_secs(2));
    bed.kill_host("b");
    let c_before = nodes[2].worker_events();
    run_for(Duration::from_secs(3));
    let report = traffic.finish();
    report.print("7. worker host B killed (SIGKILL, every process) under load");
    let t = report.totals(None);
    say!(
        "  lost in flight: {} of {} ({:.3} %); C handled {} events after the kill",
        t.lost,
        t.sent,
        t.lost as f64 * 100.0 / t.sent as f64,
        nodes[2].worker_events() - c_before
    );
    assert_eq!(t.disconnected, 0, "clients stay connected");
    assert_eq!(t.duplicated + t.foreign + t.never_connected, 0);
    // In flight: what B had read and not answered, at 1,000 messages/s over 100 clients.
    assert!(
        t.lost <= 100,
        "only events in flight to B are lost: {}",
        t.lost
    );
    assert!(nodes[2].worker_events() > c_before, "C takes B's clients");
}

/// Seconds without an acknowledgement after which an inner link counts as dead in scenario 8.
const LINK_TIMEOUT: f64 = 2.0;

/// Scenario 8: Network cut: B's only link goes down for 10 s under load, then up. Clients stay connected;
/// the gateway stops routing to B's dead links within the link timeout; B's workers link again by
/// themselves when the network returns; only what was in flight on the cut link is lost.
#[test]
fn s08_network_cut_to_a_worker_host() {
    let Some(bed) = Bed::new("s08", &["a", "b", "c", "x"]) else {
        return;
    };
    let timeout = format!("link_timeout = {LINK_TIMEOUT}\n\n");
    let nodes = seeds(&bed, App::Echo, &["b", "c"], &timeout);
    let b = &nodes[1];
    let a_ip = bed.addr("a");
    let mut traffic = Traffic::new(App::Echo);
    traffic.connect(&bed, "x", "a", CLIENTS);
    run_for(Duration::from_secs(2));
    bed.link("b", false);
    run_for(Duration::from_secs(10));
    bed.link("b", true);
    let relinked = within(Duration::from_secs(15), "B links again", || {
        b.links_up_to(a_ip) == 4
    });
    run_for(Duration::from_secs(2));
    let report = traffic.finish();
    report.print("8. B's network cut for 10 s under load");
    let t = report.totals(None);
    say!(
        "  lost on the cut link: {} of {}; longest gap in a client's answers {:?} (link timeout \
         {LINK_TIMEOUT} s); B linked again {relinked:?} after the network returned",
        t.lost,
        t.sent,
        t.longest_gap
    );
    assert_eq!(t.disconnected, 0, "clients stay connected");
    assert_eq!(t.duplicated + t.foreign + t.never_connected, 0);
    assert!(
        t.longest_gap < Duration::from_secs_f64(LINK_TIMEOUT + 2.0),
        "B's clients are served by C within the link timeout"
    );
    // In flight: up to a link timeout of events to B's clients (about half of 1,000/s).
    assert!(t.lost as f64 <= LINK_TIMEOUT * 1000.0, "lost {}", t.lost);
}

/// Scenario 9: Two registers: A and F run one each, every gateway and worker lists both. F is killed;
/// everything keeps working and a new worker host still joins; when F returns it learns the
/// whole membership.
#[test]
fn s09_two_registers_one_killed() {
    let Some(bed) = Bed::new("s09", &["a", "b", "c", "d", "f", "x"]) else {
        return;
    };
    let regs = ["a", "f"];
    let f_config = register(&bed, "f");
    let f = bed.start("f", &["register"], &f_config);
    let a = bed.start(
        "a",
        &["register", "gateway"],
        &(register(&bed, "a") + &gateway(&bed, "a", 2, &regs)),
    );
    let b = bed.start("b", &["worker"], &worker(&bed, &regs, App::Chat, 2));
    let c = bed.start("c", &["worker"], &worker(&bed, &regs, App::Chat, 2));
    let a_ip = bed.addr("a");
    within(
        Duration::from_secs(10),
        "B and C link to both shards",
        || b.links_up_to(a_ip) == 4 && c.links_up_to(a_ip) == 4,
    );
    within(
        Duration::from_secs(5),
        "both registers know everyone",
        || membership(&a).is_some() && membership(&a) == membership(&f),
    );
    let full = membership(&a).unwrap();
    let mut traffic = Traffic::new(App::Chat);
    traffic.connect(&bed, "x", "a", CLIENTS);
    run_for(Duration::from_secs(1));
    bed.kill_host("f");
    drop(f);
    run_for(Duration::from_secs(1));
    let d = bed.start("d", &["worker"], &worker(&bed, &regs, App::Chat, 2));
    within(
        Duration::from_secs(10),
        "D joins through A's register",
        || d.links_up_to(a_ip) == 4,
    );
    traffic.connect(&bed, "x", "a", CLIENTS / 2);
    let f = bed.start("f", &["register"], &f_config);
    let with_d = (full.0, full.1 + (full.1 / 2));
    let learned = within(
        Duration::from_secs(10),
        "F learns the whole membership",
        || membership(&f) == membership(&a),
    );
    run_for(Duration::from_secs(1));
    let report = traffic.finish();
    report.print("9. two registers, F killed and back");
    say!(
        "  membership before {full:?}, after D joined {:?}; F learned it {learned:?} after its \
         start; D events {}",
        membership(&a),
        d.worker_events()
    );
    assert_eq!(membership(&a), Some(with_d), "A's register counts D too");
    assert_clean(&report, None);
    assert!(d.worker_events() > 0, "D serves");
}

/// Scenario 10: A worker host with the wrong secret: refused and logged on both sides, each naming the
/// other's address; the rest of the cluster works.
#[test]
fn s10_wrong_secret_on_one_worker_host() {
    let Some(bed) = Bed::new("s10", &["a", "b", "w", "x"]) else {
        return;
    };
    let nodes = seeds(&bed, App::Echo, &["b"], "");
    let wrong = worker(&bed, &["a"], App::Echo, 1).replace(SECRET, "not-the-secret");
    let w = bed.start_unready("w", &["worker"], &wrong);
    let mut traffic = Traffic::new(App::Echo);
    traffic.connect(&bed, "x", "a", CLIENTS);
    run_for(Duration::from_secs(2));
    let report = traffic.finish();
    report.print("10. a worker host with the wrong secret");
    let (a_ip, w_ip) = (bed.addr("a").to_string(), bed.addr("w").to_string());
    let a_log = nodes[0].log();
    let w_log = w.log();
    say!(
        "  A logged: {}\n  W logged: {}",
        a_log.lines().find(|l| l.contains(&w_ip)).unwrap_or("-"),
        w_log.lines().find(|l| l.contains(&a_ip)).unwrap_or("-")
    );
    assert!(
        a_log
            .lines()
            .any(|l| l.contains(&w_ip) && l.contains("secret")),
        "A names W and the secret:\n{a_log}"
    );
    assert!(
        w_log
            .lines()
            .any(|l| l.contains(&a_ip) && l.contains("secret")),
        "W names A and the secret:\n{w_log}"
    );
    assert_eq!(w.links_up_to(bed.addr("a")), 0, "W never links");
    assert_clean(&report, None);
}

/// Scenario 11: A PHP BusinessWorker host in the gatewire cluster. Needs `php` (with pcntl and
/// posix) and GatewayWorker's sources: GATEWAYWORKER_DIR is a directory whose
/// `vendor/autoload.php` loads the `GatewayWorker\` and `Workerman\` classes (what `composer
/// require workerman/gateway-worker` makes; workerman 4.x, or 5.x with its coroutine package).
/// Neither is committed here.
#[test]
fn s11_php_business_worker_host() {
    let php = std::process::Command::new("php").arg("-v").output();
    let dir = std::env::var_os("GATEWAYWORKER_DIR");
    match (php, dir) {
        (Ok(o), Some(dir)) if o.status.success() => {
            php_worker_host(std::path::Path::new(&dir));
        }
        (Ok(o), _) if o.status.success() => {
            say!("SKIPPED s11: GATEWAYWORKER_DIR is not set (GatewayWorker's sources)")
        }
        _ => say!("SKIPPED s11: no `php` on PATH"),
    }
}

/// Scenario 12: Rolling reload across worker hosts under load: `gatewire reload` on B, then on D. No
/// client dropped, no event lost, sessions kept.
#[test]
fn s12_rolling_reload_across_worker_hosts() {
    let Some(bed) = Bed::new("s12", &["a", "b", "d", "x"]) else {
        return;
    };
    let nodes = seeds(&bed, App::Chat, &["b", "d"], "");
    let mut traffic = Traffic::new(App::Chat);
    traffic.connect(&bed, "x", "a", CLIENTS);
    run_for(Duration::from_secs(1));
    for node in &nodes[1..] {
        let out = node.cli(&["reload"]);
        assert!(
            out.status.success(),
            "reload on {}: {}",
            node.host,
            String::from_utf8_lossy(&out.stdout)
        );
        run_for(Duration::from_secs(1));
    }
    run_for(Duration::from_secs(1));
    let report = traffic.finish();
    report.print("12. rolling reload: B, then D, under load");
    assert_clean(&report, None);
}

/// Scenario 11's body: A runs register + gateway, host P a PHP BusinessWorker (echo) and no
/// gatewire worker; the checker's clients on A must be served by P alone.
fn php_worker_host(gatewayworker: &std::path::Path) {
    let Some(bed) = Bed::new("s11", &["a", "p", "x"]) else {
        return;
    };
    let _a = bed.start(
        "a",
        &["register", "gateway"],
        &(register(&bed, "a") + &gateway(&bed, "a", 2, &["a"])),
    );
    let php = php_worker(&bed, "p", "PhpWorker", 2, gatewayworker);
    let mut traffic = Traffic::new(App::Echo);
    traffic.connect(&bed, "x", "a", CLIENTS);
    run_for(Duration::from_secs(3));
    let report = traffic.finish();
    report.print("11. a PHP BusinessWorker host serves the gatewire gateway's clients");
    if report.totals(None).answered == 0 {
        say!("{}", php.log());
    }
    assert_clean(&report, None);
}

/// A PHP BusinessWorker (echo) named `name` with `count` processes on `host`, following A's
/// register.
fn php_worker(
    bed: &Bed,
    host: &str,
    name: &str,
    count: u16,
    gatewayworker: &std::path::Path,
) -> cluster::bed::Node {
    let dir = bed.dir.path().join(format!("{host}-php"));
    std::fs::create_dir_all(&dir).unwrap();
    let script = format!(
        r#"<?php
require getenv('GATEWAYWORKER_DIR') . '/vendor/autoload.php';
use GatewayWorker\BusinessWorker;
use GatewayWorker\Lib\Gateway;
use Workerman\Worker;
class Events {{
    public static function onMessage($client_id, $message) {{
        Gateway::sendToCurrentClient($message);
    }}
}}
$worker = new BusinessWorker();
$worker->name = '{name}';
$worker->count = {count};
$worker->registerAddress = '{register}:{REGISTER_PORT}';
$worker->secretKey = '{SECRET}';
$worker->eventHandler = 'Events';
Worker::$pidFile = __DIR__ . '/php.pid';
Worker::$logFile = __DIR__ . '/php.log';
Worker::runAll();
"#,
        register = bed.addr("a"),
    );
    std::fs::write(dir.join("start.php"), script).unwrap();
    bed.spawn(
        host,
        &dir,
        &["php", "start.php", "start"],
        &[("GATEWAYWORKER_DIR", gatewayworker.to_str().unwrap())],
    )
}

/// Scenario 15: a PHP BusinessWorker and a gatewire worker of one name on one host claim the
/// same worker keys: the gatewire gateway lets the newcomer take a key over, as GatewayWorker 4.0
/// does (the holder's link closed, logged and counted), and clients are still served.
#[test]
fn s15_php_and_gatewire_workers_of_one_name_take_the_key_from_each_other() {
    let php = std::process::Command::new("php").arg("-v").output();
    let dir = std::env::var_os("GATEWAYWORKER_DIR");
    let dir = match (php, dir) {
        (Ok(o), Some(dir)) if o.status.success() => dir,
        (Ok(o), _) if o.status.success() => {
            return say!("SKIPPED s15: GATEWAYWORKER_DIR is not set (GatewayWorker's sources)");
        }
        _ => return say!("SKIPPED s15: no `php` on PATH"),
    };
    let Some(bed) = Bed::new("s15", &["a", "p", "x"]) else {
        return;
    };
    let a = bed.start(
        "a",
        &["register", "gateway"],
        &(metrics(&bed, "a") + &register(&bed, "a") + &gateway(&bed, "a", 1, &["a"])),
    );
    let _php = php_worker(&bed, "p", "Shared", 1, std::path::Path::new(&dir));
    let _p = bed.start(
        "p",
        &["worker"],
        &worker(&bed, &["a"], App::Echo, 1).replace("[worker]\n", "[worker]\nname = \"Shared\"\n"),
    );
    let mut traffic = Traffic::new(App::Echo);
    traffic.connect(&bed, "x", "a", CLIENTS);
    run_for(Duration::from_secs(4));
    let report = traffic.finish();
    report.print("15. a PHP and a gatewire worker named Shared on host P");
    let takeovers = sum_of(
        &metrics_text(&bed, "a"),
        "gatewire_worker_key_takeovers_total",
    );
    say!("  worker key takeovers on A: {takeovers}");
    assert!(takeovers >= 1, "the second to link took the key over");
    let log = a.log();
    assert!(
        log.contains("worker key") && log.contains("takes the key over"),
        "{log}"
    );
    let t = report.totals(None);
    assert_eq!(
        t.never_connected + t.disconnected,
        0,
        "clients stay connected"
    );
    assert!(t.answered > 0, "clients are served");
}

// ---- the store on (issue: routing to holders through Redis) -----------------------------------

/// `[metrics]` on `host`'s address.
fn metrics(bed: &Bed, host: &str) -> String {
    format!("[metrics]\nlisten = \"{}:9100\"\n\n", bed.addr(host))
}

/// `host`'s `/metrics` text, read from inside host X.
fn metrics_text(bed: &Bed, host: &str) -> String {
    use std::io::{Read, Write};
    let ns = cluster::bed::netns_path(&bed.ns("x"));
    let addr = std::net::SocketAddr::from((bed.addr(host), 9100));
    std::thread::spawn(move || {
        cluster::bed::enter(&ns);
        let mut s = std::net::TcpStream::connect(addr).expect("metrics endpoint");
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut text = String::new();
        let _ = s.read_to_string(&mut text);
        text
    })
    .join()
    .unwrap()
}

/// The sum of metric `name`'s samples in an exposition.
fn sum_of(text: &str, name: &str) -> u64 {
    text.lines()
        .filter(|l| l.split(['{', ' ']).next() == Some(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// Commands a reading of `routing` may catch between their two counter increments (sends, then
/// packets, one after the other on the sending thread, while /metrics is read on another): one
/// per worker thread on B and C, of up to 4 packets each. Under load a reading did catch one.
const IN_FLIGHT_PACKETS: u64 = 2 * 2 * 4;

/// Asserts `packets` is `expected` up to the commands a reading can catch in flight.
fn assert_packets(packets: u64, expected: u64, what: &str) {
    assert!(
        packets.abs_diff(expected) <= IN_FLIGHT_PACKETS,
        "{what}: {packets} packets, {expected} expected"
    );
}

/// Routed commands, the packets they took, and fallbacks, summed over the worker hosts (each
/// host's three figures from one reading).
fn routing(bed: &Bed, hosts: &[&str]) -> (u64, u64, u64) {
    let mut total = (0, 0, 0);
    for host in hosts {
        let text = metrics_text(bed, host);
        total.0 += sum_of(&text, "gatewire_routed_commands_total");
        total.1 += sum_of(&text, "gatewire_routed_packets_total");
        total.2 += sum_of(&text, "gatewire_store_fallbacks_total");
    }
    total
}

/// The store's layout: Redis, the register and a 2-shard gateway on A; a 2-shard gateway on E;
/// chat workers on B and C (metrics on); the store on everywhere. `None` (with a line saying
/// why) where this machine has no redis-server or cannot make a bed.
fn store_cluster(test: &str) -> Option<(Bed, Vec<cluster::bed::Node>)> {
    if let Some(why) = redis_server::unavailable() {
        say!("SKIPPED {test}: {why}");
        return None;
    }
    let owned = Bed::new(test, &["a", "b", "c", "e", "x"])?;
    let bed = &owned;
    if let Some(why) = bed.start_store() {
        panic!("checked before: {why}");
    }
    let mut nodes = vec![bed.start(
        "a",
        &["register", "gateway"],
        &(register(bed, "a") + &gateway(bed, "a", 2, &["a"])),
    )];
    nodes.push(bed.start("e", &["gateway"], &gateway(bed, "e", 2, &["a"])));
    for w in ["b", "c"] {
        let config = worker(bed, &["a"], App::Chat, 2) + &metrics(bed, w);
        nodes.push(bed.start(w, &["worker"], &config));
    }
    let (a_ip, e_ip) = (bed.addr("a"), bed.addr("e"));
    within(
        Duration::from_secs(10),
        "B and C link to both shards of A and E",
        || {
            nodes[2..]
                .iter()
                .all(|n| n.links_up_to(a_ip) == 4 && n.links_up_to(e_ip) == 4)
        },
    );
    Some((owned, nodes))
}

/// Scenario 13: The store on: every chat client's room (a group of its own) and nick (a uid) is
/// recorded with the one shard holding it, and each room message goes to that shard only — one
/// packet per send instead of one per shard (4) — with nothing lost.
#[test]
fn s13_store_routes_each_send_to_its_holder_only() {
    let Some((bed, nodes)) = store_cluster("s13") else {
        return;
    };
    let redis = bed.redis();
    let mut traffic = Traffic::new(App::Chat);
    traffic.connect(&bed, "x", "a", CLIENTS);
    traffic.connect(&bed, "x", "e", CLIENTS);
    // The chat's presence after each client's setup (the lobby told of its leaving, the room of
    // its joining, the user list asked: the lobby is held by every shard) settles first: the
    // measurement counts room messages.
    run_for(Duration::from_secs(1));
    let before = routing(&bed, &["b", "c"]);
    run_for(Duration::from_secs(4));
    let after = routing(&bed, &["b", "c"]);
    let uids = redis.keys("gatewire:uid:*").len();
    let groups = redis.keys("gatewire:group:*").len();
    let report = traffic.finish();
    report.print("13. the store on: room messages routed to their holder only");
    assert_clean(&report, None);
    let (commands, packets, fallbacks) =
        (after.0 - before.0, after.1 - before.1, after.2 - before.2);
    say!(
        "  room sends: {commands}, gateway packets: {packets} ({:.2} per send; 4 with the store \
         off), fallbacks: {fallbacks}",
        packets as f64 / commands.max(1) as f64
    );
    assert!(commands > 1000, "room sends were routed: {commands}");
    assert_eq!(fallbacks, 0, "B's log:\n{}", nodes[2].log());
    assert_packets(packets, commands, "one packet per send: the holder's");
    say!("  store: {uids} uid keys, {groups} group keys");
    assert_eq!((uids, groups), (2 * CLIENTS, 2 * CLIENTS));
    // The clients gone, their entries are removed.
    within(
        Duration::from_secs(5),
        "the closed clients' entries removed",
        || redis.keys("gatewire:uid:*").is_empty() && redis.keys("gatewire:group:*").is_empty(),
    );
}

/// Scenario 14: Redis killed under load: the workers send to every gateway meanwhile (counted as
/// fallbacks), nothing is lost; Redis restarted empty is filled again by the gateways within one
/// TTL, and routing to holders resumes.
#[test]
fn s14_store_redis_killed_and_restarted_under_load() {
    let Some((bed, _nodes)) = store_cluster("s14") else {
        return;
    };
    let mut redis = bed.redis();
    let mut traffic = Traffic::new(App::Chat);
    traffic.connect(&bed, "x", "a", CLIENTS);
    traffic.connect(&bed, "x", "e", CLIENTS);
    run_for(Duration::from_secs(2));
    redis.kill();
    // Counted from a second after the kill: a lookup answered just before it may be counted
    // just after.
    run_for(Duration::from_secs(1));
    let down = routing(&bed, &["b", "c"]);
    run_for(Duration::from_secs(3));
    let still_down = routing(&bed, &["b", "c"]);
    redis.restart();
    // Refilled: every entry back, and every shard listed as a writer again (it is listed only
    // after its entries went through; until then it still gets every command, which the count
    // of packets per send below would take for a routing fault).
    let refilled = within(
        Duration::from_secs(6),
        "the gateways fill the restarted Redis",
        || {
            redis.keys("gatewire:group:*").len() == 2 * CLIENTS
                && redis.keys("gatewire:uid:*").len() == 2 * CLIENTS
                && redis.members("gatewire:gateways").len() == 4
        },
    );
    // Workers try Redis again a second after their last failure.
    run_for(Duration::from_secs(2));
    let back = routing(&bed, &["b", "c"]);
    run_for(Duration::from_secs(2));
    let end = routing(&bed, &["b", "c"]);
    let report = traffic.finish();
    report.print("14. the store on: Redis killed for 4 s, then restarted empty");
    let fallbacks = still_down.2 - down.2;
    say!(
        "  while Redis was down: {} sends, {} packets, {fallbacks} fallbacks; refilled {refilled:?} \
         after the restart; after: {} sends, {} packets",
        still_down.0 - down.0,
        still_down.1 - down.1,
        end.0 - back.0,
        end.1 - back.1
    );
    assert_clean(&report, None);
    assert!(fallbacks > 0, "sends fell back while Redis was down");
    assert_packets(
        still_down.1 - down.1,
        4 * (still_down.0 - down.0),
        "a fallback goes to every shard",
    );
    assert_eq!(end.2 - back.2, 0, "no fallback once Redis is back");
    assert_packets(end.1 - back.1, end.0 - back.0, "routed to holders again");
}

/// The cost across hosts (a benchmark, not run by default: `benches/uid_routing_cluster.sh`):
/// four gateway hosts of 8 shards (32 shards), one worker host (chat), 50 clients per gateway
/// host each in a room of its own sending 10 messages/s; the same layout with the store off, then
/// on. Reports packets per room send and the gateway hosts' CPU per 1,000 sends.
#[test]
#[ignore = "a benchmark: benches/uid_routing_cluster.sh"]
fn store_cost_across_gateway_hosts() {
    if let Some(why) = redis_server::unavailable() {
        say!("SKIPPED store_cost_across_gateway_hosts: {why}");
        return;
    }
    let gateways = ["a", "e", "f", "g"];
    let measure = Duration::from_secs(10);
    let mut rows = Vec::new();
    for store_on in [false, true] {
        let Some(bed) = Bed::new("cost", &["a", "b", "e", "f", "g", "x"]) else {
            return;
        };
        if store_on {
            assert!(bed.start_store().is_none());
        }
        let _a = bed.start(
            "a",
            &["register", "gateway"],
            &(register(&bed, "a") + &gateway(&bed, "a", 8, &["a"])),
        );
        let _others: Vec<_> = gateways[1..]
            .iter()
            .map(|g| bed.start(g, &["gateway"], &gateway(&bed, g, 8, &["a"])))
            .collect();
        let b = bed.start(
            "b",
            &["worker"],
            &(worker(&bed, &["a"], App::Chat, 2) + &metrics(&bed, "b")),
        );
        within(Duration::from_secs(20), "B links to all 32 shards", || {
            gateways.iter().all(|g| b.links_up_to(bed.addr(g)) == 2 * 8)
        });
        let mut traffic = Traffic::new(App::Chat);
        for g in gateways {
            traffic.connect(&bed, "x", g, CLIENTS / 2);
        }
        run_for(Duration::from_secs(1));
        let cpu = |bed: &Bed| gateways.iter().map(|g| bed.cpu_seconds(g)).sum::<f64>();
        let (before, cpu_before) = (routing(&bed, &["b"]), cpu(&bed));
        run_for(measure);
        let (after, cpu_after) = (routing(&bed, &["b"]), cpu(&bed));
        let report = traffic.finish();
        report.print(&format!("store {}", if store_on { "on" } else { "off" }));
        assert_clean(&report, None);
        let sends = (after.0 - before.0).max(1) as f64;
        let packets = (after.1 - before.1) as f64;
        let cpu = cpu_after - cpu_before;
        rows.push((
            store_on,
            sends,
            packets / sends,
            1e6 * cpu / sends,
            after.2 - before.2,
        ));
    }
    say!("\nstore cost across 4 gateway hosts × 8 shards, 200 clients, 1 worker host (chat)");
    say!("  store  room sends  packets/send  gateway CPU per 1000 sends  fallbacks");
    for (on, sends, per, cpu, fallbacks) in &rows {
        let on = if *on { "on" } else { "off" };
        say!("  {on:<6} {sends:>10.0} {per:>13.2} {cpu:>24.1} ms {fallbacks:>10}");
    }
    say!(
        "  gateway CPU per send, off/on: {:.1}x",
        rows[0].3 / rows[1].3.max(1e-9)
    );
    assert_eq!(rows[0].2, 32.0, "store off: every shard gets every send");
    assert_eq!(rows[1].2, 1.0, "store on: the holder only");
}
