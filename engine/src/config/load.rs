//! Loading a configuration, in four steps: the file's TOML, then the `GATEWIRE_*` environment,
//! then `--set` overrides (each remembered with where it came from), then the typed schema,
//! derived values and [`Config::validate`]. Errors name the key and where its value came from.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use super::Config;
use super::schema::{MESSAGE_PACKET_OVERHEAD, Role};

/// A configuration that cannot be used; the message names the key and the file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{origin}: {message}")]
    Invalid { origin: String, message: String },
}

/// Loads `path` (or the defaults when `None`), then applies `GATEWIRE_<SECTION>_<KEY>`
/// environment variables, then `overrides` (`section.key=value`, the command line wins).
pub fn load(path: Option<&Path>, overrides: &[String]) -> Result<Config, ConfigError> {
    let from_env: Vec<String> = std::env::vars()
        .filter_map(|(name, value)| env_override(&name, &value))
        .collect();
    load_with(path, &from_env, overrides)
}

/// Keys whose values are never shown (`config check`, error messages).
const SECRET_KEYS: [&str; 8] = [
    "worker.http.api_key",
    "gateway.auth.secret",
    "register.secret_key",
    "gateway.secret_key",
    "worker.secret_key",
    "store.password",
    "api.api_key",
    "api.secret_key",
];

/// `value` of `key` as it may be shown: secrets masked, a URL's password masked.
fn shown_value(key: &str, value: &str) -> String {
    if SECRET_KEYS.contains(&key) {
        "********".to_owned()
    } else if key == "store.redis_url" {
        url_password_masked(value)
    } else {
        value.to_owned()
    }
}

/// `scheme://user:password@host/…` with the password replaced by `********`.
pub(super) fn url_password_masked(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_owned();
    };
    match rest[..at].split_once(':') {
        Some((user, password)) if !password.is_empty() => {
            format!("{scheme}://{user}:********{}", &rest[at..])
        }
        _ => url.to_owned(),
    }
}

/// The sections of `gatewire.toml`.
const SECTIONS: [&str; 7] = [
    "run", "register", "gateway", "worker", "metrics", "store", "api",
];

/// `GATEWIRE_GATEWAY_START_PORT=3000` → `gateway.start_port=3000`. Every `GATEWIRE_<A>_<B>`
/// is configuration, so a misspelled section (`GATEWIRE_GATWAY_SHARDS`) is refused like a
/// misspelled key; only `GATEWIRE_LOG` (the log filter) is not.
fn env_override(name: &str, value: &str) -> Option<String> {
    let rest = name.strip_prefix("GATEWIRE_")?;
    let (section, key) = rest.split_once('_')?;
    Some(format!(
        "{}.{}={value}",
        section.to_ascii_lowercase(),
        key.to_ascii_lowercase()
    ))
}

/// The file as read, for the steps after parsing (origins, error places).
struct Source<'a> {
    path: Option<&'a Path>,
    text: String,
    /// The file, or "built-in defaults"; "… with overrides" once some were applied.
    origin: String,
    /// Where each overridden key's value came from (`--set k=v`, an environment variable).
    overridden: HashMap<String, String>,
}

impl Source<'_> {
    fn invalid(&self, message: String) -> ConfigError {
        invalid(&self.origin, message)
    }

    /// Where `key`'s value came from: an override, its line in the file, or the file.
    fn place_of(&self, key: &str) -> Option<String> {
        self.overridden.get(key).cloned().or_else(|| {
            self.path.map(|p| {
                key_location(p, &self.text, key).unwrap_or_else(|| p.display().to_string())
            })
        })
    }
}

fn invalid(origin: &str, message: String) -> ConfigError {
    ConfigError::Invalid {
        origin: origin.to_owned(),
        message,
    }
}

/// The file's TOML, then the environment's and the command line's overrides, then the typed
/// configuration with its derived values, checked.
pub(super) fn load_with(
    path: Option<&Path>,
    from_env: &[String],
    overrides: &[String],
) -> Result<Config, ConfigError> {
    let (mut table, mut source) = parse(path)?;
    apply_overrides(&mut table, &mut source, from_env, overrides)?;
    check_name(&table, &source)?;
    let packet_sizes_set = (
        is_set(&table, "gateway", "max_packet_size"),
        is_set(&table, "worker", "max_packet_size"),
    );
    let origins = origins(&table, &source);
    let mut config = typed(table, &source)?;
    config.origins = origins;
    derive(&mut config, path, packet_sizes_set);
    config
        .validate()
        .map_err(|message| source.invalid(message))?;
    Ok(config)
}

/// Reads and parses the file (the defaults alone without one).
fn parse(path: Option<&Path>) -> Result<(toml::Table, Source<'_>), ConfigError> {
    let (text, origin) = match path {
        Some(p) => (
            std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                path: p.to_owned(),
                source,
            })?,
            p.display().to_string(),
        ),
        None => (String::new(), "built-in defaults".to_owned()),
    };
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| invalid(&origin, e.to_string()))?;
    let source = Source {
        path,
        text,
        origin,
        overridden: HashMap::new(),
    };
    Ok((table, source))
}

/// Applies `GATEWIRE_*` overrides, then `--set` ones (the command line wins), each recorded
/// with where it came from.
fn apply_overrides(
    table: &mut toml::Table,
    source: &mut Source<'_>,
    from_env: &[String],
    overrides: &[String],
) -> Result<(), ConfigError> {
    let sourced = from_env
        .iter()
        .map(|o| ("environment (GATEWIRE_*)", o))
        .chain(overrides.iter().map(|o| ("--set", o)));
    for (from, item) in sourced {
        let (key, value) = item
            .split_once('=')
            .ok_or_else(|| invalid(from, format!("{item:?} is not section.key=value")))?;
        let (section, field) = key
            .split_once('.')
            .ok_or_else(|| invalid(from, format!("{key:?} is not section.key")))?;
        let described = if from == "--set" {
            format!("--set {key}={}", shown_value(key, value))
        } else {
            format!(
                "environment variable GATEWIRE_{}_{}",
                section.to_ascii_uppercase(),
                field.to_ascii_uppercase()
            )
        };
        if !SECTIONS.contains(&section) {
            return Err(invalid(
                &described,
                format!(
                    "unknown section {section:?} (sections: {})",
                    SECTIONS.join(", ")
                ),
            ));
        }
        source.overridden.insert(key.to_owned(), described.clone());
        // A value that parses as TOML keeps its type (numbers, arrays); anything else is a string.
        let value = format!("v = {value}")
            .parse::<toml::Table>()
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(value.to_owned()));
        // `worker.http.url`: the key of a sub-table (`[worker.http]`).
        let mut names: Vec<&str> = std::iter::once(section).chain(field.split('.')).collect();
        let last = names.pop().unwrap_or(field);
        let mut place = &mut *table;
        for name in names {
            let entry = place
                .entry(name.to_owned())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            place = match entry {
                toml::Value::Table(t) => t,
                _ => {
                    return Err(invalid(
                        &described,
                        format!("{key}: {name} is not a section"),
                    ));
                }
            };
        }
        place.insert(last.to_owned(), value);
    }
    if !source.overridden.is_empty() {
        source.origin = format!("{} with overrides (GATEWIRE_* / --set)", source.origin);
    }
    Ok(())
}

fn is_set(table: &toml::Table, section: &str, key: &str) -> bool {
    table
        .get(section)
        .and_then(|s| s.as_table())
        .is_some_and(|t| t.contains_key(key))
}

/// `run.name` is one path component (it names a directory).
fn check_name(table: &toml::Table, source: &Source<'_>) -> Result<(), ConfigError> {
    let name = table
        .get("run")
        .and_then(|r| r.get("name"))
        .and_then(|n| n.as_str())
        .unwrap_or("default");
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return Err(source.invalid(format!(
            "run.name = {name:?}: a deployment name is one path component, like \"chat\""
        )));
    }
    Ok(())
}

/// Every key set, by its full name (`worker.http.url` for a sub-table's), with where its value
/// came from.
fn origins(table: &toml::Table, source: &Source<'_>) -> BTreeMap<String, String> {
    let mut origins = BTreeMap::new();
    let mut keys: Vec<(String, &toml::Value)> = table.iter().map(|(k, v)| (k.clone(), v)).collect();
    while let Some((name, value)) = keys.pop() {
        match value.as_table() {
            Some(t) => keys.extend(t.iter().map(|(k, v)| (format!("{name}.{k}"), v))),
            None if name.contains('.') => {
                if let Some(origin) = source.place_of(&name) {
                    origins.insert(name, origin);
                }
            }
            None => {}
        }
    }
    origins
}

/// The table as the typed schema; an error names the key in full and where its value came
/// from.
fn typed(table: toml::Table, source: &Source<'_>) -> Result<Config, ConfigError> {
    toml::Value::Table(table)
        .try_into()
        .map_err(|e: toml::de::Error| {
            let raw = e.to_string();
            let (detail, key) = match raw.trim_end().rsplit_once("\nin `") {
                Some((detail, key)) => (detail.trim(), key.trim_end_matches('`')),
                None => return source.invalid(raw.trim_end().to_owned()),
            };
            // An unknown key: name it in full, with the keys its section has.
            let unknown = detail
                .strip_prefix("unknown field `")
                .and_then(|rest| rest.split_once('`'))
                .map(|(field, rest)| (format!("{key}.{field}"), rest));
            let (key, detail) = match &unknown {
                Some((full, rest)) => {
                    let known = rest
                        .trim_start_matches(", expected one of ")
                        .replace('`', "");
                    (
                        full.as_str(),
                        format!("unknown key (the section has: {known})"),
                    )
                }
                None => (key, detail.to_owned()),
            };
            let place = source
                .overridden
                .get(key)
                .cloned()
                .or_else(|| source.path.and_then(|p| key_location(p, &source.text, key)))
                .unwrap_or_else(|| source.origin.clone());
            invalid(&place, in_words(key, &detail))
        })
}

/// Values that follow from others: a relative run directory is the file's, unset packet bounds
/// follow the message bound, an API listener adds the api role to the default roles.
fn derive(config: &mut Config, path: Option<&Path>, packet_sizes_set: (bool, bool)) {
    if let (Some(dir), Some(file)) = (&config.run.dir, path)
        && dir.is_relative()
    {
        let base = file.parent().filter(|p| !p.as_os_str().is_empty());
        let base = base.map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        config.run.dir = Some(std::path::absolute(base.join(dir)).unwrap_or(base.join(dir)));
    }
    let derived = config.gateway.max_message_size + MESSAGE_PACKET_OVERHEAD;
    for (set, section, bound) in [
        (
            packet_sizes_set.0,
            "gateway",
            &mut config.gateway.max_packet_size,
        ),
        (
            packet_sizes_set.1,
            "worker",
            &mut config.worker.max_packet_size,
        ),
    ] {
        if !set {
            *bound = (*bound).max(derived);
            config.origins.insert(
                format!("{section}.max_packet_size"),
                "derived: gateway.max_message_size + 65564".into(),
            );
        }
    }
    if config.api.listen.is_some()
        && !config.origins.contains_key("run.roles")
        && !config.run.roles.contains(&Role::Api)
    {
        config.run.roles.push(Role::Api);
        config
            .origins
            .insert("run.roles".into(), "derived: api.listen is set".into());
    }
}

/// `FILE:LINE` of `section.key` in a configuration file's text, when it is set there.
fn key_location(file: &Path, text: &str, key: &str) -> Option<String> {
    let (section, field) = key.rsplit_once('.')?;
    let mut current = "";
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = name.trim();
        } else if current == section
            && line
                .strip_prefix(field)
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        {
            return Some(format!("{}:{}", file.display(), n + 1));
        }
    }
    None
}

/// A value error in words: "gateway.start_port must be a port number (1-65535), got 70000"
/// rather than the parser's "invalid value: integer `70000`, expected u16".
fn in_words(key: &str, detail: &str) -> String {
    let expected = detail.rsplit_once("expected ").map(|(_, e)| e.trim());
    let got = detail
        .split_once('`')
        .and_then(|(_, rest)| rest.split_once('`'))
        .map(|(v, _)| v.to_owned())
        .or_else(|| {
            let (_, rest) = detail.split_once("invalid type: ")?;
            Some(rest.split_once(", expected")?.0.to_owned())
        });
    let wanted = match expected {
        Some("u16") if key.ends_with("port") => "a port number (1-65535)",
        Some("u16") => "a whole number from 0 to 65535",
        Some("u32") => "a whole number from 0 to 4294967295",
        Some("u64" | "usize") => "a whole number (0 or more)",
        Some("f64") => "a number",
        Some("a boolean") => "true or false",
        Some("a string") => "text in quotes",
        _ => return format!("{key}: {detail}"),
    };
    match got {
        Some(got) => format!("{key} must be {wanted}, got {got}"),
        None => format!("{key} must be {wanted}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_masked_in_values_and_in_where_they_came_from() {
        let c = load_with(
            None,
            &[],
            &[
                "store.password=hunter2".into(),
                "store.redis_url=redis://app:sekrit@10.0.0.5:6379/0".into(),
            ],
        )
        .unwrap();
        let shown =
            format!("{:?}", c.origins) + &toml::to_string(&c.with_secrets_masked()).unwrap();
        assert!(
            !shown.contains("hunter2") && !shown.contains("sekrit"),
            "{shown}"
        );
        assert!(
            shown.contains("redis://app:********@10.0.0.5:6379/0"),
            "{shown}"
        );
        assert_eq!(
            url_password_masked("redis://127.0.0.1:6379"),
            "redis://127.0.0.1:6379"
        );
        assert_eq!(
            url_password_masked("redis://:pw@h/0"),
            "redis://:********@h/0"
        );
    }

    #[test]
    fn environment_names_map_to_keys() {
        assert_eq!(
            env_override("GATEWIRE_GATEWAY_START_PORT", "3000").as_deref(),
            Some("gateway.start_port=3000")
        );
        assert_eq!(env_override("GATEWIRE_LOG", "debug"), None);
        assert_eq!(env_override("PATH", "/bin"), None);
        // A misspelled section is configuration too, and refused naming the variable.
        let typo = env_override("GATEWIRE_GATWAY_SHARDS", "3").unwrap();
        let err = load_with(None, &[typo], &[]).unwrap_err().to_string();
        assert!(
            err.contains("environment variable GATEWIRE_GATWAY_SHARDS")
                && err.contains("\"gatway\""),
            "{err}"
        );
        let err = load_with(None, &[], &["gatway.shards=3".into()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("--set gatway.shards=3"), "{err}");
    }

    #[test]
    fn each_role_gets_its_log_level() {
        let c = load_with(
            None,
            &[],
            &["run.log=warn".into(), "gateway.log=debug".into()],
        )
        .unwrap();
        assert_eq!(c.log_filter(&[Role::Gateway]), "debug");
        assert_eq!(c.log_filter(&[Role::Worker]), "warn");
        assert_eq!(
            c.log_filter(&[Role::Register, Role::Gateway]),
            "warn,gatewire::gateway=debug"
        );
        let bad = load_with(None, &[], &["worker.log=lots[".into()]).unwrap_err();
        assert!(bad.to_string().contains("worker.log"), "{bad}");
    }

    #[test]
    fn the_command_line_wins_over_the_environment() {
        let env = ["gateway.shards=3".to_owned()];
        let cli = ["gateway.shards=5".to_owned()];
        assert_eq!(load_with(None, &env, &cli).unwrap().gateway.shards, 5);
        assert_eq!(load_with(None, &env, &[]).unwrap().gateway.shards, 3);
        let bad = ["gateway.shards=many".to_owned()];
        let err = load_with(None, &bad, &[]).unwrap_err().to_string();
        assert!(err.contains("gateway.shards"), "{err}");
    }
}
