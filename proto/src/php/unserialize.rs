//! A bounded `unserialize()` for the PHP subset sessions and replies use (protocol §9.1). Objects
//! and references are refused with a clear error, as is trailing data; depth and element counts
//! are bounded by the input, so no input can make it allocate or recurse without limit.

use bytes::Bytes;

use super::value::{Array, Key, Value};

/// Nesting deeper than this is refused (sessions are shallow; PHP's own limit is 4096).
pub const DEFAULT_MAX_DEPTH: usize = 128;

/// Why bytes are not an acceptable serialized value. `offset` is where reading stopped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnserializeError {
    #[error("unexpected end of input at byte {offset}")]
    UnexpectedEnd { offset: usize },
    #[error("malformed serialized data at byte {offset}: {what}")]
    Malformed { offset: usize, what: &'static str },
    #[error("serialized objects are not accepted (found '{tag}' at byte {offset})")]
    Object { offset: usize, tag: char },
    #[error("serialized references are not accepted (found '{tag}' at byte {offset})")]
    Reference { offset: usize, tag: char },
    #[error("nesting deeper than {max} levels at byte {offset}")]
    TooDeep { offset: usize, max: usize },
    #[error("{count} bytes of trailing data after the value")]
    TrailingData { count: usize },
}

/// `unserialize($bytes, ['allowed_classes' => false])` without objects or references.
pub fn unserialize(input: &[u8]) -> Result<Value, UnserializeError> {
    unserialize_with_depth(input, DEFAULT_MAX_DEPTH)
}

/// [`unserialize`] with an explicit nesting bound.
pub fn unserialize_with_depth(input: &[u8], max_depth: usize) -> Result<Value, UnserializeError> {
    let mut reader = Reader {
        input,
        pos: 0,
        max_depth,
    };
    let value = reader.value(0)?;
    if reader.pos != input.len() {
        return Err(UnserializeError::TrailingData {
            count: input.len() - reader.pos,
        });
    }
    Ok(value)
}

struct Reader<'a> {
    input: &'a [u8],
    pos: usize,
    max_depth: usize,
}

impl Reader<'_> {
    fn malformed(&self, what: &'static str) -> UnserializeError {
        UnserializeError::Malformed {
            offset: self.pos,
            what,
        }
    }

    fn peek(&self) -> Result<u8, UnserializeError> {
        self.input
            .get(self.pos)
            .copied()
            .ok_or(UnserializeError::UnexpectedEnd { offset: self.pos })
    }

    fn expect(&mut self, byte: u8, what: &'static str) -> Result<(), UnserializeError> {
        if self.peek()? != byte {
            return Err(self.malformed(what));
        }
        self.pos += 1;
        Ok(())
    }

    /// Bytes up to (not including) the next `end`, which is consumed.
    fn until(&mut self, end: u8) -> Result<&[u8], UnserializeError> {
        let rest = &self.input[self.pos..];
        let len = rest
            .iter()
            .position(|&b| b == end)
            .ok_or(UnserializeError::UnexpectedEnd {
                offset: self.input.len(),
            })?;
        let start = self.pos;
        self.pos += len + 1;
        Ok(&self.input[start..start + len])
    }

    fn value(&mut self, depth: usize) -> Result<Value, UnserializeError> {
        let tag = self.peek()?;
        let at = self.pos;
        match tag {
            b'N' => {
                self.pos += 1;
                self.expect(b';', "expected ';' after N")?;
                Ok(Value::Null)
            }
            b'b' => {
                self.header(b'b')?;
                let v = match self.until(b';')? {
                    b"0" => false,
                    b"1" => true,
                    _ => return Err(self.malformed("a bool is b:0; or b:1;")),
                };
                Ok(Value::Bool(v))
            }
            b'i' => {
                self.header(b'i')?;
                let text = self.until(b';')?;
                parse_int(text)
                    .map(Value::Int)
                    .ok_or(UnserializeError::Malformed {
                        offset: at,
                        what: "an int is i:<decimal that fits in 64 bits>;",
                    })
            }
            b'd' => {
                self.header(b'd')?;
                let text = self.until(b';')?;
                parse_float(text)
                    .map(Value::Float)
                    .ok_or(UnserializeError::Malformed {
                        offset: at,
                        what: "a float is d:<number>; or d:INF; d:-INF; d:NAN;",
                    })
            }
            b's' => self.string().map(Value::Str),
            b'a' => {
                if depth >= self.max_depth {
                    return Err(UnserializeError::TooDeep {
                        offset: at,
                        max: self.max_depth,
                    });
                }
                self.array(depth)
            }
            b'O' | b'C' | b'E' => Err(UnserializeError::Object {
                offset: at,
                tag: tag as char,
            }),
            b'r' | b'R' => Err(UnserializeError::Reference {
                offset: at,
                tag: tag as char,
            }),
            _ => Err(self.malformed("unknown type tag")),
        }
    }

    /// Consumes `<tag>:`.
    fn header(&mut self, tag: u8) -> Result<(), UnserializeError> {
        self.expect(tag, "type tag")?;
        self.expect(b':', "expected ':' after the type tag")
    }

    /// A decimal length followed by `:`.
    fn length(&mut self) -> Result<usize, UnserializeError> {
        let text = self.until(b':')?;
        if text.is_empty() || text.len() > 19 || !text.iter().all(u8::is_ascii_digit) {
            return Err(self.malformed("a length is a plain decimal"));
        }
        std::str::from_utf8(text)
            .ok()
            .and_then(|t| t.parse().ok())
            .ok_or_else(|| self.malformed("a length is a plain decimal"))
    }

    fn string(&mut self) -> Result<Bytes, UnserializeError> {
        self.header(b's')?;
        let len = self.length()?;
        self.expect(b'"', "expected '\"' before string bytes")?;
        if self.input.len() - self.pos < len {
            return Err(UnserializeError::UnexpectedEnd {
                offset: self.input.len(),
            });
        }
        let bytes = Bytes::copy_from_slice(&self.input[self.pos..self.pos + len]);
        self.pos += len;
        self.expect(b'"', "expected '\"' after string bytes")?;
        self.expect(b';', "expected ';' after a string")?;
        Ok(bytes)
    }

    fn array(&mut self, depth: usize) -> Result<Value, UnserializeError> {
        self.header(b'a')?;
        let count = self.length()?;
        self.expect(b'{', "expected '{' after the array count")?;
        // The smallest element is "i:0;N;" (6 bytes): a larger count cannot be honest.
        if count > (self.input.len() - self.pos) / 6 {
            return Err(self.malformed("array count larger than the input"));
        }
        let mut array = Array::with_capacity(count);
        for _ in 0..count {
            let key = match self.peek()? {
                b'i' => {
                    let at = self.pos;
                    match self.value(depth + 1)? {
                        Value::Int(i) => Key::Int(i),
                        _ => {
                            return Err(UnserializeError::Malformed {
                                offset: at,
                                what: "bad int key",
                            });
                        }
                    }
                }
                b's' => Key::from_bytes(self.string()?),
                _ => return Err(self.malformed("an array key is an int or a string")),
            };
            let item = self.value(depth + 1)?;
            array.insert(key, item);
        }
        self.expect(b'}', "expected '}' to close the array")?;
        Ok(Value::Array(array))
    }
}

/// PHP's `i:` grammar: optional sign, decimal digits, within i64.
fn parse_int(text: &[u8]) -> Option<i64> {
    let digits = text
        .strip_prefix(b"-")
        .or(text.strip_prefix(b"+"))
        .unwrap_or(text);
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(text).ok()?.parse().ok()
}

/// PHP's `d:` grammar: `[+-]?(digits | digits.digits* | digits*.digits)([eE][+-]?digits)?`, or
/// `INF`, `-INF`, `NAN`.
fn parse_float(text: &[u8]) -> Option<f64> {
    match text {
        b"INF" => return Some(f64::INFINITY),
        b"-INF" => return Some(f64::NEG_INFINITY),
        b"NAN" => return Some(f64::NAN),
        _ => {}
    }
    let body = text
        .strip_prefix(b"-")
        .or(text.strip_prefix(b"+"))
        .unwrap_or(text);
    let (number, exponent) = match body.iter().position(|&b| b == b'e' || b == b'E') {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    let (int_part, frac_part) = match number.iter().position(|&b| b == b'.') {
        Some(i) => (&number[..i], Some(&number[i + 1..])),
        None => (number, None),
    };
    let all_digits = |s: &[u8]| s.iter().all(u8::is_ascii_digit);
    let number_ok = all_digits(int_part)
        && frac_part.is_none_or(all_digits)
        && (!int_part.is_empty() || frac_part.is_some_and(|f| !f.is_empty()));
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(b"-").or(e.strip_prefix(b"+")).unwrap_or(e);
        !e.is_empty() && all_digits(e)
    });
    if !number_ok || !exponent_ok {
        return None;
    }
    std::str::from_utf8(text).ok()?.parse().ok()
}
