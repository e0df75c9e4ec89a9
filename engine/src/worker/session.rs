//! Which session an event's callback sees (protocol §6.3). A gateway stamps every event with the
//! client's session as it stood when the event left; a write of ours may still be on its way
//! back. Per client the worker keeps the hash of the newest session it knows of and of those its
//! own writes replaced, and decides from the event's hash alone: pure, no I/O.

use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use gatewire_proto::ClientId;
use gatewire_proto::php::{Array, Value, unserialize};

/// At most this many of our own writes are remembered as superseding older sessions.
const MAX_SUPERSEDED: usize = 8;

/// Which session an event should see.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Known {
    /// The one the event carries.
    Event,
    /// The one we wrote last (the event left the gateway before our write arrived).
    Written(Vec<u8>),
    /// Neither is known to be current (changed by another worker or a GatewayClient): ask the
    /// gateway.
    Unknown,
}

/// The session versions of the clients this worker thread has seen with a session. A client
/// without an entry has, as far as this thread knows, no session and no write of ours in flight:
/// most apps never set one, and their events then cost no lookup in a table of every client
/// (that lookup, a cache miss among 10,000 clients, was a fifth of the echo worker's CPU).
#[derive(Debug, Default)]
pub(super) struct Versions {
    clients: HashMap<ClientId, Version>,
}

/// What this worker knows about one client's stored session.
#[derive(Debug, Default)]
struct Version {
    /// Hash of the newest session bytes seen in an event or written by us.
    current: u64,
    /// Hashes of sessions our own writes replaced, not yet confirmed by an event from the
    /// gateway: an event carrying one of them was sent before our write arrived.
    superseded: Vec<u64>,
    /// Our newest write, used for such events.
    written: Option<Vec<u8>>,
}

impl Versions {
    /// An event for `client` carrying session bytes `session`: which session its callback sees.
    pub fn on_event(&mut self, client: ClientId, session: &[u8]) -> Known {
        if self.clients.is_empty() && session.is_empty() {
            return Known::Event;
        }
        let seen = hash(session);
        let Some(version) = self.clients.get_mut(&client) else {
            // First sight of a session for this client: the event's is the newest we know.
            if !session.is_empty() {
                self.clients.insert(client, Version::new(seen));
            }
            return Known::Event;
        };
        if seen == version.current {
            if session.is_empty() {
                // Back to no session, nothing of ours in flight: no entry needed.
                self.clients.remove(&client);
            } else {
                version.superseded.clear();
            }
            return Known::Event;
        }
        if version.superseded.contains(&seen)
            && let Some(bytes) = &version.written
        {
            return Known::Written(bytes.clone());
        }
        *version = Version::new(seen);
        Known::Unknown
    }

    /// We wrote `session` for `client` (it is on its way to the gateway).
    pub fn wrote(&mut self, client: ClientId, session: &[u8]) {
        // No entry: the client had no session as far as we know.
        let version = self
            .clients
            .entry(client)
            .or_insert_with(|| Version::new(hash(b"")));
        if version.superseded.len() == MAX_SUPERSEDED {
            version.superseded.remove(0);
        }
        version.superseded.push(version.current);
        version.current = hash(session);
        version.written = Some(session.to_vec());
    }

    /// The client is gone.
    pub fn closed(&mut self, client: ClientId) {
        self.clients.remove(&client);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.clients.len()
    }
}

impl Version {
    fn new(current: u64) -> Version {
        Version {
            current,
            ..Version::default()
        }
    }
}

fn hash(bytes: &[u8]) -> u64 {
    let mut h = DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
}

/// Session bytes as the array a callback sees: `None` for no session (or bytes that are not a
/// serialized array).
pub(super) fn decode(bytes: &[u8]) -> Option<Array> {
    if bytes.is_empty() {
        return None;
    }
    match unserialize(bytes) {
        Ok(Value::Array(a)) => Some(a),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    fn client(n: u32) -> ClientId {
        ClientId::new(Ipv4Addr::LOCALHOST, 4000, n)
    }

    #[test]
    fn an_event_carrying_the_session_we_know_sees_its_own() {
        let mut v = Versions::default();
        assert_eq!(v.on_event(client(1), b"a"), Known::Event, "first sight");
        assert_eq!(v.on_event(client(1), b"a"), Known::Event);
    }

    #[test]
    fn an_event_sent_before_our_write_arrived_sees_our_write() {
        let mut v = Versions::default();
        v.on_event(client(1), b"old");
        v.wrote(client(1), b"mine");
        assert_eq!(
            v.on_event(client(1), b"old"),
            Known::Written(b"mine".to_vec()),
            "the gateway had not applied our write yet"
        );
        assert_eq!(v.on_event(client(1), b"mine"), Known::Event, "now it has");
        assert_eq!(
            v.on_event(client(1), b"old"),
            Known::Unknown,
            "once confirmed, the old session is not ours any more"
        );
    }

    #[test]
    fn a_session_changed_elsewhere_is_unknown_and_becomes_current() {
        let mut v = Versions::default();
        v.on_event(client(1), b"a");
        assert_eq!(v.on_event(client(1), b"b"), Known::Unknown);
        assert_eq!(v.on_event(client(1), b"b"), Known::Event);
    }

    #[test]
    fn only_the_newest_writes_are_remembered() {
        let mut v = Versions::default();
        v.on_event(client(1), b"s0");
        for i in 1..=MAX_SUPERSEDED + 1 {
            v.wrote(client(1), format!("s{i}").as_bytes());
        }
        let newest = format!("s{}", MAX_SUPERSEDED + 1).into_bytes();
        assert_eq!(
            v.on_event(client(1), b"s1"),
            Known::Written(newest.clone()),
            "a recent one is still ours"
        );
        assert_eq!(
            v.on_event(client(1), b"s0"),
            Known::Unknown,
            "the oldest fell out of the window"
        );
    }

    #[test]
    fn clients_are_kept_apart_and_forgotten_when_closed() {
        let mut v = Versions::default();
        v.on_event(client(1), b"a");
        v.on_event(client(2), b"b");
        assert_eq!(v.on_event(client(2), b"a"), Known::Unknown);
        v.closed(client(1));
        v.closed(client(2));
        assert_eq!(v.len(), 0);
    }

    #[test]
    fn clients_without_a_session_take_no_entry() {
        let mut v = Versions::default();
        assert_eq!(v.on_event(client(1), b""), Known::Event);
        assert_eq!(
            v.len(),
            0,
            "nothing to remember for a client with no session"
        );
        assert_eq!(
            v.on_event(client(1), b"a"),
            Known::Event,
            "a first session is adopted"
        );
        assert_eq!(v.len(), 1);
        v.wrote(client(1), b"");
        assert_eq!(
            v.on_event(client(1), b"a"),
            Known::Written(Vec::new()),
            "sent before our clearing write arrived"
        );
        assert_eq!(
            v.on_event(client(1), b""),
            Known::Event,
            "the clear arrived"
        );
        assert_eq!(v.len(), 0, "back to no session: the entry goes");
    }

    #[test]
    fn an_event_without_a_session_sent_before_our_first_write_sees_the_write() {
        let mut v = Versions::default();
        v.on_event(client(1), b"");
        v.wrote(client(1), b"mine");
        assert_eq!(v.on_event(client(1), b""), Known::Written(b"mine".to_vec()));
        assert_eq!(v.on_event(client(1), b"mine"), Known::Event);
    }

    #[test]
    fn decoding_needs_a_serialized_array() {
        assert_eq!(decode(b""), None);
        assert_eq!(decode(b"i:3;"), None);
        assert!(decode(b"a:1:{s:1:\"k\";s:1:\"v\";}").is_some());
    }
}
