//! Messages between the supervisor and its children, and between the command line and the
//! supervisor: a `u32` big-endian length, then that many bytes of UTF-8 text.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

/// The longest message accepted (a client list of a big gateway fits).
const MAX_MESSAGE: usize = 1 << 30;

pub fn send(stream: &mut UnixStream, text: &str) -> io::Result<()> {
    let len = u32::try_from(text.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "message too long"))?;
    stream.write_all(&len.to_be_bytes())?;
    stream.write_all(text.as_bytes())
}

/// Reads one message; `timeout` bounds the wait (`None`: no limit).
pub fn recv(stream: &mut UnixStream, timeout: Option<Duration>) -> io::Result<String> {
    stream.set_read_timeout(timeout)?;
    let mut len = [0u8; 4];
    stream.read_exact(&mut len)?;
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_MESSAGE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "message too long",
        ));
    }
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body)?;
    String::from_utf8(body).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// One request, one answer (the command line's side of the control socket).
pub fn ask(stream: &mut UnixStream, request: &str, timeout: Duration) -> io::Result<String> {
    send(stream, request)?;
    recv(stream, Some(timeout))
}
