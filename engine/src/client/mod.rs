//! GatewayClient (protocol §8): the Gateway API for processes that are not workers — a web
//! backend pushing to users, a cron job, an operator's shell. Gateway addresses come from the
//! registers (cached for 1 s); commands and queries use short-lived connections.

use std::cell::RefCell;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::ops::Deref;
use std::rc::Rc;
use std::time::{Duration, Instant};

use gatewire_proto::register::{RegisterMessage, worker_connect_line};
use tracing::warn;

use crate::worker::Gateway;

/// How long an address list from a register is reused.
const CACHE_FOR: Duration = Duration::from_secs(1);
const REGISTER_TIMEOUT: Duration = Duration::from_secs(5);

/// Gateway addresses from the registers, with a short cache.
#[derive(Debug)]
pub struct Directory {
    registers: Vec<SocketAddr>,
    secret: String,
    cache: RefCell<Option<(Instant, Vec<String>)>>,
}

impl Directory {
    /// The current gateway addresses: from the cache, or from the first register that answers.
    pub fn addresses(&self) -> Vec<String> {
        if let Some((at, list)) = self.cache.borrow().as_ref() {
            if at.elapsed() < CACHE_FOR {
                return list.clone();
            }
        }
        for register in &self.registers {
            match ask_register(*register, &self.secret) {
                Ok(list) => {
                    *self.cache.borrow_mut() = Some((Instant::now(), list.clone()));
                    return list;
                }
                Err(e) => warn!(%register, error = %e, "register did not answer"),
            }
        }
        Vec::new()
    }
}

/// Asks a register for the gateway list the way GatewayClient does: as a worker, one line.
fn ask_register(register: SocketAddr, secret: &str) -> std::io::Result<Vec<String>> {
    let mut stream = TcpStream::connect_timeout(&register, REGISTER_TIMEOUT)?;
    stream.set_read_timeout(Some(REGISTER_TIMEOUT))?;
    stream.write_all(worker_connect_line(secret).as_bytes())?;
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line)?;
    match RegisterMessage::parse(line.trim_end().as_bytes()) {
        Ok(RegisterMessage::BroadcastAddresses { addresses }) => Ok(addresses),
        other => Err(std::io::Error::other(format!(
            "register answered {other:?}"
        ))),
    }
}

/// The Gateway API outside a worker. Every method of [`Gateway`] is available on it.
#[derive(Debug, Clone)]
pub struct GatewayClient {
    gateway: Gateway,
}

impl GatewayClient {
    /// A client that finds gateways through `registers` (tried in order) and authenticates with
    /// `secret` (empty for none).
    pub fn new(registers: Vec<SocketAddr>, secret: &str) -> GatewayClient {
        let directory = Rc::new(Directory {
            registers,
            secret: secret.to_owned(),
            cache: RefCell::new(None),
        });
        GatewayClient {
            gateway: Gateway::direct(directory, secret),
        }
    }
}

impl Deref for GatewayClient {
    type Target = Gateway;
    fn deref(&self) -> &Gateway {
        &self.gateway
    }
}
