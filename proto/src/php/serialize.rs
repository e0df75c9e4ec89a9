//! `serialize()` byte for byte as PHP 8 writes it (protocol §9.1).

use std::io::Write as _;

use super::float::serialize_float;
use super::value::{Key, Value};

/// `serialize($value)`.
pub fn serialize(value: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    serialize_into(value, &mut out);
    out
}

/// Appends `serialize($value)` to `out`.
pub fn serialize_into(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Null => out.extend_from_slice(b"N;"),
        Value::Bool(b) => out.extend_from_slice(if *b { b"b:1;" } else { b"b:0;" }),
        Value::Int(i) => write_int(*i, out),
        Value::Float(x) => {
            out.extend_from_slice(b"d:");
            serialize_float(*x, out);
            out.push(b';');
        }
        Value::Str(s) => write_str(s, out),
        Value::Array(array) => {
            let _ = write!(out, "a:{}:{{", array.len());
            for (key, item) in array.iter() {
                match key {
                    Key::Int(i) => write_int(*i, out),
                    Key::Str(s) => write_str(s, out),
                }
                serialize_into(item, out);
            }
            out.push(b'}');
        }
    }
}

fn write_int(i: i64, out: &mut Vec<u8>) {
    let _ = write!(out, "i:{i};");
}

fn write_str(s: &[u8], out: &mut Vec<u8>) {
    let _ = write!(out, "s:{}:\"", s.len());
    out.extend_from_slice(s);
    out.extend_from_slice(b"\";");
}
