//! The PHP value model: scalars, byte strings, and ordered arrays whose keys follow PHP's rule that
//! a canonical decimal string *is* an integer key (`"42"` and `42` name one entry).

use std::fmt;

use bytes::Bytes;
use indexmap::IndexMap;
use indexmap::map::Entry;

/// A PHP value. Strings are bytes, as in PHP.
#[derive(Clone)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Bytes),
    Array(Array),
}

/// An array key: PHP keeps integer and string keys apart, after normalising numeric strings.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Key {
    Int(i64),
    Str(Bytes),
}

/// A PHP array: an insertion-ordered map with PHP's "next free index" for appends.
#[derive(Clone, Default)]
pub struct Array {
    entries: IndexMap<Key, Value>,
    next_index: i64,
}

impl Key {
    /// The key PHP stores for the string `s`: an integer when `s` is a canonical decimal
    /// (`^(0|-?[1-9][0-9]*)$`) that fits in i64, the string itself otherwise.
    pub fn from_bytes(s: impl AsRef<[u8]> + Into<Bytes>) -> Key {
        match canonical_int(s.as_ref()) {
            Some(i) => Key::Int(i),
            None => Key::Str(s.into()),
        }
    }

    /// The key as PHP would print it.
    pub fn to_bytes(&self) -> Bytes {
        match self {
            Key::Int(i) => Bytes::from(i.to_string()),
            Key::Str(s) => s.clone(),
        }
    }

    /// The key as a value (an int or a string), e.g. for `[group => group]` replies.
    pub fn to_value(&self) -> Value {
        match self {
            Key::Int(i) => Value::Int(*i),
            Key::Str(s) => Value::Str(s.clone()),
        }
    }
}

/// Parses a canonical PHP integer string; `None` for anything PHP keeps as a string key.
fn canonical_int(s: &[u8]) -> Option<i64> {
    let digits = s.strip_prefix(b"-").unwrap_or(s);
    let canonical = match digits {
        [b'0'] => s.len() == 1, // "0" is an int, "-0" is not
        [b'1'..=b'9', rest @ ..] => rest.iter().all(u8::is_ascii_digit),
        _ => false,
    };
    if !canonical || s.len() > 20 {
        return None;
    }
    std::str::from_utf8(s).ok()?.parse().ok()
}

impl From<&str> for Key {
    fn from(s: &str) -> Key {
        Key::from_bytes(Bytes::copy_from_slice(s.as_bytes()))
    }
}

impl From<String> for Key {
    fn from(s: String) -> Key {
        Key::from_bytes(Bytes::from(s))
    }
}

impl From<&[u8]> for Key {
    fn from(s: &[u8]) -> Key {
        Key::from_bytes(Bytes::copy_from_slice(s))
    }
}

impl From<Bytes> for Key {
    fn from(s: Bytes) -> Key {
        Key::from_bytes(s)
    }
}

impl From<i64> for Key {
    fn from(i: i64) -> Key {
        Key::Int(i)
    }
}

impl From<u32> for Key {
    fn from(i: u32) -> Key {
        Key::Int(i.into())
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Key::Int(i) => write!(f, "{i}"),
            Key::Str(s) => write!(f, "{:?}", String::from_utf8_lossy(s)),
        }
    }
}

impl Array {
    pub fn new() -> Array {
        Array::default()
    }

    pub fn with_capacity(n: usize) -> Array {
        Array {
            entries: IndexMap::with_capacity(n),
            next_index: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Sets `key` to `value`. An existing key keeps its position, a new key goes last (PHP
    /// assignment semantics).
    pub fn insert(&mut self, key: impl Into<Key>, value: impl Into<Value>) {
        let key = key.into();
        if let Key::Int(i) = key
            && i >= self.next_index
        {
            self.next_index = i.saturating_add(1);
        }
        self.entries.insert(key, value.into());
    }

    /// Appends with the next free integer key (`$a[] = v`). Returns false when PHP would refuse
    /// ("Cannot add element to the array as the next element is already occupied").
    pub fn push(&mut self, value: impl Into<Value>) -> bool {
        let key = Key::Int(self.next_index);
        if self.entries.contains_key(&key) {
            return false;
        }
        self.insert(key, value);
        true
    }

    /// The most recently inserted entry's value.
    pub fn last_mut(&mut self) -> Option<&mut Value> {
        self.entries.last_mut().map(|(_, v)| v)
    }

    pub fn get(&self, key: &Key) -> Option<&Value> {
        self.entries.get(key)
    }

    pub fn get_mut(&mut self, key: &Key) -> Option<&mut Value> {
        self.entries.get_mut(key)
    }

    /// The value at `key`, inserted as `make()` first when absent.
    pub fn entry_or_insert_with(&mut self, key: Key, make: impl FnOnce() -> Value) -> &mut Value {
        if let Key::Int(i) = key
            && i >= self.next_index
        {
            self.next_index = i.saturating_add(1);
        }
        match self.entries.entry(key) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => e.insert(make()),
        }
    }

    /// Removes `key`, keeping the order of the others (PHP `unset`).
    pub fn remove(&mut self, key: &Key) -> Option<Value> {
        self.entries.shift_remove(key)
    }

    pub fn contains_key(&self, key: &Key) -> bool {
        self.entries.contains_key(key)
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&Key, &Value)> {
        self.entries.iter()
    }

    pub fn keys(&self) -> impl ExactSizeIterator<Item = &Key> {
        self.entries.keys()
    }

    pub fn values(&self) -> impl ExactSizeIterator<Item = &Value> {
        self.entries.values()
    }
}

impl PartialEq for Array {
    /// PHP's `===` on arrays: the same pairs in the same order with identical values.
    fn eq(&self, other: &Array) -> bool {
        self.len() == other.len() && self.iter().zip(other.iter()).all(|(a, b)| a == b)
    }
}

impl PartialEq for Value {
    /// PHP's `===`: same type and same value (so `NAN !== NAN`, and `0.0 === -0.0`).
    fn eq(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Null, Value::Null) => true,
            (Value::Bool(a), Value::Bool(b)) => a == b,
            (Value::Int(a), Value::Int(b)) => a == b,
            (Value::Float(a), Value::Float(b)) => a == b,
            (Value::Str(a), Value::Str(b)) => a == b,
            (Value::Array(a), Value::Array(b)) => a == b,
            _ => false,
        }
    }
}

impl<K: Into<Key>, V: Into<Value>> FromIterator<(K, V)> for Array {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Array {
        let mut array = Array::new();
        for (k, v) in iter {
            array.insert(k, v);
        }
        array
    }
}

impl fmt::Debug for Array {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.entries.iter()).finish()
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("null"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{x:?}"),
            Value::Str(s) => write!(f, "{:?}", String::from_utf8_lossy(s)),
            Value::Array(a) => a.fmt(f),
        }
    }
}

impl Value {
    /// A string value from anything byte-like.
    pub fn str(s: impl AsRef<[u8]>) -> Value {
        Value::Str(Bytes::copy_from_slice(s.as_ref()))
    }

    pub fn as_array(&self) -> Option<&Array> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }

    pub fn as_array_mut(&mut self) -> Option<&mut Array> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }

    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// PHP's truthiness (`if ($v)`): false for null, false, 0, 0.0, "", "0" and the empty array.
    pub fn is_truthy(&self) -> bool {
        match self {
            Value::Null => false,
            Value::Bool(b) => *b,
            Value::Int(i) => *i != 0,
            Value::Float(x) => *x != 0.0,
            Value::Str(s) => !(s.is_empty() || s.as_ref() == b"0"),
            Value::Array(a) => !a.is_empty(),
        }
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Value {
        Value::Bool(b)
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Value {
        Value::Int(i)
    }
}

impl From<u32> for Value {
    fn from(i: u32) -> Value {
        Value::Int(i.into())
    }
}

impl From<f64> for Value {
    fn from(x: f64) -> Value {
        Value::Float(x)
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::str(s)
    }
}

impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::Str(Bytes::from(s))
    }
}

impl From<Bytes> for Value {
    fn from(s: Bytes) -> Value {
        Value::Str(s)
    }
}

impl From<Array> for Value {
    fn from(a: Array) -> Value {
        Value::Array(a)
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Value {
        v.map_or(Value::Null, Into::into)
    }
}
