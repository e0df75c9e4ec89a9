//! JSON output the way PHP's `json_encode` writes it with default flags: `/` escaped as `\/`,
//! non-ASCII as `\uXXXX` (surrogate pairs above U+FFFF), control characters as short escapes or
//! `\u00XX`. Used wherever gatewire must emit the bytes a PHP peer would.

use std::fmt::Write as _;

/// Appends `s` as a JSON string literal, quotes included.
pub(crate) fn push_str(out: &mut String, s: &str) {
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '/' => out.push_str("\\/"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || !c.is_ascii() => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Appends a JSON object mapping each id to itself, `{"3":3,"5":5}`: how PHP encodes an array
/// `[id => id]` whose keys are not `0..n-1`.
pub(crate) fn push_id_map(out: &mut String, ids: &[u32]) {
    out.push('{');
    for (i, id) in ids.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "\"{id}\":{id}");
    }
    out.push('}');
}

/// Appends a JSON array of strings.
pub(crate) fn push_str_list<S: AsRef<str>>(out: &mut String, items: &[S]) {
    out.push('[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_str(out, item.as_ref());
    }
    out.push(']');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_like_php_json_encode() {
        let mut out = String::new();
        push_str(&mut out, "a/b\"c\\d\n\u{1}é😀");
        assert_eq!(out, r#""a\/b\"c\\d\n\u0001\u00e9\ud83d\ude00""#);
    }

    #[test]
    fn id_maps_are_objects() {
        let mut out = String::new();
        push_id_map(&mut out, &[3, 5]);
        assert_eq!(out, r#"{"3":3,"5":5}"#);
    }
}
