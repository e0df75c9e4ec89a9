//! `chat`: chat rooms any WebSocket client can use (the page at `/`, or any WebSocket tool).
//! A name (kept in the session and bound as the client's uid), one room at a time (a group; the
//! `lobby` first), whispers to a name, and presence: who joins and leaves a room is told to the
//! room by name, from the gateway's group events ([`Events::presence`]), cluster-wide. The
//! command syntax and every line the app sends are in docs/apps.md.

use std::collections::BTreeSet;

use gatewire_proto::php::{Key, Value};

use crate::worker::{Context, Events};

/// The chat's web page (plain HTML and JavaScript, no build step).
pub const PAGE: &str = include_str!("../../static/chat.html");

/// The room a client is in until it joins another.
pub const FIRST_ROOM: &str = "lobby";

/// The longest name or room.
const MAX_NAME: usize = 24;

#[derive(Debug, Clone, Default)]
pub struct Chat;

fn session_text(ctx: &Context<'_>, key: &str) -> Option<String> {
    text(ctx.session.as_ref()?.get(&Key::from(key))?)
}

fn text(value: &Value) -> Option<String> {
    match value {
        Value::Str(s) => Some(String::from_utf8_lossy(s).into_owned()),
        _ => None,
    }
}

/// A name or room: 1 to 24 letters, digits, `-`, `_` or `.`.
fn usable(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// The client's name: its nickname, or `guest-` and the end of its client id.
fn display_name(ctx: &Context<'_>) -> String {
    session_text(ctx, "name").unwrap_or_else(|| guest_name(ctx))
}

fn guest_name(ctx: &Context<'_>) -> String {
    guest_name_of(ctx.client_id)
}

/// `guest-` and five hex digits of a hash of the client id: short, and different for clients of
/// different shards whose connection ids are the same.
fn guest_name_of(id: gatewire_proto::ClientId) -> String {
    let hash = id.to_string().bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    format!("guest-{:05x}", hash & 0xf_ffff)
}

/// Sends `text` to the client's room.
fn to_room(ctx: &Context<'_>, text: &str) {
    let room = session_text(ctx, "room").unwrap_or_else(|| FIRST_ROOM.to_owned());
    ctx.gateway().send_to_group(&[room.as_str()], text, &[]);
}

/// Takes `name` as the client's name (session and uid).
fn take_name(ctx: &mut Context<'_>, name: &str) {
    ctx.session_mut().insert("name", name);
    ctx.gateway().bind_uid(ctx.client_id, name);
}

/// Moves the client to `room` (the leave and the join are told by the presence events).
fn enter_room(ctx: &mut Context<'_>, room: &str) {
    if let Some(old) = session_text(ctx, "room") {
        if old == room {
            return;
        }
        ctx.gateway().leave_group(ctx.client_id, &old);
    }
    ctx.session_mut().insert("room", room);
    ctx.gateway().join_group(ctx.client_id, room);
}

/// Sends the client the names in `room`, asked of every gateway (the sessions of the room's
/// members), without holding up the worker.
fn send_user_list(ctx: &Context<'_>, room: &str) {
    let (gateway, client, room) = (ctx.gateway().clone(), ctx.client_id, room.to_owned());
    ctx.spawn(async move {
        let answer = gateway
            .nonblocking()
            .get_client_sessions_by_group(&room)
            .await;
        let names: BTreeSet<String> = answer
            .value
            .iter()
            .map(|(id, session)| {
                session
                    .as_ref()
                    .and_then(|s| s.get(&Key::from("name")))
                    .and_then(text)
                    .unwrap_or_else(|| guest_name_of(*id))
            })
            .collect();
        let names: Vec<String> = names.into_iter().collect();
        let partial = if answer.unreachable.is_empty() {
            ""
        } else {
            " (some gateways did not answer)"
        };
        gateway.send_to_client(
            client,
            format!("* in {room}: {}{partial}", names.join(", ")),
        );
    });
}

/// What the page or a user sends that the chat does not understand.
const HELP: &str = "/nick NAME, /join ROOM, /msg NAME TEXT, /who";

impl Events for Chat {
    fn presence(&self) -> bool {
        true
    }

    /// A WebSocket client is ready: it gets its id, takes the name and room its page remembered
    /// (`/?name=…&room=…`, re-applied after a reconnect) or a guest name and the lobby.
    fn on_websocket_connect(&mut self, ctx: &mut Context<'_>, data: &Value) {
        let query = |key: &str| {
            data.as_array()
                .and_then(|data| data.get(&Key::from("get")))
                .and_then(Value::as_array)
                .and_then(|get| get.get(&Key::from(key)))
                .and_then(text)
                .filter(|v| usable(v))
        };
        let (name, room) = (query("name"), query("room"));
        ctx.send(format!("Hello {}", ctx.client_id));
        if let Some(name) = &name {
            take_name(ctx, name);
        }
        let name = name.unwrap_or_else(|| guest_name(ctx));
        let room = room.unwrap_or_else(|| FIRST_ROOM.to_owned());
        ctx.send(format!("You are {name} in {room}. Commands: {HELP}"));
        enter_room(ctx, &room);
    }

    fn on_group_join(&mut self, ctx: &mut Context<'_>, room: &str) {
        let name = display_name(ctx);
        ctx.gateway()
            .send_to_group(&[room], format!("* {name} joined {room}"), &[]);
        send_user_list(ctx, room);
    }

    fn on_group_leave(&mut self, ctx: &mut Context<'_>, room: &str) {
        let name = display_name(ctx);
        ctx.gateway()
            .send_to_group(&[room], format!("* {name} left {room}"), &[]);
    }

    fn on_message(&mut self, ctx: &mut Context<'_>, message: &[u8]) {
        let text = String::from_utf8_lossy(message);
        let text = text.trim_end_matches(['\r', '\n']);
        let Some(command) = text.strip_prefix('/') else {
            to_room(ctx, &format!("{} said {text}", display_name(ctx)));
            return;
        };
        let (verb, rest) = command.split_once(' ').unwrap_or((command, ""));
        let rest = rest.trim();
        match verb {
            "nick" => {
                if !usable(rest) {
                    ctx.send("error: usage: /nick NAME (up to 24 letters, digits, - _ .)");
                    return;
                }
                let old = display_name(ctx);
                take_name(ctx, rest);
                ctx.send(format!("You are now {rest}"));
                if old != rest {
                    to_room(ctx, &format!("* {old} is now {rest}"));
                }
            }
            "join" => {
                if !usable(rest) {
                    ctx.send("error: usage: /join ROOM (up to 24 letters, digits, - _ .)");
                    return;
                }
                enter_room(ctx, rest);
                ctx.send(format!("You joined {rest}"));
            }
            "who" => {
                let room = session_text(ctx, "room").unwrap_or_else(|| FIRST_ROOM.to_owned());
                send_user_list(ctx, &room);
            }
            "msg" => {
                let Some((to, body)) = rest.split_once(' ').filter(|(to, _)| usable(to)) else {
                    ctx.send("error: usage: /msg NAME TEXT");
                    return;
                };
                let (to, body) = (to.to_owned(), body.trim().to_owned());
                let from = display_name(ctx);
                let (gateway, me) = (ctx.gateway().clone(), ctx.client_id);
                // Whispered only to a name someone holds, else the sender hears so.
                ctx.spawn(async move {
                    match gateway.nonblocking().is_uid_online(&to).await.value {
                        true => {
                            gateway.send_to_uid(&[to.as_str()], format!("{from} whispers {body}"));
                            gateway.send_to_client(me, format!("You whisper to {to}: {body}"));
                        }
                        false => {
                            gateway
                                .send_to_client(me, format!("error: no one called {to} is here"));
                        }
                    }
                });
            }
            _ => {
                ctx.send(format!("error: unknown command /{verb} (try {HELP})"));
            }
        }
    }
}
