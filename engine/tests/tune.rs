//! `gatewire tune check` on this machine's real limits.

use std::process::Command;

fn tune(clients: u64, shards: u32) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_gatewire"))
        .args(["tune", "check", "--clients", &clients.to_string()])
        .args(["--set", &format!("gateway.shards={shards}")])
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn hard_fd_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    limit.rlim_max
}

#[test]
fn a_million_clients_on_two_shards_is_refused_with_the_shard_count_that_fits() {
    let hard = hard_fd_limit();
    let (code, report) = tune(1_000_000, 2);
    if 1_000_000 / 2 + 256 > hard {
        let needed = 1_000_000u64.div_ceil(hard - 256);
        assert_eq!(code, 1, "{report}");
        assert!(
            report.contains(&format!("gateway.shards >= {needed}")),
            "{report}"
        );
        // With that many shards the fd limit no longer blocks.
        let (_, report) = tune(1_000_000, needed as u32);
        let fds = report
            .lines()
            .find(|l| l.contains("fds per shard"))
            .unwrap();
        assert!(fds.trim_start().starts_with("ok"), "{report}");
    }
}

#[test]
fn every_reading_is_reported_with_its_current_value() {
    let (_, report) = tune(1000, 2);
    for name in [
        "fds per shard",
        "fs.file-max",
        "net.core.somaxconn",
        "memory available",
    ] {
        assert!(report.contains(name), "{name} missing from:\n{report}");
    }
    let file_max = std::fs::read_to_string("/proc/sys/fs/file-max").unwrap();
    assert!(report.contains(file_max.trim()), "{report}");
}
