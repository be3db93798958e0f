//! How portcullis configures regorus, shared by native policies, Gatekeeper templates and the
//! test runners: the execution-time limit, OPA's builtin-error semantics, the one place that
//! tells a timeout from any other evaluation error, and JSON read or converted for the engine.

use std::collections::{BTreeMap, HashMap};
use std::num::NonZeroU32;
use std::time::Duration;

use foldhash::fast::RandomState;
use regorus::utils::limits::{ExecutionTimerConfig, LimitError};

use crate::results::EvalError;

/// An empty regorus engine with the execution-time limit set and OPA's builtin-error semantics.
pub fn configured_engine(timeout: Duration) -> regorus::Engine {
    let mut engine = regorus::Engine::new();
    engine.set_execution_timer_config(timer(timeout));
    // OPA's default: a builtin error makes the expression undefined rather than aborting.
    engine.set_strict_builtin_errors(false);
    engine
}

/// The execution-time limit, for the interpreter and the VM alike.
pub fn timer(timeout: Duration) -> ExecutionTimerConfig {
    ExecutionTimerConfig {
        limit: timeout,
        // Checking the clock is not free; every 64 work units keeps the overshoot tiny.
        check_interval: NonZeroU32::new(64).unwrap_or(NonZeroU32::MIN),
    }
}

/// An evaluation error of an engine built by [`configured_engine`] with `timeout`: the time
/// limit is recognised by its type, never by its text.
pub fn classify(error: anyhow::Error, timeout: Duration) -> EvalError {
    match error.downcast_ref::<LimitError>() {
        Some(LimitError::TimeLimitExceeded { .. }) => EvalError::Timeout(timeout),
        _ => EvalError::Failed(error.to_string()),
    }
}

/// A JSON value regorus cannot take where it was given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConvertError {
    /// A number beyond regorus's range (serde's reader never makes one).
    #[error("{0} is not a number regorus can hold")]
    Number(String),
    /// An input document's facts that are not an object.
    #[error("the input document is not an object")]
    NotAnObject,
}

/// A JSON value as a regorus value, converted structurally (no JSON text in between), with
/// the values regorus's own JSON reader would give. Object keys are shared: a review repeats
/// the same few dozen keys hundreds of times, and one string each is enough. Objects are built
/// in regorus's compact form straight from serde's sorted maps (one allocation each).
pub fn to_regorus(value: &serde_json::Value) -> Result<regorus::Value, ConvertError> {
    convert(value, &mut Keys::default())
}

/// An input document from its parts: the fields of `facts` (an object) and `request`, built
/// as one object (no copy of the request into the facts first).
pub fn input_document(facts: &serde_json::Value, request: regorus::Value) -> Result<regorus::Value, ConvertError> {
    let serde_json::Value::Object(fields) = facts else {
        return Err(ConvertError::NotAnObject);
    };
    let mut keys = Keys::default();
    let mut entries = Vec::with_capacity(fields.len() + 1);
    for (key, field) in fields.iter().filter(|(key, _)| *key != "request") {
        entries.push((regorus::Value::String(key.as_str().into()), convert(field, &mut keys)?));
    }
    entries.push((regorus::Value::String("request".into()), request));
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(object(entries))
}

/// The keys met so far, each as one regorus string (SipHash would cost as much as the strings).
type Keys<'a> = HashMap<&'a str, regorus::Value, RandomState>;

fn convert<'a>(value: &'a serde_json::Value, keys: &mut Keys<'a>) -> Result<regorus::Value, ConvertError> {
    use serde_json::Value as Json;
    Ok(match value {
        Json::Null => regorus::Value::Null,
        Json::Bool(b) => regorus::Value::Bool(*b),
        // As serde hands numbers to regorus's reader: unsigned, then negative, then float.
        Json::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
            (Some(u), _, _) => regorus::Value::from(u),
            (None, Some(i), _) => regorus::Value::from(i),
            (None, None, Some(f)) if f.is_finite() => regorus::Value::from(f),
            _ => return Err(ConvertError::Number(n.to_string())),
        },
        Json::String(text) => regorus::Value::String(text.as_str().into()),
        Json::Array(items) => regorus::Value::from(
            items
                .iter()
                .map(|item| convert(item, keys))
                .collect::<Result<Vec<_>, _>>()?,
        ),
        Json::Object(fields) => {
            let mut entries = Vec::with_capacity(fields.len());
            for (key, field) in fields {
                let key = keys
                    .entry(key.as_str())
                    .or_insert_with(|| regorus::Value::String(key.as_str().into()))
                    .clone();
                entries.push((key, convert(field, keys)?));
            }
            object(entries)
        }
    })
}

/// An object of `entries` with distinct keys. serde's maps iterate sorted by key, as regorus
/// orders string keys, so they go into regorus's compact form as they are; should a build
/// ever keep insertion order instead, a map sorts them.
fn object(entries: Vec<(regorus::Value, regorus::Value)>) -> regorus::Value {
    match regorus::value::Object::from_sorted_entries(entries) {
        Ok(object) => object.into_value(),
        Err(entries) => regorus::Value::from(entries.into_iter().collect::<BTreeMap<_, _>>()),
    }
}

/// A JSON text read straight into a regorus value (no serde value in between), with the values
/// `to_regorus` gives for the same text: keys shared, objects in regorus's compact form, a
/// repeated key's last value kept (as serde's reader keeps it).
pub fn from_json_slice(text: &[u8]) -> Result<regorus::Value, serde_json::Error> {
    use serde::de::DeserializeSeed;
    // Checked once here, the text's strings are not checked again one by one.
    let text = std::str::from_utf8(text)
        .map_err(|e| <serde_json::Error as serde::de::Error>::custom(format!("not UTF-8: {e}")))?;
    let mut reader = serde_json::Deserializer::from_str(text);
    let value = Reader {
        keys: &mut Keys::default(),
    }
    .deserialize(&mut reader)?;
    reader.end()?;
    Ok(value)
}

/// One value of the text being read, and the keys met so far.
struct Reader<'k, 'de> {
    keys: &'k mut Keys<'de>,
}

impl<'de> serde::de::DeserializeSeed<'de> for Reader<'_, 'de> {
    type Value = regorus::Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<regorus::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

/// An object key: borrowed from the text when it has no escapes, so that it can be shared.
struct Key<'k, 'de> {
    keys: &'k mut Keys<'de>,
}

impl<'de> serde::de::DeserializeSeed<'de> for Key<'_, 'de> {
    type Value = regorus::Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<regorus::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Key<'_, 'de> {
    type Value = regorus::Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an object key")
    }

    fn visit_borrowed_str<E: serde::de::Error>(self, key: &'de str) -> Result<regorus::Value, E> {
        Ok(self
            .keys
            .entry(key)
            .or_insert_with(|| regorus::Value::String(key.into()))
            .clone())
    }

    fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<regorus::Value, E> {
        Ok(regorus::Value::String(key.into()))
    }
}

impl<'de> serde::de::Visitor<'de> for Reader<'_, 'de> {
    type Value = regorus::Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<regorus::Value, E> {
        Ok(regorus::Value::Null)
    }

    fn visit_bool<E: serde::de::Error>(self, b: bool) -> Result<regorus::Value, E> {
        Ok(regorus::Value::Bool(b))
    }

    fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<regorus::Value, E> {
        Ok(regorus::Value::from(n))
    }

    fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<regorus::Value, E> {
        Ok(regorus::Value::from(n))
    }

    fn visit_f64<E: serde::de::Error>(self, n: f64) -> Result<regorus::Value, E> {
        if !n.is_finite() {
            return Err(E::custom(ConvertError::Number(n.to_string())));
        }
        Ok(regorus::Value::from(n))
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<regorus::Value, E> {
        Ok(regorus::Value::String(text.into()))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut items: A) -> Result<regorus::Value, A::Error> {
        let mut values = Vec::with_capacity(items.size_hint().unwrap_or(0));
        while let Some(value) = items.next_element_seed(Reader { keys: &mut *self.keys })? {
            values.push(value);
        }
        Ok(regorus::Value::from(values))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut fields: A) -> Result<regorus::Value, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = fields.next_key_seed(Key { keys: &mut *self.keys })? {
            let value = fields.next_value_seed(Reader { keys: &mut *self.keys })?;
            entries.push((key, value));
        }
        // Sorted by key, the later of two equal keys last; then only that one is kept.
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        let mut distinct: Vec<(regorus::Value, regorus::Value)> = Vec::with_capacity(entries.len());
        for entry in entries {
            match distinct.last_mut() {
                Some(last) if last.0 == entry.0 => *last = entry,
                _ => distinct.push(entry),
            }
        }
        Ok(object(distinct))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converted_values_are_what_regorus_reads_from_the_same_text() {
        let review = include_str!("../../tests/fixtures/reviews/policy/pod-10kb.json");
        let odd = r#"{"n": [0, 1, -1, 18446744073709551615, -9223372036854775808, 1.5, -2.25e-7, 1e300],
            "s": ["", "é\u0000\"", "\ud83d\ude00"], "nested": {"b": [true, false, null], "a": {}}, "z": []}"#;
        for text in [review, odd] {
            let json: serde_json::Value = serde_json::from_str(text).unwrap();
            assert_eq!(to_regorus(&json).unwrap(), regorus::Value::from_json_str(text).unwrap());
        }
    }

    #[test]
    fn text_read_straight_is_what_serde_then_conversion_give() {
        let review = include_str!("../../tests/fixtures/reviews/policy/pod-10kb.json");
        let odd = r#"{"n": [0, 1, -1, 18446744073709551615, -9223372036854775808, 1.5, -2.25e-7, 1e300],
            "s": ["", "é\u0000\"", "\ud83d\ude00"], "k\u00e9y": 1, "kéy2": {}, "dup": 1, "a": 0, "dup": [2],
            "nested": {"b": [true, false, null], "a": {}}, "z": [], "": ""}"#;
        for text in [review, odd, "[]", "null", "\"s\"", "  7 "] {
            let json: serde_json::Value = serde_json::from_str(text).unwrap();
            assert_eq!(
                from_json_slice(text.as_bytes()).unwrap(),
                to_regorus(&json).unwrap(),
                "{text}"
            );
        }
        for bad in [
            &b"{"[..],
            b"{\"a\": 1} x",
            b"",
            b"[1e999]",
            b"{\"a\": \"\xff\"}",
            b"\xff",
        ] {
            assert!(from_json_slice(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
        let deep = "[".repeat(10_000) + &"]".repeat(10_000);
        assert!(
            from_json_slice(deep.as_bytes()).is_err(),
            "nesting is bounded, never a stack overflow"
        );
    }

    #[test]
    fn an_input_document_is_its_facts_and_its_request() {
        let request = serde_json::json!({"uid": "u", "object": {"kind": "Pod"}});
        let facts = serde_json::json!({"risk_level": "high", "images": [], "request": "ignored", "namespace": {}});
        let whole = serde_json::json!({"risk_level": "high", "images": [], "namespace": {}, "request": request});
        let converted = to_regorus(&request).unwrap();
        assert_eq!(
            input_document(&facts, converted.clone()).unwrap(),
            to_regorus(&whole).unwrap()
        );
        assert_eq!(
            input_document(&serde_json::json!([]), converted),
            Err(ConvertError::NotAnObject)
        );
    }

    #[test]
    fn unsorted_entries_still_make_the_object() {
        let (a, b) = (regorus::Value::from("a"), regorus::Value::from("b"));
        let unsorted = vec![
            (b.clone(), regorus::Value::Null),
            (a.clone(), regorus::Value::Bool(true)),
        ];
        let expected: BTreeMap<_, _> = unsorted.iter().cloned().collect();
        assert_eq!(object(unsorted), regorus::Value::from(expected));
        assert_eq!(object(Vec::new()), regorus::Value::new_object());
    }
}
