//! Process-level facts and knobs: the fd limit, per-thread fd tables.

use std::io;

/// Raises the soft `RLIMIT_NOFILE` to the hard limit; returns the new soft limit.
pub fn raise_fd_limit() -> io::Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read or write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return Err(io::Error::last_os_error());
        }
        if limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(io::Error::last_os_error());
            }
        }
    }
    Ok(limit.rlim_cur)
}

/// Gives the calling thread its own copy of the fd table, so `RLIMIT_NOFILE` applies per thread
/// and fd allocation does not contend across shards. Call before the thread opens sockets.
pub fn unshare_fd_table() -> io::Result<()> {
    // SAFETY: unshare(CLONE_FILES) affects only the calling thread's fd table.
    if unsafe { libc::unshare(libc::CLONE_FILES) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn stop_signals() -> libc::sigset_t {
    // SAFETY: sigemptyset/sigaddset only write the set we own.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        set
    }
}

/// Blocks SIGINT and SIGTERM in the calling thread and every thread it starts afterwards, so
/// that [`wait_stop_signal`] alone receives them.
pub fn block_stop_signals() {
    let set = stop_signals();
    // SAFETY: changes only this thread's signal mask.
    unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
}

/// Waits for SIGINT or SIGTERM; returns the signal number.
pub fn wait_stop_signal() -> i32 {
    let set = stop_signals();
    let mut signal = 0;
    // SAFETY: sigwait reads the set and writes the received signal into `signal`.
    unsafe { libc::sigwait(&set, &mut signal) };
    signal
}
