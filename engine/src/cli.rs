//! The `gatewire` command line: `start` runs the configured roles in the foreground;
//! `config check` validates and prints the effective configuration.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use tracing::{error, info};

use crate::apps::Builtin;
use crate::config::{self, AppName, Config, Role};
use crate::worker::{self, Events};
use crate::{gateway, net, register, system};

/// gatewire: a GatewayWorker-compatible long-connection gateway.
#[derive(Debug, Parser)]
#[command(name = "gatewire", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the configured roles in the foreground.
    Start {
        #[command(flatten)]
        config: ConfigArgs,
        /// Roles to run, e.g. `register,gateway` (default: `[run] roles`).
        #[arg(long, value_delimiter = ',')]
        role: Vec<Role>,
        /// Built-in app for the worker role (default: `[worker] app`).
        #[arg(long, value_enum)]
        app: Option<AppName>,
    },
    /// Configuration tools.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
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
    /// Validate the configuration and print the effective values.
    Check {
        #[command(flatten)]
        config: ConfigArgs,
    },
}

#[derive(Debug, Args)]
struct ConfigArgs {
    /// Configuration file (default: ./gatewire.toml when it exists).
    #[arg(short = 'c', long = "config", global = true)]
    file: Option<PathBuf>,
    /// Override one key, e.g. `--set gateway.shards=4` (repeatable).
    #[arg(long = "set", value_name = "SECTION.KEY=VALUE", global = true)]
    overrides: Vec<String>,
}

impl ConfigArgs {
    fn load(&self) -> Result<Config, config::ConfigError> {
        let default = Path::new("gatewire.toml");
        let file = self
            .file
            .as_deref()
            .or_else(|| default.exists().then_some(default));
        config::load(file, &self.overrides)
    }
}

/// The stock binary's `main`: the worker role runs a built-in app.
pub fn main() -> ExitCode {
    run_cli::<Builtin>(None)
}

/// Runs the `gatewire` command line with `app` as the business logic of the worker role: a
/// user's binary gets the same commands and configuration as the stock one.
pub fn run<A: Events>(app: A) -> ExitCode {
    run_cli(Some(app))
}

fn run_cli<A: Events>(custom: Option<A>) -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    match cli.command {
        Command::Start { config, role, app } => {
            let config = match config.load() {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("gatewire: {e}");
                    return ExitCode::from(2);
                }
            };
            let mut config = config;
            if let Some(app) = app {
                config.worker.app = app;
            }
            let roles = if role.is_empty() {
                config.run.roles.clone()
            } else {
                role
            };
            // The chat app running here with no static_dir: the gateway serves its page at `/`.
            if custom.is_none()
                && roles.contains(&Role::Worker)
                && config.worker.app == AppName::Chat
                && config.gateway.static_dir.is_none()
            {
                config.gateway.builtin_page = Some(crate::apps::CHAT_PAGE);
            }
            match start(&config, &roles, custom) {
                Ok(()) => ExitCode::SUCCESS,
                Err(message) => {
                    error!("{message}");
                    eprintln!("gatewire: {message}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Send {
            config,
            uid,
            group,
            client,
            message,
        } => with_client(&config, |gw| {
            match (uid, group, client) {
                (Some(uid), _, _) => gw.send_to_uid(&[uid.as_str()], &message),
                (_, Some(group), _) => gw.send_to_group(&[group.as_str()], &message, &[]),
                (_, _, Some(client)) => {
                    let id: gatewire_proto::ClientId = client
                        .parse()
                        .map_err(|e| format!("--client {client}: {e}"))?;
                    if !gw.send_to_client(id, &message) {
                        return Err(format!("gateway {} did not take the message", id.gateway()));
                    }
                }
                _ => gw.send_to_all(&message),
            }
            Ok(true)
        }),
        Command::Query { config, what } => with_client(&config, |gw| query(gw, what)),
        Command::Tune {
            action: TuneAction::Check { config, clients },
        } => match config.load() {
            Ok(c) => {
                let findings = crate::tune::check(&crate::tune::Host::read(), &c, clients);
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
        },
        Command::Config {
            action: ConfigAction::Check { config },
        } => match config.load() {
            Ok(c) => {
                println!("{c:#?}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("gatewire: {e}");
                ExitCode::from(2)
            }
        },
    }
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
    let client = crate::client::GatewayClient::new(
        config.worker.register_address.clone(),
        &config.worker.secret_key,
    );
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

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("GATEWIRE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Starts `roles` and blocks while they run.
fn start<A: Events>(config: &Config, roles: &[Role], custom: Option<A>) -> Result<(), String> {
    match system::raise_fd_limit() {
        Ok(limit) => info!(nofile = limit, "fd limit"),
        Err(e) => info!(error = %e, "could not raise the fd limit"),
    }
    // SIGINT/SIGTERM go to the main thread only (threads started below inherit the mask).
    system::block_stop_signals();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut threads = Vec::new();
    let mut workers = Vec::new();
    if roles.contains(&Role::Register) {
        threads.push(start_register(config.register.clone())?);
    }
    if roles.contains(&Role::Gateway) {
        let shards = gateway::start(&config.gateway).map_err(|e| e.to_string())?;
        if let Some(listen) = config.metrics.listen {
            let snapshots = shards.iter().map(|s| s.snapshot.clone()).collect();
            threads.push(crate::metrics::serve(listen, snapshots)?);
        }
        threads.extend(shards.into_iter().map(|s| s.thread));
    }
    if roles.contains(&Role::Worker) {
        workers = match custom {
            Some(app) => worker::start(&config.worker, app, stop.clone())?,
            None => worker::start(
                &config.worker,
                Builtin::new(config.worker.app),
                stop.clone(),
            )?,
        };
    }
    if threads.is_empty() && workers.is_empty() {
        return Err("no role to run (roles: register, gateway, worker)".into());
    }
    let signal = system::wait_stop_signal();
    info!(signal, "stopping");
    // Workers say goodbye (on_worker_stop); gateways and the register end with the process,
    // which closes their connections.
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for w in workers {
        let _ = w.join();
    }
    drop(threads);
    Ok(())
}

fn start_register(config: config::RegisterConfig) -> Result<std::thread::JoinHandle<()>, String> {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), String>>();
    let listen = config.listen;
    let handle = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .name("register")
        .io_memory(64 * 1024)
        .spawn(move || async move {
            match net::listen(listen, false) {
                Ok(listener) => {
                    let _ = ready_tx.send(Ok(()));
                    register::serve(listener, config).await;
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(format!("register: cannot listen on {listen}: {e}")));
                }
            }
        })
        .map_err(|e| format!("register: {e}"))?;
    ready_rx
        .recv()
        .map_err(|_| "register: thread ended before listening".to_string())??;
    Ok(std::thread::spawn(move || {
        let _ = handle.join();
    }))
}
