//! The worker app of `benches/uid_routing.sh`, run as a user's own binary would be
//! (`gatewire::run`): `/nick NAME` binds the client to uid NAME and answers `You are now NAME`;
//! `/msg NAME TEXT` sends `whispers TEXT` to uid NAME and answers nothing. These are the chat
//! app's private messages without its room announcements, which tell every client of every join
//! (100,000 joins would be 5·10⁹ deliveries before the measurement starts).

use std::process::ExitCode;

use gatewire::{Context, Events};

#[derive(Debug, Clone, Default)]
struct Uids;

impl Events for Uids {
    fn on_message(&mut self, ctx: &mut Context<'_>, message: &[u8]) {
        let text = String::from_utf8_lossy(message);
        if let Some(name) = text.strip_prefix("/nick ") {
            ctx.gateway().bind_uid(ctx.client_id, name);
            ctx.send(format!("You are now {name}"));
        } else if let Some((to, body)) = text.strip_prefix("/msg ").and_then(|r| r.split_once(' '))
        {
            ctx.gateway().send_to_uid(&[to], format!("whispers {body}"));
        }
    }
}

fn main() -> ExitCode {
    gatewire::run(Uids)
}
