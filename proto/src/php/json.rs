//! `json_encode` of a PHP value with default flags: what workerman 5's WebSocket `encode()` sends
//! when a worker passes a non-scalar message (protocol §5.6).

use std::fmt::Write as _;

use super::float::json_float;
use super::value::{Array, Key, Value};
use crate::json_out;

/// `json_encode($value)`, or `None` where PHP fails (INF/NAN, strings that are not UTF-8).
pub fn to_json(value: &Value) -> Option<String> {
    let mut out = String::new();
    write_value(value, &mut out)?;
    Some(out)
}

fn write_value(value: &Value, out: &mut String) -> Option<()> {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Float(x) => {
            if !x.is_finite() {
                return None;
            }
            let mut text = Vec::new();
            json_float(*x, &mut text);
            out.push_str(std::str::from_utf8(&text).ok()?);
        }
        Value::Str(s) => json_out::push_str(out, std::str::from_utf8(s).ok()?),
        Value::Array(array) => write_array(array, out)?,
    }
    Some(())
}

/// A list (keys exactly 0..n-1 in order) becomes a JSON array, anything else an object.
fn write_array(array: &Array, out: &mut String) -> Option<()> {
    let is_list = array
        .keys()
        .enumerate()
        .all(|(i, k)| *k == Key::Int(i as i64));
    out.push(if is_list { '[' } else { '{' });
    for (i, (key, item)) in array.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        if !is_list {
            match key {
                Key::Int(n) => {
                    let _ = write!(out, "\"{n}\"");
                }
                Key::Str(s) => json_out::push_str(out, std::str::from_utf8(s).ok()?),
            }
            out.push(':');
        }
        write_value(item, out)?;
    }
    out.push(if is_list { ']' } else { '}' });
    Some(())
}
