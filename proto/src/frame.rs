//! The `frame://` client protocol (protocol §10.2): a u32 BE **total** length (the 4 length bytes
//! included) followed by the payload.

use bytes::{BufMut, Bytes, BytesMut};

use crate::DEFAULT_MAX_PACKAGE_SIZE;

/// A bad length prefix; the client is closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("frame length {0} is shorter than its 4-byte prefix")]
    TooShort(u32),
    #[error("frame length {len} exceeds the maximum of {max} bytes")]
    TooLong { len: u64, max: usize },
}

/// Decoder for messages from a `frame://` client.
#[derive(Debug, Clone)]
pub struct FrameDecoder {
    max_len: usize,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        FrameDecoder::new(DEFAULT_MAX_PACKAGE_SIZE)
    }
}

impl FrameDecoder {
    /// A decoder that rejects frames longer than `max_len` bytes (prefix included).
    pub fn new(max_len: usize) -> FrameDecoder {
        FrameDecoder { max_len }
    }

    /// The next payload, or `Ok(None)` until it has fully arrived.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        if buf.len() < 4 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
        if len < 4 {
            return Err(FrameError::TooShort(len));
        }
        if len as usize > self.max_len {
            return Err(FrameError::TooLong {
                len: len.into(),
                max: self.max_len,
            });
        }
        if buf.len() < len as usize {
            // Nothing reserved for the announced length: the buffer grows with what arrives.
            return Ok(None);
        }
        let mut frame = buf.split_to(len as usize).freeze();
        let _ = frame.split_to(4);
        Ok(Some(frame))
    }
}

/// Appends the length prefix and `payload` to `dst`.
pub fn encode(payload: &[u8], dst: &mut BytesMut) -> Result<(), FrameError> {
    let total = payload.len() as u64 + 4;
    let len = u32::try_from(total).map_err(|_| FrameError::TooLong {
        len: total,
        max: u32::MAX as usize,
    })?;
    dst.reserve(total as usize);
    dst.put_u32(len);
    dst.put_slice(payload);
    Ok(())
}
