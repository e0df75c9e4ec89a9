//! `gatewire tune check --clients N`: reads this host's limits and says which ones stop a gateway
//! from holding N clients, each with the exact fix. The thresholds and the reasoning are in
//! tuning/README.md.

use std::fmt::Write as _;

use crate::config::Config;

/// Kernel memory per established loopback TCP socket (measured: ~3.9–4.1 KB).
const KERNEL_BYTES_PER_SOCKET: u64 = 4_100;
/// Gateway user-space memory per idle client: measured 348–409 B on every backend
/// (docs/benchmarks.md, idle memory), rounded up.
const USER_BYTES_PER_CLIENT: u64 = 600;
/// fds a shard needs besides its clients (listeners, links, io_uring, logs).
use crate::system::FD_HEADROOM;

/// One limit, as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub name: String,
    pub current: String,
    pub needed: String,
    /// `None` when the limit is fine.
    pub fix: Option<String>,
    /// Whether it stops N clients (otherwise the fix is advice for a smoother ramp).
    pub blocking: bool,
}

/// Host values the checks read (a struct so tests can feed their own).
#[derive(Debug, Clone, Default)]
pub struct Host {
    pub nofile_soft: u64,
    pub nofile_hard: u64,
    pub nr_open: Option<u64>,
    pub file_max: Option<u64>,
    pub somaxconn: Option<u64>,
    pub syn_backlog: Option<u64>,
    pub mem_available: Option<u64>,
    pub conntrack_max: Option<u64>,
    /// The runtime backend `run.backend` resolves to here, and why (`auto`: io_uring where the
    /// kernel allows it, epoll where not).
    pub runtime: String,
    /// Why the backend `run.backend` names cannot start here, with the fix; `None` when it can.
    pub runtime_blocked: Option<String>,
}

fn read_u64(path: &str) -> Option<u64> {
    std::fs::read_to_string(path)
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

impl Host {
    /// Reads this machine.
    pub fn read(config: &Config) -> Host {
        let backend = crate::rt::backend::resolve(config.run.backend);
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes into the struct we pass.
        unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
        let mem_available = std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| {
            let line = m.lines().find(|l| l.starts_with("MemAvailable:"))?;
            let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kb * 1024)
        });
        Host {
            nofile_soft: limit.rlim_cur,
            nofile_hard: limit.rlim_max,
            nr_open: read_u64("/proc/sys/fs/nr_open"),
            file_max: read_u64("/proc/sys/fs/file-max"),
            somaxconn: read_u64("/proc/sys/net/core/somaxconn"),
            syn_backlog: read_u64("/proc/sys/net/ipv4/tcp_max_syn_backlog"),
            mem_available,
            conntrack_max: read_u64("/proc/sys/net/netfilter/nf_conntrack_max"),
            runtime: backend
                .as_ref()
                .map(|s| format!("{} ({})", s.backend, s.why))
                .unwrap_or_else(|_| "blocked".into()),
            runtime_blocked: backend.err().map(|e| e.0),
        }
    }
}

/// Checks `host` for `clients` clients with the configured shard count.
pub fn check(host: &Host, config: &Config, clients: u64) -> Vec<Finding> {
    let mut out = Vec::new();
    descriptors(&mut out, host, config, clients);
    backlogs(&mut out, host);
    memory(&mut out, host, clients);
    conntrack(&mut out, host, config, clients);
    out.push(finding(
        "runtime backend (run.backend)",
        host.runtime.clone(),
        "a backend that starts here".to_owned(),
        host.runtime_blocked.clone(),
    ));

    out
}

/// File descriptors: per shard (each has its own table), the connection cap, and the system's.
fn descriptors(out: &mut Vec<Finding>, host: &Host, config: &Config, clients: u64) {
    let shards = config.gateway.shard_count() as u64;
    // Each shard has its own fd table; the process raises its soft limit to the hard one.
    let per_shard = clients.div_ceil(shards.max(1)) + FD_HEADROOM;
    let usable = host.nofile_hard.saturating_sub(FD_HEADROOM).max(1);
    let shards_needed = clients.div_ceil(usable);
    out.push(finding(
        "fds per shard (RLIMIT_NOFILE hard)",
        host.nofile_hard.to_string(),
        format!("{per_shard} ({clients} clients over {shards} shards)"),
        (per_shard > host.nofile_hard).then(|| {
            format!(
                "set gateway.shards >= {shards_needed} (e.g. --set gateway.shards={shards_needed}), or raise the \
                 limit: `ulimit -n {per_shard}` in the starting shell, LimitNOFILE={per_shard} in the systemd \
                 unit, and `sysctl -w fs.nr_open={}` if it is lower",
                per_shard.max(1_048_576)
            )
        }),
    ));
    let max_connections = config.gateway.max_connections as u64;
    out.push(finding(
        "gateway.max_connections",
        if max_connections == 0 {
            format!(
                "0 (auto: {} per shard, what its fd table allows)",
                host.nofile_hard.saturating_sub(FD_HEADROOM)
            )
        } else {
            max_connections.to_string()
        },
        format!(">= {clients}"),
        (max_connections > 0 && max_connections < clients).then(|| {
            format!("set gateway.max_connections >= {clients} (or 0: as many as the fds allow)")
        }),
    ));
    if let Some(nr_open) = host.nr_open {
        out.push(finding(
            "fs.nr_open",
            nr_open.to_string(),
            format!(">= {}", per_shard.min(host.nofile_hard)),
            (nr_open < per_shard.min(host.nofile_hard))
                .then(|| format!("sysctl -w fs.nr_open={per_shard}")),
        ));
    }
    if let Some(file_max) = host.file_max {
        let need = clients + 10_000;
        out.push(finding(
            "fs.file-max",
            file_max.to_string(),
            format!(">= {need}"),
            (file_max < need).then(|| format!("sysctl -w fs.file-max={}", need * 2)),
        ));
    }
}

fn backlogs(out: &mut Vec<Finding>, host: &Host) {
    // Backlogs limit how fast clients can (re)connect, not how many stay connected: advice,
    // unless so small that a reconnect storm would be refused outright.
    if let Some(somaxconn) = host.somaxconn {
        out.push(advice(
            "net.core.somaxconn (listen backlog)",
            somaxconn,
            4096,
            somaxconn < 1024,
            "sysctl -w net.core.somaxconn=65535",
        ));
    }
    if let Some(backlog) = host.syn_backlog {
        out.push(advice(
            "net.ipv4.tcp_max_syn_backlog",
            backlog,
            4096,
            backlog < 1024,
            "sysctl -w net.ipv4.tcp_max_syn_backlog=65535",
        ));
    }
}

fn memory(out: &mut Vec<Finding>, host: &Host, clients: u64) {
    if let Some(available) = host.mem_available {
        let need = clients * (KERNEL_BYTES_PER_SOCKET + USER_BYTES_PER_CLIENT);
        out.push(finding(
            "memory available",
            format!("{} MiB", available >> 20),
            format!(
                ">= {} MiB (~{} B kernel + ~{} B gateway per idle client)",
                need >> 20,
                KERNEL_BYTES_PER_SOCKET,
                USER_BYTES_PER_CLIENT
            ),
            (available < need).then(|| {
                "add memory, or spread clients over more gateway hosts (a load generator on the \
                 same host needs about as much again)"
                    .into()
            }),
        ));
    }
}

fn conntrack(out: &mut Vec<Finding>, host: &Host, config: &Config, clients: u64) {
    if let Some(max) = host.conntrack_max {
        out.push(finding(
            "net.netfilter.nf_conntrack_max",
            max.to_string(),
            format!(">= {clients} (or no conntrack on the client port)"),
            (max < clients).then(|| {
                format!(
                    "sysctl -w net.netfilter.nf_conntrack_max={}, or exempt the port: \
                     `iptables -t raw -A PREROUTING -p tcp --dport {} -j NOTRACK`",
                    clients * 2,
                    config.gateway.listen.addr.port()
                )
            }),
        ));
    }
}

/// A limit that stops clients when it is not met.
fn finding(name: &str, current: String, needed: String, fix: Option<String>) -> Finding {
    Finding {
        name: name.to_owned(),
        current,
        needed,
        blocking: fix.is_some(),
        fix,
    }
}

/// A limit whose fix is advice, blocking only when `blocking`.
fn advice(name: &str, current: u64, wanted: u64, blocking: bool, fix: &str) -> Finding {
    let fix = (current < wanted).then(|| fix.to_owned());
    Finding {
        name: name.to_owned(),
        current: current.to_string(),
        needed: format!(">= {wanted} (65535 for fast ramps)"),
        blocking: blocking && fix.is_some(),
        fix,
    }
}

/// The report printed by `gatewire tune check`; returns it and whether anything blocks.
pub fn report(findings: &[Finding], clients: u64) -> (String, bool) {
    let mut text = format!("gatewire tune check for {clients} clients\n\n");
    let mut blocked = false;
    for f in findings {
        let status = match (&f.fix, f.blocking) {
            (None, _) => "ok",
            (Some(_), true) => "BLOCKS",
            (Some(_), false) => "tune",
        };
        let _ = writeln!(
            text,
            "{status:>6}  {:<38} now {:<14} needs {}",
            f.name, f.current, f.needed
        );
        if let Some(fix) = &f.fix {
            blocked |= f.blocking;
            let _ = writeln!(text, "        fix: {fix}");
        }
    }
    if !blocked {
        let _ = writeln!(text, "\nnothing on this host blocks {clients} clients");
    }
    (text, blocked)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host() -> Host {
        Host {
            nofile_soft: 20_000,
            nofile_hard: 20_000,
            nr_open: Some(1_048_576),
            file_max: Some(2_466_186),
            somaxconn: Some(4096),
            syn_backlog: Some(4096),
            mem_available: Some(22 << 30),
            conntrack_max: None,
            runtime: "io_uring (io_uring works here)".into(),
            runtime_blocked: None,
        }
    }

    #[test]
    fn a_blocked_runtime_blocks_with_its_fix() {
        let blocked = Host {
            runtime: "blocked".into(),
            runtime_blocked: Some("the locked-memory limit is 64 KiB … ulimit -l 1024".into()),
            ..host()
        };
        let findings = check(&blocked, &Config::default(), 1000);
        let runtime = findings.last().unwrap();
        assert!(runtime.blocking);
        assert!(report(&findings, 1000).0.contains("ulimit -l 1024"));
        assert!(
            !check(&host(), &Config::default(), 1000)
                .last()
                .unwrap()
                .blocking
        );
    }

    #[test]
    fn a_20000_fd_limit_needs_51_shards_for_a_million() {
        let mut config = Config::default();
        config.gateway.shards = 2;
        let findings = check(&host(), &config, 1_000_000);
        let fds = &findings[0];
        let fix = fds.fix.as_deref().expect("blocks");
        assert!(fix.contains("gateway.shards >= 51"), "{fix}");
        config.gateway.shards = 64;
        assert!(check(&host(), &config, 1_000_000)[0].fix.is_none());
    }

    #[test]
    fn a_connection_cap_below_the_target_blocks_with_its_key() {
        let mut config = Config::default();
        config.gateway.shards = 64;
        config.gateway.max_connections = 500_000;
        let findings = check(&host(), &config, 1_000_000);
        let cap = findings
            .iter()
            .find(|f| f.name == "gateway.max_connections")
            .unwrap();
        assert!(
            cap.fix
                .as_deref()
                .unwrap()
                .contains("gateway.max_connections >= 1000000")
        );
        config.gateway.max_connections = 0;
        let findings = check(&host(), &config, 1_000_000);
        assert!(
            findings
                .iter()
                .all(|f| f.name != "gateway.max_connections" || !f.blocking)
        );
    }

    #[test]
    fn memory_is_estimated_from_the_measured_idle_client() {
        let small = Host {
            mem_available: Some(1 << 30),
            ..host()
        };
        let findings = check(&small, &Config::default(), 1_000_000);
        let memory = findings
            .iter()
            .find(|f| f.name == "memory available")
            .unwrap();
        // 1M × (4,100 + 600) B = 4,482 MiB, not the 5,817 MiB a 2 KB estimate asked for.
        assert!(
            memory.needed.starts_with(">= 4482 MiB"),
            "{}",
            memory.needed
        );
        assert!(memory.needed.contains("600 B gateway"), "{}", memory.needed);
    }

    #[test]
    fn small_counts_pass_on_a_default_host() {
        let mut config = Config::default();
        config.gateway.shards = 2;
        let (text, blocked) = report(&check(&host(), &config, 10_000), 10_000);
        assert!(!blocked, "{text}");
    }

    #[test]
    fn low_sysctls_get_their_exact_fix() {
        let mut h = host();
        h.somaxconn = Some(128);
        h.file_max = Some(50_000);
        h.conntrack_max = Some(65_536);
        let config = Config::default();
        let findings = check(&h, &config, 100_000);
        let fix = |name: &str| {
            findings
                .iter()
                .find(|f| f.name.starts_with(name))
                .and_then(|f| f.fix.clone())
                .unwrap_or_default()
        };
        assert_eq!(
            fix("net.core.somaxconn"),
            "sysctl -w net.core.somaxconn=65535"
        );
        let somaxconn = findings
            .iter()
            .find(|f| f.name.starts_with("net.core.somaxconn"))
            .unwrap();
        assert!(
            somaxconn.blocking,
            "a backlog of 128 refuses reconnect storms"
        );
        assert_eq!(fix("fs.file-max"), "sysctl -w fs.file-max=220000");
        assert!(fix("net.netfilter").contains("nf_conntrack_max=200000"));
    }
}
