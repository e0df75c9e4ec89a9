//! PHP's `parse_str` (the `get` part of `CMD_ON_WEBSOCKET_CONNECT`), rule for rule: `&`-separated
//! pairs, url-decoding with `+` as space, `.`/space to `_` in the base name, `a[]` appends,
//! `a[x][y]` nests, an unmatched `[` becomes `_`, numeric keys become ints, later duplicates win,
//! at most 64 nesting levels (deeper drops the variable) and 1000 variables.

use bytes::Bytes;

use crate::php::{Array, Key, Value};

/// PHP's `max_input_nesting_level` default.
const MAX_NESTING: usize = 64;
/// PHP's `max_input_vars` default.
const MAX_VARS: usize = 1000;

/// `parse_str($query, $result)`.
pub fn parse_str(query: &[u8]) -> Array {
    let mut result = Array::new();
    for pair in query
        .split(|&b| b == b'&')
        .filter(|p| !p.is_empty())
        .take(MAX_VARS)
    {
        let (name, value) = match pair.iter().position(|&b| b == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &b""[..]),
        };
        register(
            &mut result,
            &url_decode(name),
            Bytes::from(url_decode(value)),
        );
    }
    result
}

/// `urldecode`: `+` is a space, `%XX` a byte; a `%` not followed by two hex digits stays as is.
pub fn url_decode(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        match input[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < input.len() => match (hex(input[i + 1]), hex(input[i + 2])) {
                (Some(hi), Some(lo)) => {
                    out.push(hi << 4 | lo);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    out
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// One step below the base name: a key, or `[]` (append).
type Index = Option<Vec<u8>>;

/// `php_register_variable_ex`: stores `value` under the decoded variable `name`.
fn register(target: &mut Array, name: &[u8], value: Bytes) {
    // The name is a C string: a decoded NUL ends it.
    let name = &name[..name.iter().position(|&b| b == 0).unwrap_or(name.len())];
    let start = name.iter().position(|&b| b != b' ').unwrap_or(name.len());
    let name = &name[start..];

    let mut base = Vec::with_capacity(name.len());
    let mut bracket = None;
    for (i, &c) in name.iter().enumerate() {
        match c {
            b' ' | b'.' => base.push(b'_'),
            b'[' => {
                bracket = Some(i);
                break;
            }
            c => base.push(c),
        }
    }
    if base.is_empty() {
        return;
    }

    let mut indices: Vec<Index> = Vec::new();
    if let Some(mut open) = bracket {
        loop {
            if indices.len() + 1 > MAX_NESTING {
                target.remove(&Key::from(Bytes::from(base)));
                return;
            }
            let index_start = open + 1;
            let mut p = index_start;
            if name.get(p).is_some_and(u8::is_ascii_whitespace) {
                p += 1;
            }
            let close = if name.get(p) == Some(&b']') {
                indices.push(None);
                p
            } else {
                match name[p.min(name.len())..].iter().position(|&b| b == b']') {
                    Some(offset) => {
                        let close = p + offset;
                        indices.push(Some(name[index_start..close].to_vec()));
                        close
                    }
                    None => {
                        // Not an index: at the first level the `[` and the rest join the name.
                        if indices.is_empty() {
                            base.push(b'_');
                            base.extend(name[index_start..].iter().map(|&c| match c {
                                b' ' | b'.' | b'[' => b'_',
                                c => c,
                            }));
                        }
                        break;
                    }
                }
            };
            if name.get(close + 1) == Some(&b'[') {
                open = close + 1;
            } else {
                break;
            }
        }
    }
    assign(target, Key::from(Bytes::from(base)), &indices, value);
}

/// Walks (creating arrays as needed) from `target[base]` along `indices` and stores `value`.
fn assign(target: &mut Array, base: Key, indices: &[Index], value: Bytes) {
    let Some((last, path)) = indices.split_last() else {
        target.insert(base, value);
        return;
    };
    let mut table = descend(target, Some(base));
    for step in path {
        let Some(next) = table else { return };
        table = descend(next, step.as_ref().map(|k| Key::from(k.as_slice())));
    }
    let Some(table) = table else { return };
    match last {
        None => {
            table.push(value);
        }
        Some(key) => table.insert(Key::from(key.as_slice()), value),
    }
}

/// The array at `key` in `table` (replacing a non-array there), or a new array appended when `key`
/// is `None`. `None` when PHP could not append.
fn descend(table: &mut Array, key: Option<Key>) -> Option<&mut Array> {
    let slot = match key {
        Some(key) => {
            let slot = table.entry_or_insert_with(key, || Value::Array(Array::new()));
            if !matches!(slot, Value::Array(_)) {
                *slot = Value::Array(Array::new());
            }
            slot
        }
        None => {
            if !table.push(Value::Array(Array::new())) {
                return None;
            }
            table.last_mut()?
        }
    };
    slot.as_array_mut()
}
