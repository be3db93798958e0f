//! Policy results: the words the engine, the decision, the admission response, the metrics'
//! callers and the reports share. The ground floor: it imports nothing of portcullis.

use std::time::Duration;

use serde_json::Value;

/// Enforcement of one policy's `deny` results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Enforcement {
    Deny,
    Warn,
    /// Only counted and logged.
    DryRun,
}

impl Enforcement {
    pub fn parse(text: &str) -> Option<Enforcement> {
        match text {
            "deny" => Some(Enforcement::Deny),
            "warn" => Some(Enforcement::Warn),
            "dryrun" => Some(Enforcement::DryRun),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Enforcement::Deny => "deny",
            Enforcement::Warn => "warn",
            Enforcement::DryRun => "dryrun",
        }
    }
}

/// One message of a policy: a `deny`/`warn` element, or a Gatekeeper `violation`.
#[derive(Debug, Clone, PartialEq)]
pub struct Violation {
    pub message: String,
    /// The element's `details` (Gatekeeper's structured context), when it has one.
    pub details: Option<Value>,
}

impl Violation {
    pub fn new(message: impl Into<String>) -> Violation {
        Violation {
            message: message.into(),
            details: None,
        }
    }

    /// An element of a result set: a string, or an object with a string `msg` and optional
    /// `details`. Anything else is given back, for the error message.
    pub fn from_element(element: Value) -> Result<Violation, Value> {
        match element {
            Value::String(message) => Ok(Violation::new(message)),
            Value::Object(mut fields) => match fields.remove("msg") {
                Some(Value::String(message)) => Ok(Violation {
                    message,
                    details: fields.remove("details"),
                }),
                other => {
                    fields.extend(other.map(|msg| ("msg".to_string(), msg)));
                    Err(Value::Object(fields))
                }
            },
            other => Err(other),
        }
    }
}

impl PartialEq<&str> for Violation {
    fn eq(&self, other: &&str) -> bool {
        self.message == *other
    }
}

/// What one policy said about one input.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyResult {
    pub id: String,
    pub deny: Vec<Violation>,
    pub warn: Vec<Violation>,
    /// Set when the policy could not be evaluated; the caller fails closed.
    pub error: Option<EvalError>,
    pub duration: Duration,
    /// The policy's own enforcement (a constraint's `enforcementAction`); the config's
    /// override wins, and without either a policy denies.
    pub enforcement: Option<Enforcement>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvalError {
    #[error("exceeded its execution time limit of {0:?}")]
    Timeout(Duration),
    #[error("failed: {0}")]
    Failed(String),
    #[error("returned {0}, not a set of strings or of objects with msg")]
    BadResult(String),
    /// A constraint's `spec.match` could not be decided (an unknown namespace's selector).
    #[error("could not be matched: {0}")]
    Match(String),
}

impl EvalError {
    /// Stable label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            EvalError::Timeout(_) => "timeout",
            EvalError::Failed(_) | EvalError::BadResult(_) | EvalError::Match(_) => "error",
        }
    }
}
