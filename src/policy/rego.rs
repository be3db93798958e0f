//! How portcullis configures regorus, shared by native policies, Gatekeeper templates and the
//! test runners: the execution-time limit, OPA's builtin-error semantics, the one place that
//! tells a timeout from any other evaluation error, and JSON values converted for the engine.

use std::num::NonZeroU32;
use std::time::Duration;

use regorus::utils::limits::{ExecutionTimerConfig, LimitError};
use serde::Deserialize;

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

/// A JSON value as a regorus value, converted structurally (no JSON text in between).
pub fn to_regorus(value: &serde_json::Value) -> Result<regorus::Value, String> {
    regorus::Value::deserialize(value).map_err(|e| e.to_string())
}
