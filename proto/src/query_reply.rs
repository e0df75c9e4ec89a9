//! Query replies (protocol §2.4): `u32 BE payload_length` (not counting itself) followed by the
//! payload, written raw on the connection the query came in on. Requests and replies are 1:1 and in
//! order.

use bytes::{BufMut, Bytes, BytesMut};

use crate::DEFAULT_MAX_PACKAGE_SIZE;

/// Why a reply stream is unusable; the query connection is dropped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryReplyError {
    #[error("query reply of {len} bytes exceeds the maximum of {max} bytes")]
    TooLong { len: u32, max: usize },
    #[error("query reply payload of {0} bytes does not fit a u32 length")]
    PayloadTooLong(usize),
}

/// Appends one reply frame carrying `payload` to `dst`.
pub fn encode(payload: &[u8], dst: &mut BytesMut) -> Result<(), QueryReplyError> {
    let len =
        u32::try_from(payload.len()).map_err(|_| QueryReplyError::PayloadTooLong(payload.len()))?;
    dst.reserve(4 + payload.len());
    dst.put_u32(len);
    dst.put_slice(payload);
    Ok(())
}

/// Incremental decoder for the reply stream of one query connection.
#[derive(Debug, Clone)]
pub struct QueryReplyDecoder {
    max_len: usize,
}

impl Default for QueryReplyDecoder {
    fn default() -> Self {
        QueryReplyDecoder::new(DEFAULT_MAX_PACKAGE_SIZE)
    }
}

impl QueryReplyDecoder {
    /// A decoder that rejects payloads longer than `max_len` bytes.
    pub fn new(max_len: usize) -> QueryReplyDecoder {
        QueryReplyDecoder { max_len }
    }

    /// Takes the next whole reply payload off `buf`, or `Ok(None)` until it has arrived.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, QueryReplyError> {
        if buf.len() < 4 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
        if len as usize > self.max_len {
            return Err(QueryReplyError::TooLong {
                len,
                max: self.max_len,
            });
        }
        let total = 4 + len as usize;
        if buf.len() < total {
            // Nothing reserved for the announced length: the buffer grows with what arrives.
            return Ok(None);
        }
        let mut frame = buf.split_to(total).freeze();
        let _ = frame.split_to(4);
        Ok(Some(frame))
    }
}
