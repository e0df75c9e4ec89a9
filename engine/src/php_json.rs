//! Sessions between PHP's arrays (what gateways store) and JSON (what HTTP backends send and
//! read, and what tokens carry). A PHP array whose keys are 0, 1, … in order is a JSON array;
//! any other array is a JSON object. Strings that are not UTF-8 are shown with the replacement character; a JSON object's
//! keys become PHP keys by PHP's rules ("7" is the integer key 7).

use gatewire_proto::php::{Array, Key, Value};
use serde_json::{Map, Number, Value as Json};

/// A PHP value as JSON.
pub fn to_json(value: &Value) -> Json {
    match value {
        Value::Null => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::Int(i) => Json::Number((*i).into()),
        Value::Float(f) => Number::from_f64(*f).map_or(Json::Null, Json::Number),
        Value::Str(s) => Json::String(String::from_utf8_lossy(s).into_owned()),
        Value::Array(a) => array_to_json(a),
    }
}

/// A PHP array as a JSON array (keys 0, 1, … in order) or object.
pub fn array_to_json(array: &Array) -> Json {
    let is_list = array
        .iter()
        .enumerate()
        .all(|(i, (k, _))| matches!(k, Key::Int(n) if *n == i as i64));
    if is_list {
        Json::Array(array.iter().map(|(_, v)| to_json(v)).collect())
    } else {
        let mut object = Map::new();
        for (k, v) in array.iter() {
            let key = match k {
                Key::Int(n) => n.to_string(),
                Key::Str(s) => String::from_utf8_lossy(s).into_owned(),
            };
            object.insert(key, to_json(v));
        }
        Json::Object(object)
    }
}

/// A JSON value as PHP's.
pub fn from_json(json: &Json) -> Value {
    match json {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Float(n.as_f64().unwrap_or(0.0)),
        },
        Json::String(s) => Value::Str(s.clone().into()),
        Json::Array(items) => {
            let mut array = Array::default();
            for item in items {
                array.push(from_json(item));
            }
            Value::Array(array)
        }
        Json::Object(_) => Value::Array(object_to_array(json).unwrap_or_default()),
    }
}

/// A JSON object as a PHP array (`None` for anything else).
pub fn object_to_array(json: &Json) -> Option<Array> {
    let object = json.as_object()?;
    let mut array = Array::default();
    for (k, v) in object {
        array.insert(Key::from(k.as_str()), from_json(v));
    }
    Some(array)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_survive_the_round_trip() {
        let json: Json = serde_json::from_str(
            r#"{"name":"ann","age":7,"tags":["a","b"],"nested":{"x":1.5,"ok":true},"none":null}"#,
        )
        .unwrap();
        let php = object_to_array(&json).unwrap();
        assert_eq!(array_to_json(&php), json);
    }

    #[test]
    fn keys_follow_php_and_lists_stay_lists() {
        let json: Json = serde_json::from_str(r#"{"7":"seven","x":[1,2]}"#).unwrap();
        let php = object_to_array(&json).unwrap();
        assert!(matches!(php.get(&Key::Int(7)), Some(Value::Str(_))));
        // An array whose keys are not 0, 1, … is an object.
        let mut sparse = Array::default();
        sparse.insert(Key::Int(1), Value::Int(1));
        assert_eq!(array_to_json(&sparse), serde_json::json!({"1": 1}));
    }
}
