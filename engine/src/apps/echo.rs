//! `echo`: every message goes back to its sender, binary as binary (conformance and round-trip
//! benchmarks).

use crate::worker::{Context, Events};

#[derive(Debug, Clone, Default)]
pub struct Echo;

impl Events for Echo {
    fn on_message(&mut self, ctx: &mut Context<'_>, message: &[u8]) {
        ctx.reply(message);
    }
}
