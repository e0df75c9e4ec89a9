//! Where a GatewayClient finds the gateways: the registers' address list, asked the way PHP's
//! GatewayClient asks (as a worker, one line) and cached for a second.

use std::cell::RefCell;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use gatewire_proto::register::{RegisterMessage, worker_connect_line};
use tracing::warn;

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
    /// Gateway addresses from `registers` (tried in order), asked with `secret`.
    pub fn new(registers: Vec<SocketAddr>, secret: &str) -> Directory {
        Directory {
            registers,
            secret: secret.to_owned(),
            cache: RefCell::new(None),
        }
    }

    /// The current gateway addresses: from the cache, or from the first register that answers;
    /// empty when none answers (logged).
    pub fn addresses(&self) -> Vec<String> {
        self.lookup().unwrap_or_default()
    }

    /// [`Self::addresses`], or why there are none: which registers were tried and what each
    /// said.
    pub fn lookup(&self) -> Result<Vec<String>, String> {
        if let Some((at, list)) = self.cache.borrow().as_ref()
            && at.elapsed() < CACHE_FOR
        {
            return Ok(list.clone());
        }
        let mut failures = Vec::new();
        for register in &self.registers {
            match ask_register(*register, &self.secret) {
                Ok(list) => {
                    *self.cache.borrow_mut() = Some((Instant::now(), list.clone()));
                    return Ok(list);
                }
                Err(e) => {
                    warn!(%register, error = %e, "register did not answer");
                    failures.push(format!("{register}: {e}"));
                }
            }
        }
        Err(format!(
            "no register answered (tried {})",
            if failures.is_empty() {
                "none: the register list is empty".to_owned()
            } else {
                failures.join("; ")
            }
        ))
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
