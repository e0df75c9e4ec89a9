//! `gatewire start -d`: the same command line without `-d` is started in a new session with its
//! output appended to `[run] dir/gatewire.log`; this process waits until that supervisor answers
//! on its control socket (every role started) or has died, and reports which.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::SupervisorError;

/// Starts the background supervisor; `Ok` carries the line to print.
pub fn start(dir: &Path, wait: Duration) -> Result<String, SupervisorError> {
    if super::commands::request(dir, &super::ControlRequest::Status { json: false }).is_ok() {
        return Err(SupervisorError::AlreadyRunning(dir.join(super::SOCKET)));
    }
    let file = |what, path: &Path| {
        let path = path.to_owned();
        move |source| SupervisorError::File { what, path, source }
    };
    std::fs::create_dir_all(dir).map_err(file("cannot create run.dir", dir))?;
    let log_path = dir.join(super::LOG_FILE);
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(file("cannot open", &log_path))?;
    let err = log.try_clone().map_err(file("cannot open", &log_path))?;
    let exe = std::env::current_exe().map_err(|source| SupervisorError::System {
        what: "cannot find this executable",
        source,
    })?;
    let args = std::env::args_os()
        .skip(1)
        .filter(|a| a != "-d" && a != "--daemon");
    let mut cmd = Command::new(exe);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(err));
    // SAFETY: setsid is async-signal-safe; it detaches the child from our terminal and session.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(|source| SupervisorError::System {
        what: "cannot start the background process",
        source,
    })?;
    let deadline = Instant::now() + wait;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(SupervisorError::Start(format!(
                "the background process ended ({status}) during start-up; last lines of {}:\n{}",
                log_path.display(),
                tail(&log_path, 10)
            )));
        }
        if super::commands::request(dir, &super::ControlRequest::Status { json: false }).is_ok() {
            return Ok(format!(
                "gatewire started in the background (pid {}); log: {}",
                child.id(),
                log_path.display()
            ));
        }
        if Instant::now() >= deadline {
            return Err(SupervisorError::Start(format!(
                "the background process (pid {}) did not come up within {wait:?}; see {}",
                child.id(),
                log_path.display()
            )));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
