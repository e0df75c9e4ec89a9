//! Sessions: stored as opaque bytes (SET_SESSION), merged only by UPDATE_SESSION with PHP's
//! `array_replace_recursive`, and read back byte for byte (GET_SESSION_BY_CLIENT_ID).

use gatewire_proto::Packet;
use gatewire_proto::php::merge_session;
use tracing::warn;

use crate::gateway::core::state::Shard;

impl Shard {
    pub(super) fn set_session(&mut self, packet: &Packet) {
        if let Some(client) = self.clients.get_mut(&packet.header.connection_id) {
            client.session = packet.ext.clone();
        }
    }

    pub(super) fn update_session(&mut self, packet: &Packet) {
        let Some(client) = self.clients.get_mut(&packet.header.connection_id) else {
            return;
        };
        match merge_session(&client.session, &packet.ext) {
            Some(merged) => client.session = merged.into(),
            None => warn!("UPDATE_SESSION with an update that is not a serialized array: ignored"),
        }
    }

    /// Replies with the stored bytes, `a:0:{}` for an empty session, `N;` for no such client.
    pub(super) fn get_session(&mut self, link_id: u64, packet: &Packet) {
        let reply = match self.clients.get(&packet.header.connection_id) {
            None => bytes::Bytes::from_static(b"N;"),
            Some(c) if c.session.is_empty() => bytes::Bytes::from_static(b"a:0:{}"),
            Some(c) => c.session.clone(),
        };
        self.reply(link_id, &reply);
    }
}
