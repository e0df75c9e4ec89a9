//! The shard's state machine driven directly, without sockets or a runtime (quinn-proto's way):
//! synthetic clients and worker links go in, and the tests assert the exact bytes queued on each
//! outbox. Time-driven behaviour (heartbeat, handshake deadlines) is driven tick by tick. These run
//! in milliseconds.

use core::net::SocketAddr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use gatewire_proto::auth::{gateway_client_connect_body, worker_connect_body};
use gatewire_proto::ext::{SendToAllTarget, SendToGroup, key_list_ext};
use gatewire_proto::query_reply::QueryReplyDecoder;
use gatewire_proto::{Cmd, Flags, Header, Packet, PacketDecoder};

use crate::config::{ClientProtocol, GatewayConfig, RouterMode, SlowClientPolicy};
use crate::gateway::core::router::Router;
use crate::gateway::core::shard::{Shard, ShardSettings};
use crate::gateway::core::stats::CloseCause;
use crate::net::{Closing, Outbox};

/// A shard and a clock, with helpers to play workers and clients.
struct Core {
    shard: Shard,
    next_port: u16,
}

fn core_with(edit: impl FnOnce(&mut GatewayConfig)) -> Core {
    let mut config = GatewayConfig::default();
    config.listen.protocol = ClientProtocol::Frame;
    edit(&mut config);
    let settings = ShardSettings::new(&config, 0, 8282);
    Core {
        shard: Shard::new(settings, Router::new(RouterMode::LeastConnections, 7)),
        next_port: 40000,
    }
}

fn core() -> Core {
    core_with(|_| {})
}

/// Everything an outbox holds, as the socket would receive it; the outbox is left empty.
fn take(outbox: &mut Outbox) -> Vec<u8> {
    let mut out = Vec::new();
    for slice in outbox.pending_slices(usize::MAX) {
        out.extend_from_slice(slice);
    }
    outbox.consume(out.len());
    out
}

/// A length-prefixed (`frame://`) client message as the gateway encodes it.
fn framed(payload: &[u8]) -> Vec<u8> {
    let mut out = ((payload.len() + 4) as u32).to_be_bytes().to_vec();
    out.extend_from_slice(payload);
    out
}

impl Core {
    /// A worker link that has said CMD_WORKER_CONNECT as `name`.
    fn worker(&mut self, name: &str) -> u64 {
        let link = self.shard.link_opened("127.0.0.1:50000".parse().unwrap());
        let hello = Packet::new(
            Header::command(Cmd::WorkerConnect),
            "",
            worker_connect_body(name, &self.shard.settings.secret_key),
        );
        self.shard.link_packet(link, hello);
        link
    }

    /// A query client's link (authenticated when a secret is set).
    fn query_link(&mut self) -> u64 {
        let link = self.shard.link_opened("127.0.0.1:50001".parse().unwrap());
        if !self.shard.settings.secret_key.is_empty() {
            let hello = Packet::new(
                Header::command(Cmd::GatewayClientConnect),
                "",
                gateway_client_connect_body(&self.shard.settings.secret_key),
            );
            self.shard.link_packet(link, hello);
        }
        link
    }

    fn accept(&mut self) -> u32 {
        self.next_port += 1;
        let remote = SocketAddr::from(([10, 0, 0, 1], self.next_port));
        self.shard
            .accept_client(remote)
            .expect("a worker takes the client")
    }

    /// A command from `link` about `connection_id`.
    fn command(&mut self, link: u64, cmd: Cmd, id: u32, ext: &str, body: &str) {
        let packet = Packet::new(
            Header::for_connection(cmd, id, Flags::SCALAR),
            ext.to_owned(),
            body.to_owned(),
        );
        self.shard.link_packet(link, packet);
    }

    /// What client `id` would receive now.
    fn client_bytes(&mut self, id: u32) -> Vec<u8> {
        take(&mut self.shard.clients.get_mut(&id).expect("client").outbox)
    }

    /// The packets queued for a link.
    fn link_packets(&mut self, link: u64) -> Vec<Packet> {
        let bytes = take(&mut self.shard.links.get_mut(&link).expect("link").outbox);
        let mut buf = BytesMut::from(&bytes[..]);
        let mut decoder = PacketDecoder::default();
        let mut packets = Vec::new();
        while let Some(p) = decoder.decode(&mut buf).expect("well-formed") {
            packets.push(p);
        }
        assert!(buf.is_empty(), "whole packets only");
        packets
    }

    /// The query replies queued for a link, as text.
    fn replies(&mut self, link: u64) -> Vec<String> {
        let bytes = take(&mut self.shard.links.get_mut(&link).expect("link").outbox);
        let mut buf = BytesMut::from(&bytes[..]);
        let mut decoder = QueryReplyDecoder::default();
        let mut out = Vec::new();
        while let Some(r) = decoder.decode(&mut buf).expect("framed") {
            out.push(String::from_utf8_lossy(&r).into_owned());
        }
        assert!(buf.is_empty(), "whole replies only");
        out
    }

    fn cmds(&mut self, link: u64) -> Vec<(Cmd, u32)> {
        self.link_packets(link)
            .into_iter()
            .map(|p| (p.header.cmd, p.header.connection_id))
            .collect()
    }

    fn closing(&self, id: u32) -> Option<Closing> {
        self.shard.clients.get(&id).and_then(|c| c.outbox.closing())
    }
}

#[test]
fn accept_sends_on_connect_with_the_client_header() {
    let mut c = core();
    let w = c.worker("W:0");
    let id = c.accept();
    let events = c.link_packets(w);
    assert_eq!(events.len(), 1);
    let h = events[0].header;
    assert_eq!((h.cmd, h.connection_id), (Cmd::OnConnect, id));
    assert_eq!(h.client_ip.to_string(), "10.0.0.1");
    assert_eq!(h.gateway_port, 8282);
    assert_eq!(h.local_port, c.shard.settings.inner_port);
}

#[test]
fn without_a_worker_a_client_is_refused_and_counted() {
    let mut c = core();
    assert!(!c.shard.has_workers());
    assert_eq!(c.shard.accept_client("10.0.0.1:1".parse().unwrap()), None);
    assert!(c.shard.clients.is_empty());
    assert_eq!(c.shard.stats.closed_no_worker, 1);
}

#[test]
fn a_message_goes_to_the_clients_worker_with_its_session() {
    let mut c = core();
    let w = c.worker("W:0");
    let id = c.accept();
    c.command(w, Cmd::SetSession, id, "a:1:{s:1:\"k\";i:1;}", "");
    c.link_packets(w);
    c.shard
        .client_message(id, Bytes::from_static(b"hello"), false);
    let events = c.link_packets(w);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].header.cmd, Cmd::OnMessage);
    assert_eq!(&events[0].ext[..], b"a:1:{s:1:\"k\";i:1;}");
    assert_eq!(&events[0].body[..], b"hello");
    assert!(events[0].header.flag.body_is_scalar());
}

#[test]
fn send_to_one_encodes_for_the_listener_protocol() {
    let mut c = core();
    let w = c.worker("W:0");
    let id = c.accept();
    c.command(w, Cmd::SendToOne, id, "", "hi");
    assert_eq!(c.client_bytes(id), framed(b"hi"));
    // An unknown connection id is ignored, as in GatewayWorker.
    c.command(w, Cmd::SendToOne, 999, "", "nobody");
}

#[test]
fn send_to_all_reaches_everyone_but_the_excluded_and_shares_one_buffer() {
    let mut c = core();
    let w = c.worker("W:0");
    let ids: Vec<u32> = (0..4).map(|_| c.accept()).collect();
    let ext = SendToAllTarget::Except(vec![ids[1]]).to_ext();
    c.command(w, Cmd::SendToAll, 0, &ext, "all");
    let queued: Vec<Bytes> = ids
        .iter()
        .filter_map(|id| c.shard.clients[id].outbox.pending_slices(1).next())
        .map(Bytes::copy_from_slice)
        .collect();
    assert_eq!(queued.len(), 3);
    let first = c.shard.clients[&ids[0]]
        .outbox
        .pending_slices(1)
        .next()
        .unwrap();
    let third = c.shard.clients[&ids[2]]
        .outbox
        .pending_slices(1)
        .next()
        .unwrap();
    assert_eq!(first.as_ptr(), third.as_ptr(), "one encoded frame, shared");
    for (i, id) in ids.iter().enumerate() {
        let expected = if i == 1 { Vec::new() } else { framed(b"all") };
        assert_eq!(c.client_bytes(*id), expected);
    }
    // Only: exactly the listed clients.
    let ext = SendToAllTarget::Only(vec![ids[3]]).to_ext();
    c.command(w, Cmd::SendToAll, 0, &ext, "one");
    assert_eq!(c.client_bytes(ids[3]), framed(b"one"));
    assert_eq!(c.client_bytes(ids[0]), b"");
}

#[test]
fn uids_and_groups_route_sends_and_excludes() {
    let mut c = core();
    let w = c.worker("W:0");
    let (a, b, d) = (c.accept(), c.accept(), c.accept());
    c.command(w, Cmd::BindUid, a, "u1", "");
    c.command(w, Cmd::BindUid, b, "u1", "");
    c.command(w, Cmd::BindUid, d, "u2", "");
    c.command(w, Cmd::SendToUid, 0, &key_list_ext(&["u1"]), "to u1");
    assert_eq!(c.client_bytes(a), framed(b"to u1"));
    assert_eq!(c.client_bytes(b), framed(b"to u1"));
    assert_eq!(c.client_bytes(d), b"");

    c.command(w, Cmd::JoinGroup, a, "room", "");
    c.command(w, Cmd::JoinGroup, d, "room", "");
    let ext = SendToGroup::to_ext(&["room"], &[a]);
    c.command(w, Cmd::SendToGroup, 0, &ext, "to room");
    assert_eq!(c.client_bytes(a), b"");
    assert_eq!(c.client_bytes(d), framed(b"to room"));
    // Leaving, and ungroup, take clients out of the index.
    c.command(w, Cmd::LeaveGroup, d, "room", "");
    c.command(
        w,
        Cmd::SendToGroup,
        0,
        &SendToGroup::to_ext(&["room"], &[]),
        "x",
    );
    assert_eq!(c.client_bytes(d), b"");
    assert_eq!(c.client_bytes(a), framed(b"x"));
    c.command(w, Cmd::Ungroup, 0, "room", "");
    assert!(c.shard.groups.get(&"room".into()).is_none());
    // A closed client leaves its uid.
    c.shard.client_closed(a, CloseCause::Peer);
    c.command(w, Cmd::SendToUid, 0, &key_list_ext(&["u1"]), "again");
    assert_eq!(c.client_bytes(b), framed(b"again"));
}

#[test]
fn kick_flushes_then_closes_and_destroy_closes_at_once() {
    let mut c = core();
    let w = c.worker("W:0");
    let (a, b) = (c.accept(), c.accept());
    c.command(w, Cmd::Kick, a, "", "bye");
    assert_eq!(c.closing(a), Some(Closing::AfterFlush));
    assert_eq!(c.client_bytes(a), framed(b"bye"));
    c.command(w, Cmd::SendToOne, b, "", "dropped");
    c.command(w, Cmd::Destroy, b, "", "");
    // A destroyed client is gone at once, its output with it, and its worker hears ON_CLOSE.
    assert!(!c.shard.clients.contains_key(&b));
    let closes: Vec<(Cmd, u32)> = c
        .cmds(w)
        .into_iter()
        .filter(|(cmd, _)| *cmd == Cmd::OnClose)
        .collect();
    assert_eq!(closes, [(Cmd::OnClose, b)]);
}

#[test]
fn sessions_are_stored_merged_and_read_back_byte_for_byte() {
    let mut c = core();
    let w = c.worker("W:0");
    let q = c.query_link();
    let id = c.accept();
    c.command(q, Cmd::GetSessionByClientId, id, "", "");
    c.command(w, Cmd::SetSession, id, "a:1:{s:1:\"a\";i:1;}", "");
    c.command(q, Cmd::GetSessionByClientId, id, "", "");
    c.command(w, Cmd::UpdateSession, id, "a:1:{s:1:\"b\";i:2;}", "");
    c.command(q, Cmd::GetSessionByClientId, id, "", "");
    c.command(q, Cmd::GetSessionByClientId, 999, "", "");
    assert_eq!(
        c.replies(q),
        [
            "a:0:{}",
            "a:1:{s:1:\"a\";i:1;}",
            "a:2:{s:1:\"a\";i:1;s:1:\"b\";i:2;}",
            "N;"
        ]
    );
}

#[test]
fn queries_are_answered_with_length_prefixed_serialized_values() {
    let mut c = core();
    let w = c.worker("W:0");
    let q = c.query_link();
    let id = c.accept();
    c.command(w, Cmd::JoinGroup, id, "g", "");
    c.command(w, Cmd::BindUid, id, "7", "");
    c.command(q, Cmd::IsOnline, id, "", "");
    c.command(q, Cmd::IsOnline, 999, "", "");
    c.command(q, Cmd::GetClientCountByGroup, 0, "g", "");
    c.command(q, Cmd::GetClientIdByUid, 0, "7", "");
    c.command(q, Cmd::GetGroupIdList, 0, "", "");
    assert_eq!(
        c.replies(q),
        [
            "i:1;".to_owned(),
            "i:0;".to_owned(),
            "i:1;".to_owned(),
            format!("a:1:{{i:0;i:{id};}}"),
            "a:1:{i:0;s:1:\"g\";}".to_owned(),
        ]
    );
}

#[test]
fn a_clients_events_stick_to_one_worker_and_move_when_it_drains() {
    let mut c = core();
    let w1 = c.worker("W:0");
    let w2 = c.worker("W:1");
    let ids: Vec<u32> = (0..4).map(|_| c.accept()).collect();
    // Least connections: the first clients alternate between the two workers.
    let on_w1: Vec<u32> = c.cmds(w1).into_iter().map(|(_, id)| id).collect();
    let on_w2: Vec<u32> = c.cmds(w2).into_iter().map(|(_, id)| id).collect();
    assert_eq!(on_w1.len(), 2);
    assert_eq!(on_w2.len(), 2);
    for _ in 0..3 {
        for &id in &ids {
            c.shard.client_message(id, Bytes::from_static(b"m"), false);
        }
    }
    let again_w1: Vec<u32> = c.cmds(w1).into_iter().map(|(_, id)| id).collect();
    assert!(again_w1.iter().all(|id| on_w1.contains(id)), "sticky");
    assert_eq!(again_w1.len(), 6);
    c.link_packets(w2);
    // W:0 drains: it gets the drain answer after everything already queued, and nothing new.
    c.command(w1, gatewire_proto::packet::CMD_WORKER_DRAIN, 0, "", "");
    assert_eq!(c.cmds(w1), [(gatewire_proto::packet::CMD_WORKER_DRAIN, 0)]);
    c.shard
        .client_message(on_w1[0], Bytes::from_static(b"after"), false);
    assert!(c.cmds(w1).is_empty());
    assert_eq!(c.cmds(w2), [(Cmd::OnMessage, on_w1[0])]);
}

#[test]
fn bad_ext_closes_only_that_link() {
    let mut c = core();
    let w = c.worker("W:0");
    let id = c.accept();
    let other = c.worker("W:1");
    c.command(w, Cmd::SendToAll, 0, "{not json", "x");
    assert_eq!(c.shard.links[&w].outbox.closing(), Some(Closing::Now));
    assert_eq!(c.shard.links[&other].outbox.closing(), None);
    assert!(c.shard.clients.contains_key(&id));
    assert_eq!(c.shard.stats.bad_inner_packets, 1);
}

#[test]
fn an_unauthenticated_link_is_closed_when_a_secret_is_set() {
    let mut c = core_with(|g| g.secret_key = "k".into());
    let stranger = c.shard.link_opened("127.0.0.1:50002".parse().unwrap());
    c.command(stranger, Cmd::GetGroupIdList, 0, "", "");
    assert_eq!(
        c.shard.links[&stranger].outbox.closing(),
        Some(Closing::Now)
    );
    assert!(c.replies(stranger).is_empty());
    assert_eq!(c.shard.stats.unauthorized_links, 1);
    let q = c.query_link();
    c.command(q, Cmd::GetGroupIdList, 0, "", "");
    assert_eq!(c.replies(q), ["a:0:{}"]);
}

#[test]
fn packets_before_a_hello_are_bounded_whatever_the_secret() {
    use crate::gateway::core::shard::MAX_PACKET_BEFORE_AUTH;
    for secret in ["", "k"] {
        let mut c = core_with(|g| g.secret_key = secret.into());
        let max = c.shard.settings.max_packet_size;
        let link = c.shard.link_opened("127.0.0.1:50002".parse().unwrap());
        assert_eq!(c.shard.link_max_packet(link), MAX_PACKET_BEFORE_AUTH);
        let hello = Packet::new(
            Header::command(Cmd::GatewayClientConnect),
            "",
            gateway_client_connect_body(secret),
        );
        c.shard.link_packet(link, hello);
        assert_eq!(c.shard.link_max_packet(link), max, "secret {secret:?}");
        let worker = c.worker("w");
        assert_eq!(c.shard.link_max_packet(worker), max);
    }
    // No secret: PHP's GatewayClient sends its command without a hello; a valid one identifies
    // the link.
    let mut c = core();
    let php_client = c.shard.link_opened("127.0.0.1:50003".parse().unwrap());
    c.command(php_client, Cmd::GetGroupIdList, 0, "", "");
    assert_eq!(c.replies(php_client), ["a:0:{}"]);
    assert_eq!(
        c.shard.link_max_packet(php_client),
        c.shard.settings.max_packet_size
    );
}

#[test]
fn an_inner_link_that_sends_no_hello_in_time_is_closed() {
    let mut c = core();
    let silent = c.shard.link_opened("127.0.0.1:50004".parse().unwrap());
    let worker = c.worker("w");
    c.shard.link_hello_due(silent);
    c.shard.link_hello_due(worker);
    assert_eq!(c.shard.links[&silent].outbox.closing(), Some(Closing::Now));
    assert_eq!(c.shard.links[&worker].outbox.closing(), None);
    assert_eq!(c.shard.stats.inner_hello_timeouts, 1);
}

#[test]
fn over_the_pending_input_budget_the_largest_incomplete_message_is_closed() {
    let mut c = core_with(|g| g.max_pending_input_bytes = 100);
    c.worker("w");
    let (a, b, d) = (c.accept(), c.accept(), c.accept());
    c.shard.client_pending_input(a, 40, false);
    c.shard.client_pending_input(b, 50, false);
    c.shard.client_pending_input(d, 5, false);
    assert_eq!(c.shard.stats.pending_input_closes, 0, "95 of 100");
    c.shard.client_pending_input(a, 60, false);
    assert_eq!(c.shard.stats.pending_input_closes, 1);
    assert!(c.shard.client_closing(a), "the largest (60) is closed");
    assert!(!c.shard.client_closing(b) && !c.shard.client_closing(d));
    // A closing client's input no longer counts; a finished message frees its share.
    c.shard.client_pending_input(a, 90, false);
    c.shard.client_pending_input(b, 0, true);
    c.shard.client_pending_input(d, 90, false);
    assert_eq!(c.shard.stats.pending_input_closes, 1, "90 of 100");
}

#[test]
fn an_incomplete_message_times_out_but_a_stream_of_whole_ones_does_not() {
    let mut c = core_with(|g| g.message_timeout = 4.0);
    c.worker("w");
    let (stuck, streaming) = (c.accept(), c.accept());
    c.shard.client_pending_input(stuck, 10, false);
    c.shard.client_pending_input(streaming, 10, false);
    for _ in 0..4 {
        c.shard.sweep_messages();
        // Each batch finishes a message and starts the next.
        c.shard.client_pending_input(streaming, 10, true);
    }
    assert_eq!(c.shard.stats.message_timeouts, 0, "within the timeout");
    c.shard.sweep_messages();
    assert_eq!(c.shard.stats.message_timeouts, 1);
    assert!(c.shard.client_closing(stuck));
    assert!(!c.shard.client_closing(streaming));
}

#[test]
fn a_worker_that_leaves_the_alive_question_unanswered_stops_being_routed_to() {
    use gatewire_proto::auth::worker_connect_body_with_limit;
    use gatewire_proto::packet::CMD_WORKER_ALIVE;
    let mut c = core_with(|g| g.worker_stall_timeout = 4.0);
    let gatewire_worker = |c: &mut Core, name: &str| {
        let link = c.shard.link_opened("127.0.0.1:50010".parse().unwrap());
        let hello = Packet::new(
            Header::command(Cmd::WorkerConnect),
            "",
            worker_connect_body_with_limit(name, "", 1 << 20),
        );
        c.shard.link_packet(link, hello);
        link
    };
    let (a, b) = (gatewire_worker(&mut c, "a"), gatewire_worker(&mut c, "b"));
    let php = c.worker("php");
    let id = c.accept();
    let bound = if c.link_packets(a).is_empty() { b } else { a };
    let other = if bound == a { b } else { a };
    c.link_packets(other);
    c.shard.sweep_worker_stalls();
    let asked = |c: &mut Core, link| {
        c.link_packets(link)
            .iter()
            .any(|p| p.header.cmd == CMD_WORKER_ALIVE)
    };
    assert!(
        asked(&mut c, a) && asked(&mut c, b),
        "gatewire workers are asked"
    );
    assert!(!asked(&mut c, php), "PHP workers are not");
    let alive = Packet::new(Header::command(CMD_WORKER_ALIVE), "", "");
    for _ in 0..4 {
        c.shard.sweep_worker_stalls();
        c.shard.link_packet(other, alive.clone());
    }
    c.shard.sweep_worker_stalls();
    assert_eq!(c.shard.stats.worker_stalls, 1, "only the silent one");
    assert_eq!(c.shard.stats.clients_moved_from_stalled, 1);
    c.shard
        .client_message(id, Bytes::from_static(b"next"), false);
    let moved = c
        .link_packets(other)
        .iter()
        .chain(c.link_packets(php).iter())
        .any(|p| p.header.cmd == Cmd::OnMessage);
    assert!(moved, "the client's next event goes to a live worker");
    // It answers at last: a routing target again.
    c.shard.link_packet(bound, alive);
    assert!(c.shard.workers.values().any(|&l| l == bound));
}

#[test]
fn heartbeat_pings_silent_clients_and_drops_them_after_twice_the_limit() {
    let mut c = core_with(|g| {
        g.ping_interval = 10.0;
        g.ping_not_response_limit = 1;
        g.ping_data = "ping".into();
    });
    assert_eq!(c.shard.heartbeat_period(), Some(5.0));
    let w = c.worker("W:0");
    let (quiet, talker) = (c.accept(), c.accept());
    c.link_packets(w);
    // Ticks every half interval: the counter goes 0, 1 (no ping on either: a ping goes out once
    // per whole interval), 2 (ping), and at 2 × limit the quiet client is dropped.
    for tick in 1..=4 {
        c.shard
            .client_message(talker, Bytes::from_static(b"alive"), false);
        c.shard.heartbeat_tick();
        let expected = if tick == 3 {
            framed(b"ping")
        } else {
            Vec::new()
        };
        if tick < 4 {
            assert_eq!(c.client_bytes(quiet), expected, "tick {tick}");
        }
    }
    assert!(!c.shard.clients.contains_key(&quiet));
    assert!(c.shard.clients.contains_key(&talker));
    assert_eq!(
        c.client_bytes(talker),
        b"",
        "a talking client is never pinged"
    );
    assert_eq!(c.shard.stats.closed_by_heartbeat, 1);
}

#[test]
fn slow_clients_lose_messages_or_their_connection_by_policy() {
    for policy in [SlowClientPolicy::Drop, SlowClientPolicy::Close] {
        let mut c = core_with(|g| {
            g.send_to_client_buffer_size = 100;
            g.slow_client_policy = policy;
        });
        let w = c.worker("W:0");
        let id = c.accept();
        let big = "x".repeat(60);
        c.command(w, Cmd::SendToOne, id, "", &big);
        c.command(w, Cmd::SendToOne, id, "", &big);
        match policy {
            SlowClientPolicy::Drop => {
                assert_eq!(c.shard.stats.slow_client_drops, 1);
                assert_eq!(c.client_bytes(id), framed(big.as_bytes()));
            }
            SlowClientPolicy::Close => {
                assert_eq!(c.shard.stats.slow_client_closes, 1);
                assert!(!c.shard.clients.contains_key(&id));
            }
        }
    }
}

#[test]
fn an_overloaded_shard_sheds_output_for_clients_behind_and_keeps_serving_the_rest() {
    // Three clients each under their own 100-byte cap, a shard budget of 150 bytes.
    let mut c = core_with(|g| {
        g.send_to_client_buffer_size = 100;
        g.max_pending_output_bytes = 150;
    });
    let w = c.worker("W:0");
    let [a, b, d] = [c.accept(), c.accept(), c.accept()];
    let all = SendToAllTarget::Everyone.to_ext();
    let msg = "x".repeat(36); // 40 bytes framed
    c.command(w, Cmd::SendToAll, 0, &all, &msg);
    assert_eq!(
        c.shard.pending_output.get(),
        120,
        "every client got the first"
    );
    c.command(w, Cmd::SendToAll, 0, &all, &msg);
    assert_eq!(
        c.shard.stats.shard_output_drops, 3,
        "160 > 150: all behind, all shed"
    );
    assert_eq!(
        c.shard.stats.slow_client_drops, 0,
        "no client is over its own cap"
    );
    assert_eq!(c.shard.pending_output.get(), 120);
    // b catches up; a is still under budget with one more, d is not after that.
    assert_eq!(c.client_bytes(b), framed(msg.as_bytes()));
    assert_eq!(c.shard.pending_output.get(), 80);
    c.command(w, Cmd::SendToAll, 0, &all, &msg);
    assert_eq!(c.shard.stats.shard_output_drops, 4, "only d shed");
    assert_eq!(
        c.shard.pending_output.get(),
        160,
        "b had nothing queued: it gets it anyway"
    );
    let twice = [framed(msg.as_bytes()), framed(msg.as_bytes())].concat();
    assert_eq!(c.client_bytes(a), twice);
    assert_eq!(c.client_bytes(b), framed(msg.as_bytes()));
    assert_eq!(c.client_bytes(d), framed(msg.as_bytes()));
    assert_eq!(
        c.shard.pending_output.get(),
        0,
        "the tally follows the writes"
    );
    let hits = c.shard.stats.limit_hits();
    assert!(
        hits.iter()
            .any(|(l, n)| l.label == "shard_output" && *n == 4),
        "counted in limit_hits_total{{limit=\"shard_output\"}}"
    );
    c.shard.destroy_client(a, CloseCause::Worker);
    assert_eq!(c.shard.pending_output.get(), 0);
}

#[test]
fn a_broadcast_is_compressed_once_for_every_client_that_negotiated_deflate() {
    use gatewire_proto::websocket::deflate::{DeflateAgreement, inflate};
    let mut c = core_with(|g| {
        g.listen.protocol = ClientProtocol::WebSocket;
        g.compression = true;
        g.compression_min_size = 100;
    });
    let w = c.worker("W:0");
    let ids: Vec<u32> = (0..4).map(|_| c.accept()).collect();
    for &id in &ids {
        c.shard.clients.get_mut(&id).unwrap().outbox.release();
    }
    // Two clients with a full window, one that accepts only 512-byte windows, one without deflate.
    for (id, bits) in [(ids[0], 15), (ids[1], 15), (ids[2], 9)] {
        c.shard.client_deflates(
            id,
            DeflateAgreement {
                server_window_bits: bits,
            },
        );
    }
    let all = SendToAllTarget::Everyone.to_ext();
    let long = "{\"price\":101.25}".repeat(40); // 640 bytes
    c.command(w, Cmd::SendToAll, 0, &all, &long);
    assert_eq!(
        c.shard.stats.compressions, 1,
        "compressed once for the shard"
    );
    assert_eq!(c.shard.stats.compressed_deliveries, 2);
    let first = c.shard.clients[&ids[0]]
        .outbox
        .pending_slices(1)
        .next()
        .unwrap();
    let second = c.shard.clients[&ids[1]]
        .outbox
        .pending_slices(1)
        .next()
        .unwrap();
    assert_eq!(
        first.as_ptr(),
        second.as_ptr(),
        "one compressed frame, shared"
    );
    let frame = c.client_bytes(ids[0]);
    assert_eq!(frame[0], 0x80 | 0x40 | 0x1, "FIN, RSV1, text");
    let len = usize::from(frame[1] & 0x7f);
    assert!(len < 100, "{len} bytes on the wire for 640");
    assert_eq!(
        &inflate(&frame[2..2 + len], 1 << 20).unwrap()[..],
        long.as_bytes()
    );
    // Over the 512-byte window, and without deflate: the plain frame.
    for id in [ids[2], ids[3]] {
        let plain = c.client_bytes(id);
        assert_eq!(plain[0], 0x81, "FIN, text, no RSV1");
        assert_eq!(&plain[4..], long.as_bytes());
    }
    // Below compression_min_size nothing is compressed.
    c.command(w, Cmd::SendToOne, ids[0], "", "short");
    assert_eq!(c.client_bytes(ids[0]), b"\x81\x05short");
    assert_eq!(c.shard.stats.compressions, 1);
}

#[test]
fn handshakes_are_closed_on_the_fifth_sweep_of_a_quarter_timeout() {
    let mut c = core_with(|g| {
        g.listen.protocol = ClientProtocol::WebSocket;
        g.handshake_timeout = 10.0;
    });
    assert_eq!(
        c.shard.handshake_check_period(),
        Some(Duration::from_millis(2500))
    );
    c.worker("W:0");
    let stuck = c.accept();
    let done = c.accept();
    c.shard.clients.get_mut(&done).unwrap().outbox.release();
    for _ in 0..4 {
        c.shard.sweep_handshakes();
    }
    assert!(
        c.shard.clients.contains_key(&stuck),
        "at most 10 s in: still waiting"
    );
    c.shard.sweep_handshakes();
    assert!(!c.shard.clients.contains_key(&stuck), "past 10 s: closed");
    assert!(c.shard.clients.contains_key(&done));
    assert_eq!(c.shard.stats.handshake_timeouts, 1);
}

#[test]
fn parking_is_asked_for_by_id_and_a_gone_parked_client_is_handed_back() {
    let mut c = core();
    c.shard.enable_parking();
    let w = c.worker("W:0");
    let (idle, busy) = (c.accept(), c.accept());
    c.shard.sweep_idle(); // marks everyone inactive
    c.shard
        .client_message(busy, Bytes::from_static(b"m"), false);
    c.shard.sweep_idle();
    let mut asked = |id: u32| {
        c.shard
            .clients
            .get_mut(&id)
            .unwrap()
            .outbox
            .take_park_request()
    };
    assert!(asked(idle));
    assert!(!asked(busy));
    // Parked: output is left for the lot to write (by id), a kick asks for a task.
    assert!(c.shard.parked(idle));
    let waker = std::task::Waker::noop();
    c.command(w, Cmd::SendToOne, idle, "", "to parked");
    c.command(w, Cmd::SendToOne, idle, "", "again");
    let work = c.shard.take_parking_work(waker).unwrap();
    assert_eq!((work.dirty, work.wake), (vec![idle], vec![]));
    c.command(w, Cmd::Destroy, idle, "", "");
    let work = c.shard.take_parking_work(waker).unwrap();
    assert_eq!(
        work.wake,
        [idle],
        "the lot closes the socket of a client that is gone"
    );
    assert!(!c.shard.unparked(idle));
}

#[test]
fn an_idle_client_whose_output_waits_for_its_turn_is_still_asked_to_park() {
    // Under a steady broadcast a paced client's outbox is seldom empty when the sweep comes; it
    // parks once its task has written it.
    let mut c = core();
    c.shard.enable_parking();
    let w = c.worker("W:0");
    let id = c.accept();
    c.shard.sweep_idle();
    c.command(w, Cmd::SendToOne, id, "", "waiting for its turn");
    c.shard.sweep_idle();
    let client = c.shard.clients.get_mut(&id).unwrap();
    assert!(!client.outbox.is_empty());
    assert!(client.outbox.take_park_request());
}

#[test]
fn output_for_a_parked_client_joins_the_write_its_round_has_not_reached_yet() {
    let mut c = core();
    c.shard.enable_parking();
    let w = c.worker("W:0");
    let (a, b) = (c.accept(), c.accept());
    for id in [a, b] {
        c.shard.sweep_idle();
        c.shard.sweep_idle();
        assert!(c.shard.parked(id));
    }
    let waker = std::task::Waker::noop();
    c.command(w, Cmd::SendToAll, 0, "", "one");
    let round = c.shard.take_parking_work(waker).unwrap().dirty;
    assert_eq!(round, [a, b]);
    // The lot writes `a`, then (having yielded half-way) reads another broadcast.
    take(c.shard.parked_output_to_write(a).unwrap());
    c.command(w, Cmd::SendToAll, 0, "", "two");
    assert_eq!(
        c.shard.take_parking_work(waker).unwrap().dirty,
        [a],
        "`b` has both messages written when its turn comes; only `a` needs another round"
    );
    assert_eq!(
        c.client_bytes(b),
        [framed(b"one"), framed(b"two")].concat(),
        "both in one write"
    );
}

#[test]
fn unread_query_replies_close_the_link_at_the_cap() {
    let mut c = core_with(|g| g.send_to_worker_buffer_size = 64);
    c.worker("W:0");
    let q = c.query_link();
    for _ in 0..20 {
        c.command(q, Cmd::GetGroupIdList, 0, "", "");
    }
    assert_eq!(c.shard.links[&q].outbox.closing(), Some(Closing::Now));
    assert_eq!(c.shard.stats.inner_reply_overflows, 1);
}

#[test]
fn a_newcomer_takes_over_a_worker_key_and_the_holders_clients() {
    let mut c = core();
    let first = c.worker("W:0");
    let id = c.accept();
    assert_eq!(c.cmds(first), [(Cmd::OnConnect, id)]);
    let second = c.worker("W:0");
    assert_eq!(
        c.shard.links[&first].outbox.closing(),
        Some(Closing::AfterFlush),
        "the holder is closed once what was queued to it is written"
    );
    assert_eq!(c.shard.links[&second].outbox.closing(), None);
    assert_eq!(c.shard.stats.worker_key_takeovers, 1);
    // The holder's client goes to the newcomer; the holder's link closing later frees nothing.
    c.shard
        .client_message(id, Bytes::from_static(b"next"), false);
    assert_eq!(c.cmds(second), [(Cmd::OnMessage, id)]);
    c.shard.link_closed(first);
    c.shard
        .client_message(id, Bytes::from_static(b"again"), false);
    assert_eq!(c.cmds(second), [(Cmd::OnMessage, id)]);
}

#[test]
fn a_stopping_gateway_says_going_away_after_what_was_queued_and_drops_handshakes() {
    let mut c = core_with(|g| g.listen.protocol = ClientProtocol::WebSocket);
    let w = c.worker("W:0");
    let (open, handshaking) = (c.accept(), c.accept());
    c.shard.clients.get_mut(&open).unwrap().outbox.release();
    c.command(w, Cmd::SendToOne, open, "", "last");
    c.shard.going_away();
    let mut expected = gatewire_proto::websocket::text_frame(b"last").to_vec();
    expected.extend_from_slice(&gatewire_proto::websocket::close_frame(
        gatewire_proto::websocket::CloseCode::GOING_AWAY,
        "",
    ));
    assert_eq!(c.closing(open), Some(Closing::AfterFlush));
    assert_eq!(
        c.client_bytes(open),
        expected,
        "the message, then close 1001"
    );
    assert!(
        !c.shard.clients.contains_key(&handshaking),
        "a client in its handshake is closed at once"
    );
    assert_eq!(
        c.shard.stats.closed_shutdown, 1,
        "the handshake counted now; the other once its connection ends"
    );
}

#[test]
fn batch_session_and_select_queries_answer_from_the_indexes() {
    let mut c = core();
    let w = c.worker("W:0");
    let q = c.query_link();
    let (a, b) = (c.accept(), c.accept());
    c.command(w, Cmd::JoinGroup, a, "g", "");
    c.command(w, Cmd::JoinGroup, b, "g", "");
    c.command(w, Cmd::BindUid, a, "alice", "");
    c.command(w, Cmd::BindUid, b, "bob", "");
    c.command(w, Cmd::SetSession, a, "a:1:{s:1:\"k\";i:1;}", "");
    c.command(w, Cmd::UnbindUid, b, "", "");
    let uids = key_list_ext(&["alice", "bob"]);
    c.command(q, Cmd::BatchGetClientIdByUid, 0, &uids, "");
    c.command(
        q,
        Cmd::BatchGetClientCountByGroup,
        0,
        &key_list_ext(&["g", "h"]),
        "",
    );
    c.command(q, Cmd::GetClientSessionsByGroup, 0, "g", "");
    c.command(q, Cmd::GetAllClientSessions, 0, "", "");
    let select = gatewire_proto::ext::Select::to_ext(
        &[
            gatewire_proto::ext::SelectField::Uid,
            gatewire_proto::ext::SelectField::Groups,
        ],
        None,
    );
    c.command(q, Cmd::Select, 0, &select, "");
    let session = "s:18:\"a:1:{s:1:\"k\";i:1;}\";";
    assert_eq!(
        c.replies(q),
        [
            format!("a:2:{{s:5:\"alice\";a:1:{{i:0;i:{a};}}s:3:\"bob\";a:0:{{}}}}"),
            "a:2:{s:1:\"g\";i:2;s:1:\"h\";i:0;}".to_owned(),
            format!("a:2:{{i:{a};{session}i:{b};s:0:\"\";}}"),
            format!("a:2:{{i:{a};{session}i:{b};s:0:\"\";}}"),
            format!(
                "a:2:{{i:{a};a:2:{{s:3:\"uid\";s:5:\"alice\";s:6:\"groups\";a:1:{{s:1:\"g\";s:1:\"g\";}}}}\
                 i:{b};a:2:{{s:3:\"uid\";N;s:6:\"groups\";a:1:{{s:1:\"g\";s:1:\"g\";}}}}}}"
            ),
        ],
        "bob was unbound: no ids, no uid in SELECT"
    );
}

#[test]
fn a_new_worker_is_confirmed_after_its_hello() {
    let mut c = core();
    let w = c.worker("W:0");
    c.command(w, gatewire_proto::packet::CMD_WORKER_CONFIRM, 0, "", "");
    assert_eq!(
        c.cmds(w),
        [(gatewire_proto::packet::CMD_WORKER_CONFIRM, 0)],
        "the confirm comes back on the link"
    );
}

#[test]
fn presence_tells_each_member_change_once_and_only_to_workers_that_asked() {
    use gatewire_proto::auth::gatewire_worker_connect_body;
    use gatewire_proto::packet::{CMD_ON_GROUP_JOIN, CMD_ON_GROUP_LEAVE};
    let mut c = core();
    let link = c.shard.link_opened("127.0.0.1:50020".parse().unwrap());
    let hello = Packet::new(
        Header::command(Cmd::WorkerConnect),
        "",
        gatewire_worker_connect_body("chat", "", 1 << 20, true),
    );
    c.shard.link_packet(link, hello);
    let (a, b) = (c.accept(), c.accept());
    c.link_packets(link);
    let presence = |c: &mut Core| -> Vec<(bool, u32, String)> {
        c.link_packets(link)
            .into_iter()
            .filter(|p| p.header.cmd == CMD_ON_GROUP_JOIN || p.header.cmd == CMD_ON_GROUP_LEAVE)
            .map(|p| {
                (
                    p.header.cmd == CMD_ON_GROUP_JOIN,
                    p.header.connection_id,
                    String::from_utf8_lossy(&p.body).into_owned(),
                )
            })
            .collect()
    };
    let joined = |id: u32, g: &str| (true, id, g.to_owned());
    let left = |id: u32, g: &str| (false, id, g.to_owned());

    c.command(link, Cmd::JoinGroup, a, "room", "");
    c.command(link, Cmd::JoinGroup, a, "room", "");
    c.command(link, Cmd::JoinGroup, b, "room", "");
    c.command(link, Cmd::JoinGroup, b, "other", "");
    assert_eq!(
        presence(&mut c),
        [joined(a, "room"), joined(b, "room"), joined(b, "other")],
        "a second join of the same group is no change"
    );
    c.command(link, Cmd::LeaveGroup, a, "other", "");
    assert_eq!(presence(&mut c), [], "leaving a group it is not in");
    c.command(link, Cmd::LeaveGroup, a, "room", "");
    assert_eq!(presence(&mut c), [left(a, "room")]);
    c.command(link, Cmd::Ungroup, 0, "other", "");
    assert_eq!(presence(&mut c), [left(b, "other")]);

    // A closing client leaves each of its groups, before its ON_CLOSE.
    c.command(link, Cmd::JoinGroup, b, "other", "");
    presence(&mut c);
    c.shard.client_closed(b, CloseCause::Peer);
    let cmds: Vec<Cmd> = c.link_packets(link).iter().map(|p| p.header.cmd).collect();
    assert_eq!(cmds, [CMD_ON_GROUP_LEAVE, CMD_ON_GROUP_LEAVE, Cmd::OnClose]);
    assert_eq!(c.shard.stats.presence_events, 8);

    // A worker that did not ask (PHP's hello) hears nothing of it.
    let mut c = core();
    let php = c.worker("php");
    let id = c.accept();
    c.link_packets(php);
    c.command(php, Cmd::JoinGroup, id, "room", "");
    c.shard.client_closed(id, CloseCause::Peer);
    let cmds: Vec<Cmd> = c.link_packets(php).iter().map(|p| p.header.cmd).collect();
    assert_eq!(cmds, [Cmd::OnClose]);
    assert_eq!(c.shard.stats.presence_events, 0);
}

/// Counts the wake-ups of a client's writer.
struct CountingWaker(std::sync::atomic::AtomicUsize);

impl std::task::Wake for CountingWaker {
    fn wake(self: std::sync::Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &std::sync::Arc<Self>) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Core {
    /// Plays client `id`'s task running on a plain socket: its waker (counting) and socket.
    fn client_task(&mut self, id: u32) -> std::sync::Arc<CountingWaker> {
        self.client_task_on(id, Some(1000 + id as i32))
    }

    /// Plays client `id`'s task, with `socket` recorded (`None`: a TLS client's task).
    fn client_task_on(&mut self, id: u32, socket: Option<i32>) -> std::sync::Arc<CountingWaker> {
        let count = std::sync::Arc::new(CountingWaker(Default::default()));
        let outbox = &mut self.shard.clients.get_mut(&id).expect("client").outbox;
        outbox.set_waker(&std::task::Waker::from(count.clone()));
        if let Some(fd) = socket {
            outbox.set_socket(fd);
        }
        count
    }
}

fn wakes(count: &CountingWaker) -> usize {
    count.0.load(std::sync::atomic::Ordering::Relaxed)
}

/// A worker link's batch opened, with one reply in it to a client whose task runs on a plain
/// socket: the core, the worker's link, the client and its task's waker.
fn batch_with_reply(reply: &str) -> (Core, u64, u32, std::sync::Arc<CountingWaker>) {
    let mut c = core();
    let w = c.worker("W:0");
    let id = c.accept();
    let writer = c.client_task(id);
    c.shard.begin_direct_writes();
    c.command(w, Cmd::SendToOne, id, "", reply);
    (c, w, id, writer)
}

#[test]
fn replies_in_a_link_batch_are_written_at_its_end_without_waking_the_client() {
    let (mut c, w, id, writer) = batch_with_reply("hi");
    c.command(w, Cmd::SendToOne, id, "", "there");
    let mut written = Vec::new();
    c.shard.end_direct_writes(|outbox| {
        assert_eq!(outbox.socket(), Some(1000 + id as i32));
        written.push(take(outbox));
    });
    assert_eq!(written, vec![[framed(b"hi"), framed(b"there")].concat()]);
    assert_eq!(wakes(&writer), 0, "the client's task had nothing to do");
}

#[test]
fn what_the_socket_does_not_take_wakes_the_clients_task() {
    let (mut c, _, id, writer) = batch_with_reply("hi");
    c.shard.end_direct_writes(|_full| {});
    assert_eq!(wakes(&writer), 1);
    assert_eq!(
        c.client_bytes(id),
        framed(b"hi"),
        "left for the task to write"
    );
}

#[test]
fn replies_outside_a_batch_or_to_a_client_without_a_plain_socket_wake_its_task() {
    let mut c = core();
    let w = c.worker("W:0");
    let id = c.accept();
    let writer = c.client_task(id);
    c.command(w, Cmd::SendToOne, id, "", "a");
    assert_eq!(wakes(&writer), 1, "no batch open: the task writes");
    assert_eq!(c.client_bytes(id), framed(b"a"));
    // A TLS client's task never records its socket (rustls writes through the task).
    let tls = c.accept();
    let count = c.client_task_on(tls, None);
    c.shard.begin_direct_writes();
    c.command(w, Cmd::SendToOne, tls, "", "b");
    c.shard
        .end_direct_writes(|_| panic!("nothing to write directly"));
    assert_eq!(wakes(&count), 1);
    assert_eq!(c.client_bytes(tls), framed(b"b"));
}

#[test]
fn a_fanout_in_a_batch_wakes_its_writers_and_queued_output_keeps_its_order() {
    let mut c = core();
    let w = c.worker("W:0");
    let id = c.accept();
    let writer = c.client_task(id);
    c.shard.begin_direct_writes();
    let everyone = SendToAllTarget::Everyone;
    c.command(w, Cmd::SendToAll, 0, &everyone.to_ext(), "all");
    // The task has output queued: a reply goes behind it, for the task to write.
    c.command(w, Cmd::SendToOne, id, "", "one");
    c.shard
        .end_direct_writes(|_| panic!("the task writes both"));
    assert!(wakes(&writer) >= 1);
    assert_eq!(
        c.client_bytes(id),
        [framed(b"all"), framed(b"one")].concat()
    );
}

#[test]
fn a_reply_to_a_client_kicked_later_in_the_batch_is_left_to_its_task() {
    let (mut c, w, id, writer) = batch_with_reply("bye soon");
    c.command(w, Cmd::Kick, id, "", "");
    c.shard
        .end_direct_writes(|_| panic!("a closing client's output is its task's"));
    assert!(wakes(&writer) >= 1);
    let outbox = &mut c.shard.clients.get_mut(&id).unwrap().outbox;
    assert_eq!(outbox.closing(), Some(Closing::AfterFlush));
    // The kick's own (empty) message follows the reply.
    assert_eq!(take(outbox), [framed(b"bye soon"), framed(b"")].concat());
}
