//! How portcullis configures regorus, shared by native policies, Gatekeeper templates and the
//! test runners: the execution-time limit, OPA's builtin-error semantics, the one place that
//! tells a timeout from any other evaluation error, and JSON values converted for the engine.

use std::collections::{BTreeMap, HashMap};
use std::num::NonZeroU32;
use std::time::Duration;

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

/// A JSON value as a regorus value, converted structurally (no JSON text in between), with
/// the values regorus's own JSON reader would give. Object keys are shared: a review repeats
/// the same few dozen keys hundreds of times, and one string each is enough.
pub fn to_regorus(value: &serde_json::Value) -> Result<regorus::Value, String> {
    convert(value, &mut HashMap::new())
}

fn convert<'a>(
    value: &'a serde_json::Value,
    keys: &mut HashMap<&'a str, regorus::Value>,
) -> Result<regorus::Value, String> {
    use serde_json::Value as Json;
    Ok(match value {
        Json::Null => regorus::Value::Null,
        Json::Bool(b) => regorus::Value::Bool(*b),
        // As serde hands numbers to regorus's reader: unsigned, then negative, then float.
        Json::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
            (Some(u), _, _) => regorus::Value::from(u),
            (None, Some(i), _) => regorus::Value::from(i),
            (None, None, Some(f)) if f.is_finite() => regorus::Value::from(f),
            _ => return Err(format!("{n} is not a number regorus can hold")),
        },
        Json::String(text) => regorus::Value::String(text.as_str().into()),
        Json::Array(items) => regorus::Value::from(
            items
                .iter()
                .map(|item| convert(item, keys))
                .collect::<Result<Vec<_>, _>>()?,
        ),
        Json::Object(fields) => {
            let mut map = BTreeMap::new();
            for (key, field) in fields {
                let key = keys
                    .entry(key.as_str())
                    .or_insert_with(|| regorus::Value::String(key.as_str().into()))
                    .clone();
                map.insert(key, convert(field, keys)?);
            }
            regorus::Value::from(map)
        }
    })
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
}
