//! Request bodies parsed as JSON that means one thing: an object with the same key twice is
//! refused. `serde_json::Value` silently keeps the last of duplicate keys, so a body could say
//! one thing to us and another to anything that reads the first occurrence.

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use std::fmt;

/// Why a body is not strict JSON. Neither variant carries any of the body: error answers never
/// echo client input of unbounded size.
#[derive(Debug, thiserror::Error)]
pub enum StrictJsonError {
    #[error("not valid JSON at line {line} column {column}")]
    Malformed { line: usize, column: usize },
    #[error("an object has the same key twice")]
    DuplicateKey,
}

/// The marker our visitor puts in serde's error, to tell a duplicate key from bad syntax.
const DUPLICATE: &str = "duplicate object key";

/// Parses `body` into a `Value`, refusing duplicate keys at any depth.
pub fn parse(body: &[u8]) -> Result<Value, StrictJsonError> {
    match serde_json::from_slice::<Strict>(body) {
        Ok(Strict(value)) => Ok(value),
        Err(e) if e.to_string().starts_with(DUPLICATE) => Err(StrictJsonError::DuplicateKey),
        Err(e) => Err(StrictJsonError::Malformed {
            line: e.line(),
            column: e.column(),
        }),
    }
}

struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(16_384));
        while let Some(Strict(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(de::Error::custom(DUPLICATE));
            }
            let Strict(value) = map.next_value()?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_same_values_as_serde_json_when_keys_are_unique() {
        let text = br#"[{"a": 1, "b": [true, null, -2, 1.5, "x"], "c": {"d": {}}}]"#;
        assert_eq!(
            parse(text).unwrap(),
            serde_json::from_slice::<Value>(text).unwrap()
        );
        assert_eq!(parse(b"\"\\u00e9\"").unwrap(), json!("é"));
    }

    #[test]
    fn duplicate_keys_are_refused_at_any_depth() {
        for text in [
            &br#"{"a": 1, "a": 2}"#[..],
            br#"[{"name": "Ada"}, {"iban": "x", "name": "A", "name": "B"}]"#,
            br#"{"x": {"y": {"z": 1, "z": 1}}}"#,
        ] {
            assert!(matches!(parse(text), Err(StrictJsonError::DuplicateKey)));
        }
    }

    #[test]
    fn bad_syntax_is_malformed_and_says_where() {
        let Err(StrictJsonError::Malformed { line, column }) = parse(b"[\n  {\"a\": }\n]") else {
            panic!("malformed")
        };
        assert_eq!((line, column), (2, 9));
        assert!(matches!(
            parse(b"   "),
            Err(StrictJsonError::Malformed { .. })
        ));
    }
}
