//! Sessions: stored as opaque bytes (SET_SESSION), merged only by UPDATE_SESSION with PHP's
//! `array_replace_recursive`, and read back byte for byte (GET_SESSION_BY_CLIENT_ID).

use gatewire_proto::command::Session;
use gatewire_proto::php::merge_session;

use crate::gateway::core::shard::Shard;

impl Shard {
    pub(super) fn apply_session(&mut self, command: Session) {
        match command {
            Session::Set {
                connection_id,
                session,
            } => {
                if let Some(client) = self.clients.get_mut(&connection_id) {
                    client.session = session;
                }
            }
            Session::Update {
                connection_id,
                update,
            } => {
                let Some(client) = self.clients.get_mut(&connection_id) else {
                    return;
                };
                match merge_session(&client.session, &update) {
                    Some(merged) => client.session = merged.into(),
                    None => {
                        crate::log_limit::warn_limited(
                            "bad session update",
                            "UPDATE_SESSION with an update that is not a serialized array: ignored",
                        );
                    }
                }
            }
        }
    }
}
