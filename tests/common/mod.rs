//! Shared helpers for the integration tests: app state from a config text, fixtures, requests.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

use portcullis::config::{Config, Settings};
use portcullis::namespaces::StaticNamespaces;
use portcullis::policy::Source;
use portcullis::server::{self, AppState};

pub mod cluster;
pub mod faults;
pub mod inputs;
pub mod lab;
pub mod load;
pub mod monitoring;
pub mod poll;
pub mod tokens;
pub mod volume;
#[allow(unused_imports)] // Used by the tests that start services, not by every test.
pub use lab::Service;
#[allow(unused_imports)] // Used by the tests that wait, not by every test.
pub use poll::{poll, poll_async, try_poll, try_poll_async};

/// Copies `from` into `to`, directories and all (a policy library portcullis polls, an example
/// a test changes).
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// The config most tests use: the example registry allowed, everything else default.
pub const CONFIG: &str = "images: { registries: { allow: [registry.example.com, ghcr.io/acme] } }\n";

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

pub fn fixture(relative: &str) -> Vec<u8> {
    std::fs::read(fixtures().join(relative)).unwrap_or_else(|e| panic!("fixture {relative}: {e}"))
}

pub fn fixture_json(relative: &str) -> Value {
    serde_json::from_slice(&fixture(relative)).unwrap()
}

pub fn settings(yaml: &str) -> Settings {
    Config::from_yaml(yaml).unwrap().validate(true).unwrap()
}

/// Namespace name -> risk level label.
pub fn namespaces(levels: &[(&str, &str)]) -> Arc<StaticNamespaces> {
    Arc::new(StaticNamespaces(
        levels
            .iter()
            .map(|(ns, level)| {
                (
                    ns.to_string(),
                    BTreeMap::from([(portcullis::risk::LABEL.to_string(), level.to_string())]),
                )
            })
            .collect::<HashMap<_, _>>(),
    ))
}

/// App state with the embedded default library.
pub fn state(yaml: &str, levels: &[(&str, &str)]) -> AppState {
    state_with_source(&settings(yaml), Source::Embedded, levels)
}

pub fn state_with_source(settings: &Settings, source: Source, levels: &[(&str, &str)]) -> AppState {
    let policies = portcullis::admission::setup::load_policies(&source, settings).unwrap();
    server::app_state(settings, policies, namespaces(levels)).unwrap()
}

/// POSTs a body to /validate in-process and returns the status and JSON answer.
pub async fn post(state: &AppState, uri: &str, body: Vec<u8>) -> (StatusCode, Value) {
    let router = server::router::webhook_router(state.clone());
    let request = Request::post(uri)
        .header("content-type", "application/json")
        .body(Body::from(body))
        .unwrap();
    let response = router.oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

pub async fn get(state: &AppState, uri: &str) -> (StatusCode, String) {
    let router = server::router::operations_router(state.clone());
    let response = router
        .oneshot(Request::get(uri).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

/// Wraps an AdmissionRequest in a review body.
pub fn review(request: Value) -> Vec<u8> {
    serde_json::to_vec(
        &serde_json::json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}),
    )
    .unwrap()
}

/// The fixture's request with a change applied.
pub fn edited(relative: &str, edit: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut document = fixture_json(relative);
    edit(&mut document["request"]);
    serde_json::to_vec(&document).unwrap()
}

/// Policy ids that denied, from an answer.
pub fn denied_by(answer: &Value) -> Vec<String> {
    answer["response"]["auditAnnotations"]["denied-by"]
        .as_str()
        .map(|s| s.split(',').map(String::from).collect())
        .unwrap_or_default()
}

pub fn warned_by(answer: &Value) -> Vec<String> {
    answer["response"]["auditAnnotations"]["warned-by"]
        .as_str()
        .map(|s| s.split(',').map(String::from).collect())
        .unwrap_or_default()
}

/// Writes a policy library into `dir` from (relative path, text) pairs.
pub fn write_library(dir: &Path, files: &[(&str, &str)]) {
    for (relative, text) in files {
        let path = dir.join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
}

/// A Pod that passes every other default policy at risk level low, running `image`.
/// An AdmissionRequest for a Pod that passes every other default policy at risk level low,
/// with one container per image (the first named `app`).
pub fn pod_request(images: &[&str]) -> Value {
    let containers: Vec<Value> = images
        .iter()
        .enumerate()
        .map(|(i, image)| {
            json!({
                "name": if i == 0 { "app".to_string() } else { format!("app-{i}") },
                "image": image,
                "securityContext": {"allowPrivilegeEscalation": false},
                "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": "200m", "memory": "128Mi"}}
            })
        })
        .collect();
    json!({
        "uid": "uid-1",
        "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "resource": {"group": "", "version": "v1", "resource": "pods"},
        "namespace": "team-a",
        "operation": "CREATE",
        "userInfo": {"username": "flux"},
        "object": {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "app", "namespace": "team-a", "labels": {
                "app.kubernetes.io/name": "app", "app.kubernetes.io/version": "1", "portcullis.io/owner": "team-a"}},
            "spec": {"containers": containers}
        },
        "oldObject": null,
        "dryRun": false
    })
}

/// A review of [`pod_request`] with one image.
pub fn pod_review(image: &str) -> Vec<u8> {
    review(pod_request(&[image]))
}

pub async fn decide(state: &AppState, image: &str) -> Value {
    let (_, answer) = post(state, "/validate?timeout=10s", pod_review(image)).await;
    answer
}

pub fn message(answer: &Value) -> String {
    answer["response"]["status"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Merges `overrides` into `base`, objects key by key, anything else replaced.
pub fn merge(base: &mut Value, overrides: Value) {
    match (base, overrides) {
        (Value::Object(base), Value::Object(overrides)) => {
            for (key, value) in overrides {
                merge(base.entry(key).or_insert(Value::Null), value);
            }
        }
        (base, overrides) => *base = overrides,
    }
}

/// gatekeeper-library's `general` policies in the workplace's `shared/conformance`: the
/// repository's sibling, or beside any directory above it, or the workplace's /work/shared (CI
/// clones the repository elsewhere); `PORTCULLIS_CONFORMANCE` names the directory explicitly.
pub fn gatekeeper_library() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let conformance = std::env::var_os("PORTCULLIS_CONFORMANCE")
        .map(PathBuf::from)
        .or_else(|| {
            manifest
                .ancestors()
                .map(|dir| dir.join("shared/conformance"))
                .find(|dir| dir.is_dir())
        })
        // The workplace keeps it at /work/shared, wherever a clone sits.
        .or_else(|| Some(PathBuf::from("/work/shared/conformance")).filter(|dir| dir.is_dir()))
        .unwrap_or_else(|| manifest.join("../shared/conformance"));
    let dir = conformance.join("gatekeeper-library/library/general");
    assert!(
        dir.is_dir(),
        "the conformance suites are missing: expected gatekeeper-library's general policies at {} \
         (shared/conformance beside the repository or a directory above it, or PORTCULLIS_CONFORMANCE)",
        dir.display()
    );
    dir.canonicalize().unwrap()
}
