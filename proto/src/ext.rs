//! JSON ext payloads of the worker commands (protocol §2.3, §5.6, §5.7): who a broadcast reaches,
//! which groups and uids a command names, what a SELECT asks for. Parsing follows PHP's iteration
//! rules (values of `connections`, keys of `exclude`, values of any list given as array or
//! object); the `to_ext` methods emit what PHP's `json_encode` emits.

use simd_json::prelude::*;
use simd_json::tape::Value as JsonValue;

use crate::json_in::{self, connection_id, parse_connection_id};
use crate::json_out;
use crate::php::Key;

/// An ext payload the gateway cannot act on; the command is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExtError {
    #[error("ext of {cmd} is not valid JSON")]
    NotJson { cmd: &'static str },
    #[error("ext of {cmd}: {what}")]
    Shape {
        cmd: &'static str,
        what: &'static str,
    },
}

fn shape(cmd: &'static str, what: &'static str) -> ExtError {
    ExtError::Shape { cmd, what }
}

fn parse<T>(
    cmd: &'static str,
    ext: &[u8],
    read: impl FnOnce(JsonValue<'_, '_>) -> Result<T, ExtError>,
) -> Result<T, ExtError> {
    json_in::parse(ext, read).map_err(|e| e.unwrap_or(ExtError::NotJson { cmd }))
}

/// The keys named by a list given as an array or an object (its values).
fn key_list(cmd: &'static str, list: &JsonValue<'_, '_>) -> Result<Vec<Key>, ExtError> {
    json_in::values(list)
        .ok_or_else(|| shape(cmd, "expected a list"))?
        .iter()
        .map(|v| {
            json_in::key(v).ok_or_else(|| shape(cmd, "list items must be strings or integers"))
        })
        .collect()
}

/// Connection ids given as the values of an array or object; items that are not ids match no
/// client and are skipped, as in PHP.
fn id_values(cmd: &'static str, list: &JsonValue<'_, '_>) -> Result<Vec<u32>, ExtError> {
    Ok(json_in::values(list)
        .ok_or_else(|| shape(cmd, "expected a list of connection ids"))?
        .iter()
        .filter_map(connection_id)
        .collect())
}

/// Connection ids given as the keys of an object (PHP tests `isset($exclude[$id])`). For a JSON
/// array those keys are its positions `0..n`, exactly what PHP's decoded list would match; null or
/// a scalar excludes nobody.
fn id_keys(list: &JsonValue<'_, '_>) -> Vec<u32> {
    if let Some(object) = list.as_object() {
        return object
            .iter()
            .filter_map(|(k, _)| parse_connection_id(k))
            .collect();
    }
    list.as_array()
        .map(|a| (0..a.len() as u32).collect())
        .unwrap_or_default()
}

/// Who a `CMD_SEND_TO_ALL` reaches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendToAllTarget {
    /// ext `""`: every client of the gateway.
    Everyone,
    /// `{"connections":{…}}`: only these connection ids.
    Only(Vec<u32>),
    /// `{"exclude":{…}}`: everyone but these connection ids.
    Except(Vec<u32>),
}

impl SendToAllTarget {
    const CMD: &'static str = "SEND_TO_ALL";

    /// Reads the ext of a `CMD_SEND_TO_ALL`. `connections` wins over `exclude`, as in PHP.
    pub fn parse(ext: &[u8]) -> Result<SendToAllTarget, ExtError> {
        if ext.is_empty() {
            return Ok(SendToAllTarget::Everyone);
        }
        parse(Self::CMD, ext, |doc| {
            if let Some(connections) = doc.get("connections") {
                return Ok(SendToAllTarget::Only(id_values(Self::CMD, &connections)?));
            }
            match doc.get("exclude") {
                Some(exclude) => {
                    let ids = id_keys(&exclude);
                    Ok(if ids.is_empty() {
                        SendToAllTarget::Everyone
                    } else {
                        SendToAllTarget::Except(ids)
                    })
                }
                None => Ok(SendToAllTarget::Everyone),
            }
        })
    }

    /// The ext PHP's `sendToAll` writes for this target.
    pub fn to_ext(&self) -> String {
        let mut out = String::new();
        match self {
            SendToAllTarget::Everyone => {}
            SendToAllTarget::Only(ids) => {
                out.push_str("{\"connections\":");
                json_out::push_id_map(&mut out, ids);
                out.push('}');
            }
            SendToAllTarget::Except(ids) => {
                out.push_str("{\"exclude\":");
                json_out::push_id_map(&mut out, ids);
                out.push('}');
            }
        }
        out
    }
}

/// The ext of a `CMD_SEND_TO_GROUP`: `{"group":[…],"exclude":null|{id:id,…}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendToGroup {
    /// The groups, in order; a client in two of them receives the message twice.
    pub groups: Vec<Key>,
    /// Connection ids that receive nothing.
    pub exclude: Vec<u32>,
}

impl SendToGroup {
    const CMD: &'static str = "SEND_TO_GROUP";

    pub fn parse(ext: &[u8]) -> Result<SendToGroup, ExtError> {
        parse(Self::CMD, ext, |doc| {
            let groups = match doc.get("group") {
                Some(list) => key_list(Self::CMD, &list)?,
                None => Vec::new(),
            };
            let exclude = doc.get("exclude").map(|e| id_keys(&e)).unwrap_or_default();
            Ok(SendToGroup { groups, exclude })
        })
    }

    /// The ext PHP writes: group names as strings, exclusions as an id map or `null`.
    pub fn to_ext<S: AsRef<str>>(groups: &[S], exclude: &[u32]) -> String {
        let mut out = String::from("{\"group\":");
        json_out::push_str_list(&mut out, groups);
        out.push_str(",\"exclude\":");
        if exclude.is_empty() {
            out.push_str("null");
        } else {
            json_out::push_id_map(&mut out, exclude);
        }
        out.push('}');
        out
    }
}

/// A JSON list of uids or groups: the ext of `SEND_TO_UID` (14), `BATCH_GET_CLIENT_ID_BY_UID` (16)
/// and `BATCH_GET_CLIENT_COUNT_BY_GROUP` (28). Accepts an array or an object (its values).
pub fn parse_key_list(ext: &[u8]) -> Result<Vec<Key>, ExtError> {
    const CMD: &str = "uid/group list";
    parse(CMD, ext, |doc| key_list(CMD, &doc))
}

/// `json_encode` of a list of strings, e.g. `["42"]`.
pub fn key_list_ext<S: AsRef<str>>(items: &[S]) -> String {
    let mut out = String::new();
    json_out::push_str_list(&mut out, items);
    out
}

/// A field a SELECT reports per connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SelectField {
    Uid,
    Groups,
    Session,
    /// Any other name: PHP reads the connection property of that name, which is unset for
    /// anything but the three above, so it reports null.
    Other(String),
}

impl SelectField {
    pub fn name(&self) -> &str {
        match self {
            SelectField::Uid => "uid",
            SelectField::Groups => "groups",
            SelectField::Session => "session",
            SelectField::Other(name) => name,
        }
    }

    fn from_name(name: &str) -> SelectField {
        match name {
            "uid" => SelectField::Uid,
            "groups" => SelectField::Groups,
            "session" => SelectField::Session,
            other => SelectField::Other(other.to_owned()),
        }
    }
}

/// Which connections a SELECT covers; the present conditions are OR-ed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SelectWhere {
    pub groups: Option<Vec<Key>>,
    pub uids: Option<Vec<Key>>,
    pub connection_ids: Option<Vec<u32>>,
}

/// The ext of `CMD_SELECT`: `{"fields":[…],"where":…}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Select {
    pub fields: Vec<SelectField>,
    /// `None`: every connection of the gateway (`where` empty or absent).
    pub filter: Option<SelectWhere>,
}

impl Select {
    const CMD: &'static str = "SELECT";

    pub fn parse(ext: &[u8]) -> Result<Select, ExtError> {
        parse(Self::CMD, ext, |doc| {
            let fields = match doc.get("fields") {
                Some(list) => json_in::values(&list)
                    .ok_or_else(|| shape(Self::CMD, "fields must be a list"))?
                    .iter()
                    .map(|f| {
                        f.as_str()
                            .map(SelectField::from_name)
                            .ok_or_else(|| shape(Self::CMD, "field names are strings"))
                    })
                    .collect::<Result<_, _>>()?,
                None => Vec::new(),
            };
            let filter = match doc.get("where") {
                None => None,
                Some(w) if w.is_null() => None,
                Some(w) if w.as_array().is_some_and(|a| a.is_empty()) => None,
                Some(w) => {
                    let object = w
                        .as_object()
                        .ok_or_else(|| shape(Self::CMD, "where must be an object"))?;
                    if object.is_empty() {
                        None
                    } else {
                        let list = |name: &str| object.get(name);
                        let mut filter = SelectWhere {
                            groups: list("groups")
                                .map(|l| key_list(Self::CMD, &l))
                                .transpose()?,
                            uids: list("uid").map(|l| key_list(Self::CMD, &l)).transpose()?,
                            connection_ids: list("connection_id")
                                .map(|l| id_values(Self::CMD, &l))
                                .transpose()?,
                        };
                        // A non-empty `where` naming no condition PHP knows selects nothing:
                        // kept as an empty connection list, which encodes back the same.
                        if filter == SelectWhere::default() {
                            filter.connection_ids = Some(Vec::new());
                        }
                        Some(filter)
                    }
                }
            };
            Ok(Select { fields, filter })
        })
    }

    /// The ext PHP's `select()` writes. Group and uid names are strings; connection ids an id map.
    pub fn to_ext(fields: &[SelectField], filter: Option<&SelectWhere>) -> String {
        let mut out = String::from("{\"fields\":");
        let names: Vec<&str> = fields.iter().map(SelectField::name).collect();
        json_out::push_str_list(&mut out, &names);
        out.push_str(",\"where\":");
        match filter {
            None => out.push_str("[]"),
            Some(w) => {
                out.push('{');
                let mut first = true;
                let mut sep = |out: &mut String| {
                    if !std::mem::take(&mut first) {
                        out.push(',');
                    }
                };
                for (name, keys) in [("groups", &w.groups), ("uid", &w.uids)] {
                    if let Some(keys) = keys {
                        sep(&mut out);
                        out.push('"');
                        out.push_str(name);
                        out.push_str("\":");
                        let names: Vec<String> = keys
                            .iter()
                            .map(|k| String::from_utf8_lossy(&k.to_bytes()).into_owned())
                            .collect();
                        json_out::push_str_list(&mut out, &names);
                    }
                }
                if let Some(ids) = &w.connection_ids {
                    sep(&mut out);
                    out.push_str("\"connection_id\":");
                    if ids.is_empty() {
                        out.push_str("[]");
                    } else {
                        json_out::push_id_map(&mut out, ids);
                    }
                }
                out.push('}');
            }
        }
        out.push('}');
        out
    }
}
