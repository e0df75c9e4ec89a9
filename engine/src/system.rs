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

/// Descriptors a process keeps for what is not a client: inner links, listeners, files.
pub const FD_HEADROOM: u64 = 256;

/// The soft `RLIMIT_NOFILE` now.
pub fn fd_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return 1024;
    }
    limit.rlim_cur
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

/// Allows or forbids transparent huge pages for the whole process (`prctl(PR_SET_THP_DISABLE)`;
/// applies to memory already mapped, and is inherited by children). The heap asks the kernel for
/// huge pages (`madvise(MADV_HUGEPAGE)` on its arenas), and a huge page is 2 MiB resident as soon
/// as one byte of it is touched: with them, idle clients cost more than twice the memory
/// (docs/benchmarks.md, "Measurements behind constants").
pub fn set_transparent_huge_pages(allowed: bool) -> io::Result<()> {
    let disable = libc::c_ulong::from(!allowed);
    // SAFETY: PR_SET_THP_DISABLE only sets a flag on this process's memory map.
    if unsafe {
        libc::prctl(
            libc::PR_SET_THP_DISABLE,
            disable,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    } != 0
    {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// SIGINT and SIGTERM: stop.
pub const STOP_SIGNALS: &[i32] = &[libc::SIGINT, libc::SIGTERM];

fn signal_set(signals: &[i32]) -> libc::sigset_t {
    // SAFETY: sigemptyset/sigaddset only write the set we own.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for &s in signals {
            libc::sigaddset(&mut set, s);
        }
        set
    }
}

/// Blocks `signals` in the calling thread and every thread it starts afterwards, so that
/// [`wait_signal`] alone receives them.
pub fn block_signals(signals: &[i32]) {
    let set = signal_set(signals);
    // SAFETY: changes only this thread's signal mask.
    unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
}

/// Waits for one of `signals` (blocked beforehand); returns its number.
pub fn wait_signal(signals: &[i32]) -> i32 {
    let set = signal_set(signals);
    let mut signal = 0;
    // SAFETY: sigwait reads the set and writes the received signal into `signal`.
    unsafe { libc::sigwait(&set, &mut signal) };
    signal
}

/// [`block_signals`] for SIGINT and SIGTERM.
pub fn block_stop_signals() {
    block_signals(STOP_SIGNALS);
}

/// Waits for SIGINT or SIGTERM; returns the signal number.
pub fn wait_stop_signal() -> i32 {
    wait_signal(STOP_SIGNALS)
}

/// Sends SIGTERM to this process, waking [`wait_stop_signal`].
pub fn raise_stop_signal() {
    // SAFETY: kill on our own pid with a signal every thread blocks; sigwait takes it.
    unsafe { libc::kill(libc::getpid(), libc::SIGTERM) };
}

/// The resident set size of process `pid` in bytes, from /proc.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// CPU time the calling thread has used: how long it has really run, whatever the kernel gave
/// the other threads meanwhile (a wall clock counts their turns too).
pub fn thread_cpu_time() -> std::time::Duration {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid timespec for the kernel to fill.
    if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) } != 0 {
        return std::time::Duration::ZERO;
    }
    std::time::Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

/// Gives the pages this thread's heap holds free back to the OS (mimalloc keeps freed pages
/// for reuse until it purges them, and an idle thread may not purge for a long time). Walks the
/// thread's heap: call it after large frees, not on every tick.
pub fn give_back_freed_memory() {
    // SAFETY: mi_collect only walks and purges the calling thread's heap.
    unsafe { libmimalloc_sys::mi_collect(true) };
}
