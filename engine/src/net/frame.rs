//! What an outbox queues: bytes owned by one connection's queue, or one frame of a fanout shared by
//! every recipient on this shard.
//!
//! A fanout frame is referenced once per recipient: with `Bytes` each reference is an atomic
//! increment and decrement. Shards share nothing, so a frame never leaves the shard that encoded it,
//! and its count can be a plain `Rc` one: a broadcast reaching several shards is encoded once per
//! shard (each shard builds its own `Frame::shared` from the worker's body), never handed from one
//! shard to another (`Frame` is not `Send`).

use std::ops::Deref;
use std::rc::Rc;

use bytes::Bytes;

/// Bytes queued for one connection.
#[derive(Debug, Clone)]
pub enum Frame {
    /// Bytes for this connection (a reply, a pong, a close frame, a worker packet).
    Own(Bytes),
    /// One frame of a fanout, counted without atomics: cloning it for each recipient costs a
    /// plain increment on this shard's core.
    Shared(Rc<[u8]>),
}

impl Frame {
    /// A frame many connections of this shard will queue.
    pub fn shared(bytes: &[u8]) -> Frame {
        Frame::Shared(Rc::from(bytes))
    }
}

impl Deref for Frame {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Frame::Own(bytes) => bytes,
            Frame::Shared(bytes) => bytes,
        }
    }
}

impl From<Bytes> for Frame {
    fn from(bytes: Bytes) -> Frame {
        Frame::Own(bytes)
    }
}

impl From<Vec<u8>> for Frame {
    fn from(bytes: Vec<u8>) -> Frame {
        Frame::Own(Bytes::from(bytes))
    }
}

impl From<&'static [u8]> for Frame {
    fn from(bytes: &'static [u8]) -> Frame {
        Frame::Own(Bytes::from_static(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shared_frame_is_one_allocation_counted_per_recipient() {
        let frame = Frame::shared(b"\x81\x02hi");
        let copies: Vec<Frame> = (0..3).map(|_| frame.clone()).collect();
        let Frame::Shared(rc) = &frame else {
            panic!("not shared")
        };
        assert_eq!(Rc::strong_count(rc), 4);
        assert!(copies.iter().all(|c| &c[..] == b"\x81\x02hi"));
        let Frame::Shared(other) = &copies[0] else {
            panic!("not shared")
        };
        assert!(Rc::ptr_eq(rc, other), "the same bytes, not a copy");
        drop(copies);
        assert_eq!(Rc::strong_count(rc), 1);
    }
}
