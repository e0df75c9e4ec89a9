//! `client_id` (protocol §4): lowercase hex of `pack('NnN', lan_ip, inner_port, connection_id)`,
//! 20 characters. The first 12 name the owning gateway shard; its `"ip:port"` string is the key a
//! worker routes by.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::str::FromStr;

/// A client's global identity: which gateway shard holds it, and its id there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId {
    /// The gateway's lan ip.
    pub ip: Ipv4Addr,
    /// The owning shard's inner port.
    pub port: u16,
    /// The per-shard connection id.
    pub connection_id: u32,
}

/// A string that is not a client id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientIdError {
    #[error("a client id has 20 characters, this one has {0}")]
    Length(usize),
    #[error("a client id is hexadecimal, found {0:?}")]
    NotHex(char),
}

impl ClientId {
    pub fn new(ip: Ipv4Addr, port: u16, connection_id: u32) -> ClientId {
        ClientId {
            ip,
            port,
            connection_id,
        }
    }

    /// The owning gateway shard's inner address; its `Display` ("127.0.0.1:2900") is the routing
    /// key workers look their gateway links up by.
    pub fn gateway(&self) -> SocketAddrV4 {
        SocketAddrV4::new(self.ip, self.port)
    }

    /// The 10 packed bytes the hex encodes.
    pub fn to_packed(&self) -> [u8; 10] {
        let mut out = [0u8; 10];
        out[..4].copy_from_slice(&self.ip.octets());
        out[4..6].copy_from_slice(&self.port.to_be_bytes());
        out[6..].copy_from_slice(&self.connection_id.to_be_bytes());
        out
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.to_packed() {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl FromStr for ClientId {
    type Err = ClientIdError;

    /// Parses 20 hex digits (either case, as PHP's `hex2bin` accepts).
    fn from_str(s: &str) -> Result<ClientId, ClientIdError> {
        if s.len() != 20 {
            return Err(ClientIdError::Length(s.chars().count()));
        }
        let mut packed = [0u8; 10];
        for (i, pair) in s.as_bytes().chunks_exact(2).enumerate() {
            let hi = hex_value(pair[0])?;
            let lo = hex_value(pair[1])?;
            packed[i] = hi << 4 | lo;
        }
        Ok(ClientId {
            ip: Ipv4Addr::new(packed[0], packed[1], packed[2], packed[3]),
            port: u16::from_be_bytes([packed[4], packed[5]]),
            connection_id: u32::from_be_bytes([packed[6], packed[7], packed[8], packed[9]]),
        })
    }
}

fn hex_value(c: u8) -> Result<u8, ClientIdError> {
    (c as char)
        .to_digit(16)
        .map(|d| d as u8)
        .ok_or(ClientIdError::NotHex(c as char))
}
