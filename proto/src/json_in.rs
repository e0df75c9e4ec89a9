//! JSON input through simd-json's tape (document order is kept, as PHP's arrays keep it), with the
//! PHP-flavoured conversions the ext payloads and register lines need.

use simd_json::prelude::*;
use simd_json::tape::Value as JsonValue;

use crate::php::Key;

/// Parses `input` (copied: simd-json parses in place) and hands the root value to `read`.
/// Returns `Err(None)` when the bytes are not JSON, `Err(Some(e))` when `read` fails.
pub(crate) fn parse<T, E>(
    input: &[u8],
    read: impl FnOnce(JsonValue<'_, '_>) -> Result<T, E>,
) -> Result<T, Option<E>> {
    let mut buf = input.to_vec();
    let tape = simd_json::to_tape(&mut buf).map_err(|_| None)?;
    read(tape.as_value()).map_err(Some)
}

/// The items PHP's `foreach` visits: the elements of an array or the values of an object.
pub(crate) fn values<'t, 'i>(value: &JsonValue<'t, 'i>) -> Option<Vec<JsonValue<'t, 'i>>> {
    if let Some(array) = value.as_array() {
        return Some(array.iter().collect());
    }
    value
        .as_object()
        .map(|object| object.iter().map(|(_, v)| v).collect())
}

/// A JSON scalar used as a PHP array key: strings follow PHP's numeric-string rule, integers stay
/// integers, booleans are 0/1, null is `""`. Floats and containers are not valid keys here.
pub(crate) fn key(value: &JsonValue<'_, '_>) -> Option<Key> {
    if let Some(s) = value.as_str() {
        return Some(Key::from(s));
    }
    if value.is_null() {
        return Some(Key::from(""));
    }
    if let Some(b) = value.as_bool() {
        return Some(Key::Int(i64::from(b)));
    }
    if let Some(i) = value.as_i64() {
        return Some(Key::Int(i));
    }
    None
}

/// A connection id given as a JSON number or a decimal string; anything else matches no client.
pub(crate) fn connection_id(value: &JsonValue<'_, '_>) -> Option<u32> {
    if let Some(n) = value.as_u64() {
        return u32::try_from(n).ok();
    }
    value.as_str().and_then(parse_connection_id)
}

/// A connection id written as an object key or string: plain decimal digits only, as PHP's
/// integer-key rule reads them.
pub(crate) fn parse_connection_id(s: &str) -> Option<u32> {
    match Key::from(s) {
        Key::Int(i) => u32::try_from(i).ok(),
        Key::Str(_) => None,
    }
}
