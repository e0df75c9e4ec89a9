//! Queries (protocol §2.4, §5.7): each answers on the link it came in on with
//! `u32 length + serialize(result)`.

use gatewire_proto::command::Query;
use gatewire_proto::ext::{Select, SelectField};
use gatewire_proto::php::{Array, Key, Value, serialize};
use indexmap::IndexSet;

use crate::gateway::core::shard::{Client, Shard};

impl Shard {
    /// Answers `query` on the link it came in on.
    pub(super) fn answer(&mut self, link_id: u64, query: Query) {
        match query {
            Query::GetSession { connection_id } => self.get_session(link_id, connection_id),
            Query::GetAllClientSessions => self.get_all_client_sessions(link_id),
            Query::IsOnline { connection_id } => {
                let online = self.clients.contains_key(&connection_id);
                self.reply_value(link_id, Value::Int(i64::from(online)));
            }
            Query::GetClientIdByUid { uid } => {
                let value = self.ids_of_uid(&uid);
                self.reply_value(link_id, value);
            }
            Query::BatchGetClientIdByUid { uids } => {
                let mut out = Array::new();
                for uid in uids {
                    let ids = self.ids_of_uid(&uid);
                    out.insert(uid, ids);
                }
                self.reply_value(link_id, Value::Array(out));
            }
            Query::GetClientSessionsByGroup { group } => {
                self.get_client_sessions_by_group(link_id, &group)
            }
            Query::GetClientCountByGroup { group } => {
                let count = match group {
                    None => self.clients.len(),
                    Some(group) => self.groups.get(&group).map_or(0, IndexSet::len),
                };
                self.reply_value(link_id, Value::Int(count as i64));
            }
            Query::BatchGetClientCountByGroup { groups } => {
                let mut out = Array::new();
                for group in groups {
                    let count = self.groups.get(&group).map_or(0, IndexSet::len);
                    out.insert(group, Value::Int(count as i64));
                }
                self.reply_value(link_id, Value::Array(out));
            }
            Query::GetGroupIdList => self.get_group_id_list(link_id),
            Query::Select(select) => self.select(link_id, select),
        }
    }

    /// The stored session byte for byte: `N;` for a connection that is not here, an empty
    /// array for one without a session.
    fn get_session(&mut self, link_id: u64, id: u32) {
        let reply = match self.clients.get(&id) {
            None => bytes::Bytes::from_static(b"N;"),
            Some(c) if c.session.is_empty() => bytes::Bytes::from_static(b"a:0:{}"),
            Some(c) => c.session.clone(),
        };
        self.reply(link_id, &reply);
    }

    fn reply_value(&mut self, link_id: u64, value: Value) {
        let bytes = serialize(&value);
        self.reply(link_id, &bytes);
    }

    fn sessions_of(&self, ids: impl Iterator<Item = u32>) -> Value {
        let mut out = Array::new();
        for id in ids {
            if let Some(c) = self.clients.get(&id) {
                out.insert(Key::from(id), Value::Str(c.session.clone()));
            }
        }
        Value::Array(out)
    }

    fn get_all_client_sessions(&mut self, link_id: u64) {
        let mut ids: Vec<u32> = self.clients.keys().copied().collect();
        ids.sort_unstable();
        let value = self.sessions_of(ids.into_iter());
        self.reply_value(link_id, value);
    }

    fn get_client_sessions_by_group(&mut self, link_id: u64, group: &Key) {
        let ids: Vec<u32> = self
            .groups
            .get(group)
            .into_iter()
            .flatten()
            .copied()
            .collect();
        let value = self.sessions_of(ids.into_iter());
        self.reply_value(link_id, value);
    }

    fn ids_of_uid(&self, uid: &Key) -> Value {
        let mut list = Array::new();
        for &id in self.uids.get(uid).into_iter().flatten() {
            list.push(Value::from(id));
        }
        Value::Array(list)
    }

    fn get_group_id_list(&mut self, link_id: u64) {
        let mut list = Array::new();
        for group in self.groups.keys_in_creation_order() {
            list.push(group.to_value());
        }
        self.reply_value(link_id, Value::Array(list));
    }

    /// `[connection_id => [field => value]]` for the selected connections.
    fn select(&mut self, link_id: u64, select: Select) {
        let Select { fields, filter } = select;
        let ids: Vec<u32> = match &filter {
            None => {
                let mut ids: Vec<u32> = self.clients.keys().copied().collect();
                ids.sort_unstable();
                ids
            }
            Some(w) => {
                let mut ids: IndexSet<u32> = IndexSet::new();
                for group in w.groups.iter().flatten() {
                    ids.extend(self.groups.get(group).into_iter().flatten().copied());
                }
                for uid in w.uids.iter().flatten() {
                    ids.extend(self.uids.get(uid).into_iter().flatten().copied());
                }
                for &id in w.connection_ids.iter().flatten() {
                    if self.clients.contains_key(&id) {
                        ids.insert(id);
                    }
                }
                ids.into_iter().collect()
            }
        };
        let mut out = Array::new();
        for id in ids {
            if let Some(client) = self.clients.get(&id) {
                out.insert(
                    Key::from(id),
                    Value::Array(selected_fields(client, &fields)),
                );
            }
        }
        self.reply_value(link_id, Value::Array(out));
    }
}

fn selected_fields(client: &Client, fields: &[SelectField]) -> Array {
    let mut row = Array::new();
    for field in fields {
        let value = match field {
            SelectField::Uid => client
                .uid()
                .map_or(Value::Null, |u| Value::Str(u.to_bytes())),
            SelectField::Groups => match client.groups() {
                None => Value::Null,
                Some(groups) => Value::Array(
                    groups
                        .iter()
                        .map(|g| (g.clone(), Value::Str(g.to_bytes())))
                        .collect(),
                ),
            },
            SelectField::Session => Value::Str(client.session.clone()),
            SelectField::Other(_) => Value::Null,
        };
        row.insert(field.name(), value);
    }
    row
}
