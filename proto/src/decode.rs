//! What every incremental decoder of this crate is: something that takes the next whole unit
//! (a packet, a line, a frame, a WebSocket message) off the front of a growing buffer.

use bytes::{Bytes, BytesMut};

/// An incremental decoder: `Ok(None)` until a whole unit has arrived; an error means the stream
/// cannot be read on (its connection is closed).
pub trait Decode {
    type Item;
    type Error: std::fmt::Display;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Self::Item>, Self::Error>;
}

macro_rules! decoders {
    ($($decoder:ty => $item:ty, $error:ty;)*) => {$(
        impl Decode for $decoder {
            type Item = $item;
            type Error = $error;

            #[inline]
            fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<$item>, $error> {
                <$decoder>::decode(self, buf)
            }
        }
    )*};
}

decoders! {
    crate::packet::PacketDecoder => crate::packet::Packet, crate::packet::PacketError;
    crate::line::LineDecoder => Bytes, crate::line::LineTooLong;
    crate::text::TextDecoder => Bytes, crate::line::LineTooLong;
    crate::frame::FrameDecoder => Bytes, crate::frame::FrameError;
    crate::query_reply::QueryReplyDecoder => Bytes, crate::query_reply::QueryReplyError;
    crate::websocket::FrameDecoder => crate::websocket::Message, crate::websocket::WsError;
}
