//! GatewayClient (protocol §8): the Gateway API for processes that are not workers — a web
//! backend pushing to users, a cron job, an operator's shell. Gateway addresses come from the
//! registers (cached for 1 s); commands and queries use short-lived connections.

use std::net::SocketAddr;
use std::ops::Deref;
use std::rc::Rc;

use crate::api::{Directory, Gateway};
use crate::config::StoreConfig;

/// The Gateway API outside a worker. Every method of [`Gateway`] is available on it.
#[derive(Debug, Clone)]
pub struct GatewayClient {
    gateway: Gateway,
    directory: Rc<Directory>,
}

impl GatewayClient {
    /// A client that finds gateways through `registers` (tried in order) and authenticates with
    /// `secret` (empty for none).
    pub fn new(registers: Vec<SocketAddr>, secret: &str) -> GatewayClient {
        let directory = Rc::new(Directory::new(registers, secret));
        GatewayClient {
            gateway: Gateway::direct(directory.clone(), secret),
            directory,
        }
    }

    /// The gateway addresses the registers list now, or why none could be learned (which
    /// registers were tried, and what each said).
    pub fn gateways(&self) -> Result<Vec<String>, String> {
        self.directory.lookup()
    }

    /// The same client routing uid and group commands and queries through the store of
    /// `store` (see [`crate::store`]); with the store off, unchanged.
    pub fn with_store(mut self, store: &StoreConfig) -> GatewayClient {
        self.gateway = self.gateway.with_store(crate::store::Resolver::new(store));
        self
    }
}

impl Deref for GatewayClient {
    type Target = Gateway;
    fn deref(&self) -> &Gateway {
        &self.gateway
    }
}
