//! One event from a gateway → the app's callback, with the session rules of protocol §6.3: the
//! callback sees the right session, and a session it changed is written back to the gateway.

use std::net::{SocketAddr, SocketAddrV4};
use std::time::Instant;

use gatewire_proto::packet::{CMD_ON_GROUP_JOIN, CMD_ON_GROUP_LEAVE};
use gatewire_proto::php::{Value, serialize};
use gatewire_proto::{ClientId, Cmd, Packet};
use tracing::warn;

use super::context::Context;
use super::events::Events;
use super::session::{self, Known};
use super::state::WorkerThread;

/// Runs the callback for `packet` if it is an event (other packets are ignored) and records how
/// long it took.
pub(super) fn event<A: Events>(worker: &WorkerThread<A>, packet: Packet) {
    let cmd = packet.header.cmd;
    if !matches!(
        cmd,
        Cmd::OnConnect | Cmd::OnMessage | Cmd::OnClose | Cmd::OnWebSocketConnect
    ) && cmd != CMD_ON_GROUP_JOIN
        && cmd != CMD_ON_GROUP_LEAVE
    {
        return;
    }
    let started = Instant::now();
    let h = packet.header;
    let client_id = ClientId::new(h.local_ip, h.local_port, h.connection_id);
    let session = session_for(worker, cmd, client_id, &packet.ext);
    let old = session.clone();
    let mut ctx = Context {
        client_id,
        client_addr: SocketAddr::V4(SocketAddrV4::new(h.client_ip, h.client_port)),
        gateway_port: h.gateway_port,
        session,
        binary: h.flag.binary(),
        gateway: &worker.gateway,
    };
    {
        let mut app = worker.app.borrow_mut();
        match cmd {
            Cmd::OnConnect => app.on_connect(&mut ctx),
            Cmd::OnMessage => app.on_message(&mut ctx, &packet.body),
            Cmd::OnWebSocketConnect => {
                let data = gatewire_proto::packet::decode_body(h.flag, &packet.body);
                app.on_websocket_connect(&mut ctx, &data);
            }
            Cmd::OnClose => app.on_close(&mut ctx),
            join_or_leave => {
                let group = String::from_utf8_lossy(&packet.body);
                if join_or_leave == CMD_ON_GROUP_JOIN {
                    app.on_group_join(&mut ctx, &group);
                } else {
                    app.on_group_leave(&mut ctx, &group);
                }
            }
        }
    }
    // A closed client's session is gone with it; any other change is saved.
    if cmd != Cmd::OnClose && ctx.session != old {
        let bytes = ctx
            .session
            .take()
            .map(|s| serialize(&Value::Array(s)))
            .unwrap_or_default();
        worker.versions.borrow_mut().wrote(client_id, &bytes);
        worker.gateway.set_session_bytes(client_id, bytes);
    }
    worker.stats.observe(started.elapsed());
}

/// The session the callback for an event carrying `carried` sees.
fn session_for<A>(
    worker: &WorkerThread<A>,
    cmd: Cmd,
    client_id: ClientId,
    carried: &[u8],
) -> Option<gatewire_proto::php::Array> {
    if cmd == Cmd::OnClose {
        worker.versions.borrow_mut().closed(client_id);
        return session::decode(carried);
    }
    let known = worker.versions.borrow_mut().on_event(client_id, carried);
    match known {
        Known::Event => session::decode(carried),
        Known::Written(bytes) => session::decode(&bytes),
        Known::Unknown => match worker.gateway.get_session(client_id) {
            Ok(fresh) => fresh,
            Err(e) => {
                warn!(error = %e, "stale session could not be refreshed; using the event's");
                session::decode(carried)
            }
        },
    }
}
