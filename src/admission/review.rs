//! Reading an AdmissionReview v1 request body. The uid is captured first so every later
//! answer can carry it; anything that is not a well-formed review is refused, never allowed.

use regorus::Value;

use crate::document::Document;
use crate::policy::rego::from_json_slice;

pub const API_VERSION: &str = "admission.k8s.io/v1";

/// A review we can answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Review {
    pub uid: String,
    /// The AdmissionRequest exactly as the apiserver sent it, read once, straight into the
    /// values the policy engine reads (`docs/architecture.md`).
    pub request: Value,
}

/// Why a body is not a review we can answer (HTTP 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReviewError {
    #[error("body is not valid JSON: {0}")]
    NotJson(String),
    #[error("body is not a JSON object")]
    NotAnObject,
    #[error("apiVersion must be {API_VERSION}, got {0:?}")]
    WrongApiVersion(String),
    #[error("kind must be AdmissionReview, got {0:?}")]
    WrongKind(String),
    #[error("request is missing or not an object")]
    NoRequest,
    #[error("request.uid is missing, empty or not a string")]
    NoUid,
    #[error("request.{0} must be an object")]
    BadField(&'static str),
    #[error("request.object is missing or null in a {0} request")]
    NoObject(String),
    #[error("request.kind ({request}) disagrees with the object's apiVersion and kind ({object})")]
    KindMismatch { request: String, object: String },
}

impl ReviewError {
    /// Stable label for logs and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            ReviewError::NotJson(_) => "not_json",
            ReviewError::NotAnObject => "not_object",
            ReviewError::WrongApiVersion(_) => "wrong_api_version",
            ReviewError::WrongKind(_) => "wrong_kind",
            ReviewError::NoRequest => "no_request",
            ReviewError::NoUid => "no_uid",
            ReviewError::BadField(_) => "bad_field",
            ReviewError::NoObject(_) => "no_object",
            ReviewError::KindMismatch { .. } => "kind_mismatch",
        }
    }
}

/// Parses a request body into a [`Review`].
pub fn parse(body: &[u8]) -> Result<Review, ReviewError> {
    let document = from_json_slice(body).map_err(|e| ReviewError::NotJson(short(&e.to_string())))?;
    if !document.is_object() {
        return Err(ReviewError::NotAnObject);
    }
    let api_version = document.text_of("apiVersion").unwrap_or_default();
    if api_version != API_VERSION {
        return Err(ReviewError::WrongApiVersion(short(api_version)));
    }
    let kind = document.text_of("kind").unwrap_or_default();
    if kind != "AdmissionReview" {
        return Err(ReviewError::WrongKind(short(kind)));
    }
    let request = match document.field("request") {
        Some(request) if request.is_object() => request.clone(),
        _ => return Err(ReviewError::NoRequest),
    };
    let uid = match request.text_of("uid") {
        Some(uid) if !uid.is_empty() => uid.to_string(),
        _ => return Err(ReviewError::NoUid),
    };
    for field in ["object", "oldObject"] {
        if !request
            .field(field)
            .is_none_or(|value| value.is_null() || value.is_object())
        {
            return Err(ReviewError::BadField(field));
        }
    }
    if !request.field("kind").is_none_or(Document::is_object) {
        return Err(ReviewError::BadField("kind"));
    }
    check_object(&request)?;
    Ok(Review { uid, request })
}

/// A review must say what it reviews: a CREATE or UPDATE carries the object (only a DELETE or a
/// CONNECT may come without one), and an object is of the kind the request names (with
/// `matchPolicy: Equivalent` the apiserver converts the object to the kind it sends). A review
/// that contradicts itself would be decided on the wrong kind: it is malformed, never allowed.
fn check_object(request: &Value) -> Result<(), ReviewError> {
    let operation = request.text_of("operation").unwrap_or_default();
    let object = request.field("object").filter(|o| o.is_object());
    let Some(object) = object else {
        return match operation {
            "CREATE" | "UPDATE" => Err(ReviewError::NoObject(operation.to_string())),
            _ => Ok(()),
        };
    };
    let kind = request.field("kind");
    let named = (
        text(kind, "group").unwrap_or_default(),
        text(kind, "version").unwrap_or_default(),
        text(kind, "kind").unwrap_or_default(),
    );
    let api_version = text(Some(object), "apiVersion").unwrap_or_default();
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let object_kind = text(Some(object), "kind").unwrap_or_default();
    if named.2.is_empty() || named != (group, version, object_kind) {
        let request = match named {
            ("", version, kind) => format!("{version} {kind}"),
            (group, version, kind) => format!("{group}/{version} {kind}"),
        };
        return Err(ReviewError::KindMismatch {
            request: short(&request),
            object: short(&format!("{api_version} {object_kind}")),
        });
    }
    Ok(())
}

/// The string at `value.name`, if there is one.
fn text<'a>(value: Option<&'a Value>, name: &str) -> Option<&'a str> {
    value.and_then(|v| v.text_of(name))
}

/// Error texts echo input; keep them short.
fn short(text: &str) -> String {
    match text.char_indices().nth(100) {
        Some((i, _)) => format!("{}...", &text[..i]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn body(value: Value) -> Vec<u8> {
        serde_json::to_vec(&value).unwrap()
    }

    #[test]
    fn reads_a_review() {
        let review = parse(&body(json!({"apiVersion": API_VERSION, "kind": "AdmissionReview",
            "request": {"uid": "u-1", "operation": "CREATE", "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "object": {"apiVersion": "v1", "kind": "Pod"}}})))
        .unwrap();
        assert_eq!(review.uid, "u-1");
        assert_eq!(review.request.text_at("/object/kind"), Some("Pod"));
        let text =
            r#"{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {"uid": "u", "n": 1.5}}"#;
        let expected = regorus::Value::from_json_str(text).unwrap();
        assert_eq!(parse(text.as_bytes()).unwrap().request, expected["request"]);
    }

    #[test]
    fn refuses_what_is_not_a_review() {
        let cases = [
            (b"not json".to_vec(), "not_json"),
            (b"".to_vec(), "not_json"),
            (body(json!([])), "not_object"),
            (
                body(
                    json!({"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview", "request": {"uid": "u"}}),
                ),
                "wrong_api_version",
            ),
            (
                body(json!({"apiVersion": API_VERSION, "kind": "ConfigMap", "request": {"uid": "u"}})),
                "wrong_kind",
            ),
            (
                body(json!({"apiVersion": API_VERSION, "kind": "AdmissionReview"})),
                "no_request",
            ),
            (
                body(json!({"apiVersion": API_VERSION, "kind": "AdmissionReview", "request": "x"})),
                "no_request",
            ),
            (
                body(json!({"apiVersion": API_VERSION, "kind": "AdmissionReview", "request": {}})),
                "no_uid",
            ),
            (
                body(json!({"apiVersion": API_VERSION, "kind": "AdmissionReview", "request": {"uid": ""}})),
                "no_uid",
            ),
            (
                body(json!({"apiVersion": API_VERSION, "kind": "AdmissionReview", "request": {"uid": 42}})),
                "no_uid",
            ),
            (
                body(
                    json!({"apiVersion": API_VERSION, "kind": "AdmissionReview", "request": {"uid": "u", "object": "x"}}),
                ),
                "bad_field",
            ),
        ];
        for (input, reason) in cases {
            let err = parse(&input).unwrap_err();
            assert_eq!(err.reason(), reason, "{:?}", String::from_utf8_lossy(&input));
        }
    }

    #[test]
    fn a_review_that_does_not_say_what_it_reviews_is_refused() {
        let review =
            |request: Value| body(json!({"apiVersion": API_VERSION, "kind": "AdmissionReview", "request": request}));
        let pod = json!({"group": "", "version": "v1", "kind": "Pod"});
        let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment"});
        let refused = [
            (
                json!({"uid": "u", "operation": "CREATE", "kind": pod, "object": null}),
                "no_object",
            ),
            (json!({"uid": "u", "operation": "UPDATE", "kind": pod}), "no_object"),
            (
                json!({"uid": "u", "operation": "CREATE", "kind": pod, "object": deployment}),
                "kind_mismatch",
            ),
            (
                json!({"uid": "u", "operation": "CREATE", "kind": {}, "object": deployment}),
                "kind_mismatch",
            ),
            (
                json!({"uid": "u", "operation": "CREATE", "object": deployment}),
                "kind_mismatch",
            ),
            (
                json!({"uid": "u", "operation": "CREATE", "kind": {"group": "extensions", "version": "v1beta1", "kind": "Deployment"}, "object": deployment}),
                "kind_mismatch",
            ),
        ];
        for (request, reason) in refused {
            let err = parse(&review(request.clone())).unwrap_err();
            assert_eq!(err.reason(), reason, "{request}");
        }
        let read = [
            json!({"uid": "u", "operation": "DELETE", "kind": pod, "object": null, "oldObject": {"apiVersion": "v1", "kind": "Pod"}}),
            json!({"uid": "u", "operation": "CREATE", "kind": {"group": "apps", "version": "v1", "kind": "Deployment"}, "object": deployment}),
        ];
        for request in read {
            assert!(parse(&review(request.clone())).is_ok(), "{request}");
        }
    }

    #[test]
    fn long_input_is_not_echoed_whole() {
        let long = "v".repeat(10_000);
        let err = parse(&body(json!({"apiVersion": long, "kind": "AdmissionReview"}))).unwrap_err();
        assert!(err.to_string().len() < 200);
    }
}
