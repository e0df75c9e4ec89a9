//! The `text://` client protocol (protocol §10.2): one message per line. Incoming lines lose their
//! trailing `\r`/`\n`; outgoing messages get a `\n` appended.

use bytes::{BufMut, Bytes, BytesMut};

use crate::DEFAULT_MAX_PACKAGE_SIZE;
use crate::line::{LineDecoder, LineTooLong};

/// Decoder for messages from a `text://` client.
#[derive(Debug, Clone)]
pub struct TextDecoder {
    lines: LineDecoder,
}

impl Default for TextDecoder {
    fn default() -> Self {
        TextDecoder::new(DEFAULT_MAX_PACKAGE_SIZE)
    }
}

impl TextDecoder {
    /// A decoder that closes a client buffering `max_len` bytes without a newline.
    pub fn new(max_len: usize) -> TextDecoder {
        TextDecoder {
            lines: LineDecoder::new(max_len),
        }
    }

    /// The next message, or `Ok(None)` until a newline arrives.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, LineTooLong> {
        self.lines.decode(buf)
    }
}

/// Appends `message` and its newline to `dst`.
pub fn encode(message: &[u8], dst: &mut BytesMut) {
    dst.reserve(message.len() + 1);
    dst.put_slice(message);
    dst.put_u8(b'\n');
}
