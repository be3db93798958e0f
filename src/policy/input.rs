//! The one input document every policy sees, in `serve` and in `check` alike.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::rego::{to_regorus, ConvertError};
use crate::images::ImageFacts;
use crate::risk::RiskLevel;

/// The AdmissionRequest as it was read, borrowed: each consumer takes the form it works on,
/// and a conversion happens only when the form it needs is not the one at hand.
#[derive(Debug, Clone, Copy)]
pub enum Request<'a> {
    /// Read by serde (manifests in `check`, documents in tests).
    Json(&'a Value),
    /// A review body, parsed straight into the engine's values (the webhook).
    Engine(&'a regorus::Value),
}

impl<'a> Request<'a> {
    /// The request as the engine holds it.
    pub fn engine(self) -> Result<regorus::Value, ConvertError> {
        match self {
            Request::Json(request) => to_regorus(request),
            // Reference-counted: a clone is a count, not a copy.
            Request::Engine(request) => Ok(request.clone()),
        }
    }

    /// The request as serde's values (Gatekeeper's matching, the documented input).
    pub fn json(self) -> Cow<'a, Value> {
        match self {
            Request::Json(request) => Cow::Borrowed(request),
            // A value parsed from JSON has only string keys, so it always has a JSON form.
            Request::Engine(request) => Cow::Owned(serde_json::to_value(request).unwrap_or(Value::Null)),
        }
    }
}

/// The input document in its two parts: the request, borrowed as it was read, and what
/// portcullis adds (`risk_level`, `namespace`, `images`). Policies see one document
/// (`docs/policy-input.md`); the engine gets it without a copy of the request in between.
#[derive(Debug, Clone)]
pub struct Input<'a> {
    pub request: Request<'a>,
    /// An object with every field of the document but `request`.
    pub facts: Value,
}

impl<'a> Input<'a> {
    /// `input` as documented in `docs/policy-input.md`, in its parts.
    pub fn new(
        request: Request<'a>,
        risk_level: RiskLevel,
        namespace: &str,
        namespace_labels: &BTreeMap<String, String>,
        images: &[&ImageFacts],
    ) -> Input<'a> {
        let facts = json!({
            "risk_level": risk_level.as_str(),
            "namespace": { "name": namespace, "labels": namespace_labels },
            "images": images,
        });
        Input { request, facts }
    }

    /// The parts of a whole document (a document without `request` has a null one).
    pub fn of_document(document: &'a Value) -> Input<'a> {
        const NULL: &Value = &Value::Null;
        let mut facts = document.clone();
        if let Value::Object(fields) = &mut facts {
            fields.remove("request");
        }
        Input {
            request: Request::Json(document.get("request").unwrap_or(NULL)),
            facts,
        }
    }

    /// The whole document, as policies see it.
    pub fn document(&self) -> Value {
        let mut document = self.facts.clone();
        if let Value::Object(fields) = &mut document {
            fields.insert("request".into(), self.request.json().into_owned());
        }
        document
    }
}

/// The part of the portcullis config that policies read, at `data.portcullis.config`.
pub fn config_data(allowed_registries: &[String], risk_default: RiskLevel, verification_enabled: bool) -> Value {
    json!({
        "portcullis": {
            "config": {
                "images": {
                    "registries": { "allow": allowed_registries },
                    "verification": { "enabled": verification_enabled },
                },
                "risk": { "default": risk_default.as_str() },
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::rego::from_json_slice;

    #[test]
    fn a_request_reads_the_same_in_either_form() {
        let review = include_str!("../../tests/fixtures/reviews/policy/pod-10kb.json");
        let odd = r#"{"n": [0, 3, -1, 18446744073709551615, -9223372036854775808, 1.5, -2.25e-7, 1e300],
            "s": ["", "é\u0000\"", "\ud83d\ude00"], "o": {"b": [true, false, null], "a": {}}}"#;
        for text in [review, odd] {
            let json: Value = serde_json::from_str(text).unwrap();
            let engine = from_json_slice(text.as_bytes()).unwrap();
            assert_eq!(Request::Engine(&engine).json().into_owned(), json);
            assert_eq!(Request::Json(&json).engine().unwrap(), engine);
        }
        // The engine holds numbers, not their spelling: 2.0 comes back as 2, which the engine
        // reads as equal to what it read first.
        let engine = from_json_slice(b"[2.0]").unwrap();
        let back = Request::Engine(&engine).json().into_owned();
        assert_eq!(back, serde_json::json!([2]));
        assert_eq!(Request::Json(&back).engine().unwrap(), engine);
    }
}
