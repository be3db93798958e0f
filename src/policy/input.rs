//! The one input document every policy sees, in `serve` and in `check` alike.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::images::ImageFacts;
use crate::risk::RiskLevel;

/// Builds `input` as documented in `docs/policy-input.md`.
pub fn build(
    request: &Value,
    risk_level: RiskLevel,
    namespace: &str,
    namespace_labels: &BTreeMap<String, String>,
    images: &[&ImageFacts],
) -> Value {
    json!({
        "request": request,
        "risk_level": risk_level.as_str(),
        "namespace": { "name": namespace, "labels": namespace_labels },
        "images": images,
    })
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
