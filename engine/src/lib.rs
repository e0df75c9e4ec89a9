//! gatewire: a GatewayWorker-compatible long-connection gateway.
//!
//! | module | role |
//! |---|---|
//! | [`register`] | the Register (address book) and the client side every role uses |
//! | [`gateway`] | the Gateway: shards, clients, worker links, commands |
//! | [`worker`] | the BusinessWorker: the [`Events`](worker::Events) trait, context, Gateway API |
//! | [`apps`] | built-in apps: chat, echo, broadcast |
//! | [`client`] | GatewayClient: the API for processes that are not workers |
//! | [`store`] | optional Redis store: which shards hold each uid and group, for routing |
//! | [`tune`] | `gatewire tune check`: which host limits block N clients |
//! | [`metrics`] | the Prometheus text endpoint |
//! | [`process`] | one process running some roles: start, status, stop, drain |
//! | [`supervisor`] | `gatewire start`: a process per role, restarts, reload, the control socket, `-d` |
//! | [`net`] | listeners and the connection driver shared by every role |
//! | [`config`] | `gatewire.toml`, its defaults and overrides |
//! | [`cli`] | the `gatewire` command line |
//!
//! The wire formats live in [`gatewire_proto`], re-exported as [`proto`].

pub mod api;
pub mod apps;
pub mod cli;
pub mod client;
pub mod config;
pub mod gateway;
pub mod log_limit;
pub mod metrics;
pub mod net;
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
