//! Who connects from where: client `i` gets source address `ips[i % n]` and port
//! `FIRST_PORT + i / n`, below the kernel's ephemeral range, so a million connections need no
//! kernel port search and never steal ephemeral ports.

use std::net::{Ipv4Addr, SocketAddr};

/// Lowest source port used.
pub const FIRST_PORT: u32 = 1025;
/// Ports below this are outside Linux's default ephemeral range.
pub const END_PORT: u32 = 32768;

/// Source addresses for clients.
#[derive(Debug, Clone)]
pub struct SourcePlan {
    ips: Vec<Ipv4Addr>,
    /// Where this run starts in the (address, port) space: consecutive runs start elsewhere, so
    /// they do not meet the previous run's TIME_WAIT entries.
    offset: u64,
}

impl SourcePlan {
    /// Parses `a.b.c.d-a.b.c.e` (or one address) into a list of loopback addresses.
    pub fn parse(range: &str) -> Result<SourcePlan, String> {
        let (first, last) = match range.split_once('-') {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (range.trim(), range.trim()),
        };
        let first: Ipv4Addr = first
            .parse()
            .map_err(|_| format!("bad address {first:?}"))?;
        let last: Ipv4Addr = last.parse().map_err(|_| format!("bad address {last:?}"))?;
        let (a, b) = (u32::from(first), u32::from(last));
        if b < a {
            return Err(format!("empty range {range}"));
        }
        let ips: Vec<Ipv4Addr> = (a..=b).map(Ipv4Addr::from).collect();
        if let Some(ip) = ips.iter().find(|ip| !ip.is_loopback()) {
            return Err(format!(
                "{ip} is not a loopback address (loadgen only sources traffic from 127.0.0.0/8)"
            ));
        }
        Ok(SourcePlan { ips, offset: 0 })
    }

    /// This plan starting at a position that leaves room for `clients` clients, picked from the
    /// clock so that runs in a row use different ports.
    pub fn rotated(mut self, clients: u64) -> SourcePlan {
        let room = self.capacity().saturating_sub(clients);
        if room > 0 {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
            let n = self.ips.len() as u64;
            // Whole port rows, so every client keeps a distinct (address, port).
            self.offset = (nanos % (room / n + 1)) * n;
        }
        self
    }

    /// How many clients the plan can place.
    pub fn capacity(&self) -> u64 {
        self.ips.len() as u64 * u64::from(END_PORT - FIRST_PORT)
    }

    /// The source of client `i`.
    pub fn source(&self, i: u64) -> SocketAddr {
        let i = i + self.offset;
        let n = self.ips.len() as u64;
        let ip = self.ips[(i % n) as usize];
        let port = FIRST_PORT as u64 + i / n;
        SocketAddr::from((ip, port as u16))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spreads_clients_over_addresses_then_ports() {
        let plan = SourcePlan::parse("127.1.0.1-127.1.0.3").unwrap();
        assert_eq!(plan.source(0), "127.1.0.1:1025".parse().unwrap());
        assert_eq!(plan.source(2), "127.1.0.3:1025".parse().unwrap());
        assert_eq!(plan.source(3), "127.1.0.1:1026".parse().unwrap());
        assert_eq!(plan.capacity(), 3 * (32768 - 1025));
    }

    #[test]
    fn refuses_non_loopback_sources() {
        assert!(SourcePlan::parse("10.0.0.1").is_err());
        assert!(SourcePlan::parse("127.0.0.9-127.0.0.1").is_err());
    }
}
