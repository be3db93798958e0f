//! The inputs the differential tests share: every review fixture (Pods and all workload kinds,
//! clean and violating) as portcullis builds its input, at each risk level, with the image facts
//! replaced by each verification outcome the image policies distinguish.

use std::path::PathBuf;

use serde_json::{json, Value};

use super::{fixtures, state, CONFIG};

/// Image facts the image policies tell apart: none (verification off), verified with an SBOM and
/// a trusted provenance, verified with an untrusted builder, verified without attestations,
/// unsigned, and a registry error.
pub fn verification_variants() -> Vec<(&'static str, Value)> {
    let attestation = |predicate_type: &str, predicate: Value| json!({"authority": "ci-key", "predicate_type": predicate_type, "verified": true, "predicate": predicate});
    let sbom = attestation("https://cyclonedx.org/bom", json!({"bomFormat": "CycloneDX"}));
    let provenance =
        |builder: &str| attestation("https://slsa.dev/provenance/v0.2", json!({"builder": {"id": builder}}));
    let verified = |attestations: Vec<Value>| json!({"status": "verified", "reason": "signed by ci-key", "signers": [{"authority": "ci-key", "kind": "key"}], "attestations": attestations});
    let failed = |status: &str| json!({"status": status, "reason": status, "signers": [], "attestations": []});
    vec![
        ("as built", Value::Null),
        (
            "verified, SBOM, trusted provenance",
            verified(vec![
                sbom.clone(),
                provenance("https://ci.example.com/builders/micro-apps"),
            ]),
        ),
        (
            "verified, SBOM, untrusted provenance",
            verified(vec![sbom, provenance("https://laptop.example/evil")]),
        ),
        ("verified, no attestations", verified(vec![])),
        ("unsigned", failed("unsigned")),
        ("error", failed("error")),
    ]
}

/// Every review fixture a policy decides on (workloads of every kind, clean and violating).
pub fn review_fixtures() -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = ["workloads", "policy"]
        .iter()
        .flat_map(|dir| std::fs::read_dir(fixtures().join("reviews").join(dir)).unwrap())
        .map(|entry| entry.unwrap().path())
        .collect();
    paths.sort();
    paths
}

/// Every generated input, named.
pub fn inputs() -> Vec<(String, Value)> {
    let state = state(CONFIG, &[("team-a", "low")]);
    let mut inputs = Vec::new();
    for path in review_fixtures() {
        let review: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let base = state.reviewer.input(&review["request"]);
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        for level in ["low", "medium", "high"] {
            for (variant, verification) in verification_variants() {
                let mut input = base.clone();
                input["risk_level"] = json!(level);
                if !verification.is_null() {
                    for image in input["images"].as_array_mut().into_iter().flatten() {
                        image["verification"] = verification.clone();
                    }
                }
                inputs.push((format!("{name} at {level}, {variant}"), input));
            }
        }
    }
    inputs
}
