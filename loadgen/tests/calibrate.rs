//! loadgen end to end against its own reference server (`--calibrate`, loopback): every
//! delivery of a broadcast and every echo is counted once, none lost, and every client answers
//! the liveness ping at the end. The receive path (one epoll thread per load thread, frames
//! scanned in place) is what these runs go through.

use std::process::Command;

#[path = "../../engine/tests/common/seccomp.rs"]
mod seccomp;

/// Runs loadgen with `args` (split at whitespace) and returns its JSON report.
fn loadgen(args: &str) -> String {
    loadgen_with(args, |_| {}).0
}

/// Runs loadgen with `args` on a command `prepare`d first; its JSON report and its stderr.
fn loadgen_with(args: &str, prepare: impl FnOnce(&mut Command)) -> (String, String) {
    let args: Vec<&str> = args.split_whitespace().collect();
    let dir = std::env::temp_dir().join(format!("loadgen-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let json = dir.join(format!("{}.json", args.join("_").replace(['-', ' '], "")));
    let mut command = Command::new(env!("CARGO_BIN_EXE_loadgen"));
    command.args(&args).arg("--json").arg(&json);
    prepare(&mut command);
    let out = command.output().expect("loadgen runs");
    assert!(
        out.status.success(),
        "loadgen {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let report = std::fs::read_to_string(&json).expect("report written");
    (report, String::from_utf8_lossy(&out.stderr).into_owned())
}

/// The number after `"name":` in the one-line JSON report.
fn field(json: &str, name: &str) -> f64 {
    let at = json
        .find(&format!("\"{name}\":"))
        .unwrap_or_else(|| panic!("no {name} in {json}"));
    let rest = &json[at + name.len() + 3..];
    let end = rest
        .find(|c: char| c != '.' && !c.is_ascii_digit())
        .unwrap_or(rest.len());
    rest[..end].parse().expect("a number")
}

/// Every expected delivery arrived once (at least `at_least` of them were expected).
fn assert_all_delivered(json: &str, at_least: f64) {
    let expected = field(json, "deliveries_expected");
    assert!(expected >= at_least, "{json}");
    assert_eq!(field(json, "deliveries_received"), expected, "{json}");
    assert_eq!(field(json, "deliveries_lost"), 0.0, "{json}");
    assert_eq!(field(json, "deliveries_duplicated"), 0.0, "{json}");
}

#[test]
fn a_broadcast_is_counted_once_per_client_and_every_client_answers_the_ping() {
    let json = loadgen(
        "--calibrate --clients 300 --threads 3 --scenario broadcast --rate 20 --duration 1 \
         --ping-at-end",
    );
    assert_eq!(field(&json, "connected"), 300.0, "{json}");
    assert_all_delivered(&json, 300.0 * 10.0);
    assert_eq!(field(&json, "pinged"), 300.0, "{json}");
    assert_eq!(field(&json, "alive"), 300.0, "{json}");
    assert_eq!(field(&json, "disconnected"), 0.0, "{json}");
}

#[test]
fn large_messages_split_across_reads_are_counted_once() {
    // 200 KB messages arrive in many reads each; the marker is in the first.
    let json = loadgen(
        "--calibrate --clients 20 --threads 2 --scenario broadcast --rate 10 --payload 200000 \
         --duration 1",
    );
    assert_all_delivered(&json, 20.0 * 5.0);
}

#[test]
fn every_echo_comes_back_to_its_sender() {
    let json = loadgen("--calibrate --clients 200 --scenario echo --rate 400 --duration 1");
    assert!(field(&json, "messages_sent") >= 300.0, "{json}");
    // An echo's audience is its sender: expected deliveries = messages sent.
    assert_eq!(
        field(&json, "deliveries_expected"),
        field(&json, "messages_sent"),
        "{json}"
    );
    assert_all_delivered(&json, 300.0);
}

#[test]
fn every_backend_counts_a_broadcast_and_the_pings_in_full() {
    for backend in ["io_uring", "epoll", "glommio"] {
        let (json, stderr) = loadgen_with(
            &format!(
                "--calibrate --clients 200 --threads 2 --scenario broadcast --rate 20 \
                 --duration 1 --ping-at-end --backend {backend}"
            ),
            |_| {},
        );
        assert!(
            stderr.contains(&format!("runtime backend {backend} ")),
            "{backend}: {stderr}"
        );
        assert_all_delivered(&json, 200.0 * 10.0);
        assert_eq!(field(&json, "alive"), 200.0, "{backend}: {json}");
    }
}

#[test]
fn where_a_seccomp_filter_refuses_io_uring_loadgen_runs_on_epoll_and_says_why() {
    let (json, stderr) = loadgen_with(
        "--calibrate --clients 200 --threads 2 --scenario echo --rate 400 --duration 1",
        |command| {
            seccomp::block_io_uring(command);
        },
    );
    assert!(
        stderr.contains("runtime backend epoll") && stderr.contains("seccomp"),
        "{stderr}"
    );
    assert_all_delivered(&json, 300.0);
}
