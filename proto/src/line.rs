//! Newline framing (workerman's `Text` protocol), used by register links and `text://` clients.
//!
//! A line ends at the first `\n`; it is handed out without its trailing `\r`/`\n` characters. A
//! buffer holding `max_len` bytes or more without a newline is an error (the peer is closed).

use bytes::{Bytes, BytesMut};

/// A line longer than the bound.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no newline within {max} bytes")]
pub struct LineTooLong {
    pub max: usize,
}

/// Incremental line splitter. It remembers how far it has scanned, so a long line arriving in many
/// small reads costs linear time.
#[derive(Debug, Clone)]
pub struct LineDecoder {
    max_len: usize,
    scanned: usize,
}

impl LineDecoder {
    /// A splitter that fails once `max_len` bytes are buffered without a newline.
    pub fn new(max_len: usize) -> LineDecoder {
        LineDecoder {
            max_len,
            scanned: 0,
        }
    }

    /// Takes the next line off `buf`, or `Ok(None)` until one is complete.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, LineTooLong> {
        let start = self.scanned.min(buf.len());
        match buf[start..].iter().position(|&b| b == b'\n') {
            Some(pos) => {
                self.scanned = 0;
                let mut line = buf.split_to(start + pos + 1).freeze();
                let keep = line
                    .iter()
                    .rposition(|&b| b != b'\r' && b != b'\n')
                    .map_or(0, |i| i + 1);
                line.truncate(keep);
                Ok(Some(line))
            }
            None if buf.len() >= self.max_len => Err(LineTooLong { max: self.max_len }),
            None => {
                self.scanned = buf.len();
                Ok(None)
            }
        }
    }
}
