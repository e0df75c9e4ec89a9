//! `broadcast`: every message, unchanged and of the same frame type, to every client of every
//! gateway (fanout benchmarks).

use crate::worker::{Context, Events};

#[derive(Debug, Clone, Default)]
pub struct Broadcast;

impl Events for Broadcast {
    fn on_message(&mut self, ctx: &mut Context<'_>, message: &[u8]) {
        ctx.gateway().send_to_all(ctx.same_type(message));
    }
}
