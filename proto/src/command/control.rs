//! gatewire's extensions on a worker's link (PHP gateways log and ignore them): a new worker
//! asks to be told when it is a routing target (`CMD_WORKER_CONFIRM`), a retiring one asks to
//! be routed nothing new (`CMD_WORKER_DRAIN`). The gateway answers each with the same cmd. A
//! gateway watching for stalled workers asks `CMD_WORKER_ALIVE`; the worker answers in kind.

use super::is_extension;
use crate::packet::{CMD_WORKER_ALIVE, CMD_WORKER_CONFIRM, CMD_WORKER_DRAIN, Header, Packet};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    Confirm,
    Drain,
    Alive,
}

impl Control {
    pub(super) fn from_packet(packet: &Packet) -> Option<Control> {
        let cmd = packet.header.cmd;
        if !is_extension(cmd) {
            return None;
        }
        Some(if cmd == CMD_WORKER_DRAIN {
            Control::Drain
        } else if cmd == CMD_WORKER_ALIVE {
            Control::Alive
        } else {
            Control::Confirm
        })
    }

    pub(super) fn to_packet(self) -> Packet {
        let cmd = match self {
            Control::Confirm => CMD_WORKER_CONFIRM,
            Control::Drain => CMD_WORKER_DRAIN,
            Control::Alive => CMD_WORKER_ALIVE,
        };
        Packet::new(Header::command(cmd), "", "")
    }
}
