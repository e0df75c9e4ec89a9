//! GatewayWorker's `Gateway::` methods by name, with their arguments as a JSON object, run
//! through a [`Gateway`] (a GatewayClient's, for the HTTP API; a worker's, for the commands an
//! HTTP backend answers with). Names are matched without regard to case, as PHP does (and
//! GatewayWorker's spellings and aliases are kept: `destoryClient`, `getAllClientCount`, …).
//! Argument names are PHP's parameter names: `client_id`, `uid`, `group`, `message`,
//! `exclude_client_id`, `client_id_array`, `session`. A message is `message` (text) or
//! `message_base64` (binary).

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine;
use gatewire_proto::ClientId;
use gatewire_proto::php::Array;
use serde_json::{Map, Value as Json, json};

use crate::php_json::{array_to_json, object_to_array};

use super::{Answer, Gateway, Message, QueryError};

/// What a call gave: its result, and the gateways that did not answer (a partial answer).
#[derive(Debug)]
pub struct Success {
    pub result: Json,
    pub unreachable: Vec<String>,
}

/// Why a call failed: an HTTP status, a stable code and a message for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
}

impl Failure {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Failure {
        Failure {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn to_json(&self) -> Json {
        json!({"error": {"code": self.code, "message": self.message}})
    }
}

fn bad(message: impl Into<String>) -> Failure {
    Failure::new(400, "bad_argument", message)
}

fn done(result: impl Into<Json>) -> Result<Success, Failure> {
    Ok(Success {
        result: result.into(),
        unreachable: Vec::new(),
    })
}

fn answered<T>(answer: Answer<T>, shown: impl FnOnce(T) -> Json) -> Result<Success, Failure> {
    Ok(Success {
        result: shown(answer.value),
        unreachable: answer.unreachable.iter().map(ToString::to_string).collect(),
    })
}

fn one_gateway<T>(
    result: Result<T, QueryError>,
    shown: impl FnOnce(T) -> Json,
) -> Result<Success, Failure> {
    match result {
        Ok(value) => done(shown(value)),
        Err(e) => Err(Failure::new(502, "gateway_unreachable", e.to_string())),
    }
}

/// The arguments object of one call.
struct Args<'a> {
    map: Option<&'a Map<String, Json>>,
}

impl<'a> Args<'a> {
    fn new(args: &'a Json) -> Result<Args<'a>, Failure> {
        match args {
            Json::Null => Ok(Args { map: None }),
            Json::Object(map) => Ok(Args { map: Some(map) }),
            _ => Err(bad("the arguments are a JSON object")),
        }
    }

    fn get(&self, key: &str) -> Option<&'a Json> {
        self.map?.get(key).filter(|v| !v.is_null())
    }

    fn required(&self, key: &str) -> Result<&'a Json, Failure> {
        self.get(key)
            .ok_or_else(|| bad(format!("{key} is missing")))
    }

    /// A uid or group name: a string, or a number (PHP takes both).
    fn name(&self, key: &str) -> Result<String, Failure> {
        name_of(key, self.required(key)?)
    }

    /// One name or a list of them.
    fn names(&self, key: &str) -> Result<Vec<String>, Failure> {
        match self.required(key)? {
            Json::Array(items) => items.iter().map(|v| name_of(key, v)).collect(),
            one => Ok(vec![name_of(key, one)?]),
        }
    }

    fn client_id(&self, key: &str) -> Result<ClientId, Failure> {
        client_id_of(key, self.required(key)?)
    }

    /// One client id or a list of them; absent: none.
    fn client_ids(&self, key: &str) -> Result<Vec<ClientId>, Failure> {
        match self.get(key) {
            None => Ok(Vec::new()),
            Some(Json::Array(items)) => items.iter().map(|v| client_id_of(key, v)).collect(),
            Some(one) => Ok(vec![client_id_of(key, one)?]),
        }
    }

    /// `message` (text) or `message_base64` (binary); `None` when neither is given.
    fn message_if_any(&self) -> Result<Option<Message>, Failure> {
        match (self.get("message"), self.get("message_base64")) {
            (Some(_), Some(_)) => Err(bad("give message or message_base64, not both")),
            (Some(Json::String(text)), None) => Ok(Some(Message::new(text.as_bytes(), false))),
            (Some(_), None) => Err(bad("message is a string (binary: message_base64)")),
            (None, Some(Json::String(encoded))) => base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .map(|bytes| Some(Message::new(bytes, true)))
                .map_err(|e| bad(format!("message_base64 is not base64: {e}"))),
            (None, Some(_)) => Err(bad("message_base64 is a base64 string")),
            (None, None) => Ok(None),
        }
    }

    fn message(&self) -> Result<Message, Failure> {
        self.message_if_any()?
            .ok_or_else(|| bad("message (or message_base64) is missing"))
    }

    fn session(&self) -> Result<Array, Failure> {
        object_to_array(self.required("session")?).ok_or_else(|| bad("session is a JSON object"))
    }
}

fn name_of(key: &str, value: &Json) -> Result<String, Failure> {
    match value {
        Json::String(s) if !s.is_empty() => Ok(s.clone()),
        Json::Number(n) => Ok(n.to_string()),
        _ => Err(bad(format!("{key} is a non-empty string or a number"))),
    }
}

fn client_id_of(key: &str, value: &Json) -> Result<ClientId, Failure> {
    let text = value
        .as_str()
        .ok_or_else(|| bad(format!("{key} is a client id string")))?;
    text.parse()
        .map_err(|e| bad(format!("{key} {text:?} is not a client id: {e}")))
}

fn ids(list: Vec<ClientId>) -> Json {
    Json::Array(list.iter().map(|id| Json::String(id.to_string())).collect())
}

fn set(names: BTreeSet<String>) -> Json {
    Json::Array(names.into_iter().map(Json::String).collect())
}

fn sessions(map: BTreeMap<ClientId, Option<Array>>) -> Json {
    let mut object = Map::new();
    for (id, session) in map {
        object.insert(
            id.to_string(),
            session.as_ref().map_or(Json::Null, array_to_json),
        );
    }
    Json::Object(object)
}

fn by_name<T>(map: BTreeMap<String, T>, shown: impl Fn(T) -> Json) -> Json {
    Json::Object(map.into_iter().map(|(k, v)| (k, shown(v))).collect())
}

/// Runs one method (blocking on the gateways' answers for a query).
pub fn call(gw: &Gateway, method: &str, args: &Json) -> Result<Success, Failure> {
    let a = Args::new(args)?;
    if let Some(done) = command(gw, method, &a) {
        return done;
    }
    query(gw, method, &a)
}

/// The commands (sends, uid and group changes, session writes, closes), lower-cased: they wait
/// for no answer, so a worker's thread may run them.
const COMMANDS: [&str; 14] = [
    "sendtoclient",
    "sendtouid",
    "sendtogroup",
    "sendtoall",
    "binduid",
    "unbinduid",
    "joingroup",
    "leavegroup",
    "ungroup",
    "closeclient",
    "destroyclient",
    "destoryclient",
    "setsession",
    "updatesession",
];

/// Runs `method` when it is a command: `None` for a query or an unknown name.
fn command(gw: &Gateway, method: &str, a: &Args<'_>) -> Option<Result<Success, Failure>> {
    let lower = method.to_ascii_lowercase();
    COMMANDS
        .contains(&lower.as_str())
        .then(|| run_command(gw, &lower, a))
}

/// The commands an HTTP backend answers an event with: [`call`]'s commands, where a missing
/// `client_id` is the event's client, and `sendToCurrentClient` / `closeCurrentClient`.
/// Queries are refused (they would hold the worker thread; a backend asks through the HTTP
/// API).
pub fn call_for_client(
    gw: &Gateway,
    current: ClientId,
    method: &str,
    args: &Json,
) -> Result<Success, Failure> {
    let mut filled = match args {
        Json::Null => Map::new(),
        Json::Object(map) => map.clone(),
        _ => return Err(bad("the arguments are a JSON object")),
    };
    filled
        .entry("client_id")
        .or_insert_with(|| Json::String(current.to_string()));
    let filled = Json::Object(filled);
    let a = Args::new(&filled)?;
    let method = match method.to_ascii_lowercase().as_str() {
        "sendtocurrentclient" => "sendToClient".to_owned(),
        "closecurrentclient" => "closeClient".to_owned(),
        _ => method.to_owned(),
    };
    match command(gw, &method, &a) {
        Some(done) => done,
        None => Err(Failure::new(
            400,
            "not_a_command",
            format!(
                "{method} is not a command an event's answer may carry (queries go through the \
                 HTTP API)"
            ),
        )),
    }
}

/// One of [`COMMANDS`] (`method` lower-cased).
fn run_command(gw: &Gateway, method: &str, a: &Args<'_>) -> Result<Success, Failure> {
    match method {
        // ---- sends ----
        "sendtoclient" => done(gw.send_to_client(a.client_id("client_id")?, a.message()?)),
        "sendtouid" => {
            let uids = a.names("uid")?;
            let uids: Vec<&str> = uids.iter().map(String::as_str).collect();
            gw.send_to_uid(&uids, a.message()?);
            done(true)
        }
        "sendtogroup" => {
            let groups = a.names("group")?;
            let groups: Vec<&str> = groups.iter().map(String::as_str).collect();
            gw.send_to_group(&groups, a.message()?, &a.client_ids("exclude_client_id")?);
            done(true)
        }
        "sendtoall" => {
            let message = a.message()?;
            match a.get("client_id_array") {
                Some(_) => gw.send_to_clients(message, &a.client_ids("client_id_array")?),
                None => gw.send_to_all_except(message, &a.client_ids("exclude_client_id")?),
            }
            done(true)
        }
        // ---- uids and groups ----
        "binduid" => done(gw.bind_uid(a.client_id("client_id")?, &a.name("uid")?)),
        "unbinduid" => done(gw.unbind_uid(a.client_id("client_id")?)),
        "joingroup" => done(gw.join_group(a.client_id("client_id")?, &a.name("group")?)),
        "leavegroup" => done(gw.leave_group(a.client_id("client_id")?, &a.name("group")?)),
        "ungroup" => {
            gw.ungroup(&a.name("group")?);
            done(true)
        }
        // ---- connections ----
        "closeclient" => {
            let id = a.client_id("client_id")?;
            let last = a.message_if_any()?.map(|m| m.body().to_vec());
            done(gw.close_client(id, last.as_deref()))
        }
        "destroyclient" | "destoryclient" => done(gw.destroy_client(a.client_id("client_id")?)),
        // ---- sessions ----
        "setsession" => done(gw.set_session(a.client_id("client_id")?, &a.session()?)),
        "updatesession" => done(gw.update_session(a.client_id("client_id")?, &a.session()?)),
        _ => Err(unknown(method)),
    }
}

fn unknown(method: &str) -> Failure {
    Failure::new(
        404,
        "unknown_method",
        format!("{method} is not a Gateway method (docs/http-api.md lists them)"),
    )
}

fn query(gw: &Gateway, method: &str, a: &Args<'_>) -> Result<Success, Failure> {
    let strs = |v: &[String]| -> Vec<String> { v.to_vec() };
    match method.to_ascii_lowercase().as_str() {
        // ---- queries ----
        "getsession" => one_gateway(gw.get_session(a.client_id("client_id")?), |s| {
            s.as_ref().map_or(Json::Null, array_to_json)
        }),
        "isonline" => one_gateway(gw.is_online(a.client_id("client_id")?), Json::Bool),
        "isuidonline" => answered(gw.is_uid_online(&a.name("uid")?), Json::Bool),
        "getclientidbyuid" => answered(gw.get_client_id_by_uid(&a.name("uid")?), ids),
        "getuidbyclientid" => {
            one_gateway(gw.get_uid_by_client_id(a.client_id("client_id")?), |u| {
                u.map_or(Json::Null, Json::String)
            })
        }
        "getallclientidcount" | "getallclientcount" => {
            answered(gw.get_all_client_id_count(), Json::from)
        }
        "getclientidcountbygroup" | "getclientcountbygroup" => answered(
            gw.get_client_id_count_by_group(&a.name("group")?),
            Json::from,
        ),
        "getallclientidlist" => answered(gw.get_all_client_id_list(), ids),
        "getclientidlistbygroup" => {
            let groups = strs(&a.names("group")?);
            let groups: Vec<&str> = groups.iter().map(String::as_str).collect();
            answered(gw.get_client_id_list_by_group(&groups), ids)
        }
        "getallclientsessions" | "getallclientinfo" => {
            answered(gw.get_all_client_sessions(), sessions)
        }
        "getclientsessionsbygroup" | "getclientinfobygroup" => {
            answered(gw.get_client_sessions_by_group(&a.name("group")?), sessions)
        }
        "getalluidlist" => answered(gw.get_all_uid_list(), set),
        "getalluidcount" => answered(gw.get_all_uid_count(), Json::from),
        "getuidlistbygroup" => {
            let groups = a.names("group")?;
            let groups: Vec<&str> = groups.iter().map(String::as_str).collect();
            answered(gw.get_uid_list_by_group(&groups), set)
        }
        "getuidcountbygroup" => {
            let groups = a.names("group")?;
            let groups: Vec<&str> = groups.iter().map(String::as_str).collect();
            answered(gw.get_uid_count_by_group(&groups), Json::from)
        }
        "getallgroupidlist" | "getallgrouplist" => answered(gw.get_all_group_id_list(), set),
        "getallgroupuidlist" => answered(gw.get_all_group_uid_list(), |m| by_name(m, set)),
        "getallgroupuidcount" => answered(gw.get_all_group_uid_count(), |m| by_name(m, Json::from)),
        "getallgroupclientidlist" => {
            answered(gw.get_all_group_client_id_list(), |m| by_name(m, ids))
        }
        "getallgroupclientidcount" => answered(gw.get_all_group_client_id_count(), |m| {
            by_name(m, Json::from)
        }),
        "batchgetclientidbyuid" => {
            let uids = a.names("uid")?;
            let uids: Vec<&str> = uids.iter().map(String::as_str).collect();
            answered(gw.batch_get_client_id_by_uid(&uids), |m| by_name(m, ids))
        }
        "isuidsonline" => {
            let uids = a.names("uid")?;
            let uids: Vec<&str> = uids.iter().map(String::as_str).collect();
            answered(gw.is_uids_online(&uids), |m| by_name(m, Json::Bool))
        }
        "batchgetclientcountbygroup" | "batchgetclientidcountbygroup" => {
            let groups = a.names("group")?;
            let groups: Vec<&str> = groups.iter().map(String::as_str).collect();
            answered(gw.batch_get_client_count_by_group(&groups), |m| {
                by_name(m, Json::from)
            })
        }
        _ => Err(unknown(method)),
    }
}

/// The answer object of a call: `{"result": …}`, with `"partial": true` and the gateways that
/// did not answer when some did not; or `{"error": …}`.
pub fn answer_json(outcome: &Result<Success, Failure>) -> Json {
    match outcome {
        Ok(s) if s.unreachable.is_empty() => json!({"result": s.result}),
        Ok(s) => json!({"result": s.result, "partial": true, "unreachable": s.unreachable}),
        Err(f) => f.to_json(),
    }
}
