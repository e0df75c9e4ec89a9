//! The supervisor: `gatewire start` runs one child process per role (gateway shards are threads
//! of the gateway process), restarts a child that dies with backoff, forwards stop signals, and
//! answers `stop`, `restart`, `reload`, `status`, `connections` and `/metrics` over a unix socket
//! in `[run] dir`.
//!
//! Children are started by one long-lived spawner thread: the kernel's parent-death signal,
//! which stops a child whose supervisor was killed, is tied to the thread that forked it.

pub mod channel;
pub mod child;
mod commands;
pub mod daemon;
mod error;
mod report;
mod spawn;

use std::collections::HashMap;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use tracing::{error, info, warn};

use crate::config::{Config, Role};
use crate::system;
use child::ChildRequest;
pub use commands::{ControlError, ControlRequest, Reach, request};
pub use error::SupervisorError;
pub use spawn::{ChildCommand, Launch};

/// Name of the control socket in `[run] dir`.
pub const SOCKET: &str = "gatewire.sock";
/// Name of the pid file in `[run] dir`.
pub const PID_FILE: &str = "gatewire.pid";
/// Name of the log file `start -d` writes in `[run] dir`.
pub const LOG_FILE: &str = "gatewire.log";

/// Roles in start order.
const START_ORDER: [Role; 4] = [Role::Register, Role::Gateway, Role::Worker, Role::Api];

/// How long a child told to stop gets before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// A child process.
#[derive(Debug)]
struct Child {
    role: Role,
    pid: u32,
    started: Instant,
    control: Mutex<UnixStream>,
    /// Being replaced or stopped on purpose: its exit is not a crash.
    retiring: AtomicBool,
    /// Reported ready: from then on the control channel carries requests and answers.
    ready: AtomicBool,
    /// Number of the next request.
    requests: AtomicU64,
}

impl Child {
    /// One request and its answer. Requests are numbered and answers echo the number, so an
    /// answer that arrives after its request timed out is skipped, not taken for the next one.
    fn ask(&self, request: ChildRequest, timeout: Duration) -> Result<String, SupervisorError> {
        let failed = |source: std::io::Error| SupervisorError::Child {
            role: self.role,
            pid: self.pid,
            source,
        };
        let mut control = self
            .control
            .lock()
            .map_err(|_| failed(std::io::Error::other("control lock poisoned")))?;
        let number = self.requests.fetch_add(1, Ordering::Relaxed);
        channel::send(&mut control, &format!("{number} {}", request.word())).map_err(failed)?;
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(failed(std::io::ErrorKind::TimedOut.into()));
            }
            let answer = channel::recv(&mut control, Some(left)).map_err(failed)?;
            match answer.split_once('\n') {
                Some((tag, body)) if tag == number.to_string() => return Ok(body.to_owned()),
                _ => continue,
            }
        }
    }

    /// A child's answer to `request` that does not parse.
    fn unreadable(&self, request: &'static str, detail: &dyn std::fmt::Display) -> SupervisorError {
        SupervisorError::Unreadable {
            role: self.role,
            pid: self.pid,
            request,
            detail: detail.to_string(),
        }
    }

    fn signal(&self, signal: i32) {
        // SAFETY: kill on a pid we started and have not reaped yet (the reaper removes it from
        // the table before the pid can be reused).
        unsafe { libc::kill(self.pid as i32, signal) };
    }
}

#[derive(Debug, Default)]
struct State {
    children: Vec<Arc<Child>>,
    stopping: bool,
    restarts: HashMap<Role, u64>,
    /// Quick successive crashes per role (the backoff exponent).
    crashes: HashMap<Role, u32>,
}

/// The running supervisor.
#[derive(Debug)]
pub struct Supervisor {
    config: Config,
    roles: Vec<Role>,
    dir: PathBuf,
    launch: Launch,
    state: Mutex<State>,
    /// Notified whenever a child exits.
    exited: Condvar,
    /// One reload, restart or stop at a time.
    operation: Mutex<()>,
    generation: AtomicU64,
}

impl Supervisor {
    /// Starts every role, then serves the control socket until stopped. Returns an error (and
    /// leaves nothing running) when a role cannot start.
    pub fn run(config: Config, roles: Vec<Role>, launch: Launch) -> Result<(), SupervisorError> {
        let dir = config.run_dir();
        let file = |what, path: &std::path::Path| {
            let path = path.to_owned();
            move |source| SupervisorError::File { what, path, source }
        };
        let dir = std::path::absolute(&dir).map_err(file("run.dir", &dir))?;
        std::fs::create_dir_all(&dir).map_err(file("cannot create run.dir", &dir))?;
        let socket = dir.join(SOCKET);
        if UnixStream::connect(&socket).is_ok() {
            return Err(SupervisorError::AlreadyRunning(socket));
        }
        system::block_signals(SUPERVISOR_SIGNALS);
        let supervisor = Arc::new(Supervisor {
            config,
            roles,
            dir,
            launch,
            state: Mutex::new(State::default()),
            exited: Condvar::new(),
            operation: Mutex::new(()),
            generation: AtomicU64::new(0),
        });
        {
            let s = supervisor.clone();
            std::thread::Builder::new()
                .name("reaper".into())
                .spawn(move || s.reap())
                .map_err(|source| SupervisorError::System {
                    what: "cannot start the reaper thread",
                    source,
                })?;
        }
        for role in START_ORDER {
            if !supervisor.roles.contains(&role) {
                continue;
            }
            if let Err(message) = supervisor.launch(role, false) {
                supervisor.stop(false);
                return Err(message);
            }
        }
        let _ = std::fs::remove_file(&socket);
        let listener = UnixListener::bind(&socket).map_err(file("cannot bind", &socket))?;
        let pid_file = supervisor.dir.join(PID_FILE);
        std::fs::write(&pid_file, format!("{}\n", std::process::id()))
            .map_err(file("cannot write the pid file", &pid_file))?;
        if let Some(listen) = supervisor.config.metrics.listen {
            let s = supervisor.clone();
            if let Err(message) = crate::metrics::serve(listen, move || s.metrics()) {
                supervisor.stop(false);
                supervisor.remove_files();
                return Err(SupervisorError::Start(message));
            }
        }
        {
            let s = supervisor.clone();
            std::thread::spawn(move || {
                for stream in listener.incoming().flatten() {
                    let s = s.clone();
                    std::thread::spawn(move || s.serve_command(stream));
                }
            });
        }
        info!(
            roles = ?supervisor.roles,
            socket = %socket.display(),
            "gatewire running"
        );
        loop {
            match system::wait_signal(SUPERVISOR_SIGNALS) {
                libc::SIGUSR1 => {
                    let s = supervisor.clone();
                    std::thread::spawn(move || match s.reload() {
                        Ok(text) => info!("{}", text.trim_end()),
                        Err(e) => error!("reload failed: {e}"),
                    });
                }
                signal => {
                    let graceful = signal == libc::SIGQUIT;
                    info!(signal, graceful, "stopping");
                    supervisor.stop(graceful);
                    supervisor.remove_files();
                    return Ok(());
                }
            }
        }
    }

    /// Starts one process of `role` and waits for its report. `strict`: a worker that is not
    /// linked to every gateway shard in time is a failure (a reload must not lose capacity).
    fn launch(self: &Arc<Self>, role: Role, strict: bool) -> Result<Arc<Child>, SupervisorError> {
        let generation = if role == Role::Worker {
            self.generation.fetch_add(1, Ordering::SeqCst)
        } else {
            0
        };
        let (pid, mut control) = self
            .launch
            .spawn(role, generation)
            .map_err(SupervisorError::Start)?;
        let child =
            Arc::new(Child {
                role,
                pid,
                started: Instant::now(),
                control: Mutex::new(control.try_clone().map_err(|source| {
                    SupervisorError::System {
                        what: "cannot share the control channel",
                        source,
                    }
                })?),
                retiring: AtomicBool::new(false),
                ready: AtomicBool::new(false),
                requests: AtomicU64::new(0),
            });
        self.state
            .lock()
            .expect("not poisoned")
            .children
            .push(child.clone());
        let wait = Duration::from_secs_f64(self.config.worker.ready_timeout) + STOP_GRACE;
        let report = channel::recv(&mut control, Some(wait));
        let failure = match report.as_deref() {
            Ok("ready") => None,
            Ok(r) if r.starts_with("unready ") => {
                let why = &r["unready ".len()..];
                if strict {
                    Some(format!("new {role} process (pid {pid}): {why}"))
                } else {
                    warn!(%role, pid, "{why}; running anyway");
                    None
                }
            }
            Ok(r) => Some(r.strip_prefix("failed ").unwrap_or(r).to_owned()),
            Err(e) => Some(format!(
                "{role} process (pid {pid}) ended or hung during start-up: {e}"
            )),
        };
        if let Some(message) = failure {
            child.retiring.store(true, Ordering::SeqCst);
            child.signal(libc::SIGKILL);
            self.wait_exit(&child, STOP_GRACE);
            return Err(SupervisorError::Start(message));
        }
        child.ready.store(true, Ordering::SeqCst);
        info!(%role, pid, generation, "process ready");
        Ok(child)
    }

    /// Reaps children; a child that was not retiring is restarted after a backoff.
    fn reap(self: Arc<Self>) {
        loop {
            let mut status = 0;
            // SAFETY: waitpid writes the exit status into `status`.
            let pid = unsafe { libc::waitpid(-1, &mut status, 0) };
            if pid <= 0 {
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
            let mut state = self.state.lock().expect("not poisoned");
            let Some(at) = state.children.iter().position(|c| c.pid == pid as u32) else {
                continue;
            };
            let child = state.children.remove(at);
            self.exited.notify_all();
            if state.stopping || child.retiring.load(Ordering::SeqCst) {
                continue;
            }
            let lived = child.started.elapsed();
            let crashes = state.crashes.entry(child.role).or_insert(0);
            if lived > Duration::from_secs(30) {
                *crashes = 0;
            }
            let backoff = Duration::from_millis(200)
                .saturating_mul(1 << (*crashes).min(8))
                .min(Duration::from_secs(30));
            *crashes += 1;
            *state.restarts.entry(child.role).or_insert(0) += 1;
            drop(state);
            warn!(
                role = %child.role,
                pid,
                status = describe_status(status),
                ?backoff,
                "process ended unexpectedly; restarting"
            );
            let s = self.clone();
            std::thread::spawn(move || s.restart_after(child.role, backoff));
        }
    }

    /// Starts `role` again after `backoff`, retrying with a doubling backoff (up to 30 s) until
    /// it comes up or the supervisor stops.
    fn restart_after(self: Arc<Self>, role: Role, mut backoff: Duration) {
        loop {
            std::thread::sleep(backoff);
            if self.state.lock().expect("not poisoned").stopping {
                return;
            }
            let _busy = self.operation.lock();
            // Stopping, or a `restart`/`reload` started this role meanwhile.
            if self.state.lock().expect("not poisoned").stopping
                || !self.children(Some(role)).is_empty()
            {
                return;
            }
            match self.launch(role, false) {
                Ok(_) => return,
                Err(e) => {
                    backoff = backoff.saturating_mul(2).min(Duration::from_secs(30));
                    error!(%role, ?backoff, "restart failed: {e}; trying again");
                }
            }
        }
    }

    /// Waits until `child` has been reaped; false on timeout.
    fn wait_exit(&self, child: &Child, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut state = self.state.lock().expect("not poisoned");
        while state.children.iter().any(|c| c.pid == child.pid) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            state = self
                .exited
                .wait_timeout(state, left)
                .expect("not poisoned")
                .0;
        }
        true
    }

    /// Stops a child: SIGTERM (or a drain request for a worker when `drain`), then SIGKILL if
    /// it is still there after the grace period.
    fn retire(&self, child: &Child, drain: bool) {
        child.retiring.store(true, Ordering::SeqCst);
        let grace = if drain {
            match child.ask(ChildRequest::Drain, STOP_GRACE) {
                Ok(_) => Duration::from_secs_f64(self.config.worker.drain_timeout) + STOP_GRACE,
                Err(e) => {
                    warn!("drain request failed ({e}); stopping it");
                    child.signal(libc::SIGTERM);
                    STOP_GRACE
                }
            }
        } else {
            child.signal(libc::SIGTERM);
            STOP_GRACE
        };
        if !self.wait_exit(child, grace) {
            warn!(role = %child.role, pid = child.pid, "did not stop in time; killing it");
            child.signal(libc::SIGKILL);
            self.wait_exit(child, STOP_GRACE);
        }
    }

    /// Children that answer requests (started and not retiring).
    fn serving(&self, role: Option<Role>) -> Vec<Arc<Child>> {
        let mut children = self.children(role);
        children.retain(|c| c.ready.load(Ordering::SeqCst));
        children
    }

    fn children(&self, role: Option<Role>) -> Vec<Arc<Child>> {
        self.state
            .lock()
            .expect("not poisoned")
            .children
            .iter()
            .filter(|c| role.is_none_or(|r| c.role == r) && !c.retiring.load(Ordering::SeqCst))
            .cloned()
            .collect()
    }

    /// Replaces each worker process, one at a time: the new one links to every gateway shard
    /// before the old one drains and exits.
    pub fn reload(self: &Arc<Self>) -> Result<String, SupervisorError> {
        let _busy = self.operation.lock();
        if !self.roles.contains(&Role::Worker) {
            return Err(SupervisorError::NotHere(
                "no worker role runs here (run.roles / --role)",
            ));
        }
        let mut report = String::new();
        let old = self.children(Some(Role::Worker));
        if old.is_empty() {
            let new = self.launch(Role::Worker, true)?;
            report.push_str(&format!("worker started (pid {})\n", new.pid));
        }
        for old in old {
            let new = self.launch(Role::Worker, true)?;
            self.retire(&old, true);
            report.push_str(&format!(
                "worker replaced: pid {} -> pid {}\n",
                old.pid, new.pid
            ));
        }
        Ok(report)
    }

    /// `gatewire reload --tls`: every gateway process reads its certificate and key again. A
    /// pair that does not load is refused (the answer says why) and the one in use stays.
    pub fn reload_tls(self: &Arc<Self>) -> Result<String, SupervisorError> {
        let gateways = self.serving(Some(Role::Gateway));
        if gateways.is_empty() {
            return Err(SupervisorError::NotHere(
                "no gateway role runs here (run.roles / --role)",
            ));
        }
        let mut report = String::new();
        let mut failed = false;
        for g in gateways {
            let answer = g.ask(ChildRequest::ReloadTls, Duration::from_secs(10))?;
            match answer.split_once(' ') {
                Some(("ok", done)) => {
                    report.push_str(&format!("gateway (pid {}): {done}\n", g.pid))
                }
                Some((_, why)) => {
                    failed = true;
                    report.push_str(&format!(
                        "gateway (pid {}): refused, the certificate in use stays: {why}\n",
                        g.pid
                    ));
                }
                None => {
                    failed = true;
                    report.push_str(&format!("gateway (pid {}): {answer}\n", g.pid));
                }
            }
        }
        if failed {
            Err(SupervisorError::TlsRefused(report.trim_end().to_owned()))
        } else {
            Ok(report)
        }
    }

    /// Stops the processes of `roles` (all when empty), then starts them again.
    pub fn restart(self: &Arc<Self>, roles: &[Role]) -> Result<String, SupervisorError> {
        let _busy = self.operation.lock();
        let roles: Vec<Role> = START_ORDER
            .into_iter()
            .filter(|r| self.roles.contains(r) && (roles.is_empty() || roles.contains(r)))
            .collect();
        if roles.is_empty() {
            return Err(SupervisorError::NotHere("none of those roles runs here"));
        }
        for &role in roles.iter().rev() {
            for child in self.children(Some(role)) {
                self.retire(&child, false);
            }
        }
        let mut report = String::new();
        for role in roles {
            let child = self.launch(role, false)?;
            report.push_str(&format!("{role} restarted (pid {})\n", child.pid));
        }
        Ok(report)
    }

    /// Stops every child: workers first (drained when `graceful`), then gateways, then the
    /// register.
    pub fn stop(&self, graceful: bool) {
        let _busy = self.operation.lock();
        self.state.lock().expect("not poisoned").stopping = true;
        for role in START_ORDER.into_iter().rev() {
            let children = self.children(Some(role));
            let drain = graceful && role == Role::Worker;
            std::thread::scope(|scope| {
                for child in &children {
                    scope.spawn(move || self.retire(child, drain));
                }
            });
        }
    }

    fn remove_files(&self) {
        let _ = std::fs::remove_file(self.dir.join(SOCKET));
        let _ = std::fs::remove_file(self.dir.join(PID_FILE));
    }

    /// Every child's metrics merged, plus the supervisor's own.
    fn metrics(&self) -> String {
        let mut texts: Vec<String> = self
            .serving(None)
            .iter()
            .filter_map(|c| c.ask(ChildRequest::Metrics, Duration::from_secs(5)).ok())
            .collect();
        let mut own = crate::metrics::Exposition::default();
        let state = self.state.lock().expect("not poisoned");
        own.family(
            "process_restarts_total",
            "counter",
            "Child processes restarted after an unexpected exit, by role.",
            self.roles.iter().map(|r| {
                (
                    format!("role=\"{r}\""),
                    state.restarts.get(r).copied().unwrap_or(0),
                )
            }),
        );
        own.family(
            "process_up",
            "gauge",
            "Child processes running, by role.",
            self.roles.iter().map(|r| {
                (
                    format!("role=\"{r}\""),
                    state.children.iter().filter(|c| c.role == *r).count(),
                )
            }),
        );
        let memory: Vec<(String, u64)> = self
            .roles
            .iter()
            .map(|r| {
                let bytes = state
                    .children
                    .iter()
                    .filter(|c| c.role == *r)
                    .filter_map(|c| crate::system::rss_bytes(c.pid))
                    .sum();
                (format!("role=\"{r}\""), bytes)
            })
            .collect();
        drop(state);
        own.family(
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory of the child processes, by role.",
            memory,
        );
        texts.push(own.finish());
        crate::metrics::merge(texts.iter().map(String::as_str))
    }
}

/// Signals the supervisor handles: SIGINT/SIGTERM stop, SIGQUIT stops gracefully, SIGUSR1
/// reloads the workers.
const SUPERVISOR_SIGNALS: &[i32] = &[libc::SIGINT, libc::SIGTERM, libc::SIGQUIT, libc::SIGUSR1];

fn describe_status(status: i32) -> String {
    if libc::WIFEXITED(status) {
        format!("exit {}", libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        format!("signal {}", libc::WTERMSIG(status))
    } else {
        format!("status {status}")
    }
}
