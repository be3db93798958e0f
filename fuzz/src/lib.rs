//! What several fuzz targets share: the offline reviewer on the default library, the decision
//! the webhook serves, and the semantically neutral rewrites of a JSON document.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use portcullis::admission::{respond, review, setup, Reviewer, Subject};
use portcullis::config::{Config, Settings};
use portcullis::images::reference::{is_sha256_digest, ImageReference};
use portcullis::images::trust::TrustEntry;
use portcullis::namespaces::StaticNamespaces;
use portcullis::policy::gatekeeper::{Context, GatekeeperSet};
use portcullis::policy::input::Request;
use portcullis::policy::Source;
use serde_json::{json, Value};
use sha2::Digest as _;

/// The webhook's config for the targets: the registries the fixtures name, a time limit far
/// above any evaluation so that a slow run never decides differently from a fast one.
const CONFIG: &str = "images: { registries: { allow: [registry.example.com, ghcr.io/acme] } }\n\
                      admission: { policyTimeout: 30s }\n";

/// A trust entry with the key of the signature fixtures (its private key was thrown away).
const TRUST: &str = concat!(
    "images:\n",
    "  registries: { allow: [registry.example.com] }\n",
    "  trust:\n",
    "  - name: fuzz\n",
    "    images: [registry.example.com/**]\n",
    "    authorities:\n",
    "    - name: fixtures\n",
    "      key: { path: ",
    env!("CARGO_MANIFEST_DIR"),
    "/../tests/fixtures/signatures/trusted.pub }\n",
);

/// The image digest the signature fixtures were made for.
pub const SIGNED_DIGEST: &str = "sha256:ed0568c906b5a5fcf27664288c93087aeb64bd8dfbb8ffa1dbac5ee471eb65e5";

fn settings(yaml: &str) -> Settings {
    Config::from_yaml(yaml)
        .and_then(|config| config.validate(true))
        .expect("the fuzz config is valid")
}

/// The reviewer `serve` builds from [`CONFIG`] with the embedded default library, without
/// image verification (facts stay `skipped`), built once per process.
pub fn reviewer() -> &'static Reviewer {
    static REVIEWER: OnceLock<Reviewer> = OnceLock::new();
    REVIEWER.get_or_init(|| {
        let settings = settings(CONFIG);
        let policies = setup::load_policies(&Source::Embedded, &settings).expect("the default library loads");
        let namespaces = StaticNamespaces(HashMap::from([(
            "team-a".to_string(),
            [(portcullis::risk::LABEL.to_string(), "low".to_string())].into(),
        )]));
        Reviewer::new(
            policies,
            settings.enforcement.clone(),
            settings.risk_default,
            Arc::new(namespaces),
        )
    })
}

/// The AdmissionReview the webhook answers for `body`, as the router builds it (the body read
/// straight into the engine's values); None when the body is refused as no review (HTTP 400).
/// Every digest among the image facts is checked to be one.
pub fn served(body: &[u8]) -> Option<Value> {
    let review = review::parse(body).ok()?;
    let subject = Subject::of(&review.request);
    let reviewer = reviewer();
    let facts = reviewer.facts(&review.request);
    let outcome = reviewer.evaluate(Request::Engine(&review.request), facts);
    for image in &outcome.images {
        if let Some(digest) = &image.digest {
            assert!(
                is_sha256_digest(digest),
                "{:?} has the digest {digest:?}",
                image.reference
            );
        }
    }
    Some(respond::respond(&review.uid, &subject.kind, &outcome.decision))
}

/// The sigstore crate's client as verification builds it without a trusted root.
pub fn signature_client() -> &'static sigstore::cosign::Client {
    static CLIENT: OnceLock<sigstore::cosign::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        sigstore::cosign::ClientBuilder::default()
            .build()
            .expect("the sigstore client builds")
    })
}

/// The trust entry of [`TRUST`].
pub fn trust_entry() -> &'static TrustEntry {
    static ENTRY: OnceLock<TrustEntry> = OnceLock::new();
    ENTRY.get_or_init(|| settings(TRUST).trust.entries.remove(0))
}

/// `registry.example.com/app@digest` as the crate addresses it.
pub fn source(digest: &str) -> sigstore::registry::OciReference {
    let image = ImageReference::parse("registry.example.com/app").expect("a reference");
    portcullis::images::signatures::oci_reference(&image, digest)
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

/// Every constraint of `set` on a Pod's CREATE request (a privileged container, labels, an image
/// by tag), as the webhook evaluates them.
pub fn evaluate_gatekeeper(set: &GatekeeperSet) {
    static POD: OnceLock<Value> = OnceLock::new();
    let request = POD.get_or_init(|| {
        let review: Value = serde_json::from_slice(include_bytes!(
            "../../tests/fixtures/reviews/policy/pod-privileged.json"
        ))
        .expect("the fixture is JSON");
        review["request"].clone()
    });
    let context = Context {
        namespace_labels: None,
        facts: &json!({"images": [], "risk_level": "high"}),
        namespace_object: Value::Null,
        deadline: None,
    };
    set.evaluate(Request::Json(request), &context);
}

/// `value` as JSON text with every object's keys in reverse order and spaces between tokens.
pub fn reversed_and_spaced(value: &Value) -> String {
    let mut out = String::new();
    write_reversed(value, &mut out);
    out
}

fn write_reversed(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            out.push_str("{ ");
            for (i, (key, value)) in map.iter().rev().enumerate() {
                if i > 0 {
                    out.push_str(" ,\n ");
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push_str(" :\t");
                write_reversed(value, out);
            }
            out.push_str(" }");
        }
        Value::Array(items) => {
            out.push_str("[ ");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(" , ");
                }
                write_reversed(item, out);
            }
            out.push_str(" ]");
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}
