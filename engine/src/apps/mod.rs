//! The built-in apps the stock `gatewire` binary runs (`[worker] app` or `--app`): the chat room,
//! echo, broadcast, and `http` (each event POSTed to a backend in any language). Each is an
//! ordinary [`Events`] implementation, written the way a user writes theirs.

mod broadcast;
mod chat;
mod echo;
pub mod http_hook;

pub use broadcast::Broadcast;
pub use chat::{Chat, PAGE as CHAT_PAGE};
pub use echo::Echo;
pub use http_hook::HttpHook;

use gatewire_proto::php::Value;

use crate::config::{AppName, WorkerConfig};
use crate::worker::{Context, Events, WorkerInfo};

/// One of the built-in apps, chosen at start.
#[derive(Debug, Clone)]
pub enum Builtin {
    Chat(Chat),
    Echo(Echo),
    Broadcast(Broadcast),
    Http(HttpHook),
}

impl Builtin {
    /// The app `config.app` names (with its settings, for `http`).
    pub fn new(config: &WorkerConfig) -> Builtin {
        match config.app {
            AppName::Chat => Builtin::Chat(Chat),
            AppName::Echo => Builtin::Echo(Echo),
            AppName::Broadcast => Builtin::Broadcast(Broadcast),
            AppName::Http => Builtin::Http(HttpHook::new(&config.http)),
        }
    }

    fn app(&mut self) -> &mut dyn AppCallbacks {
        match self {
            Builtin::Chat(a) => a,
            Builtin::Echo(a) => a,
            Builtin::Broadcast(a) => a,
            Builtin::Http(a) => a,
        }
    }
}

/// The object-safe part of [`Events`], so [`Builtin`] can delegate.
trait AppCallbacks {
    fn on_connect(&mut self, ctx: &mut Context<'_>);
    fn on_websocket_connect(&mut self, ctx: &mut Context<'_>, data: &Value);
    fn presence(&self) -> bool;
    fn on_group_join(&mut self, ctx: &mut Context<'_>, group: &str);
    fn on_group_leave(&mut self, ctx: &mut Context<'_>, group: &str);
    fn on_message(&mut self, ctx: &mut Context<'_>, message: &[u8]);
    fn on_close(&mut self, ctx: &mut Context<'_>);
}

impl<E: Events> AppCallbacks for E {
    fn on_connect(&mut self, ctx: &mut Context<'_>) {
        Events::on_connect(self, ctx)
    }
    fn on_websocket_connect(&mut self, ctx: &mut Context<'_>, data: &Value) {
        Events::on_websocket_connect(self, ctx, data)
    }
    fn presence(&self) -> bool {
        Events::presence(self)
    }
    fn on_group_join(&mut self, ctx: &mut Context<'_>, group: &str) {
        Events::on_group_join(self, ctx, group)
    }
    fn on_group_leave(&mut self, ctx: &mut Context<'_>, group: &str) {
        Events::on_group_leave(self, ctx, group)
    }
    fn on_message(&mut self, ctx: &mut Context<'_>, message: &[u8]) {
        Events::on_message(self, ctx, message)
    }
    fn on_close(&mut self, ctx: &mut Context<'_>) {
        Events::on_close(self, ctx)
    }
}

impl Events for Builtin {
    fn on_worker_start(&mut self, _worker: &WorkerInfo) {}

    fn on_connect(&mut self, ctx: &mut Context<'_>) {
        self.app().on_connect(ctx)
    }

    fn on_websocket_connect(&mut self, ctx: &mut Context<'_>, data: &Value) {
        self.app().on_websocket_connect(ctx, data)
    }

    fn on_message(&mut self, ctx: &mut Context<'_>, message: &[u8]) {
        self.app().on_message(ctx, message)
    }

    fn presence(&self) -> bool {
        match self {
            Builtin::Chat(a) => AppCallbacks::presence(a),
            Builtin::Echo(a) => AppCallbacks::presence(a),
            Builtin::Broadcast(a) => AppCallbacks::presence(a),
            Builtin::Http(a) => AppCallbacks::presence(a),
        }
    }

    fn on_group_join(&mut self, ctx: &mut Context<'_>, group: &str) {
        self.app().on_group_join(ctx, group)
    }

    fn on_group_leave(&mut self, ctx: &mut Context<'_>, group: &str) {
        self.app().on_group_leave(ctx, group)
    }

    fn on_close(&mut self, ctx: &mut Context<'_>) {
        self.app().on_close(ctx)
    }
}
