//! How portcullis configures regorus, shared by native policies, Gatekeeper templates and the
//! test runners: the execution-time limit, OPA's builtin-error semantics, the one place that
//! tells a timeout from any other evaluation error, and JSON values converted for the engine.

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
/// as one object (no copy of the request into the facts first), its keys shared.
pub fn input_document(facts: &serde_json::Value, request: &serde_json::Value) -> Result<regorus::Value, ConvertError> {
    let serde_json::Value::Object(fields) = facts else {
        return Err(ConvertError::NotAnObject);
    };
    let mut keys = Keys::default();
    let mut entries = Vec::with_capacity(fields.len() + 1);
    for (key, field) in fields.iter().filter(|(key, _)| *key != "request") {
        entries.push((regorus::Value::String(key.as_str().into()), convert(field, &mut keys)?));
    }
    entries.push((regorus::Value::String("request".into()), convert(request, &mut keys)?));
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
    fn an_input_document_is_its_facts_and_its_request() {
        let request = serde_json::json!({"uid": "u", "object": {"kind": "Pod"}});
        let facts = serde_json::json!({"risk_level": "high", "images": [], "request": "ignored", "namespace": {}});
        let whole = serde_json::json!({"risk_level": "high", "images": [], "namespace": {}, "request": request});
        assert_eq!(input_document(&facts, &request).unwrap(), to_regorus(&whole).unwrap());
        assert_eq!(
            input_document(&serde_json::json!([]), &request),
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
