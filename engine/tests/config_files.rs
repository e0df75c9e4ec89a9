//! The committed example configuration is the defaults, complete: `config init` writes it, and
//! `config check` of it prints exactly what `config check` prints with no file at all.

use std::path::Path;
use std::process::{Command, Output};

fn gatewire(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gatewire"))
        .args(args)
        .current_dir(dir)
        .env_remove("GATEWIRE_LOG")
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    assert!(o.status.success(), "{o:?}");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `config check` output without its origin comments: the effective values only.
fn values(check: &str) -> String {
    check
        .lines()
        .map(|l| l.rsplit_once(" # ").map_or(l, |(v, _)| v).trim_end())
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_example_configuration_is_the_defaults_with_every_key() {
    let example = include_str!("../../gatewire.example.toml");
    let dir = tempfile::tempdir().unwrap();
    // Defaults: no file.
    let defaults = text(&gatewire(dir.path(), &["config", "check"]));
    // `config init` writes the example; checking it gives the same effective configuration.
    text(&gatewire(dir.path(), &["config", "init"]));
    let written = std::fs::read_to_string(dir.path().join("gatewire.toml")).unwrap();
    assert_eq!(written, example);
    assert_eq!(text(&gatewire(dir.path(), &["config", "example"])), example);
    let from_example = text(&gatewire(dir.path(), &["config", "check"]));
    assert_eq!(values(&from_example), values(&defaults));
    // Where each value came from: the example's lines, or the defaults.
    assert!(from_example.contains("# gatewire.toml:"), "{from_example}");
    assert!(defaults.contains("start_port = 2900") && defaults.contains("# default"));
    // Every key the defaults have is in the example (set, or commented out when derived).
    let table: toml::Table = values(&defaults).parse().unwrap();
    for (section, keys) in &table {
        assert!(
            example.contains(&format!("[{section}]")),
            "[{section}] missing"
        );
        for (key, value) in keys.as_table().unwrap() {
            // A sub-table (`[worker.http]`) has its own header and keys.
            let (names, what): (Vec<&String>, String) = match value.as_table() {
                Some(sub) => {
                    assert!(
                        example.contains(&format!("[{section}.{key}]")),
                        "[{section}.{key}] missing"
                    );
                    (sub.keys().collect(), format!("{section}.{key}"))
                }
                None => (vec![key], section.clone()),
            };
            for name in names {
                let set = format!("\n{name} = ");
                let commented = format!("\n# {name} = ");
                assert!(
                    example.contains(&set) || example.contains(&commented),
                    "{what}.{name} is not in gatewire.example.toml"
                );
            }
        }
    }
    // An existing file is kept.
    let again = gatewire(dir.path(), &["config", "init"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("gatewire.toml"));
}

/// The deployment examples in deploy/ are valid configurations.
#[test]
fn the_deployment_examples_pass_config_check() {
    let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy");
    for name in [
        "register+gateway.toml",
        "worker.toml",
        "gateway-only.toml",
        "container/gatewire.toml",
    ] {
        let out = gatewire(&deploy, &["config", "check", "-c", name]);
        assert!(out.status.success(), "{name}: {out:?}");
    }
    let unit = std::fs::read_to_string(deploy.join("gatewire.service")).unwrap();
    assert!(unit.contains("PIDFile=/run/gatewire/default/gatewire.pid"));
}
