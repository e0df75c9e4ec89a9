//! Bad configurations stop `gatewire` with a message naming the key and the file.

use std::process::Command;

fn check(toml: &str, extra: &[&str]) -> (i32, String) {
    let args: Vec<&str> = ["config", "check"]
        .into_iter()
        .chain(extra.iter().copied())
        .collect();
    gatewire(toml, &args, &[])
}

#[test]
fn unknown_keys_name_the_key_and_the_file() {
    let (code, message) = check("[gateway]\nshardz = 4\n", &[]);
    assert_eq!(code, 2);
    assert!(message.contains("gw.toml"), "{message}");
    assert!(
        message.contains("shardz") && message.contains("gateway"),
        "{message}"
    );
}

#[test]
fn bad_values_name_the_key() {
    for (toml, key) in [
        ("[gateway]\nstart_port = \"abc\"\n", "gateway.start_port"),
        (
            "[gateway]\nlisten = \"http://127.0.0.1:1\"\n",
            "gateway.listen",
        ),
        ("[register]\nlisten = \"nowhere\"\n", "register.listen"),
        (
            "[gateway]\nslow_client_policy = \"panic\"\n",
            "gateway.slow_client_policy",
        ),
        (
            "[gateway]\nlisten = \"wss://127.0.0.1:1\"\n",
            "gateway.tls_cert",
        ),
        (
            "[gateway]\nchat_page = true\nstatic_dir = \"public\"\n",
            "gateway.chat_page",
        ),
        ("[api]\nlisten = \"0.0.0.0:8080\"\n", "api.api_key"),
        ("[run]\nroles = [\"api\"]\n", "api.listen"),
        ("[run]\nroles = [\"apis\"]\n", "run.roles"),
        (
            "[gateway]\nmax_pending_output_bytes = 1000\n",
            "gateway.max_pending_output_bytes",
        ),
        (
            "[gateway.auth]\nsecret = \"s\"\nalgorithm = \"RS256\"\n",
            "gateway.auth.public_key",
        ),
        (
            "[gateway.auth]\nsecret = \"s\"\nalgorithm = \"none\"\n",
            "gateway.auth.algorithm",
        ),
        (
            "[gateway.auth]\npublic_key = \"/nonexistent/key.pem\"\n",
            "gateway.auth.public_key",
        ),
        (
            "[gateway.auth]\nsecret = \"s\"\nexpired_close_code = 1000\n",
            "gateway.auth.expired_close_code",
        ),
        (
            "[gateway]\nlisten = \"text://127.0.0.1:1\"\n[gateway.auth]\nsecret = \"s\"\n",
            "gateway.auth",
        ),
    ] {
        let (code, message) = check(toml, &[]);
        assert_eq!(code, 2, "{toml}");
        assert!(message.contains(key), "{toml}: {message}");
        assert!(message.contains("gw.toml"), "{message}");
    }
}

#[test]
fn a_sub_tables_keys_are_set_and_shown_with_their_origin() {
    let (code, message) = check(
        "[worker]\napp = \"http\"\n[worker.http]\nurl = \"http://127.0.0.1:9/a\"\n",
        &["--set", "worker.http.timeout=2.5"],
    );
    assert_eq!(code, 0, "{message}");
    let line = |key: &str| message.lines().find(|l| l.starts_with(key)).unwrap_or("");
    assert!(line("url = ").contains("gw.toml:4"), "{message}");
    assert!(
        line("timeout = ").contains("--set worker.http.timeout=2.5"),
        "{message}"
    );
    let (code, message) = check("", &["--set", "worker.http.nope=1"]);
    assert_eq!(code, 2);
    assert!(
        message.contains("worker.http.nope: unknown key"),
        "{message}"
    );
    let (code, message) = check("[worker]\napp = \"http\"\n", &[]);
    assert_eq!(code, 2);
    assert!(message.contains("worker.http.url"), "{message}");
}

#[test]
fn set_overrides_one_key() {
    let (code, message) = check("[gateway]\nshards = 2\n", &["--set", "gateway.shards=5"]);
    assert_eq!(code, 0, "{message}");
    assert!(message.contains("shards = 5"), "{message}");
    let (code, message) = check("", &["--set", "gateway.shards=many"]);
    assert_eq!(code, 2);
    assert!(message.contains("gateway.shards"), "{message}");
}

#[test]
fn a_taken_port_stops_start_up() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let run = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_gatewire"))
        .args(["start", "--role", "register", "--set"])
        .arg(format!("run.dir={:?}", run.path()))
        .arg("--set")
        .arg(format!("register.listen=\"127.0.0.1:{port}\""))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&port.to_string()), "{stderr}");
}

/// Every error names where the bad value came from — the file and line, the environment
/// variable, the `--set` flag — and says in words what the key takes.
#[test]
fn errors_name_their_source_and_say_what_the_key_takes() {
    let (code, message) = check("[gateway]\nshards = 2\nstart_port = 70000\n", &[]);
    assert_eq!(code, 2);
    assert!(message.contains("gw.toml:3"), "{message}");
    assert!(
        message.contains("gateway.start_port must be a port number (1-65535), got 70000"),
        "{message}"
    );
    let (code, message) = check("", &["--set", "gateway.shards=many"]);
    assert_eq!(code, 2);
    assert!(
        message.contains("--set gateway.shards=many") && message.contains("must be a whole number"),
        "{message}"
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("gw.toml"), "").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_gatewire"))
        .args(["config", "check", "-c"])
        .arg(dir.path().join("gw.toml"))
        .env("GATEWIRE_GATEWAY_PARK_AFTER", "soon")
        .output()
        .unwrap();
    let message = String::from_utf8_lossy(&out.stderr);
    assert!(
        message.contains("environment variable GATEWIRE_GATEWAY_PARK_AFTER")
            && message.contains("gateway.park_after must be a number"),
        "{message}"
    );
    let (_, message) = check("[gateway]\nshards = 2\nshardz = 4\n", &[]);
    assert!(
        message.contains("gw.toml:3") && message.contains("gateway.shardz: unknown key"),
        "{message}"
    );
}

/// `config check` says where each effective value came from.
#[test]
fn config_check_shows_where_each_value_came_from() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("gw.toml"), "[gateway]\nshards = 2\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_gatewire"))
        .args(["config", "check", "-c"])
        .arg(dir.path().join("gw.toml"))
        .args(["--set", "worker.count=4"])
        .env("GATEWIRE_GATEWAY_PARK_AFTER", "3")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let line = |key: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("{key} = ")))
            .unwrap_or_else(|| panic!("{key} in {text}"))
            .to_owned()
    };
    assert!(line("shards").ends_with("gw.toml:2"), "{text}");
    assert!(line("park_after").ends_with("# environment variable GATEWIRE_GATEWAY_PARK_AFTER"));
    assert!(line("count").ends_with("# --set worker.count=4"));
    assert!(line("start_port").ends_with("# default"));
}

/// A CPU list naming a CPU outside the process's affinity mask is refused at load, naming the
/// key, instead of failing later as "shard 0: ..." from the runtime.
#[test]
fn cpu_lists_outside_the_affinity_mask_name_the_key() {
    for key in ["gateway.cpus", "worker.cpus"] {
        let (code, message) = check("", &["--set", &format!("{key}=[0, 4095]")]);
        assert_eq!(code, 2, "{message}");
        assert!(
            message.contains(key) && message.contains("CPU 4095"),
            "{message}"
        );
    }
    let (code, message) = check("[gateway]\ncpus = [0]\n[worker]\ncpus = [0]\n", &[]);
    assert_eq!(code, 0, "{message}");
}

/// Runs `gatewire ARGS -c <file with toml>` with `env` set; exit code and everything printed.
fn gatewire(toml: &str, args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gw.toml");
    std::fs::write(&path, toml).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_gatewire"))
        .args(args)
        .arg("-c")
        .arg(&path)
        .envs(env.iter().copied())
        .env("GATEWIRE_LOG", "error")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout),
    )
}

#[test]
fn a_misspelled_section_in_the_environment_is_refused_naming_the_variable() {
    let (code, message) = gatewire("", &["config", "check"], &[("GATEWIRE_GATWAY_SHARDS", "3")]);
    assert_eq!(code, 2, "{message}");
    assert!(message.contains("GATEWIRE_GATWAY_SHARDS"), "{message}");
    let (code, message) = gatewire("", &["config", "check", "--set", "gatway.shards=3"], &[]);
    assert_eq!(code, 2, "{message}");
    assert!(message.contains("--set gatway.shards=3"), "{message}");
}

#[test]
fn config_check_never_prints_a_secret_given_on_the_command_line() {
    let (code, message) = gatewire(
        "",
        &[
            "config",
            "check",
            "--set",
            "store.password=hunter2",
            "--set",
            "store.redis_url=redis://app:sekrit@127.0.0.1:6379/0",
        ],
        &[],
    );
    assert_eq!(code, 0, "{message}");
    assert!(
        !message.contains("hunter2") && !message.contains("sekrit"),
        "{message}"
    );
}

#[test]
fn send_and_query_with_no_register_to_reach_exit_3_naming_it() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let toml = format!("[worker]\nregister_address = \"127.0.0.1:{port}\"\n");
    for args in [&["query", "client-count"][..], &["send", "hello"][..]] {
        let (code, message) = gatewire(&toml, args, &[]);
        assert_eq!(code, 3, "{args:?}: {message}");
        assert!(
            message.contains(&format!("127.0.0.1:{port}")),
            "{args:?}: {message}"
        );
    }
}
