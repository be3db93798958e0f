//! The one input document every policy sees, in `serve` and in `check` alike.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::images::ImageFacts;
use crate::risk::RiskLevel;

/// The input document in its two parts: the request, borrowed as the apiserver sent it, and
/// what portcullis adds (`risk_level`, `namespace`, `images`). Policies see one document
/// (`docs/policy-input.md`); the engine gets it without a copy of the request in between.
#[derive(Debug, Clone)]
pub struct Input<'a> {
    pub request: &'a Value,
    /// An object with every field of the document but `request`.
    pub facts: Value,
}

impl<'a> Input<'a> {
    /// `input` as documented in `docs/policy-input.md`, in its parts.
    pub fn new(
        request: &'a Value,
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
            request: document.get("request").unwrap_or(NULL),
            facts,
        }
    }

    /// The whole document, as policies see it.
    pub fn document(&self) -> Value {
        let mut document = self.facts.clone();
        if let Value::Object(fields) = &mut document {
            fields.insert("request".into(), self.request.clone());
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
