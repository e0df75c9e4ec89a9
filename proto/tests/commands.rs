//! Typed worker commands: each encodes to the packet PHP's `Lib\Gateway` writes (cmd, connection
//! id, flag, ext, body) and parses back to itself; what is not a command is refused by name.

use bytes::Bytes;
use gatewire_proto::command::{
    Command, CommandError, Control, Membership, Payload, Query, SendCommand, Session,
};
use gatewire_proto::ext::{Select, SelectField, SelectWhere, SendToAllTarget, SendToGroup};
use gatewire_proto::packet::CMD_WORKER_DRAIN;
use gatewire_proto::php::Key;
use gatewire_proto::{Cmd, Flags, Header, Packet};

fn text(body: &str) -> Payload {
    Payload::new(Bytes::copy_from_slice(body.as_bytes()), false)
}

/// (command, cmd, connection id, flag, ext, body) as PHP writes them.
fn cases() -> Vec<(Command, Cmd, u32, Flags, &'static str, &'static str)> {
    let scalar = Flags::SCALAR;
    vec![
        (
            SendCommand::ToOne {
                connection_id: 7,
                message: text("hi"),
            }
            .into(),
            Cmd::SendToOne,
            7,
            scalar,
            "",
            "hi",
        ),
        (
            SendCommand::ToAll {
                target: SendToAllTarget::Everyone,
                message: text("all"),
            }
            .into(),
            Cmd::SendToAll,
            0,
            scalar,
            "",
            "all",
        ),
        (
            SendCommand::ToAll {
                target: SendToAllTarget::Except(vec![3]),
                message: text("x"),
            }
            .into(),
            Cmd::SendToAll,
            0,
            scalar,
            r#"{"exclude":{"3":3}}"#,
            "x",
        ),
        (
            SendCommand::ToAll {
                target: SendToAllTarget::Only(vec![1, 2]),
                message: text("x"),
            }
            .into(),
            Cmd::SendToAll,
            0,
            scalar,
            r#"{"connections":{"1":1,"2":2}}"#,
            "x",
        ),
        (
            SendCommand::ToUid {
                uids: vec![Key::from("alice"), Key::from(42u32)],
                message: text("u"),
            }
            .into(),
            Cmd::SendToUid,
            0,
            scalar,
            r#"["alice","42"]"#,
            "u",
        ),
        (
            SendCommand::ToGroup {
                target: SendToGroup {
                    groups: vec![Key::from("room")],
                    exclude: vec![],
                },
                message: Payload::new(Bytes::from_static(b"\x00\xff"), true),
            }
            .into(),
            Cmd::SendToGroup,
            0,
            scalar.with_binary(true),
            r#"{"group":["room"],"exclude":null}"#,
            "\u{0}\u{ff}",
        ),
        (
            SendCommand::Kick {
                connection_id: 9,
                message: None,
            }
            .into(),
            Cmd::Kick,
            9,
            Flags::default(),
            "",
            "N;",
        ),
        (
            SendCommand::Kick {
                connection_id: 9,
                message: Some(text("bye")),
            }
            .into(),
            Cmd::Kick,
            9,
            scalar,
            "",
            "bye",
        ),
        (
            SendCommand::Destroy { connection_id: 9 }.into(),
            Cmd::Destroy,
            9,
            scalar,
            "",
            "",
        ),
        (
            Membership::BindUid {
                connection_id: 5,
                uid: Key::from("alice"),
            }
            .into(),
            Cmd::BindUid,
            5,
            scalar,
            "alice",
            "",
        ),
        (
            Membership::UnbindUid { connection_id: 5 }.into(),
            Cmd::UnbindUid,
            5,
            scalar,
            "",
            "",
        ),
        (
            Membership::JoinGroup {
                connection_id: 5,
                group: Key::from("room"),
            }
            .into(),
            Cmd::JoinGroup,
            5,
            scalar,
            "room",
            "",
        ),
        (
            Membership::LeaveGroup {
                connection_id: 5,
                group: Key::from("room"),
            }
            .into(),
            Cmd::LeaveGroup,
            5,
            scalar,
            "room",
            "",
        ),
        (
            Membership::Ungroup {
                group: Key::from("room"),
            }
            .into(),
            Cmd::Ungroup,
            0,
            scalar,
            "room",
            "",
        ),
        (
            Session::Set {
                connection_id: 4,
                session: Bytes::from_static(b"a:0:{}"),
            }
            .into(),
            Cmd::SetSession,
            4,
            scalar,
            "a:0:{}",
            "",
        ),
        (
            Session::Update {
                connection_id: 4,
                update: Bytes::from_static(b"a:0:{}"),
            }
            .into(),
            Cmd::UpdateSession,
            4,
            scalar,
            "a:0:{}",
            "",
        ),
        (
            Query::GetSession { connection_id: 4 }.into(),
            Cmd::GetSessionByClientId,
            4,
            scalar,
            "",
            "",
        ),
        (
            Query::GetAllClientSessions.into(),
            Cmd::GetAllClientSessions,
            0,
            scalar,
            "",
            "",
        ),
        (
            Query::IsOnline { connection_id: 4 }.into(),
            Cmd::IsOnline,
            4,
            scalar,
            "",
            "",
        ),
        (
            Query::GetClientIdByUid {
                uid: Key::from("alice"),
            }
            .into(),
            Cmd::GetClientIdByUid,
            0,
            scalar,
            "alice",
            "",
        ),
        (
            Query::BatchGetClientIdByUid {
                uids: vec![Key::from("a"), Key::from("b")],
            }
            .into(),
            Cmd::BatchGetClientIdByUid,
            0,
            scalar,
            r#"["a","b"]"#,
            "",
        ),
        (
            Query::GetClientSessionsByGroup {
                group: Key::from("room"),
            }
            .into(),
            Cmd::GetClientSessionsByGroup,
            0,
            scalar,
            "room",
            "",
        ),
        (
            Query::GetClientCountByGroup { group: None }.into(),
            Cmd::GetClientCountByGroup,
            0,
            scalar,
            "",
            "",
        ),
        (
            Query::GetClientCountByGroup {
                group: Some(Key::from("room")),
            }
            .into(),
            Cmd::GetClientCountByGroup,
            0,
            scalar,
            "room",
            "",
        ),
        (
            Query::BatchGetClientCountByGroup {
                groups: vec![Key::from("room")],
            }
            .into(),
            Cmd::BatchGetClientCountByGroup,
            0,
            scalar,
            r#"["room"]"#,
            "",
        ),
        (
            Query::GetGroupIdList.into(),
            Cmd::GetGroupIdList,
            0,
            scalar,
            "",
            "",
        ),
        (
            Query::Select(Select {
                fields: vec![SelectField::Uid],
                filter: Some(SelectWhere {
                    uids: Some(vec![Key::from("alice")]),
                    ..SelectWhere::default()
                }),
            })
            .into(),
            Cmd::Select,
            0,
            scalar,
            r#"{"fields":["uid"],"where":{"uid":["alice"]}}"#,
            "",
        ),
        (
            Control::Drain.into(),
            CMD_WORKER_DRAIN,
            0,
            Flags::default(),
            "",
            "",
        ),
    ]
}

#[test]
fn every_command_encodes_as_php_writes_it_and_parses_back() {
    for (command, cmd, id, flag, ext, body) in cases() {
        let body: Vec<u8> = body.chars().map(|c| c as u32 as u8).collect();
        let expected = Packet::new(Header::for_connection(cmd, id, flag), ext, body);
        let packet = command.to_packet();
        assert_eq!(packet, expected, "{command:?}");
        assert_eq!(
            Command::from_packet(&packet),
            Ok(command.clone()),
            "{command:?}"
        );
    }
}

#[test]
fn events_hellos_and_unknown_cmds_are_no_commands() {
    for cmd in [
        Cmd::OnMessage,
        Cmd::WorkerConnect,
        Cmd::Ping,
        Cmd::Unknown(200),
    ] {
        let packet = Packet::new(Header::command(cmd), "", "");
        assert_eq!(
            Command::from_packet(&packet),
            Err(CommandError::NotACommand(u8::from(cmd)))
        );
    }
}

#[test]
fn a_bad_ext_is_an_error_not_a_guess() {
    let packet = Packet::new(Header::command(Cmd::SendToGroup), "{not json", "x");
    assert!(matches!(
        Command::from_packet(&packet),
        Err(CommandError::Ext(_))
    ));
}
