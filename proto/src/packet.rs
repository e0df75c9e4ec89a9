//! GatewayProtocol packets (protocol §2): the 28-byte big-endian header, the command set, the flag
//! bits, and a streaming decoder that hands out `Bytes` views of ext and body without copying.
//!
//! Layout (PHP pack format `NCNnNnNCnN`):
//! `pack_len u32 | cmd u8 | local_ip u32 | local_port u16 | client_ip u32 | client_port u16 |
//! connection_id u32 | flag u8 | gateway_port u16 | ext_len u32 | ext | body`.

use std::net::Ipv4Addr;

use bytes::{BufMut, Bytes, BytesMut};

use crate::DEFAULT_MAX_PACKAGE_SIZE;
use crate::php::{self, Value};

/// Length of the fixed header; `pack_len` counts it.
pub const HEADER_LEN: usize = 28;

/// Why a byte stream is not a valid packet stream. Any of these closes the inner link.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    /// `pack_len` is smaller than the header itself (PHP would hang or decode garbage).
    #[error("packet length {0} is shorter than the 28-byte header")]
    TooShort(u32),
    /// `pack_len` exceeds the configured maximum (workerman destroys the connection).
    #[error("packet length {len} exceeds the maximum of {max} bytes")]
    TooLong { len: u64, max: usize },
    /// `ext_len` points past the end of the packet.
    #[error("ext length {ext_len} does not fit in a packet of {pack_len} bytes")]
    ExtOverrun { ext_len: u32, pack_len: u32 },
}

/// A command byte (§2.3). Unknown values are kept, not rejected: PHP logs and ignores them, and the
/// connection stays open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cmd {
    OnConnect,
    OnMessage,
    OnClose,
    SendToOne,
    SendToAll,
    Kick,
    Destroy,
    UpdateSession,
    GetAllClientSessions,
    IsOnline,
    BindUid,
    UnbindUid,
    SendToUid,
    GetClientIdByUid,
    BatchGetClientIdByUid,
    JoinGroup,
    LeaveGroup,
    SendToGroup,
    GetClientSessionsByGroup,
    GetClientCountByGroup,
    Select,
    GetGroupIdList,
    Ungroup,
    BatchGetClientCountByGroup,
    WorkerConnect,
    Ping,
    GatewayClientConnect,
    GetSessionByClientId,
    SetSession,
    OnWebSocketConnect,
    /// A value GatewayWorker does not define.
    Unknown(u8),
}

/// gatewire extension, worker → gateway: "route no new events to me". A gatewire gateway stops
/// routing to that worker (its clients move on their next event) and answers with the same cmd
/// on the link: nothing follows it but replies. A PHP gateway logs it as an unknown cmd and
/// ignores it (§2.3), so a retiring worker also gives up after a timeout.
pub const CMD_WORKER_DRAIN: Cmd = Cmd::Unknown(240);

/// gatewire extension, worker → gateway, sent right after CMD_WORKER_CONNECT: a gatewire
/// gateway echoes it once the worker is a routing target, so a new worker knows when it is
/// fully linked (a reload waits for that). PHP gateways ignore it.
pub const CMD_WORKER_CONFIRM: Cmd = Cmd::Unknown(241);

/// gatewire extension, both ways on a worker's link: a gatewire gateway asks "are you reading?"
/// (with `gateway.worker_stall_timeout` on) and a gatewire worker answers with the same cmd once
/// it has handled everything sent before it. Sent only to workers that said `max_packet_size`
/// in their hello (PHP workers do not), so PHP never sees it.
pub const CMD_WORKER_ALIVE: Cmd = Cmd::Unknown(242);

/// gatewire extension, gateway → worker: client X joined group G. An event packet for the client
/// (its session in ext, as `CMD_ON_MESSAGE`), the group's name as the body. Sent once per member
/// change by the gateway that holds the client, to the client's worker, and only to workers that
/// asked for it (`"presence": true` in their hello): PHP never sees it.
pub const CMD_ON_GROUP_JOIN: Cmd = Cmd::Unknown(243);

/// gatewire extension, gateway → worker: client X left group G (it left, the group was
/// dissolved, or the client closed: then before its `CMD_ON_CLOSE`). As [`CMD_ON_GROUP_JOIN`].
pub const CMD_ON_GROUP_LEAVE: Cmd = Cmd::Unknown(244);

/// Every defined command with its numeric value; the one table both conversions use.
const CMD_TABLE: [(Cmd, u8); 30] = [
    (Cmd::OnConnect, 1),
    (Cmd::OnMessage, 3),
    (Cmd::OnClose, 4),
    (Cmd::SendToOne, 5),
    (Cmd::SendToAll, 6),
    (Cmd::Kick, 7),
    (Cmd::Destroy, 8),
    (Cmd::UpdateSession, 9),
    (Cmd::GetAllClientSessions, 10),
    (Cmd::IsOnline, 11),
    (Cmd::BindUid, 12),
    (Cmd::UnbindUid, 13),
    (Cmd::SendToUid, 14),
    (Cmd::GetClientIdByUid, 15),
    (Cmd::BatchGetClientIdByUid, 16),
    (Cmd::JoinGroup, 20),
    (Cmd::LeaveGroup, 21),
    (Cmd::SendToGroup, 22),
    (Cmd::GetClientSessionsByGroup, 23),
    (Cmd::GetClientCountByGroup, 24),
    (Cmd::Select, 25),
    (Cmd::GetGroupIdList, 26),
    (Cmd::Ungroup, 27),
    (Cmd::BatchGetClientCountByGroup, 28),
    (Cmd::WorkerConnect, 200),
    (Cmd::Ping, 201),
    (Cmd::GatewayClientConnect, 202),
    (Cmd::GetSessionByClientId, 203),
    (Cmd::SetSession, 204),
    (Cmd::OnWebSocketConnect, 205),
];

impl Cmd {
    /// All defined commands, in numeric order.
    pub fn all() -> impl Iterator<Item = Cmd> {
        CMD_TABLE.iter().map(|&(cmd, _)| cmd)
    }

    /// Whether the gateway answers this command with a query reply (§2.4).
    pub fn is_query(self) -> bool {
        matches!(
            self,
            Cmd::GetAllClientSessions
                | Cmd::IsOnline
                | Cmd::GetClientIdByUid
                | Cmd::BatchGetClientIdByUid
                | Cmd::GetClientSessionsByGroup
                | Cmd::GetClientCountByGroup
                | Cmd::Select
                | Cmd::GetGroupIdList
                | Cmd::BatchGetClientCountByGroup
                | Cmd::GetSessionByClientId
        )
    }
}

impl From<u8> for Cmd {
    fn from(value: u8) -> Self {
        CMD_TABLE
            .iter()
            .find(|&&(_, v)| v == value)
            .map_or(Cmd::Unknown(value), |&(cmd, _)| cmd)
    }
}

impl From<Cmd> for u8 {
    fn from(cmd: Cmd) -> Self {
        match cmd {
            Cmd::Unknown(v) => v,
            known => CMD_TABLE
                .iter()
                .find(|&&(c, _)| c == known)
                .map(|&(_, v)| v)
                .expect("every named Cmd is in CMD_TABLE"),
        }
    }
}

/// The flag byte (§2.2). Unknown bits are preserved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Flags(pub u8);

impl Flags {
    /// Set: the body is the raw bytes of a PHP scalar. Clear: the body is `serialize(value)`.
    pub const BODY_IS_SCALAR: u8 = 0x01;
    /// Send the body to the client verbatim, without the client protocol's encoding.
    pub const NOT_CALL_ENCODE: u8 = 0x02;
    /// gatewire extension. On `CMD_ON_MESSAGE`: the client sent a binary WebSocket message. On
    /// sends: encode as a binary WebSocket frame. PHP peers only read bits 0 and 1, so they
    /// ignore it in both directions.
    pub const BINARY: u8 = 0x04;

    /// Flags for a raw string body: what PHP sets for every string message.
    pub const SCALAR: Flags = Flags(Self::BODY_IS_SCALAR);

    pub fn body_is_scalar(self) -> bool {
        self.0 & Self::BODY_IS_SCALAR != 0
    }

    pub fn not_call_encode(self) -> bool {
        self.0 & Self::NOT_CALL_ENCODE != 0
    }

    pub fn binary(self) -> bool {
        self.0 & Self::BINARY != 0
    }

    /// These flags with `BINARY` set or cleared.
    pub fn with_binary(self, binary: bool) -> Flags {
        if binary {
            Flags(self.0 | Self::BINARY)
        } else {
            Flags(self.0 & !Self::BINARY)
        }
    }

    /// These flags with `NOT_CALL_ENCODE` set or cleared.
    pub fn with_raw(self, raw: bool) -> Flags {
        if raw {
            Flags(self.0 | Self::NOT_CALL_ENCODE)
        } else {
            Flags(self.0 & !Self::NOT_CALL_ENCODE)
        }
    }
}

/// The header fields that carry meaning; `pack_len` and `ext_len` are derived from ext and body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Header {
    pub cmd: Cmd,
    /// The gateway's lan ip (the inner address workers dial).
    pub local_ip: Ipv4Addr,
    /// The gateway's inner port (`start_port + shard`).
    pub local_port: u16,
    /// The client's IPv4 address (0.0.0.0 for IPv6 clients, as PHP's `ip2long` gives `false`).
    pub client_ip: Ipv4Addr,
    pub client_port: u16,
    pub connection_id: u32,
    pub flag: Flags,
    /// The gateway's public listen port.
    pub gateway_port: u16,
}

impl Header {
    /// An all-zero header with `cmd` set: how workers start every command (`GatewayProtocol::$empty`).
    pub fn command(cmd: Cmd) -> Header {
        Header {
            cmd,
            local_ip: Ipv4Addr::UNSPECIFIED,
            local_port: 0,
            client_ip: Ipv4Addr::UNSPECIFIED,
            client_port: 0,
            connection_id: 0,
            flag: Flags::default(),
            gateway_port: 0,
        }
    }

    /// A per-client command: `cmd`, `connection_id` and `flag` set, the rest zero.
    pub fn for_connection(cmd: Cmd, connection_id: u32, flag: Flags) -> Header {
        Header {
            connection_id,
            flag,
            ..Header::command(cmd)
        }
    }

    /// This header with another command and flag; the rest (the client's addresses) is kept.
    pub fn with_cmd(self, cmd: Cmd, flag: Flags) -> Header {
        Header { cmd, flag, ..self }
    }

    /// The 28 header bytes for a packet with `ext_len` ext bytes and `body_len` body bytes: what a
    /// vectored write sends before the ext and body slices. Errors when the total overflows u32.
    pub fn encode(&self, ext_len: usize, body_len: usize) -> Result<[u8; HEADER_LEN], PacketError> {
        let total = HEADER_LEN as u64 + ext_len as u64 + body_len as u64;
        let pack_len = u32::try_from(total).map_err(|_| PacketError::TooLong {
            len: total,
            max: u32::MAX as usize,
        })?;
        let mut out = [0u8; HEADER_LEN];
        out[0..4].copy_from_slice(&pack_len.to_be_bytes());
        out[4] = self.cmd.into();
        out[5..9].copy_from_slice(&self.local_ip.octets());
        out[9..11].copy_from_slice(&self.local_port.to_be_bytes());
        out[11..15].copy_from_slice(&self.client_ip.octets());
        out[15..17].copy_from_slice(&self.client_port.to_be_bytes());
        out[17..21].copy_from_slice(&self.connection_id.to_be_bytes());
        out[21] = self.flag.0;
        out[22..24].copy_from_slice(&self.gateway_port.to_be_bytes());
        out[24..28].copy_from_slice(&(ext_len as u32).to_be_bytes());
        Ok(out)
    }

    /// Reads the fields of a 28-byte header; returns the header with `pack_len` and `ext_len`.
    fn decode(b: &[u8; HEADER_LEN]) -> (Header, u32, u32) {
        let u32_at = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let u16_at = |i: usize| u16::from_be_bytes([b[i], b[i + 1]]);
        let header = Header {
            cmd: Cmd::from(b[4]),
            local_ip: Ipv4Addr::from(u32_at(5)),
            local_port: u16_at(9),
            client_ip: Ipv4Addr::from(u32_at(11)),
            client_port: u16_at(15),
            connection_id: u32_at(17),
            flag: Flags(b[21]),
            gateway_port: u16_at(22),
        };
        (header, u32_at(0), u32_at(24))
    }
}

/// One decoded packet; `ext` and `body` share the receive buffer's allocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    pub header: Header,
    pub ext: Bytes,
    pub body: Bytes,
}

impl Packet {
    pub fn new(header: Header, ext: impl Into<Bytes>, body: impl Into<Bytes>) -> Packet {
        Packet {
            header,
            ext: ext.into(),
            body: body.into(),
        }
    }

    /// Appends header + ext + body to `dst`.
    pub fn encode(&self, dst: &mut BytesMut) -> Result<(), PacketError> {
        encode_parts(&self.header, &self.ext, &self.body, dst)
    }

    /// The encoded packet as one buffer.
    pub fn to_bytes(&self) -> Result<Bytes, PacketError> {
        let mut dst = BytesMut::with_capacity(HEADER_LEN + self.ext.len() + self.body.len());
        self.encode(&mut dst)?;
        Ok(dst.freeze())
    }
}

/// Appends one packet made of `header`, `ext` and `body` to `dst`.
pub fn encode_parts(
    header: &Header,
    ext: &[u8],
    body: &[u8],
    dst: &mut BytesMut,
) -> Result<(), PacketError> {
    let head = header.encode(ext.len(), body.len())?;
    dst.reserve(HEADER_LEN + ext.len() + body.len());
    dst.put_slice(&head);
    dst.put_slice(ext);
    dst.put_slice(body);
    Ok(())
}

/// Incremental packet decoder for one inner connection.
#[derive(Debug, Clone)]
pub struct PacketDecoder {
    max_len: usize,
}

impl Default for PacketDecoder {
    fn default() -> Self {
        PacketDecoder::new(DEFAULT_MAX_PACKAGE_SIZE)
    }
}

impl PacketDecoder {
    /// A decoder that rejects packets longer than `max_len` bytes (header included).
    pub fn new(max_len: usize) -> PacketDecoder {
        PacketDecoder { max_len }
    }

    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// Takes the next whole packet off the front of `buf`, or returns `Ok(None)` when it has not
    /// fully arrived. Bad lengths are reported as soon as the first four bytes are in, so an
    /// oversized packet is never buffered; nothing is reserved for the announced length (the
    /// buffer grows only with bytes that arrive, so announcing 10 MiB costs nothing).
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Packet>, PacketError> {
        if buf.len() < 4 {
            return Ok(None);
        }
        let pack_len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
        if (pack_len as usize) < HEADER_LEN {
            return Err(PacketError::TooShort(pack_len));
        }
        if pack_len as usize > self.max_len {
            return Err(PacketError::TooLong {
                len: pack_len.into(),
                max: self.max_len,
            });
        }
        if buf.len() < HEADER_LEN {
            return Ok(None);
        }
        let head: &[u8; HEADER_LEN] = buf[..HEADER_LEN].try_into().expect("length checked");
        let (header, _, ext_len) = Header::decode(head);
        if ext_len > pack_len - HEADER_LEN as u32 {
            return Err(PacketError::ExtOverrun { ext_len, pack_len });
        }
        if buf.len() < pack_len as usize {
            return Ok(None);
        }
        let mut packet = buf.split_to(pack_len as usize).freeze();
        let _ = packet.split_to(HEADER_LEN);
        let ext = packet.split_to(ext_len as usize);
        Ok(Some(Packet {
            header,
            ext,
            body: packet,
        }))
    }
}

/// The body bytes and scalar flag PHP's encoder produces for `value` (§2.2): scalars as their
/// string form with `BODY_IS_SCALAR` (true → "1", false → "", floats at precision 14), arrays
/// and null serialized with the bit clear.
pub fn encode_body(value: &Value) -> (Flags, Bytes) {
    match value {
        Value::Str(s) => (Flags::SCALAR, s.clone()),
        Value::Int(i) => (Flags::SCALAR, Bytes::from(i.to_string())),
        Value::Bool(true) => (Flags::SCALAR, Bytes::from_static(b"1")),
        Value::Bool(false) => (Flags::SCALAR, Bytes::new()),
        Value::Float(x) => (Flags::SCALAR, Bytes::from(php::float_to_string(*x))),
        Value::Null | Value::Array(_) => (Flags::default(), Bytes::from(php::serialize(value))),
    }
}

/// The value a PHP receiver sees for `body` under `flag`: the raw string when `BODY_IS_SCALAR` is
/// set, otherwise `unserialize(body)`, which is `false` when it fails (as in PHP).
pub fn decode_body(flag: Flags, body: &Bytes) -> Value {
    if flag.body_is_scalar() {
        return Value::Str(body.clone());
    }
    php::unserialize(body).unwrap_or(Value::Bool(false))
}
