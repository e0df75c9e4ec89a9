//! What the tests read about a process they started, from /proc.

/// Whether the kernel may give process `pid` transparent huge pages (`THP_enabled` in its
/// status); `None` when it is gone.
pub fn transparent_huge_pages_enabled(pid: u32) -> Option<bool> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("THP_enabled:"))?;
    Some(line.split_whitespace().nth(1)? == "1")
}

/// CPU seconds (user + system) process `pid` has used so far; 0 when it is gone.
pub fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces): utime is field 14, stime 15.
    let Some(rest) = stat.rfind(')').and_then(|at| stat.get(at + 2..)) else {
        return 0.0;
    };
    let mut fields = rest.split_whitespace().skip(11);
    let mut ticks = 0.0;
    for _ in 0..2 {
        ticks += fields
            .next()
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0);
    }
    // SAFETY: sysconf has no preconditions.
    ticks / unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64
}
