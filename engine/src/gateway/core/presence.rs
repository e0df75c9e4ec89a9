//! Group presence: when a client joins or leaves a group on this shard (JOIN_GROUP, LEAVE_GROUP,
//! UNGROUP, or the client closing while in groups), its worker hears `CMD_ON_GROUP_JOIN` /
//! `CMD_ON_GROUP_LEAVE` — if that worker asked for them in its hello. A client's membership lives
//! on the one shard that holds it, so each member change is told exactly once in a cluster,
//! with the store on or off. A join of a group the client is already in, or a leave of one it is
//! not in, changes nothing and is not told.

use gatewire_proto::Flags;
use gatewire_proto::packet::{CMD_ON_GROUP_JOIN, CMD_ON_GROUP_LEAVE};
use gatewire_proto::php::Key;

use super::shard::Shard;

impl Shard {
    /// Client `id` became a member of `group`.
    pub(super) fn group_joined(&mut self, id: u32, group: &Key) {
        self.tell_presence(id, CMD_ON_GROUP_JOIN, group);
    }

    /// Client `id` stopped being a member of `group`.
    pub(super) fn group_left(&mut self, id: u32, group: &Key) {
        self.tell_presence(id, CMD_ON_GROUP_LEAVE, group);
    }

    fn tell_presence(&mut self, id: u32, cmd: gatewire_proto::Cmd, group: &Key) {
        if self.presence_links == 0 {
            return;
        }
        let body = group.to_bytes();
        if self.send_event_if(id, cmd, Flags::SCALAR, &body, |link| link.presence) {
            self.stats.presence_events += 1;
        }
    }
}
