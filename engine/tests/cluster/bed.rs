//! A multi-host test bed on one machine: every "host" is a Linux network namespace with one
//! address in 10.77.0.0/24, joined to the others by a bridge that lives in a namespace of its
//! own. Those addresses exist only inside the bed's namespaces, so nothing a test sends can leave
//! them. Real `gatewire` processes run in the hosts through `ip netns exec`; the traffic checker's
//! threads enter a host with `setns`. Dropping the bed stops what it started (by pid) and deletes
//! its namespaces, also when the test failed.

use std::cell::{RefCell, RefMut};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::redis_server::{Listen, RedisServer};

/// The cluster tests run one at a time: each runs several processes per host and a few hundred
/// client threads on a two-core box.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Ports every host uses (each host has its own network stack).
pub const REGISTER_PORT: u16 = 1236;
pub const PUBLIC_PORT: u16 = 8282;
pub const INNER_PORT: u16 = 2900;
pub const SECRET: &str = "cluster-test-secret";
/// Where the bed's Redis listens, inside host A (with the store on).
pub const REDIS_PORT: u16 = 6379;

pub struct Bed {
    tag: String,
    hosts: Vec<(String, Ipv4Addr)>,
    pub dir: tempfile::TempDir,
    nodes: Mutex<Vec<(String, u32)>>,
    /// Added to every node's configuration (the `[store]` section, with the store on).
    extra: RefCell<String>,
    /// The Redis on host A, with the store on.
    redis: RefCell<Option<RedisServer>>,
    _turn: std::sync::MutexGuard<'static, ()>,
}

/// One `gatewire start` on one host.
pub struct Node {
    pub host: String,
    pub ns: String,
    pub dir: PathBuf,
    pub child: Child,
}

impl Bed {
    /// A bed with these hosts (single letters or short words), or `None` after printing why
    /// this machine cannot make one (no `ip`, no CAP_NET_ADMIN).
    pub fn new(test: &str, hosts: &[&str]) -> Option<Bed> {
        let turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        let tag = format!("gwc{}{}", std::process::id(), short(test));
        let probe = format!("{tag}-probe");
        match Command::new("ip").args(["netns", "add", &probe]).output() {
            Ok(o) if o.status.success() => {
                let _ = Command::new("ip").args(["netns", "del", &probe]).status();
            }
            Ok(o) => {
                say(format!(
                    "SKIPPED {test}: `ip netns add` failed ({}); the cluster tests need \
                     CAP_NET_ADMIN",
                    String::from_utf8_lossy(&o.stderr).trim()
                ));
                return None;
            }
            Err(e) => {
                say(format!(
                    "SKIPPED {test}: no `ip` command ({e}); install iproute2"
                ));
                return None;
            }
        }
        sweep_dead_runs();
        let mut bed = Bed {
            tag,
            hosts: Vec::new(),
            dir: tempfile::tempdir().unwrap(),
            nodes: Mutex::new(Vec::new()),
            extra: RefCell::new(String::new()),
            redis: RefCell::new(None),
            _turn: turn,
        };
        let switch = bed.switch();
        ip(&["netns", "add", &switch]);
        ip(&["-n", &switch, "link", "add", "br0", "type", "bridge"]);
        ip(&["-n", &switch, "link", "set", "br0", "up"]);
        for (i, name) in hosts.iter().enumerate() {
            let addr = Ipv4Addr::new(10, 77, 0, i as u8 + 1);
            bed.hosts.push((name.to_string(), addr));
            let ns = bed.ns(name);
            let port = format!("p{i}");
            ip(&["netns", "add", &ns]);
            ip(&[
                "link", "add", &port, "netns", &switch, "type", "veth", "peer", "name", "eth0",
                "netns", &ns,
            ]);
            ip(&["-n", &switch, "link", "set", &port, "master", "br0"]);
            ip(&["-n", &switch, "link", "set", &port, "up"]);
            ip(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{addr}/24"),
                "dev",
                "eth0",
            ]);
            ip(&["-n", &ns, "link", "set", "eth0", "up"]);
            ip(&["-n", &ns, "link", "set", "lo", "up"]);
        }
        // TEST_CLUSTER_STORE=1 runs every scenario with the store on.
        if std::env::var("TEST_CLUSTER_STORE").is_ok_and(|v| v == "1")
            && let Some(why) = bed.start_store()
        {
            say(format!("SKIPPED {test}: {why}"));
            return None;
        }
        Some(bed)
    }

    /// Starts Redis on host A and turns the store on for every node started from now on;
    /// `Some(why)` when this machine has no redis-server. Does nothing the second time.
    pub fn start_store(&self) -> Option<String> {
        if self.redis.borrow().is_some() {
            return None;
        }
        if let Some(why) = crate::redis_server::unavailable() {
            return Some(why);
        }
        let a = self.addr("a");
        let dir = self.dir.path().join("redis");
        std::fs::create_dir_all(&dir).unwrap();
        let listen = Listen::Tcp(std::net::SocketAddrV4::new(a, REDIS_PORT));
        let server = RedisServer::start_in(&dir, listen, Some(&self.ns("a")));
        // A short TTL, so the fault scenarios see refreshes.
        *self.extra.borrow_mut() = format!(
            "\n[store]\nbackend = \"redis\"\nredis_url = \"{}\"\nttl = 6.0\n",
            server.url()
        );
        *self.redis.borrow_mut() = Some(server);
        None
    }

    /// The bed's Redis (after `start_store`).
    pub fn redis(&self) -> RefMut<'_, RedisServer> {
        RefMut::map(self.redis.borrow_mut(), |r| {
            r.as_mut().expect("the store was started")
        })
    }

    fn switch(&self) -> String {
        format!("{}-sw", self.tag)
    }

    /// The namespace of `host`.
    pub fn ns(&self, host: &str) -> String {
        format!("{}-{host}", self.tag)
    }

    pub fn addr(&self, host: &str) -> Ipv4Addr {
        self.hosts
            .iter()
            .find(|(h, _)| h == host)
            .unwrap_or_else(|| panic!("no host {host} in the bed"))
            .1
    }

    pub fn public(&self, host: &str) -> SocketAddr {
        SocketAddr::from((self.addr(host), PUBLIC_PORT))
    }

    /// Starts `gatewire start` on `host` with this configuration (the `[run]` section is added)
    /// and waits until its control socket exists, i.e. every role it runs reported ready.
    pub fn start(&self, host: &str, roles: &[&str], config: &str) -> Node {
        let mut node = self.start_unready(host, roles, config);
        let socket = node.dir.join("run/gatewire.sock");
        let deadline = Instant::now() + Duration::from_secs(40);
        while !socket.exists() {
            if let Ok(Some(status)) = node.child.try_wait() {
                panic!("{host}: gatewire exited ({status}):\n{}", node.log());
            }
            assert!(
                Instant::now() < deadline,
                "{host}: not ready in 40 s:\n{}",
                node.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        node
    }

    /// Starts `gatewire start` on `host` without waiting for it.
    pub fn start_unready(&self, host: &str, roles: &[&str], config: &str) -> Node {
        let dir = self.dir.path().join(host);
        std::fs::create_dir_all(&dir).unwrap();
        let roles: Vec<String> = roles.iter().map(|r| format!("\"{r}\"")).collect();
        let text = format!(
            "[run]\ndir = \"run\"\nroles = [{}]\n\n{config}{}",
            roles.join(", "),
            self.extra.borrow()
        );
        let path = dir.join("gatewire.toml");
        std::fs::write(&path, text).unwrap();
        let _ = std::fs::remove_file(dir.join("run/gatewire.sock"));
        self.spawn(
            host,
            &dir,
            &[
                env!("CARGO_BIN_EXE_gatewire"),
                "start",
                "-c",
                path.to_str().unwrap(),
            ],
            &[("GATEWIRE_LOG", "warn")],
        )
    }

    /// Runs `command` inside `host` from `dir`, its output appended to `dir/gatewire.log`; the
    /// bed stops it when dropped.
    pub fn spawn(&self, host: &str, dir: &Path, command: &[&str], env: &[(&str, &str)]) -> Node {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("gatewire.log"))
            .unwrap();
        let ns = self.ns(host);
        let child = Command::new("ip")
            .args(["netns", "exec", &ns])
            .args(command)
            .current_dir(dir)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        // `ip netns exec` execs the command: the child's pid is the command's.
        self.nodes
            .lock()
            .unwrap()
            .push((host.to_owned(), child.id()));
        Node {
            host: host.to_owned(),
            ns,
            dir: dir.to_owned(),
            child,
        }
    }

    /// Every process in `host`'s namespace, killed with SIGKILL (a host losing power).
    pub fn kill_host(&self, host: &str) {
        for pid in self.pids(host) {
            // SAFETY: a process in this bed's own namespace, which the bed started.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while !self.pids(host).is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// CPU seconds (user + system) every process in `host` has used so far.
    pub fn cpu_seconds(&self, host: &str) -> f64 {
        self.pids(host)
            .into_iter()
            .map(crate::process_info::cpu_seconds)
            .sum()
    }

    fn pids(&self, host: &str) -> Vec<u32> {
        let out = Command::new("ip")
            .args(["netns", "pids", &self.ns(host)])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect()
    }

    /// Takes `host`'s only link down (a cable pulled) or up again.
    pub fn link(&self, host: &str, up: bool) {
        let i = self.hosts.iter().position(|(h, _)| h == host).unwrap();
        let state = if up { "up" } else { "down" };
        ip(&["-n", &self.switch(), "link", "set", &format!("p{i}"), state]);
    }
}

/// Moves the calling thread into the network namespace at `path`.
pub fn enter(path: &Path) {
    let ns = std::fs::File::open(path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    use std::os::fd::AsRawFd;
    // SAFETY: setns on a namespace file this thread just opened; affects only this thread.
    let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns {path:?}: {}", std::io::Error::last_os_error());
}

pub fn netns_path(ns: &str) -> PathBuf {
    PathBuf::from("/var/run/netns").join(ns)
}

impl Drop for Bed {
    fn drop(&mut self) {
        let nodes = std::mem::take(&mut *self.nodes.lock().unwrap_or_else(|e| e.into_inner()));
        for (_, pid) in &nodes {
            // SAFETY: a supervisor this bed started; SIGTERM stops it as an operator would.
            unsafe { libc::kill(*pid as i32, libc::SIGTERM) };
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        let hosts: Vec<String> = self.hosts.iter().map(|(h, _)| h.clone()).collect();
        while Instant::now() < deadline && hosts.iter().any(|h| !self.pids(h).is_empty()) {
            std::thread::sleep(Duration::from_millis(20));
        }
        for h in &hosts {
            self.kill_host(h);
        }
        // Reap the `ip netns exec` children (they are the supervisors).
        for (_, pid) in &nodes {
            // SAFETY: waiting for a child of this process, without blocking.
            unsafe { libc::waitpid(*pid as i32, std::ptr::null_mut(), libc::WNOHANG) };
        }
        for h in &hosts {
            let _ = Command::new("ip")
                .args(["netns", "del", &self.ns(h)])
                .status();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.switch()])
            .status();
    }
}

impl Node {
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("gatewire.log")).unwrap_or_default()
    }

    /// `gatewire ARGS -c this-node's-config`, run inside the node's host.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.ns, env!("CARGO_BIN_EXE_gatewire")])
            .args(args)
            .arg("-c")
            .arg(self.dir.join("gatewire.toml"))
            .current_dir(&self.dir)
            .output()
            .unwrap()
    }

    /// `gatewire status --json`, parsed.
    pub fn status(&self) -> serde_json::Value {
        let out = self.cli(&["status", "--json"]);
        let text = String::from_utf8_lossy(&out.stdout);
        let json = text.strip_prefix("ok\n").unwrap_or(&text);
        serde_json::from_str(json).unwrap_or(serde_json::Value::Null)
    }

    /// The rows of `status --json` for one role.
    pub fn rows(&self, role: &str) -> Vec<serde_json::Value> {
        match self.status() {
            serde_json::Value::Array(rows) => {
                rows.into_iter().filter(|r| r["role"] == role).collect()
            }
            _ => Vec::new(),
        }
    }

    /// Events handled by this node's worker processes.
    pub fn worker_events(&self) -> u64 {
        self.rows("worker")
            .iter()
            .map(|r| r["events"].as_u64().unwrap_or(0))
            .sum()
    }

    /// This node's worker links to gateway `addr` that are up.
    pub fn links_up_to(&self, gateway: Ipv4Addr) -> usize {
        let prefix = format!("{gateway}:");
        self.rows("worker")
            .iter()
            .flat_map(|r| r["link_states"].as_array().cloned().unwrap_or_default())
            .filter(|l| {
                l["state"] == "up"
                    && l["gateway"]
                        .as_str()
                        .is_some_and(|g| g.starts_with(&prefix))
            })
            .count()
    }

    /// Waits for the supervisor to exit (after `stop`), up to `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

/// Polls `check` until it holds or `limit` passes; the time it took.
pub fn within(limit: Duration, what: &str, mut check: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while start.elapsed() < limit {
        if check() {
            return start.elapsed();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("not within {limit:?}: {what}");
}

/// Deletes the namespaces (and kills the processes in them) of earlier test runs that were
/// killed before their beds could clean up: names `gwcPID...` whose test process is gone.
fn sweep_dead_runs() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        let Some(rest) = name.strip_prefix("gwc") else {
            continue;
        };
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let Ok(pid) = digits.parse::<u32>() else {
            continue;
        };
        let mine = pid == std::process::id();
        if mine || Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let pids = Command::new("ip").args(["netns", "pids", name]).output();
        for p in pids.iter().flat_map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .filter_map(|p| p.parse::<i32>().ok())
                .collect::<Vec<_>>()
        }) {
            // SAFETY: a process left in a namespace of a dead run of these tests.
            unsafe { libc::kill(p, libc::SIGKILL) };
        }
        let _ = Command::new("ip").args(["netns", "del", name]).status();
    }
}

/// A line for the log, straight to stderr past the test harness's capture: the scenarios'
/// figures and skips show in CI's log even when the test passes.
pub fn say(line: String) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A few characters of the test's name, to tell its namespaces apart in `ip netns list`.
fn short(test: &str) -> String {
    test.chars()
        .filter(char::is_ascii_alphanumeric)
        .take(6)
        .collect()
}
