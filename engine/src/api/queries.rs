//! The Gateway API's queries (GatewayWorker's `getSession`, `isUidOnline`, `getClientIdByUid`…):
//! each on its own short-lived connection to the owning gateway or to every announced gateway,
//! merged into one [`Answer`] that names the gateways that did not answer.

use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use bytes::Bytes;
use futures_lite::future::block_on;
use gatewire_proto::command::{Command, Query};
use gatewire_proto::ext::{Select, SelectField, SelectWhere};
use gatewire_proto::php::{Array, Key, Value, unserialize};
use gatewire_proto::{ClientId, Packet};
use tracing::warn;

use super::gateway::{Answer, Gateway, GroupMembers, Transport, client_on, key_text, name};
use super::transport::{self, QueryError};
use crate::store::Kind;

/// How a query waits for its gateways.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    /// On the caller's thread, with blocking sockets (GatewayWorker's way; GatewayClient's).
    Blocking,
    /// On the worker's executor: the query's sockets are the runtime's, the thread serves other
    /// tasks meanwhile, and every gateway is asked at once.
    Async,
}

/// The Gateway API's queries as futures: [`Gateway::nonblocking`] inside a worker (awaited in a
/// task started with [`Context::spawn`](crate::worker::Context::spawn)), or the blocking
/// methods of [`Gateway`] itself, which wait on the calling thread.
#[derive(Debug, Clone)]
pub struct Queries {
    pub(super) gateway: Gateway,
    pub(super) mode: Mode,
}

/// The uids and groups a query is about, when only their holders can have an answer; `None`
/// when every gateway may (everyone, or connection ids).
fn holding(query: &Query) -> Option<Vec<(Kind, Key)>> {
    let uids = |keys: &[Key]| {
        keys.iter()
            .map(|k| (Kind::Uid, k.clone()))
            .collect::<Vec<_>>()
    };
    let groups = |keys: &[Key]| {
        keys.iter()
            .map(|k| (Kind::Group, k.clone()))
            .collect::<Vec<_>>()
    };
    match query {
        Query::GetClientIdByUid { uid } => Some(uids(std::slice::from_ref(uid))),
        Query::BatchGetClientIdByUid { uids: list } => Some(uids(list)),
        Query::GetClientSessionsByGroup { group }
        | Query::GetClientCountByGroup { group: Some(group) } => {
            Some(groups(std::slice::from_ref(group)))
        }
        Query::BatchGetClientCountByGroup { groups: list } => Some(groups(list)),
        Query::Select(Select {
            filter: Some(filter),
            ..
        }) if filter.connection_ids.is_none()
            && (filter.uids.is_some() || filter.groups.is_some()) =>
        {
            let mut names = uids(filter.uids.as_deref().unwrap_or_default());
            names.extend(groups(filter.groups.as_deref().unwrap_or_default()));
            Some(names)
        }
        _ => None,
    }
}

impl Queries {
    /// Writes what this worker queued on its event links before a query can overtake it (a
    /// session saved after one event must be visible to a query made during the next).
    fn flush_links(&self) {
        if let Transport::Links(links) = &self.gateway.transport {
            for link in links.borrow().connected.values() {
                let mut outbox = link.outbox.borrow_mut();
                if let Err(e) = crate::rt::write_now(link.fd, &mut outbox, transport::QUERY_TIMEOUT)
                {
                    let addr = &link.address;
                    warn!(%addr, error = %e, "could not flush the event link before a query");
                }
            }
        }
    }

    /// One gateway's reply to `request`, unserialized.
    async fn ask_one(&self, addr: String, request: Rc<Packet>) -> Result<Value, QueryError> {
        let reply = match self.mode {
            Mode::Blocking => transport::ask(&addr, &self.gateway.secret, &request),
            Mode::Async => transport::ask_async(&addr, &self.gateway.secret, &request).await,
        }?;
        unserialize(&reply).map_err(|e| QueryError::BadReply {
            addr,
            detail: e.to_string(),
        })
    }

    async fn ask_owner(&self, client: ClientId, query: Query) -> Result<Value, QueryError> {
        self.flush_links();
        let request = Rc::new(Command::Query(query).to_packet());
        self.ask_one(client.gateway().to_string(), request).await
    }

    /// Asks every announced gateway (at once when async); each answer comes with the address
    /// that gave it.
    async fn ask_all(&self, query: Query) -> Answer<Vec<(String, Value)>> {
        self.flush_links();
        let names = holding(&query);
        let request = Rc::new(Command::Query(query).to_packet());
        let addresses = self
            .gateway
            .gateways_for(names.as_deref(), self.gateway.known());
        let replies: Vec<Result<Value, QueryError>> = match self.mode {
            Mode::Blocking => {
                let mut replies = Vec::with_capacity(addresses.len());
                for addr in &addresses {
                    replies.push(self.ask_one(addr.clone(), request.clone()).await);
                }
                replies
            }
            Mode::Async => {
                let tasks: Vec<_> = addresses
                    .iter()
                    .map(|addr| {
                        let (me, addr, request) = (self.clone(), addr.clone(), request.clone());
                        crate::rt::spawn_cancellable(async move { me.ask_one(addr, request).await })
                    })
                    .collect();
                let mut replies = Vec::with_capacity(tasks.len());
                for task in tasks {
                    replies.push(task.await);
                }
                replies
            }
        };
        let mut value = Vec::new();
        let mut unreachable = Vec::new();
        for (addr, reply) in addresses.into_iter().zip(replies) {
            match reply {
                Ok(v) => value.push((addr, v)),
                Err(e) => {
                    warn!(error = %e, "gateway query unanswered: the result is partial");
                    unreachable.push(e);
                }
            }
        }
        Answer { value, unreachable }
    }

    /// SELECT on every gateway: `(client, fields)` per selected connection.
    async fn select(
        &self,
        fields: &[SelectField],
        filter: Option<&SelectWhere>,
    ) -> Answer<Vec<(ClientId, Array)>> {
        let answers = self
            .ask_all(Query::Select(Select {
                fields: fields.to_vec(),
                filter: filter.cloned(),
            }))
            .await;
        let mut rows = Vec::new();
        for (addr, reply) in &answers.value {
            let Some(map) = reply.as_array() else {
                continue;
            };
            for (key, row) in map.iter() {
                let (Key::Int(id), Some(row)) = (key, row.as_array()) else {
                    continue;
                };
                if let Some(client) = u32::try_from(*id).ok().and_then(|id| client_on(addr, id)) {
                    rows.push((client, row.clone()));
                }
            }
        }
        Answer {
            value: rows,
            unreachable: answers.unreachable,
        }
    }

    /// `isOnline($id)`.
    pub async fn is_online(&self, client: ClientId) -> Result<bool, QueryError> {
        let query = Query::IsOnline {
            connection_id: client.connection_id,
        };
        Ok(self.ask_owner(client, query).await?.as_int() == Some(1))
    }

    /// `getSession($id)`: `None` when there is no such client (or its session is empty).
    pub async fn get_session(&self, client: ClientId) -> Result<Option<Array>, QueryError> {
        Ok(
            match self
                .ask_owner(
                    client,
                    Query::GetSession {
                        connection_id: client.connection_id,
                    },
                )
                .await?
            {
                Value::Array(a) => Some(a),
                _ => None,
            },
        )
    }

    async fn sessions(&self, query: Query) -> Answer<BTreeMap<ClientId, Option<Array>>> {
        let answers = self.ask_all(query).await;
        let mut out = BTreeMap::new();
        for (addr, reply) in &answers.value {
            for (key, session) in reply.as_array().into_iter().flat_map(Array::iter) {
                let Key::Int(id) = key else { continue };
                let Some(client) = u32::try_from(*id).ok().and_then(|id| client_on(addr, id))
                else {
                    continue;
                };
                let session = session.as_bytes().and_then(|b| match unserialize(b) {
                    Ok(Value::Array(a)) => Some(a),
                    _ => None,
                });
                out.insert(client, session);
            }
        }
        Answer {
            value: out,
            unreachable: answers.unreachable,
        }
    }

    /// `getAllClientSessions()`.
    pub async fn get_all_client_sessions(&self) -> Answer<BTreeMap<ClientId, Option<Array>>> {
        self.sessions(Query::GetAllClientSessions).await
    }

    /// `getClientSessionsByGroup($group)`.
    pub async fn get_client_sessions_by_group(
        &self,
        group: &str,
    ) -> Answer<BTreeMap<ClientId, Option<Array>>> {
        self.sessions(Query::GetClientSessionsByGroup { group: name(group) })
            .await
    }

    async fn count_by_group(&self, group: &str) -> Answer<u64> {
        let answers = self
            .ask_all(Query::GetClientCountByGroup {
                group: (!group.is_empty()).then(|| name(group)),
            })
            .await;
        Answer {
            value: answers
                .value
                .iter()
                .filter_map(|(_, v)| v.as_int().and_then(|n| u64::try_from(n).ok()))
                .sum(),
            unreachable: answers.unreachable,
        }
    }

    /// `getAllClientIdCount()`: clients on every gateway.
    pub async fn get_all_client_id_count(&self) -> Answer<u64> {
        self.count_by_group("").await
    }

    /// `getClientIdCountByGroup($group)`.
    pub async fn get_client_id_count_by_group(&self, group: &str) -> Answer<u64> {
        self.count_by_group(group).await
    }

    /// `getAllClientIdList()`.
    pub async fn get_all_client_id_list(&self) -> Answer<Vec<ClientId>> {
        let rows = self.select(&[SelectField::Uid], None).await;
        rows.map(|v| v.into_iter().map(|(c, _)| c).collect())
    }

    fn by_groups(groups: &[&str]) -> SelectWhere {
        SelectWhere {
            groups: Some(groups.iter().map(|g| Key::from(*g)).collect()),
            ..SelectWhere::default()
        }
    }

    /// `getClientIdListByGroup($groups)`.
    pub async fn get_client_id_list_by_group(&self, groups: &[&str]) -> Answer<Vec<ClientId>> {
        let rows = self
            .select(&[SelectField::Uid], Some(&Self::by_groups(groups)))
            .await;
        rows.map(|v| v.into_iter().map(|(c, _)| c).collect())
    }

    /// `getClientIdByUid($uid)`.
    pub async fn get_client_id_by_uid(&self, uid: &str) -> Answer<Vec<ClientId>> {
        let answers = self
            .ask_all(Query::GetClientIdByUid { uid: name(uid) })
            .await;
        let mut out = Vec::new();
        for (addr, reply) in &answers.value {
            for id in reply.as_array().into_iter().flat_map(Array::values) {
                if let Some(client) = id
                    .as_int()
                    .and_then(|i| u32::try_from(i).ok())
                    .and_then(|i| client_on(addr, i))
                {
                    out.push(client);
                }
            }
        }
        Answer {
            value: out,
            unreachable: answers.unreachable,
        }
    }

    /// `isUidOnline($uid)`.
    pub async fn is_uid_online(&self, uid: &str) -> Answer<bool> {
        let ids = self.get_client_id_by_uid(uid).await;
        ids.map(|v| !v.is_empty())
    }

    /// `getUidByClientId($id)`: asks only the owning gateway.
    pub async fn get_uid_by_client_id(
        &self,
        client: ClientId,
    ) -> Result<Option<String>, QueryError> {
        let filter = SelectWhere {
            connection_ids: Some(vec![client.connection_id]),
            ..SelectWhere::default()
        };
        let select = Select {
            fields: vec![SelectField::Uid],
            filter: Some(filter),
        };
        let reply = self.ask_owner(client, Query::Select(select)).await?;
        let row = reply
            .as_array()
            .and_then(|m| m.get(&Key::from(client.connection_id)))
            .and_then(Value::as_array)
            .and_then(|r| r.get(&Key::from("uid")))
            .and_then(Value::as_bytes)
            .map(|b| String::from_utf8_lossy(b).into_owned());
        Ok(row)
    }

    fn uids_of(rows: &[(ClientId, Array)]) -> BTreeSet<String> {
        rows.iter()
            .filter_map(|(_, r)| r.get(&Key::from("uid")).and_then(Value::as_bytes))
            .filter(|b| Value::Str(Bytes::copy_from_slice(b)).is_truthy())
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .collect()
    }

    /// `getAllUidList()`: every bound uid.
    pub async fn get_all_uid_list(&self) -> Answer<BTreeSet<String>> {
        let rows = self.select(&[SelectField::Uid], None).await;
        rows.map(|v| Self::uids_of(&v))
    }

    /// `getAllUidCount()`.
    pub async fn get_all_uid_count(&self) -> Answer<usize> {
        let uids = self.get_all_uid_list().await;
        uids.map(|v| v.len())
    }

    /// `getUidListByGroup($groups)`.
    pub async fn get_uid_list_by_group(&self, groups: &[&str]) -> Answer<BTreeSet<String>> {
        let rows = self
            .select(&[SelectField::Uid], Some(&Self::by_groups(groups)))
            .await;
        rows.map(|v| Self::uids_of(&v))
    }

    /// `getUidCountByGroup($groups)`.
    pub async fn get_uid_count_by_group(&self, groups: &[&str]) -> Answer<usize> {
        let uids = self.get_uid_list_by_group(groups).await;
        uids.map(|v| v.len())
    }

    /// `getAllGroupIdList()`.
    pub async fn get_all_group_id_list(&self) -> Answer<BTreeSet<String>> {
        let answers = self.ask_all(Query::GetGroupIdList).await;
        let groups = answers
            .value
            .iter()
            .flat_map(|(_, v)| v.as_array().into_iter().flat_map(Array::values))
            .map(|g| match g {
                Value::Str(s) => String::from_utf8_lossy(s).into_owned(),
                Value::Int(i) => i.to_string(),
                other => format!("{other:?}"),
            })
            .collect();
        Answer {
            value: groups,
            unreachable: answers.unreachable,
        }
    }

    /// `[group => rows]` from a SELECT of `uid` and `groups`. GatewayWorker stops scanning a
    /// gateway at the first client without a uid or group (a `break` bug); we scan them all.
    async fn group_rows(&self) -> Answer<GroupMembers> {
        let rows = self
            .select(&[SelectField::Uid, SelectField::Groups], None)
            .await;
        let mut out = GroupMembers::new();
        for (client, row) in &rows.value {
            let uid = row
                .get(&Key::from("uid"))
                .and_then(Value::as_bytes)
                .map(|b| String::from_utf8_lossy(b).into_owned());
            let groups = row.get(&Key::from("groups")).and_then(Value::as_array);
            for group in groups.into_iter().flat_map(Array::keys) {
                out.entry(key_text(group))
                    .or_default()
                    .push((*client, uid.clone()));
            }
        }
        Answer {
            value: out,
            unreachable: rows.unreachable,
        }
    }

    /// `getAllGroupUidList()`: `group => uids` (every client scanned; see `group_rows`).
    pub async fn get_all_group_uid_list(&self) -> Answer<BTreeMap<String, BTreeSet<String>>> {
        self.group_rows().await.map(|rows| {
            rows.into_iter()
                .map(|(g, members)| (g, members.into_iter().filter_map(|(_, u)| u).collect()))
                .collect()
        })
    }

    /// `getAllGroupUidCount()`.
    pub async fn get_all_group_uid_count(&self) -> Answer<BTreeMap<String, usize>> {
        let lists = self.get_all_group_uid_list().await;
        lists.map(|v| v.into_iter().map(|(g, u)| (g, u.len())).collect())
    }

    /// `getAllGroupClientIdList()`: `group => client ids`.
    pub async fn get_all_group_client_id_list(&self) -> Answer<BTreeMap<String, Vec<ClientId>>> {
        self.group_rows().await.map(|rows| {
            rows.into_iter()
                .map(|(g, members)| (g, members.into_iter().map(|(c, _)| c).collect()))
                .collect()
        })
    }

    /// `getAllGroupClientIdCount()`.
    pub async fn get_all_group_client_id_count(&self) -> Answer<BTreeMap<String, usize>> {
        let lists = self.get_all_group_client_id_list().await;
        lists.map(|v| v.into_iter().map(|(g, c)| (g, c.len())).collect())
    }

    /// GatewayClient's `batchGetClientIdByUid($uids)` (CMD 16).
    pub async fn batch_get_client_id_by_uid(
        &self,
        uids: &[&str],
    ) -> Answer<BTreeMap<String, Vec<ClientId>>> {
        let answers = self
            .ask_all(Query::BatchGetClientIdByUid {
                uids: uids.iter().map(|u| name(u)).collect(),
            })
            .await;
        let mut out: BTreeMap<String, Vec<ClientId>> =
            uids.iter().map(|u| ((*u).to_owned(), Vec::new())).collect();
        for (addr, reply) in &answers.value {
            for (uid, ids) in reply.as_array().into_iter().flat_map(Array::iter) {
                let entry = out.entry(key_text(uid)).or_default();
                for id in ids.as_array().into_iter().flat_map(Array::values) {
                    if let Some(c) = id
                        .as_int()
                        .and_then(|i| u32::try_from(i).ok())
                        .and_then(|i| client_on(addr, i))
                    {
                        entry.push(c);
                    }
                }
            }
        }
        Answer {
            value: out,
            unreachable: answers.unreachable,
        }
    }

    /// GatewayClient's `isUidsOnline($uids)`: `uid => online`.
    pub async fn is_uids_online(&self, uids: &[&str]) -> Answer<BTreeMap<String, bool>> {
        let ids = self.batch_get_client_id_by_uid(uids).await;
        Answer {
            value: ids
                .value
                .into_iter()
                .map(|(u, c)| (u, !c.is_empty()))
                .collect(),
            unreachable: ids.unreachable,
        }
    }

    /// GatewayClient's `batchGetClientIdCountByGroup($groups)` (CMD 28).
    pub async fn batch_get_client_count_by_group(
        &self,
        groups: &[&str],
    ) -> Answer<BTreeMap<String, u64>> {
        let answers = self
            .ask_all(Query::BatchGetClientCountByGroup {
                groups: groups.iter().map(|g| name(g)).collect(),
            })
            .await;
        let mut out: BTreeMap<String, u64> = groups.iter().map(|g| ((*g).to_owned(), 0)).collect();
        for (_, reply) in &answers.value {
            for (group, count) in reply.as_array().into_iter().flat_map(Array::iter) {
                *out.entry(key_text(group)).or_default() += count
                    .as_int()
                    .and_then(|n| u64::try_from(n).ok())
                    .unwrap_or(0);
            }
        }
        Answer {
            value: out,
            unreachable: answers.unreachable,
        }
    }
}

/// The blocking forms: each waits on the calling thread until every gateway answered or timed out
/// (GatewayWorker's behaviour; inside a worker it holds the worker thread meanwhile — use
/// [`Gateway::nonblocking`] from a task to keep serving other events).
impl Gateway {
    /// The queries as futures on this worker thread's executor: the thread serves other events
    /// and links while they wait, and every gateway is asked at once. Inside a worker only
    /// (await them in a task started with [`Context::spawn`](crate::worker::Context::spawn)); a
    /// GatewayClient uses the blocking methods.
    pub fn nonblocking(&self) -> Queries {
        Queries {
            gateway: self.clone(),
            mode: Mode::Async,
        }
    }

    fn blocking(&self) -> Queries {
        Queries {
            gateway: self.clone(),
            mode: Mode::Blocking,
        }
    }

    /// `isOnline($id)`.
    pub fn is_online(&self, client: ClientId) -> Result<bool, QueryError> {
        block_on(self.blocking().is_online(client))
    }

    /// `getSession($id)`: `None` when there is no such client (or its session is empty).
    pub fn get_session(&self, client: ClientId) -> Result<Option<Array>, QueryError> {
        block_on(self.blocking().get_session(client))
    }

    /// `getAllClientSessions()`.
    pub fn get_all_client_sessions(&self) -> Answer<BTreeMap<ClientId, Option<Array>>> {
        block_on(self.blocking().get_all_client_sessions())
    }

    /// `getClientSessionsByGroup($group)`.
    pub fn get_client_sessions_by_group(
        &self,
        group: &str,
    ) -> Answer<BTreeMap<ClientId, Option<Array>>> {
        block_on(self.blocking().get_client_sessions_by_group(group))
    }

    /// `getAllClientIdCount()`: clients on every gateway.
    pub fn get_all_client_id_count(&self) -> Answer<u64> {
        block_on(self.blocking().get_all_client_id_count())
    }

    /// `getClientIdCountByGroup($group)`.
    pub fn get_client_id_count_by_group(&self, group: &str) -> Answer<u64> {
        block_on(self.blocking().get_client_id_count_by_group(group))
    }

    /// `getAllClientIdList()`.
    pub fn get_all_client_id_list(&self) -> Answer<Vec<ClientId>> {
        block_on(self.blocking().get_all_client_id_list())
    }

    /// `getClientIdListByGroup($groups)`.
    pub fn get_client_id_list_by_group(&self, groups: &[&str]) -> Answer<Vec<ClientId>> {
        block_on(self.blocking().get_client_id_list_by_group(groups))
    }

    /// `getClientIdByUid($uid)`.
    pub fn get_client_id_by_uid(&self, uid: &str) -> Answer<Vec<ClientId>> {
        block_on(self.blocking().get_client_id_by_uid(uid))
    }

    /// `isUidOnline($uid)`.
    pub fn is_uid_online(&self, uid: &str) -> Answer<bool> {
        block_on(self.blocking().is_uid_online(uid))
    }

    /// `getUidByClientId($id)`: asks only the owning gateway.
    pub fn get_uid_by_client_id(&self, client: ClientId) -> Result<Option<String>, QueryError> {
        block_on(self.blocking().get_uid_by_client_id(client))
    }

    /// `getAllUidList()`: every bound uid.
    pub fn get_all_uid_list(&self) -> Answer<BTreeSet<String>> {
        block_on(self.blocking().get_all_uid_list())
    }

    /// `getAllUidCount()`.
    pub fn get_all_uid_count(&self) -> Answer<usize> {
        block_on(self.blocking().get_all_uid_count())
    }

    /// `getUidListByGroup($groups)`.
    pub fn get_uid_list_by_group(&self, groups: &[&str]) -> Answer<BTreeSet<String>> {
        block_on(self.blocking().get_uid_list_by_group(groups))
    }

    /// `getUidCountByGroup($groups)`.
    pub fn get_uid_count_by_group(&self, groups: &[&str]) -> Answer<usize> {
        block_on(self.blocking().get_uid_count_by_group(groups))
    }

    /// `getAllGroupIdList()`.
    pub fn get_all_group_id_list(&self) -> Answer<BTreeSet<String>> {
        block_on(self.blocking().get_all_group_id_list())
    }

    /// `getAllGroupUidList()`: `group => uids` (every client scanned; see `group_rows`).
    pub fn get_all_group_uid_list(&self) -> Answer<BTreeMap<String, BTreeSet<String>>> {
        block_on(self.blocking().get_all_group_uid_list())
    }

    /// `getAllGroupUidCount()`.
    pub fn get_all_group_uid_count(&self) -> Answer<BTreeMap<String, usize>> {
        block_on(self.blocking().get_all_group_uid_count())
    }

    /// `getAllGroupClientIdList()`: `group => client ids`.
    pub fn get_all_group_client_id_list(&self) -> Answer<BTreeMap<String, Vec<ClientId>>> {
        block_on(self.blocking().get_all_group_client_id_list())
    }

    /// `getAllGroupClientIdCount()`.
    pub fn get_all_group_client_id_count(&self) -> Answer<BTreeMap<String, usize>> {
        block_on(self.blocking().get_all_group_client_id_count())
    }

    /// GatewayClient's `batchGetClientIdByUid($uids)` (CMD 16).
    pub fn batch_get_client_id_by_uid(
        &self,
        uids: &[&str],
    ) -> Answer<BTreeMap<String, Vec<ClientId>>> {
        block_on(self.blocking().batch_get_client_id_by_uid(uids))
    }

    /// GatewayClient's `isUidsOnline($uids)`: `uid => online`.
    pub fn is_uids_online(&self, uids: &[&str]) -> Answer<BTreeMap<String, bool>> {
        block_on(self.blocking().is_uids_online(uids))
    }

    /// GatewayClient's `batchGetClientIdCountByGroup($groups)` (CMD 28).
    pub fn batch_get_client_count_by_group(
        &self,
        groups: &[&str],
    ) -> Answer<BTreeMap<String, u64>> {
        block_on(self.blocking().batch_get_client_count_by_group(groups))
    }
}
