//! `array_replace_recursive` and the gateway's `CMD_UPDATE_SESSION` merge (protocol §9.3).

use super::serialize::serialize;
use super::unserialize::unserialize;
use super::value::{Array, Value};

/// PHP's `array_replace_recursive($base, $replacement)`: for each key of `replacement` in order,
/// recurse when both sides hold arrays, otherwise overwrite. Existing keys keep their position,
/// new keys are appended, and lists merge by index.
pub fn array_replace_recursive(base: &mut Array, replacement: &Array) {
    for (key, new) in replacement.iter() {
        match (base.get_mut(key), new) {
            (Some(Value::Array(old)), Value::Array(new)) => array_replace_recursive(old, new),
            _ => base.insert(key.clone(), new.clone()),
        }
    }
}

/// The session bytes the gateway stores after `CMD_UPDATE_SESSION` with `ext`, or `None` when the
/// update is a no-op. A PHP-falsy stored session (`""` or `"0"`) is replaced by `ext` as it is;
/// otherwise both sides are unserialized, merged and re-serialized. An update that is not a
/// serialized array (PHP 8 throws a TypeError there) changes nothing.
pub fn merge_session(stored: &[u8], ext: &[u8]) -> Option<Vec<u8>> {
    if stored.is_empty() || stored == b"0" {
        return Some(ext.to_vec());
    }
    let Ok(Value::Array(mut base)) = unserialize(stored) else {
        return None;
    };
    let Ok(Value::Array(update)) = unserialize(ext) else {
        return None;
    };
    array_replace_recursive(&mut base, &update);
    Some(serialize(&Value::Array(base)))
}
