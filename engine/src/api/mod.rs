//! The Gateway API (GatewayWorker's `Lib\Gateway` and GatewayClient, protocol §7–§8) in one
//! place, used alike by a worker's [`Context`](crate::worker::Context) and by
//! [`GatewayClient`](crate::client::GatewayClient):
//!
//! - [`gateway`]: the [`Gateway`] handle and its commands (send, bind, group, session, kick);
//! - [`queries`]: its queries, merged from every gateway into an [`Answer`];
//! - [`links`]: a worker thread's event links, which carry a worker's commands;
//! - [`transport`]: short-lived connections, which carry queries and a GatewayClient's commands;
//! - [`directory`]: a GatewayClient's gateway list, asked of the registers;
//! - [`message`]: what a send carries (text, or [`Binary`]);
//! - [`json`]: GatewayWorker's methods by name with JSON arguments (the HTTP API, and the
//!   commands an HTTP backend answers events with), sessions as JSON.

mod directory;
mod gateway;
pub mod json;
mod links;
mod message;
mod queries;
mod transport;

pub use directory::Directory;
pub use gateway::{Answer, Gateway};
pub use links::{LinkHandle, Links};
pub use message::{Binary, Message};
pub use queries::Queries;
pub use transport::{QueryError, ask_async};
