//! Clients admitted with a token (`[gateway.auth]`): what a verified token sets up before the
//! worker hears of the client, a refused client that no worker ever hears of, and the close of a
//! client whose token expires unrefreshed. The token itself is verified on the I/O side
//! (`gateway/client.rs`, with `net::jwt`); the core gets the outcome.

use bytes::Bytes;
use gatewire_proto::Cmd;
use gatewire_proto::php::Key;

use crate::gateway::core::shard::Shard;
use crate::gateway::core::stats::CloseCause;
use crate::net::jwt::Refusal;

/// What a verified token gives its client.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Admission {
    /// `sub`: bound as the client's uid.
    pub uid: Option<Key>,
    /// `groups`: joined.
    pub groups: Vec<Key>,
    /// `info`, serialized as a PHP array: the client's first session.
    pub session: Option<Bytes>,
    /// `exp`, seconds since the epoch: the client is closed then unless it refreshes.
    pub expires: Option<u64>,
}

impl Shard {
    /// Whether clients are held back from workers until their token is verified.
    pub fn token_auth(&self) -> bool {
        self.settings.auth_close_code.is_some()
    }

    /// A verified client: its uid and session are set, then the worker hears ON_CONNECT (which
    /// carries the session; the uid is already bound), then its groups are joined (presence
    /// events follow the connect), then ON_WEBSOCKET_CONNECT with the handshake data (the claims
    /// in it). Returns false when no worker took it (the client is then destroyed).
    pub fn websocket_admitted(
        &mut self,
        id: u32,
        admission: Admission,
        data: Bytes,
        response_101: Bytes,
    ) -> bool {
        let Some(client) = self.clients.get_mut(&id) else {
            return false;
        };
        if let Some(session) = admission.session {
            client.session = session;
        }
        if let Some(uid) = admission.uid {
            self.bind_uid(id, uid);
        }
        if !self.announce(id) {
            return false;
        }
        for group in admission.groups {
            self.join_group(id, group);
        }
        self.token_expiry.set(id, admission.expires);
        self.websocket_connect(id, data, response_101)
    }

    /// Sends the ON_CONNECT held back for a token; false when no worker took it.
    fn announce(&mut self, id: u32) -> bool {
        if let Some(client) = self.clients.get_mut(&id) {
            client.announced = true;
        }
        if self.send_event(
            id,
            Cmd::OnConnect,
            gatewire_proto::Flags::SCALAR,
            &Bytes::new(),
        ) {
            true
        } else {
            self.stats.no_worker += 1;
            self.destroy_client(id, CloseCause::NoWorker);
            false
        }
    }

    /// A client whose token was refused: `response` (a 401) is written and the client closed;
    /// no worker hears of it.
    pub fn websocket_refused(&mut self, id: u32, refusal: Refusal, response: Bytes) {
        self.stats.auth_refusals[refusal as usize] += 1;
        self.close_client_with(id, response, CloseCause::Auth);
    }

    /// A client refreshed its token: the new expiry replaces the old.
    pub fn token_refreshed(&mut self, id: u32, expires: Option<u64>) {
        if self.clients.contains_key(&id) {
            self.stats.auth_refreshes += 1;
            self.token_expiry.set(id, expires);
        }
    }

    /// Closes every client whose token expired at `now` (seconds since the epoch) with the
    /// configured close code; ON_CLOSE follows as for any close.
    pub fn expire_tokens(&mut self, now: u64) {
        let Some(code) = self.settings.auth_close_code else {
            return;
        };
        for id in self.token_expiry.take_due(now) {
            let Some(client) = self.clients.get_mut(&id) else {
                continue;
            };
            if client.outbox.closing().is_some() {
                continue;
            }
            self.stats.auth_expired_closes += 1;
            client.outbox.push(gatewire_proto::websocket::close_frame(
                code,
                "token expired",
            ));
            self.close_client_after_flush(id, CloseCause::Auth);
        }
    }

    /// The expiry sweep's tick: once a second while tokens are checked.
    pub fn sweep_token_expiry(&mut self) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.expire_tokens(now);
    }

    /// How often the expiry sweep runs: every second with `[gateway.auth]` on.
    pub fn token_check_period(&self) -> Option<std::time::Duration> {
        self.token_auth()
            .then_some(std::time::Duration::from_secs(1))
    }
}
