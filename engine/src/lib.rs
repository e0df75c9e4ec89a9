//! gatewire: a GatewayWorker-compatible long-connection gateway.
//!
//! | module | role |
//! |---|---|
//! | [`register`] | the Register (address book) and the client side every role uses |
//! | [`gateway`] | the Gateway: shards, clients, worker links, commands |
//! | [`worker`] | the BusinessWorker: the [`Events`](worker::Events) trait, context, Gateway API |
//! | [`apps`] | built-in apps: chat, echo, broadcast |
//! | [`client`] | GatewayClient: the API for processes that are not workers |
//! | [`http_api`] | the `api` role: GatewayClient's methods over HTTP, for backends in any language |
//! | [`store`] | optional Redis store: which shards hold each uid and group, for routing |
//! | [`tune`] | `gatewire tune check`: which host limits block N clients |
//! | [`metrics`] | the Prometheus text endpoint |
//! | [`process`] | one process running some roles: start, status, stop, drain |
//! | [`supervisor`] | `gatewire start`: a process per role, restarts, reload, the control socket, `-d` |
//! | [`api`] | the Gateway API (commands, queries) shared by workers and GatewayClient |
//! | [`net`] | runtime-neutral plumbing: the outbox and its frames, backoff, TLS configuration, token verification |
//! | [`rt`] | the runtime seam: executors, sockets, the connection driver, the backends |
//! | [`config`] | `gatewire.toml`, its defaults and overrides |
//! | [`placement`] | which CPUs shards and worker threads run on |
//! | [`system`] | process-level knobs: fd limits and tables, huge pages, giving memory back |
//! | [`log_limit`] | warnings logged once per cause per interval |
//! | [`php_json`] | PHP values (sessions, handshake data) to and from JSON |
//! | [`cli`] | the `gatewire` command line |
//!
//! The wire formats live in [`gatewire_proto`], re-exported as [`proto`].

pub mod api;
pub mod apps;
pub mod cli;
pub mod client;
pub mod config;
pub mod gateway;
pub mod http_api;
pub mod log_limit;
pub mod metrics;
pub mod net;
pub mod php_json;
pub mod placement;
pub mod process;
pub mod register;
pub mod rt;
pub mod store;
pub mod supervisor;
pub mod system;
pub mod tune;
pub mod worker;

pub use cli::run;
pub use worker::{Binary, Context, Events, Message};

pub use gatewire_proto as proto;
