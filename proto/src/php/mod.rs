//! PHP values as GatewayWorker stores them in sessions and query replies (protocol §9): the value
//! model with PHP's array-key rules, byte-exact `serialize`, a bounded `unserialize` that refuses
//! objects and references, and `array_replace_recursive` for `CMD_UPDATE_SESSION`.

mod float;
mod json;
mod merge;
mod serialize;
mod unserialize;
mod value;

pub use float::{float_to_string, serialize_float};
pub use json::to_json;
pub use merge::{array_replace_recursive, merge_session};
pub use serialize::{serialize, serialize_into};
pub use unserialize::{DEFAULT_MAX_DEPTH, UnserializeError, unserialize, unserialize_with_depth};
pub use value::{Array, Key, Value};
