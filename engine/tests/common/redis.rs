//! A real `redis-server` for the store's tests: started by the test (on a unix socket in a temp
//! dir, or on an address inside a cluster bed's namespace), killed by pid when dropped. Tests
//! skip with a line when the machine has no `redis-server` (CI installs it).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where the server listens.
#[derive(Debug, Clone)]
pub enum Listen {
    /// A unix socket at this path (no TCP port at all: nothing to collide with).
    Unix(PathBuf),
    /// A TCP address (inside a namespace of the cluster bed).
    Tcp(std::net::SocketAddrV4),
}

/// A running redis-server.
pub struct RedisServer {
    child: Option<Child>,
    listen: Listen,
    dir: PathBuf,
    /// Prefix of the command line, e.g. `ip netns exec HOST` (empty: run here).
    wrapper: Vec<String>,
    /// The network namespace (file) the server lives in, if not this process's.
    netns: Option<PathBuf>,
    /// `requirepass`, if any.
    password: Option<String>,
}

/// Why the store tests cannot run here, if they cannot.
pub fn unavailable() -> Option<String> {
    match Command::new("redis-server").arg("--version").output() {
        Ok(o) if o.status.success() => None,
        _ => Some("no redis-server on PATH (Debian: apt-get install redis-server)".into()),
    }
}

impl RedisServer {
    /// Starts a server keeping nothing on disk, listening on `listen`, run through `wrapper`.
    pub fn start(dir: &Path, listen: Listen) -> RedisServer {
        Self::start_in(dir, listen, None)
    }

    /// Starts a server that requires `password` (AUTH).
    pub fn start_with_password(dir: &Path, listen: Listen, password: &str) -> RedisServer {
        let mut server = RedisServer {
            child: None,
            listen,
            dir: dir.to_owned(),
            wrapper: Vec::new(),
            netns: None,
            password: Some(password.to_owned()),
        };
        server.restart();
        server
    }

    /// Starts a server inside the network namespace `netns` (its name under /var/run/netns).
    pub fn start_in(dir: &Path, listen: Listen, netns: Option<&str>) -> RedisServer {
        let wrapper = match netns {
            Some(ns) => vec!["ip".into(), "netns".into(), "exec".into(), ns.to_owned()],
            None => Vec::new(),
        };
        let mut server = RedisServer {
            child: None,
            listen,
            dir: dir.to_owned(),
            wrapper,
            netns: netns.map(|ns| PathBuf::from("/var/run/netns").join(ns)),
            password: None,
        };
        server.restart();
        server
    }

    /// The URL gatewire's `store.redis_url` takes.
    pub fn url(&self) -> String {
        match &self.listen {
            Listen::Unix(path) => format!("redis+unix://{}", path.display()),
            Listen::Tcp(addr) => format!("redis://{addr}/0"),
        }
    }

    /// (Re)starts the server (empty: it keeps nothing), and waits until it answers PING.
    pub fn restart(&mut self) {
        self.kill();
        let mut args: Vec<String> = vec![
            "--save".into(),
            String::new(),
            "--appendonly".into(),
            "no".into(),
            "--dir".into(),
            self.dir.display().to_string(),
        ];
        if let Some(password) = &self.password {
            args.extend(["--requirepass".into(), password.clone()]);
        }
        match &self.listen {
            Listen::Unix(path) => {
                let _ = std::fs::remove_file(path);
                args.extend(["--port".into(), "0".into()]);
                args.extend(["--unixsocket".into(), path.display().to_string()]);
            }
            Listen::Tcp(addr) => {
                args.extend(["--bind".into(), addr.ip().to_string()]);
                args.extend(["--port".into(), addr.port().to_string()]);
                args.extend(["--protected-mode".into(), "no".into()]);
            }
        }
        let (program, prefix) = match self.wrapper.split_first() {
            Some((first, rest)) => (first.clone(), rest.to_vec()),
            None => ("redis-server".to_owned(), Vec::new()),
        };
        let mut command = Command::new(program);
        command.args(prefix);
        if !self.wrapper.is_empty() {
            command.arg("redis-server");
        }
        let child = command
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if self.connection().is_some() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "redis-server never answered PING"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A connection, if the server answers PING (made from inside the server's namespace; a
    /// socket keeps its namespace whichever thread uses it).
    pub fn connection(&self) -> Option<redis::Connection> {
        let url = match (&self.password, &self.listen) {
            (Some(p), Listen::Unix(path)) => format!("redis+unix://{}?pass={p}", path.display()),
            _ => self.url(),
        };
        let Some(netns) = self.netns.clone() else {
            return Self::connect(&url);
        };
        std::thread::spawn(move || {
            let ns = std::fs::File::open(&netns).ok()?;
            use std::os::fd::AsRawFd;
            // SAFETY: setns on a namespace file just opened; it moves only this short thread.
            if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return None;
            }
            Self::connect(&url)
        })
        .join()
        .ok()
        .flatten()
    }

    /// The keys matching `pattern` (a test's small store: KEYS is fine).
    pub fn keys(&self, pattern: &str) -> Vec<String> {
        let Some(mut conn) = self.connection() else {
            return Vec::new();
        };
        redis::cmd("KEYS")
            .arg(pattern)
            .query(&mut conn)
            .unwrap_or_default()
    }

    fn connect(url: &str) -> Option<redis::Connection> {
        let client = redis::Client::open(url).ok()?;
        let mut conn = client
            .get_connection_with_timeout(Duration::from_millis(500))
            .ok()?;
        redis::cmd("PING").query::<String>(&mut conn).ok()?;
        Some(conn)
    }

    /// The live members of a sorted set the store wrote (`uid:NAME`, `group:NAME`, `gateways`).
    pub fn members(&self, key: &str) -> Vec<String> {
        let Some(mut conn) = self.connection() else {
            return Vec::new();
        };
        let now: (u64, u64) = redis::cmd("TIME").query(&mut conn).unwrap_or_default();
        let now_ms = now.0 * 1000 + now.1 / 1000;
        let mut members: Vec<String> = redis::cmd("ZRANGEBYSCORE")
            .arg(key)
            .arg(format!("({now_ms}"))
            .arg("+inf")
            .query(&mut conn)
            .unwrap_or_default();
        members.sort();
        members
    }

    /// Kills the server (SIGKILL, by pid).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}
