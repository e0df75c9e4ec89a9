//! The `gatewire` command line: `start` (supervised, `-d` in the background, or
//! `--single-process`), `stop`, `restart`, `reload`, `status`, `connections` (through the
//! supervisor's control socket), `config check`, `send`, `query`, `tune check`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use tracing::info;

use crate::config::{self, AppName, Config, Role};
use crate::process::Running;
use crate::supervisor::ControlRequest;
use crate::system;
use crate::worker::{Events, Message};

/// gatewire: a GatewayWorker-compatible long-connection gateway.
#[derive(Debug, Parser)]
#[command(name = "gatewire", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// `gatewire start`'s arguments.
#[derive(Debug, Args)]
struct StartArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Roles to run, e.g. `register,gateway` (default: `[run] roles`).
    #[arg(long, value_delimiter = ',')]
    role: Vec<Role>,
    /// Built-in app for the worker role (default: `[worker] app`).
    #[arg(long, value_enum)]
    app: Option<AppName>,
    /// Run in the background (pid, log and control socket in the run directory).
    #[arg(short = 'd', long)]
    daemon: bool,
    /// Run every role in this one process: no supervisor, no restarts, no control socket
    /// (benchmarks, debugging, containers that supervise for you).
    #[arg(long, conflicts_with = "daemon")]
    single_process: bool,
    /// Internal: this process is a supervisor's child.
    #[arg(long, hide = true)]
    supervised: bool,
    /// Internal: the worker generation given by the supervisor.
    #[arg(long, hide = true, default_value_t = 0)]
    generation: u64,
    /// Internal: serve the chat page (the supervisor runs the chat app).
    #[arg(long, hide = true)]
    serve_chat_page: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start the configured roles: a supervisor with one process per role.
    Start(StartArgs),
    /// Stop a running gatewire (started here, found through `[run] dir`).
    Stop {
        #[command(flatten)]
        config: ConfigArgs,
        /// Graceful: workers first finish the events the gateways already sent them.
        #[arg(short = 'g', long)]
        graceful: bool,
    },
    /// Restart the processes of some roles (all by default); clients of a restarted gateway
    /// are disconnected and reconnect.
    Restart {
        #[command(flatten)]
        config: ConfigArgs,
        #[arg(long, value_delimiter = ',')]
        role: Vec<Role>,
    },
    /// Replace the worker processes without dropping a client or an event (new business code).
    Reload {
        #[command(flatten)]
        config: ConfigArgs,
        /// Instead of the workers: re-read gateway.tls_cert and tls_key in every gateway
        /// process (new handshakes use them; open connections keep theirs). Also SIGHUP to a
        /// gateway process.
        #[arg(long)]
        tls: bool,
    },
    /// Per process: role, pid, uptime, memory, connections, messages, links, drops.
    Status {
        #[command(flatten)]
        config: ConfigArgs,
        /// Refresh every second.
        #[arg(long, conflicts_with = "json")]
        watch: bool,
        /// A JSON array (one object per process) for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Every client: id, remote address, uid, groups, traffic.
    Connections {
        #[command(flatten)]
        config: ConfigArgs,
        /// A JSON array (one object per client) for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Configuration tools.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Print a token for [gateway.auth], for tests and scripts: HS256 signed with
    /// gateway.auth.secret, or RS256/ES256 with --private-key (production tokens come from your
    /// own issuer, which holds the secret or the private key).
    Token {
        #[command(flatten)]
        config: ConfigArgs,
        /// `sub`: the uid the client is bound to.
        #[arg(long)]
        sub: Option<String>,
        /// `groups` the client joins, comma-separated.
        #[arg(long, value_delimiter = ',')]
        groups: Vec<String>,
        /// `info`, as JSON: the client's first session.
        #[arg(long)]
        info: Option<String>,
        /// Seconds until `exp`; 0 leaves `exp` out (the token never expires).
        #[arg(long, default_value_t = 3600)]
        ttl: u64,
        /// Sign RS256 or ES256 with this PEM private key (the pair of gateway.auth.public_key).
        #[arg(long)]
        private_key: Option<PathBuf>,
    },
    /// Send a message through the gateways (as GatewayClient); to everyone unless narrowed.
    Send {
        #[command(flatten)]
        config: ConfigArgs,
        /// To the clients bound to this uid.
        #[arg(long, conflicts_with_all = ["group", "client"])]
        uid: Option<String>,
        /// To the members of this group.
        #[arg(long, conflicts_with = "client")]
        group: Option<String>,
        /// To one client id (20 hex characters).
        #[arg(long)]
        client: Option<String>,
        /// As a binary WebSocket frame (text otherwise).
        #[arg(long)]
        binary: bool,
        message: String,
    },
    /// Host checks for big connection counts.
    Tune {
        #[command(subcommand)]
        action: TuneAction,
    },
    /// Ask the gateways (as GatewayClient).
    Query {
        #[command(flatten)]
        config: ConfigArgs,
        #[command(subcommand)]
        what: QueryWhat,
    },
}

#[derive(Debug, Subcommand)]
enum TuneAction {
    /// Print each limit of this host that blocks N clients, with the exact fix (exit 1 if any).
    Check {
        #[command(flatten)]
        config: ConfigArgs,
        /// Clients the gateway should hold.
        #[arg(long, default_value_t = 1_000_000)]
        clients: u64,
    },
}

#[derive(Debug, Subcommand)]
enum QueryWhat {
    /// Clients connected to every gateway.
    ClientCount,
    /// Members of a group.
    GroupCount { group: String },
    /// Whether a client id is connected.
    Online { client: String },
    /// Whether any client is bound to a uid.
    UidOnline { uid: String },
    /// Every group.
    Groups,
    /// Every bound uid.
    Uids,
    /// Every client id.
    Clients,
    /// A client's session.
    Session { client: String },
}

#[derive(Debug, Subcommand)]
enum ConfigAction {
    /// Validate the configuration and print the effective values as TOML (secrets masked).
    Check {
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Print a complete, commented configuration with every key and its default.
    Example,
    /// Write that example to a file (default ./gatewire.toml); an existing file is kept.
    Init {
        /// Where to write it.
        #[arg(default_value = "gatewire.toml")]
        path: std::path::PathBuf,
    },
}

/// Every key with its default and a comment (the repository's gatewire.example.toml).
pub const EXAMPLE_CONFIG: &str = include_str!("../../gatewire.example.toml");

#[derive(Debug, Args)]
struct ConfigArgs {
    /// Configuration file (default: ./gatewire.toml when it exists).
    #[arg(short = 'c', long = "config", global = true)]
    file: Option<PathBuf>,
    /// Override one key, e.g. `--set gateway.shards=4` (repeatable).
    #[arg(long = "set", value_name = "SECTION.KEY=VALUE", global = true)]
    overrides: Vec<String>,
    /// The deployment's name (`run.name`): with no `[run] dir`, its run directory is the
    /// well-known one for that name, so commands find it from any directory.
    #[arg(long, global = true)]
    name: Option<String>,
}

impl ConfigArgs {
    /// How the supervisor starts its children: this executable with the same configuration
    /// (the file made absolute, every `--set`, the `--app` choice).
    fn child_command(
        &self,
        serve_chat_page: bool,
        app: Option<AppName>,
    ) -> Result<crate::supervisor::ChildCommand, String> {
        let exe =
            std::env::current_exe().map_err(|e| format!("cannot find this executable: {e}"))?;
        let mut config_args: Vec<std::ffi::OsString> = Vec::new();
        let default = Path::new("gatewire.toml");
        let file = self
            .file
            .as_deref()
            .or_else(|| default.exists().then_some(default));
        if let Some(file) = file {
            let absolute =
                std::path::absolute(file).map_err(|e| format!("{}: {e}", file.display()))?;
            config_args.extend(["-c".into(), absolute.into_os_string()]);
        }
        for o in self.all_overrides() {
            config_args.extend(["--set".into(), o.into()]);
        }
        if let Some(app) = app {
            let name = clap::ValueEnum::to_possible_value(&app)
                .map(|v| v.get_name().to_owned())
                .unwrap_or_default();
            config_args.extend(["--app".into(), name.into()]);
        }
        Ok(crate::supervisor::ChildCommand {
            exe,
            config_args,
            serve_chat_page,
        })
    }

    fn load(&self) -> Result<Config, config::ConfigError> {
        let default = Path::new("gatewire.toml");
        let file = self
            .file
            .as_deref()
            .or_else(|| default.exists().then_some(default));
        config::load(file, &self.all_overrides())
    }

    /// Every `--set`, with `--name` as the `run.name` it stands for.
    fn all_overrides(&self) -> Vec<String> {
        let mut all = self.overrides.clone();
        all.extend(self.name.iter().map(|n| format!("run.name={n}")));
        all
    }
}

/// The stock binary's `main`: the worker role runs a built-in app.
pub fn main() -> ExitCode {
    run_cli::<crate::apps::Builtin>(None)
}

/// Runs the `gatewire` command line with `app` as the business logic of the worker role: a
/// user's binary gets the same commands and configuration as the stock one.
pub fn run<A: Events>(app: A) -> ExitCode {
    run_cli(Some(app))
}

fn run_cli<A: Events>(custom: Option<A>) -> ExitCode {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Start(_)) {
        init_logging("warn");
    }
    match cli.command {
        Command::Start(args) => start(args, custom),
        Command::Stop { config, graceful } => control(&config, ControlRequest::Stop { graceful }),
        Command::Restart { config, role } => control(&config, ControlRequest::Restart(role)),
        Command::Reload { config, tls: false } => control(&config, ControlRequest::Reload),
        Command::Reload { config, tls: true } => control(&config, ControlRequest::ReloadTls),
        Command::Connections { config, json } => {
            control(&config, ControlRequest::Connections { json })
        }
        Command::Status {
            config,
            watch,
            json,
        } => status(&config, watch, json),
        Command::Send {
            config,
            uid,
            group,
            client,
            binary,
            message,
        } => send(&config, uid, group, client, Message::new(message, binary)),
        Command::Query { config, what } => with_client(&config, |gw| query(gw, what)),
        Command::Tune {
            action: TuneAction::Check { config, clients },
        } => tune_check(&config, clients),
        Command::Config { action } => config_command(action),
        Command::Token {
            config,
            sub,
            groups,
            info,
            ttl,
            private_key,
        } => token(
            &config,
            TokenClaims {
                sub,
                groups,
                info,
                ttl,
            },
            private_key.as_deref(),
        ),
    }
}

/// The claims `gatewire token` puts in a token.
struct TokenClaims {
    sub: Option<String>,
    groups: Vec<String>,
    info: Option<String>,
    ttl: u64,
}

/// `gatewire token`: a token for `[gateway.auth]`.
fn token(config: &ConfigArgs, claims: TokenClaims, private_key: Option<&Path>) -> ExitCode {
    let TokenClaims {
        sub,
        groups,
        info,
        ttl,
    } = claims;
    let config = match config.load() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("gatewire: {e}");
            return ExitCode::from(2);
        }
    };
    let auth = &config.gateway.auth;
    if auth.secret.is_empty() && private_key.is_none() {
        eprintln!(
            "gatewire: gateway.auth.secret is not set and no --private-key was given: nothing to \
             sign the token with"
        );
        return ExitCode::from(2);
    }
    let mut claims = serde_json::Map::new();
    if let Some(sub) = sub {
        claims.insert("sub".into(), sub.into());
    }
    if !groups.is_empty() {
        claims.insert("groups".into(), groups.into());
    }
    if let Some(info) = info {
        match serde_json::from_str::<serde_json::Value>(&info) {
            Ok(info) => {
                claims.insert("info".into(), info);
            }
            Err(e) => {
                eprintln!("gatewire: --info is not JSON: {e}");
                return ExitCode::from(2);
            }
        }
    }
    if ttl > 0 {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        claims.insert("exp".into(), (now + ttl).into());
    }
    if let Some(iss) = &auth.issuer {
        claims.insert("iss".into(), iss.clone().into());
    }
    if let Some(aud) = &auth.audience {
        claims.insert("aud".into(), aud.clone().into());
    }
    let claims = serde_json::Value::Object(claims);
    let signed = match private_key {
        Some(path) => std::fs::read(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))
            .and_then(|pem| crate::net::jwt::sign_with_private_key(&pem, &claims)),
        None => crate::net::jwt::sign_hs256(&auth.secret, &claims),
    };
    match signed {
        Ok(token) => {
            println!("{token}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("gatewire: cannot sign: {e}");
            ExitCode::from(1)
        }
    }
}

/// `gatewire start`: the supervisor (or, with `--single-process`, every role here), a child of
/// it (`--supervised`), or a background start (`-d`).
fn start<A: Events>(args: StartArgs, custom: Option<A>) -> ExitCode {
    let StartArgs {
        config,
        role,
        app,
        daemon,
        single_process,
        supervised,
        generation,
        serve_chat_page,
    } = args;
    let mut loaded = match config.load() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("gatewire: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(app) = app {
        loaded.worker.app = app;
    }
    loaded.worker.generation = generation;
    let roles = if role.is_empty() {
        loaded.run.roles.clone()
    } else {
        role
    };
    if let Some(why) = loaded
        .insecure_exposure(&roles)
        .or_else(|| loaded.unreachable_gateway(&roles))
    {
        eprintln!("gatewire: {why}");
        return ExitCode::from(2);
    }
    let backend = match crate::rt::select(loaded.run.backend) {
        Ok(selection) => selection,
        Err(why) => {
            eprintln!("gatewire: {why}");
            return ExitCode::from(1);
        }
    };
    init_logging(&loaded.log_filter(&roles));
    // The chat app runs on this machine with no static_dir (or `gateway.chat_page` says
    // so, on a gateway-only host): the gateway serves its page.
    let chat_page = loaded.gateway.static_dir.is_none()
        && loaded.gateway.chat_page.unwrap_or(
            custom.is_none() && roles.contains(&Role::Worker) && loaded.worker.app == AppName::Chat,
        );
    // Once per start: the supervisor says it; the role processes it starts resolve the
    // same choice on the same host.
    if !supervised {
        if (chat_page || serve_chat_page) && roles.contains(&Role::Gateway) {
            tracing::info!("chat page: open {}", page_url(&loaded.gateway.listen));
        }
        tracing::info!(backend = %backend.backend, why = %backend.why, "runtime backend");
    }
    if chat_page || serve_chat_page {
        loaded.gateway.builtin_page = Some(crate::apps::CHAT_PAGE);
    }
    if supervised {
        return ExitCode::from(crate::supervisor::child::run(&loaded, &roles, custom));
    }
    if daemon {
        let wait = Duration::from_secs_f64(loaded.worker.ready_timeout) + Duration::from_secs(30);
        return match crate::supervisor::daemon::start(&loaded.run_dir(), wait) {
            Ok(line) => {
                println!("{line}");
                ExitCode::SUCCESS
            }
            Err(message) => {
                eprintln!("gatewire: {message}");
                ExitCode::from(1)
            }
        };
    }
    let result = if single_process {
        start_single_process(&loaded, &roles, custom)
    } else {
        config.child_command(chat_page, app).and_then(|command| {
            crate::supervisor::Supervisor::run(
                loaded,
                roles,
                crate::supervisor::Launch::new(command),
            )
            .map_err(|e| e.to_string())
        })
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // Said once: on stderr, which is the log file in the background (`-d`).
        Err(message) => {
            eprintln!("gatewire: {message}");
            ExitCode::from(1)
        }
    }
}

/// `gatewire status [--watch] [--json]`.
fn status(config: &ConfigArgs, watch: bool, json: bool) -> ExitCode {
    if !watch {
        return control(config, ControlRequest::Status { json });
    }
    loop {
        // Clear the screen, then print the table.
        print!("\x1b[2J\x1b[H");
        let code = control(config, ControlRequest::Status { json: false });
        if code != ExitCode::SUCCESS {
            return code;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// `gatewire send`: to a uid, a group, one client, or everyone.
fn send(
    config: &ConfigArgs,
    uid: Option<String>,
    group: Option<String>,
    client: Option<String>,
    message: Message,
) -> ExitCode {
    with_client(config, |gw| {
        match (uid, group, client) {
            (Some(uid), _, _) => gw.send_to_uid(&[uid.as_str()], message),
            (_, Some(group), _) => gw.send_to_group(&[group.as_str()], message, &[]),
            (_, _, Some(client)) => {
                let id: gatewire_proto::ClientId = client
                    .parse()
                    .map_err(|e| format!("--client {client}: {e}"))?;
                if !gw.send_to_client(id, message) {
                    return Err(format!("gateway {} did not take the message", id.gateway()));
                }
            }
            _ => gw.send_to_all(message),
        }
        Ok(true)
    })
}

/// `gatewire tune check`: exit 1 when a host limit blocks the clients asked for.
fn tune_check(config: &ConfigArgs, clients: u64) -> ExitCode {
    match config.load() {
        Ok(c) => {
            let findings = crate::tune::check(&crate::tune::Host::read(&c), &c, clients);
            let (text, blocked) = crate::tune::report(&findings, clients);
            print!("{text}");
            if blocked {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("gatewire: {e}");
            ExitCode::from(2)
        }
    }
}

/// `gatewire config example | init | check`.
fn config_command(action: ConfigAction) -> ExitCode {
    match action {
        ConfigAction::Example => {
            print!("{EXAMPLE_CONFIG}");
            ExitCode::SUCCESS
        }
        ConfigAction::Init { path } => {
            let written = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
                .and_then(|mut f| std::io::Write::write_all(&mut f, EXAMPLE_CONFIG.as_bytes()));
            match written {
                Ok(()) => {
                    println!("wrote {} (every key with its default)", path.display());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("gatewire: cannot write {}: {e}", path.display());
                    ExitCode::from(1)
                }
            }
        }
        ConfigAction::Check { config } => match config.load() {
            Ok(c) => match toml::to_string(&c.with_secrets_masked()) {
                Ok(text) => {
                    print!("{}", with_origins(&text, &c.origins));
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("gatewire: cannot print the configuration: {e}");
                    ExitCode::from(1)
                }
            },
            Err(e) => {
                eprintln!("gatewire: {e}");
                ExitCode::from(2)
            }
        },
    }
}

/// The effective configuration's TOML with each key's origin as a comment: `# default`, or where
/// its value came from.
fn with_origins(toml_text: &str, origins: &std::collections::BTreeMap<String, String>) -> String {
    let mut section = String::new();
    let mut out = String::new();
    for line in toml_text.lines() {
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_owned();
            out.push_str(line);
        } else if let Some((key, _)) = line.split_once(" = ") {
            let origin = origins
                .get(&format!("{section}.{key}"))
                .map_or("default", String::as_str);
            out.push_str(&format!("{line:<48} # {origin}"));
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

/// Runs `f` with a GatewayClient built from the `[worker]` section (its registers and secret).
/// `f` returns whether its answer was complete; a partial answer exits with 3.
fn with_client(
    config: &ConfigArgs,
    f: impl FnOnce(&crate::client::GatewayClient) -> Result<bool, String>,
) -> ExitCode {
    let config = match config.load() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("gatewire: {e}");
            return ExitCode::from(2);
        }
    };
    let target = Target::of(&config);
    let client = crate::client::GatewayClient::new(target.registers.clone(), &target.secret)
        .with_store(&config.store);
    // Nothing to reach is an error, not an empty answer (or a send to nobody reported done).
    match client.gateways() {
        Ok(gateways) if gateways.is_empty() => {
            eprintln!(
                "gatewire: the register at {} ({}) lists no gateway",
                target.list(),
                target.from
            );
            return ExitCode::from(3);
        }
        Ok(_) => {}
        Err(why) => {
            eprintln!("gatewire: {why} ({})", target.from);
            return ExitCode::from(3);
        }
    }
    match f(&client) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("gatewire: partial answer: some gateways did not answer");
            ExitCode::from(3)
        }
        Err(message) => {
            eprintln!("gatewire: {message}");
            ExitCode::from(1)
        }
    }
}

/// Where `send` and `query` go: the registers and secret, and where they came from.
struct Target {
    registers: Vec<std::net::SocketAddr>,
    secret: String,
    from: String,
}

impl Target {
    /// The deployment running in the configuration's run directory (`--name`, `[run] dir`)
    /// says how it is reached; with none running, the configuration does: the worker's
    /// registers, or the gateway's on a host whose configuration names only those.
    fn of(config: &Config) -> Target {
        let dir = config.run_dir();
        if let Ok(text) =
            crate::supervisor::request(&dir, &crate::supervisor::ControlRequest::Reach)
            && let Ok(reach) = serde_json::from_str::<crate::supervisor::Reach>(&text)
        {
            return Target {
                registers: reach.registers,
                secret: reach.secret_key,
                from: format!("what the deployment running in {} uses", dir.display()),
            };
        }
        let origin = |key: &str| config.origins.get(key).cloned();
        let (key, registers, secret) = match (
            origin("worker.register_address"),
            origin("gateway.register_address"),
        ) {
            (None, Some(_)) => (
                "gateway.register_address",
                config.gateway.register_address.clone(),
                config.gateway.secret_key.clone(),
            ),
            _ => (
                "worker.register_address",
                config.worker.register_address.clone(),
                config.worker.secret_key.clone(),
            ),
        };
        let from = match origin(key) {
            Some(origin) => format!(
                "{key}, from {origin}; no deployment running in {}",
                dir.display()
            ),
            None => format!(
                "{key}, the default; no deployment running in {}",
                dir.display()
            ),
        };
        Target {
            registers,
            secret,
            from,
        }
    }

    fn list(&self) -> String {
        let list: Vec<String> = self.registers.iter().map(ToString::to_string).collect();
        list.join(", ")
    }
}

fn query(gw: &crate::worker::Gateway, what: QueryWhat) -> Result<bool, String> {
    fn client_id(text: &str) -> Result<gatewire_proto::ClientId, String> {
        text.parse().map_err(|e| format!("{text}: {e}"))
    }
    fn lines<T: std::fmt::Display>(items: impl IntoIterator<Item = T>) {
        for item in items {
            println!("{item}");
        }
    }
    Ok(match what {
        QueryWhat::ClientCount => {
            let a = gw.get_all_client_id_count();
            println!("{}", a.value);
            a.is_complete()
        }
        QueryWhat::GroupCount { group } => {
            let a = gw.get_client_id_count_by_group(&group);
            println!("{}", a.value);
            a.is_complete()
        }
        QueryWhat::Online { client } => {
            let online = gw
                .is_online(client_id(&client)?)
                .map_err(|e| e.to_string())?;
            println!("{}", u8::from(online));
            true
        }
        QueryWhat::UidOnline { uid } => {
            let a = gw.is_uid_online(&uid);
            println!("{}", u8::from(a.value));
            a.is_complete()
        }
        QueryWhat::Groups => {
            let a = gw.get_all_group_id_list();
            let complete = a.is_complete();
            lines(a.value);
            complete
        }
        QueryWhat::Uids => {
            let a = gw.get_all_uid_list();
            let complete = a.is_complete();
            lines(a.value);
            complete
        }
        QueryWhat::Clients => {
            let a = gw.get_all_client_id_list();
            let complete = a.is_complete();
            lines(a.value);
            complete
        }
        QueryWhat::Session { client } => {
            let session = gw
                .get_session(client_id(&client)?)
                .map_err(|e| e.to_string())?;
            let value = session.map_or(
                gatewire_proto::php::Value::Null,
                gatewire_proto::php::Value::Array,
            );
            println!(
                "{}",
                String::from_utf8_lossy(&gatewire_proto::php::serialize(&value))
            );
            true
        }
    })
}

/// Logs go to stderr, filtered by `GATEWIRE_LOG` when set, else by `filter` (the roles' `log`
/// keys); each line names its thread (`gw-shard-0`, `worker-1`, `register`, `reaper`...).
/// Where a browser on this machine opens the page the gateway serves.
fn page_url(listen: &crate::config::ListenUrl) -> String {
    let scheme = match listen.protocol {
        crate::config::ClientProtocol::SecureWebSocket => "https",
        _ => "http",
    };
    let mut addr = listen.addr;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    format!("{scheme}://{addr}/")
}

fn init_logging(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("GATEWIRE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_thread_names(true)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}

/// Sends one request to the supervisor found through the configuration's `[run] dir`.
fn control(config: &ConfigArgs, request: ControlRequest) -> ExitCode {
    let loaded = match config.load() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("gatewire: {e}");
            return ExitCode::from(2);
        }
    };
    match crate::supervisor::request(&loaded.run_dir(), &request) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("gatewire: {message}");
            ExitCode::from(1)
        }
    }
}

/// `start --single-process`: every role in this process until SIGINT/SIGTERM.
fn start_single_process<A: Events>(
    config: &Config,
    roles: &[Role],
    custom: Option<A>,
) -> Result<(), String> {
    // SIGINT/SIGTERM go to the main thread only (threads started below inherit the mask), and
    // SIGHUP to the TLS reload's thread.
    crate::process::block_signals_for(config, roles);
    let running =
        std::sync::Arc::new(Running::start(config, roles, custom).map_err(|e| e.to_string())?);
    crate::process::reload_tls_on_sighup(&running);
    if let Some(listen) = config.metrics.listen {
        let r = running.clone();
        crate::metrics::serve(listen, move || r.metrics())?;
    }
    let signal = system::wait_stop_signal();
    info!(signal, "stopping");
    running.stop(false);
    Ok(())
}
