//! `chat`: a chat room any WebSocket client can use, plus nicknames (kept in the session), rooms
//! (groups) and private messages (uids). The command syntax is in docs/apps.md.

use gatewire_proto::php::{Key, Value};

use crate::worker::{Context, Events};

/// The chat's web page (plain HTML and JavaScript, no build step).
pub const PAGE: &str = include_str!("../../static/chat.html");

#[derive(Debug, Clone, Default)]
pub struct Chat;

fn session_text(ctx: &Context<'_>, key: &str) -> Option<String> {
    match ctx.session.as_ref()?.get(&Key::from(key))? {
        Value::Str(s) => Some(String::from_utf8_lossy(s).into_owned()),
        _ => None,
    }
}

/// The client's nickname, or its client id.
fn display_name(ctx: &Context<'_>) -> String {
    session_text(ctx, "name").unwrap_or_else(|| ctx.client_id.to_string())
}

/// Sends `text` to the client's room, or to everyone when it is in none.
fn announce(ctx: &Context<'_>, text: &str) {
    match session_text(ctx, "room") {
        Some(room) => ctx.gateway().send_to_group(&[room.as_str()], text, &[]),
        None => ctx.gateway().send_to_all(text),
    }
}

impl Events for Chat {
    fn on_connect(&mut self, ctx: &mut Context<'_>) {
        ctx.send(format!("Hello {}", ctx.client_id));
        ctx.gateway()
            .send_to_all(format!("{} joined", ctx.client_id));
    }

    fn on_message(&mut self, ctx: &mut Context<'_>, message: &[u8]) {
        let text = String::from_utf8_lossy(message);
        let text = text.trim_end_matches(['\r', '\n']);
        if let Some(name) = text.strip_prefix("/nick ") {
            let name = name.trim();
            if name.is_empty() || name.contains(' ') {
                ctx.send("usage: /nick NAME (one word)");
                return;
            }
            ctx.session_mut().insert("name", name);
            ctx.gateway().bind_uid(ctx.client_id, name);
            ctx.send(format!("You are now {name}"));
        } else if let Some(room) = text.strip_prefix("/join ") {
            let room = room.trim();
            if room.is_empty() {
                ctx.send("usage: /join ROOM");
                return;
            }
            if let Some(old) = session_text(ctx, "room") {
                ctx.gateway().leave_group(ctx.client_id, &old);
            }
            ctx.gateway().join_group(ctx.client_id, room);
            ctx.session_mut().insert("room", room);
            ctx.send(format!("You joined {room}"));
        } else if let Some(rest) = text.strip_prefix("/msg ") {
            let Some((to, body)) = rest.trim().split_once(' ') else {
                ctx.send("usage: /msg NAME TEXT");
                return;
            };
            let from = display_name(ctx);
            ctx.gateway()
                .send_to_uid(&[to], format!("{from} whispers {body}"));
            ctx.send(format!("You whisper to {to}: {body}"));
        } else {
            announce(ctx, &format!("{} said {text}", display_name(ctx)));
        }
    }

    fn on_close(&mut self, ctx: &mut Context<'_>) {
        announce(ctx, &format!("{} left", display_name(ctx)));
    }
}
