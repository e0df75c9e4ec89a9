//! Test harness: starts real `gatewire` processes on free ports and talks to them through real
//! sockets — a test worker built on gatewire-proto, query connections, WebSocket clients.

#![allow(dead_code)]

pub mod next_message;
pub mod process;
pub mod redis;
pub mod seccomp;

pub use next_message::NextMessage;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use gatewire_proto::auth::{gateway_client_connect_body, worker_connect_body};
use gatewire_proto::query_reply::QueryReplyDecoder;
use gatewire_proto::{Cmd, Flags, Header, Packet, PacketDecoder};
use tungstenite::stream::MaybeTlsStream;

pub const TIMEOUT: Duration = Duration::from_secs(5);

/// A port nobody listens on right now, below the ephemeral range: no outgoing connection of
/// any process here can take it between this call and the bind of the process under test.
pub fn free_port() -> u16 {
    free_port_range(1)
}

/// `n` consecutive free ports below the ephemeral range (for a gateway's inner ports). Each
/// test binary walks its own sequence, so parallel tests do not pick the same ports.
pub fn free_port_range(n: u16) -> u16 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let seed = u64::from(std::process::id()).wrapping_mul(2654435761);
    'search: for _ in 0..5000 {
        let step = NEXT.fetch_add(1, Ordering::Relaxed);
        let start = 20000 + ((seed.wrapping_add(step.wrapping_mul(7919))) % 12000) as u16;
        let mut held = Vec::new();
        for p in start..start + n {
            match TcpListener::bind(("127.0.0.1", p)) {
                Ok(l) => held.push(l),
                Err(_) => continue 'search,
            }
        }
        return start;
    }
    panic!("no free port range of {n} below 32000");
}

/// A running `gatewire` process, killed when dropped.
pub struct Gatewire {
    pub child: Child,
    pub dir: tempfile::TempDir,
    pub register: SocketAddr,
    pub public: SocketAddr,
    pub start_port: u16,
    pub shards: u16,
    pub metrics: Option<SocketAddr>,
    pub lan_ip: Ipv4Addr,
}

/// Options for a test deployment.
pub struct Setup {
    pub shards: u16,
    pub secret: &'static str,
    pub extra: String,
    /// Lines added to `[run]`.
    pub run_extra: String,
    /// Appended to `[worker]`.
    pub worker_extra: String,
    /// Appended to `[register]`.
    pub register_extra: String,
    pub roles: &'static str,
    pub register_port: Option<u16>,
    /// The public listener's scheme: websocket, text, frame, tcp.
    pub scheme: &'static str,
    /// The built-in app when the worker role runs.
    pub app: &'static str,
    /// Serve `/metrics` on a free port.
    pub metrics: bool,
    /// `gateway.lan_ip`: where the inner ports listen.
    pub lan_ip: Ipv4Addr,
    /// Send the processes' log lines to `gatewire.log` in the temp dir (see [`Gatewire::log`]).
    pub capture_log: bool,
    /// `GATEWIRE_LOG` for the processes.
    pub log: &'static str,
    /// Run under a seccomp filter that refuses io_uring (as a default container does).
    pub block_io_uring: bool,
    /// `run.backend` (through `GATEWIRE_RUN_BACKEND`); `None` leaves the environment's (CI
    /// runs the suites once per reactor that way).
    pub backend: Option<&'static str>,
    /// A locked-memory limit (bytes) for the processes.
    pub memlock: Option<u64>,
    /// RLIMIT_NOFILE of the process (and so of each shard's fd table).
    pub nofile: Option<u64>,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            shards: 1,
            secret: "",
            extra: String::new(),
            run_extra: String::new(),
            worker_extra: String::new(),
            register_extra: String::new(),
            roles: "register,gateway",
            register_port: None,
            scheme: "websocket",
            app: "chat",
            metrics: false,
            lan_ip: Ipv4Addr::LOCALHOST,
            capture_log: false,
            log: "warn",
            block_io_uring: false,
            backend: None,
            memlock: None,
            nofile: None,
        }
    }
}

impl Gatewire {
    pub fn start(setup: Setup) -> Gatewire {
        let dir = tempfile::tempdir().unwrap();
        let register_port = setup.register_port.unwrap_or_else(free_port);
        let public_port = free_port();
        let start_port = free_port_range(setup.shards);
        let config = format!(
            "[run]\ndir = \"run\"\n{run_extra}\n\n[register]\nlisten = \"127.0.0.1:{register_port}\"\nsecret_key = \"{secret}\"\n{register_extra}\n\n\
             [gateway]\nlisten = \"{scheme}://127.0.0.1:{public_port}\"\nstart_port = {start_port}\nlan_ip = \"{lan_ip}\"\n\
             shards = {shards}\nregister_address = \"127.0.0.1:{register_port}\"\n\
             secret_key = \"{secret}\"\n{extra}\n\n\
             [worker]\ncount = 1\nregister_address = \"127.0.0.1:{register_port}\"\n\
             secret_key = \"{secret}\"\napp = \"{app}\"\n{worker_extra}\n",
            secret = setup.secret,
            scheme = setup.scheme,
            lan_ip = setup.lan_ip,
            app = setup.app,
            shards = setup.shards,
            extra = setup.extra,
            run_extra = setup.run_extra,
            worker_extra = setup.worker_extra,
            register_extra = setup.register_extra,
        );
        let metrics = setup.metrics.then(free_port);
        let config = match metrics {
            Some(port) => format!("{config}\n[metrics]\nlisten = \"127.0.0.1:{port}\"\n"),
            None => config,
        };
        let path = dir.path().join("gatewire.toml");
        std::fs::write(&path, config).unwrap();
        let stderr = match setup.capture_log {
            true => Stdio::from(std::fs::File::create(dir.path().join("gatewire.log")).unwrap()),
            false => Stdio::inherit(),
        };
        let mut command = Command::new(env!("CARGO_BIN_EXE_gatewire"));
        command
            .args(["start", "-c"])
            .arg(&path)
            .args(["--role", setup.roles])
            .current_dir(dir.path())
            .env("GATEWIRE_LOG", setup.log)
            .stdin(Stdio::null())
            .stderr(stderr);
        if let Some(backend) = setup.backend {
            command.env("GATEWIRE_RUN_BACKEND", backend);
        }
        if setup.block_io_uring {
            seccomp::block_io_uring(&mut command);
        }
        if let Some(n) = setup.nofile {
            limit(&mut command, libc::RLIMIT_NOFILE, n);
        }
        if let Some(bytes) = setup.memlock {
            limit_memlock(&mut command, bytes);
        }
        let child = command.spawn().unwrap();
        let gw = Gatewire {
            child,
            dir,
            register: SocketAddr::from(([127, 0, 0, 1], register_port)),
            public: SocketAddr::from(([127, 0, 0, 1], public_port)),
            start_port,
            shards: setup.shards,
            metrics: metrics.map(|p| SocketAddr::from(([127, 0, 0, 1], p))),
            lan_ip: setup.lan_ip,
        };
        // The public port is not probed: a shard without workers leaves connections in the
        // backlog, and a probe would become the first client a test's worker hears of. The
        // control socket below appears only once every shard listens.
        if setup.roles.contains("gateway") {
            for i in 0..setup.shards {
                wait_listening(gw.inner(i));
            }
        }
        if setup.roles.contains("register") {
            wait_listening(gw.register);
        }
        // The supervisor opens its control socket once every role reported ready.
        let socket = gw.path("run/gatewire.sock");
        let deadline = Instant::now() + Duration::from_secs(40);
        while !socket.exists() {
            assert!(Instant::now() < deadline, "no control socket at {socket:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
        gw
    }

    /// The value of one metric line (`name{labels}`) summed over shards; waits for the shards'
    /// next publication.
    pub fn metric(&self, name_and_labels: &str) -> u64 {
        std::thread::sleep(Duration::from_millis(400));
        let mut s = TcpStream::connect(self.metrics.expect("metrics enabled")).unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut text = String::new();
        let _ = s.read_to_string(&mut text);
        text.lines()
            .filter(|l| {
                l.starts_with(name_and_labels.split('{').next().unwrap())
                    && name_and_labels
                        .split(['{', '}', ','])
                        .skip(1)
                        .filter(|p| !p.is_empty())
                        .all(|p| l.contains(p))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    }

    /// The pid of the child process running `role`, as `gatewire status` reports it.
    pub fn role_pid(&self, role: &str) -> u32 {
        let out = Command::new(env!("CARGO_BIN_EXE_gatewire"))
            .args(["status", "-c"])
            .arg(self.path("gatewire.toml"))
            .current_dir(self.dir.path())
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find(|l| l.split_whitespace().next() == Some(role))
            .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            .unwrap_or_else(|| panic!("no {role} pid in `gatewire status`: {out:?}"))
    }

    /// What the processes logged so far (with `Setup::capture_log`).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.path("gatewire.log")).unwrap_or_default()
    }

    pub fn inner(&self, shard: u16) -> SocketAddr {
        SocketAddr::from((self.lan_ip, self.start_port + shard))
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Connects a worker to every shard and waits until each accepted it.
    pub fn workers(&self, name: &str, secret: &str) -> Vec<TestWorker> {
        (0..self.shards)
            .map(|i| TestWorker::connect(self.inner(i), &format!("{name}:0"), secret))
            .collect()
    }
}

impl Drop for Gatewire {
    /// Stops the deployment as an operator would (SIGTERM), killing it only if it hangs.
    fn drop(&mut self) {
        // SAFETY: signalling the supervisor this harness started.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `command` with a locked-memory limit of `bytes` (soft and hard).
pub fn limit_memlock(command: &mut Command, bytes: u64) -> &mut Command {
    limit(command, libc::RLIMIT_MEMLOCK, bytes)
}

/// Sets resource limit `resource` (soft and hard) to `value` in the child `command` starts.
pub fn limit(
    command: &mut Command,
    resource: libc::__rlimit_resource_t,
    value: u64,
) -> &mut Command {
    use std::os::unix::process::CommandExt;
    // SAFETY: setrlimit only, between fork and exec.
    unsafe {
        command.pre_exec(move || {
            let limit = libc::rlimit {
                rlim_cur: value,
                rlim_max: value,
            };
            if libc::setrlimit(resource, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    }
}

/// A WebSocket client, retried until a worker serves the gateway (clients are refused before).
pub fn ws_connect_when_served(addr: SocketAddr, path: &str) -> Ws {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        let url = format!("ws://{addr}{path}");
        match tungstenite::client::client(url, MaybeTlsStream::Plain(stream)) {
            Ok((ws, _)) => return ws,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => panic!("no worker served {addr}: {e}"),
        }
    }
}

pub fn wait_listening(addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("{addr} never started listening");
}

/// Polls `check` until it holds or 5 s pass.
pub fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while Instant::now() < deadline {
        if check() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("timed out waiting for: {what}");
}

/// A business worker speaking GatewayProtocol over a blocking socket.
pub struct TestWorker {
    pub stream: TcpStream,
    buf: BytesMut,
    decoder: PacketDecoder,
}

impl TestWorker {
    /// Connects, sends CMD_WORKER_CONNECT, and waits until the gateway routes to it (a first
    /// client would otherwise race the registration).
    pub fn connect(addr: SocketAddr, worker_key: &str, secret: &str) -> TestWorker {
        TestWorker::over(TcpStream::connect(addr).unwrap(), addr, worker_key, secret)
    }

    /// [`TestWorker::connect`] over a socket the caller connected to `addr` itself (to set its
    /// options first).
    pub fn over(stream: TcpStream, addr: SocketAddr, worker_key: &str, secret: &str) -> TestWorker {
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        stream.set_nodelay(true).unwrap();
        let mut w = TestWorker {
            stream,
            buf: BytesMut::new(),
            decoder: PacketDecoder::default(),
        };
        w.send(Packet::new(
            Header::command(Cmd::WorkerConnect).with_cmd(Cmd::WorkerConnect, Flags::SCALAR),
            "",
            worker_connect_body(worker_key, secret),
        ));
        // The gateway gives no ack: a query on a second connection is answered only after the
        // gateway processed everything before it on its loop, including this link's hello.
        let _ = try_query(addr, secret, Cmd::GetClientCountByGroup, 0, "");
        w
    }

    pub fn send(&mut self, packet: Packet) {
        self.stream.write_all(&packet.to_bytes().unwrap()).unwrap();
    }

    /// A per-client command with a string body.
    pub fn command(&mut self, cmd: Cmd, connection_id: u32, ext: &str, body: &str) {
        self.send(Packet::new(
            Header::for_connection(cmd, connection_id, Flags::SCALAR),
            ext.to_owned(),
            body.to_owned(),
        ));
    }

    /// The next packet, skipping CMD_PING; panics after the timeout.
    pub fn next(&mut self) -> Packet {
        self.try_next().expect("worker got no event in time")
    }

    pub fn try_next(&mut self) -> Option<Packet> {
        loop {
            let p = self.try_next_any()?;
            if p.header.cmd != Cmd::Ping {
                return Some(p);
            }
        }
    }

    /// The next packet of any kind (CMD_PING included); `None` on timeout or close.
    pub fn try_next_any(&mut self) -> Option<Packet> {
        loop {
            if let Some(p) = self.decoder.decode(&mut self.buf).unwrap() {
                return Some(p);
            }
            let mut chunk = [0u8; 65536];
            match self.stream.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(_) => return None,
            }
        }
    }

    /// The next event of `cmd`, skipping others.
    pub fn expect(&mut self, cmd: Cmd) -> Packet {
        loop {
            let p = self.next();
            if p.header.cmd == cmd {
                return p;
            }
        }
    }

    /// Whether the gateway closed this link within `wait`.
    pub fn closed_within(&mut self, wait: Duration) -> bool {
        self.stream.set_read_timeout(Some(wait)).unwrap();
        let mut chunk = [0u8; 1024];
        let closed = loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => break true,
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break true,
                Err(_) => break false,
            }
        };
        self.stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        closed
    }
}

/// One query on a fresh connection (with the 202 prefix when a secret is set); the raw payload.
pub fn query(addr: SocketAddr, secret: &str, cmd: Cmd, connection_id: u32, ext: &str) -> Vec<u8> {
    try_query(addr, secret, cmd, connection_id, ext).expect("query reply")
}

/// [`query`], or `None` when the gateway closes the connection instead of answering.
pub fn try_query(
    addr: SocketAddr,
    secret: &str,
    cmd: Cmd,
    connection_id: u32,
    ext: &str,
) -> Option<Vec<u8>> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut out = Vec::new();
    if !secret.is_empty() {
        let auth = Packet::new(
            Header::for_connection(Cmd::GatewayClientConnect, 0, Flags::SCALAR),
            "",
            gateway_client_connect_body(secret),
        );
        out.extend_from_slice(&auth.to_bytes().unwrap());
    }
    let request = Packet::new(
        Header::for_connection(cmd, connection_id, Flags::SCALAR),
        ext.to_owned(),
        "",
    );
    out.extend_from_slice(&request.to_bytes().unwrap());
    stream.write_all(&out).unwrap();
    let mut decoder = QueryReplyDecoder::default();
    let mut buf = BytesMut::new();
    loop {
        if let Some(reply) = decoder.decode(&mut buf).ok()? {
            return Some(reply.to_vec());
        }
        let mut chunk = [0u8; 65536];
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

pub fn query_text(addr: SocketAddr, cmd: Cmd, connection_id: u32, ext: &str) -> String {
    String::from_utf8(query(addr, "", cmd, connection_id, ext)).unwrap()
}

pub type Ws = tungstenite::WebSocket<MaybeTlsStream<TcpStream>>;

/// A WebSocket client connected to `addr` with request target `path`.
pub fn ws_connect(addr: SocketAddr, path: &str) -> Ws {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    let url = format!("ws://{addr}{path}");
    let (ws, _) = tungstenite::client::client(url, MaybeTlsStream::Plain(stream)).unwrap();
    ws
}

/// The next text/binary message of a WebSocket client as a string.
pub fn ws_read(ws: &mut Ws) -> String {
    loop {
        match ws.next_message().expect("websocket message") {
            tungstenite::Message::Text(t) => return t.to_string(),
            tungstenite::Message::Binary(b) => return String::from_utf8_lossy(&b).into_owned(),
            _ => continue,
        }
    }
}

/// Reads until `expected` arrives, skipping the lines `skippable` accepts (an app's
/// announcements); fails on anything else.
pub fn expect_line_skipping(ws: &mut Ws, expected: &str, skippable: impl Fn(&str) -> bool) {
    loop {
        let line = ws_read(ws);
        if line == expected {
            return;
        }
        assert!(
            skippable(&line),
            "unexpected {line:?} while waiting for {expected:?}"
        );
    }
}

/// The connection id a worker saw in the client's ON_CONNECT.
pub fn connection_id(p: &Packet) -> u32 {
    p.header.connection_id
}

/// Resident memory of process `pid` in bytes.
pub fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmRSS in /proc/PID/status");
    kib * 1024
}

pub fn localhost() -> Ipv4Addr {
    Ipv4Addr::LOCALHOST
}

/// A process's state letter from `/proc/PID/stat` (`T` when stopped).
pub fn process_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

/// Stops a process (SIGSTOP: its sockets accept in the kernel, it never answers) until dropped,
/// then resumes it, so it can exit with the test.
pub struct Frozen(pub u32);

impl Frozen {
    /// Stops `pid` (a process this test started) and waits until every thread has stopped.
    pub fn stop(pid: u32) -> Frozen {
        // SAFETY: a pid of a process this test started (through the supervisor).
        unsafe { libc::kill(pid as i32, libc::SIGSTOP) };
        let frozen = Frozen(pid);
        eventually("the process is stopped", || process_state(pid) == Some('T'));
        frozen
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        // SAFETY: a pid of a process this test started (through the supervisor).
        unsafe { libc::kill(self.0 as i32, libc::SIGCONT) };
    }
}

/// A WebSocket client past its handshake, as a raw socket the test writes frames to itself.
pub fn raw_websocket(gw: &Gatewire) -> std::net::TcpStream {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(gw.public).unwrap();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    stream
        .write_all(
            b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        )
        .unwrap();
    let mut response = Vec::new();
    let mut byte = [0u8; 1];
    while !response.ends_with(b"\r\n\r\n") {
        assert_eq!(stream.read(&mut byte).unwrap(), 1, "handshake answered");
        response.push(byte[0]);
    }
    assert!(response.starts_with(b"HTTP/1.1 101"), "upgraded");
    stream
}
