//! Starting child processes: the same executable (re-read from its path, so a reload picks up a
//! new build), `start --supervised --role R` plus the supervisor's own configuration arguments,
//! with a control socket as fd 3. One long-lived thread forks every child (see the module docs).

use std::ffi::OsString;
use std::os::fd::IntoRawFd;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::mpsc;

use super::child::CONTROL_FD;
use crate::config::Role;

type Reply = mpsc::Sender<Result<(u32, UnixStream), String>>;

/// How to start a child of a given role.
#[derive(Debug)]
pub struct Launch {
    requests: Mutex<mpsc::Sender<(Role, u64, Reply)>>,
}

/// What every child is started with.
#[derive(Debug, Clone)]
pub struct ChildCommand {
    pub exe: PathBuf,
    /// `-c FILE`, `--set ...`, `--app ...`: the supervisor's configuration, passed on.
    pub config_args: Vec<OsString>,
    /// The gateway serves the chat page (the chat app runs on this machine).
    pub serve_chat_page: bool,
}

impl Launch {
    pub fn new(command: ChildCommand) -> Launch {
        let (tx, rx) = mpsc::channel::<(Role, u64, Reply)>();
        std::thread::Builder::new()
            .name("spawner".into())
            .spawn(move || {
                for (role, generation, reply) in rx {
                    let _ = reply.send(spawn(&command, role, generation));
                }
            })
            .expect("spawner thread");
        Launch {
            requests: Mutex::new(tx),
        }
    }

    /// Starts a child; returns its pid and the supervisor's end of its control channel.
    pub fn spawn(&self, role: Role, generation: u64) -> Result<(u32, UnixStream), String> {
        let (reply, answer) = mpsc::channel();
        self.requests
            .lock()
            .map_err(|_| "spawner lock poisoned".to_string())?
            .send((role, generation, reply))
            .map_err(|_| "spawner thread is gone".to_string())?;
        answer
            .recv()
            .map_err(|_| "spawner thread is gone".to_string())?
    }
}

fn spawn(command: &ChildCommand, role: Role, generation: u64) -> Result<(u32, UnixStream), String> {
    let (ours, theirs) = UnixStream::pair().map_err(|e| format!("socketpair: {e}"))?;
    let theirs = theirs.into_raw_fd();
    let mut cmd = Command::new(&command.exe);
    cmd.arg("start")
        .arg("--supervised")
        .arg("--role")
        .arg(role.name())
        .arg("--generation")
        .arg(generation.to_string())
        .args(&command.config_args)
        .stdin(Stdio::null());
    if command.serve_chat_page {
        cmd.arg("--serve-chat-page");
    }
    // A process group of its own: a Ctrl-C in the terminal reaches the supervisor alone, which
    // stops the roles in order (workers first), so nobody logs its peers vanishing at once.
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    // SAFETY: between fork and exec this only calls async-signal-safe functions (prctl, dup2,
    // fcntl) on values computed before the fork.
    unsafe {
        cmd.pre_exec(move || {
            // Stop with the supervisor, even when it is killed.
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if theirs == CONTROL_FD {
                libc::fcntl(CONTROL_FD, libc::F_SETFD, 0);
            } else if libc::dup2(theirs, CONTROL_FD) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let spawned = cmd.spawn();
    // SAFETY: `theirs` is ours to close; the child has its own copy as fd 3.
    unsafe { libc::close(theirs) };
    let child = spawned.map_err(|e| format!("cannot start {}: {e}", command.exe.display()))?;
    Ok((child.id(), ours))
}
