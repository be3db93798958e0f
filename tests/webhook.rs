//! The webhook contract, driven in-process through the router with recorded AdmissionReviews.

mod common;

use std::time::Duration;

use axum::http::StatusCode;
use serde_json::{json, Value};

use common::*;
use portcullis::admission::extract;
use portcullis::policy::Source;

const WORKLOADS: [&str; 10] = [
    "pod",
    "pod-ephemeralcontainers",
    "podtemplate",
    "deployment",
    "replicaset",
    "statefulset",
    "daemonset",
    "job",
    "cronjob",
    "replicationcontroller",
];

/// A policy that never finishes on its own: the execution-time limit has to stop it.
const ENDLESS: &str = "package slow\ndeny contains \"never\" if {\n  input.request\n  some i in numbers.range(1, 2000)\n  some j in numbers.range(1, 2000)\n  some k in numbers.range(1, 2000)\n  i + j + k < 0\n}\n";

/// App state on a library of the one policy [`ENDLESS`], with `admission` settings
/// (`policyTimeout: 1s`); the directory lives as long as the returned guard.
fn endless_library(admission: &str) -> (tempfile::TempDir, portcullis::server::AppState) {
    let dir = tempfile::tempdir().unwrap();
    write_library(dir.path(), &[("slow/policy.rego", ENDLESS)]);
    let settings = settings(&format!("{CONFIG}admission: {{ {admission} }}\n"));
    let state = state_with_source(&settings, Source::Dirs(vec![dir.path().to_path_buf()]), &[]);
    (dir, state)
}

/// The pinned, clean Pod's review, sent with the apiserver's `timeout`.
async fn review_clean_pod(state: &portcullis::server::AppState, timeout: &str) -> (StatusCode, Value) {
    post(
        state,
        &format!("/validate?timeout={timeout}"),
        fixture("reviews/policy/pod-pinned-clean.json"),
    )
    .await
}

#[test]
fn every_image_field_of_every_workload_kind_is_extracted() {
    for name in WORKLOADS {
        let review = fixture_json(&format!("reviews/workloads/{name}.json"));
        let expected = fixture_json(&format!("reviews/workloads/{name}.images.json"));
        let found: Vec<Value> = extract::images(&review["request"])
            .into_iter()
            .map(|l| json!({"path": l.path, "container": l.container, "image": l.image}))
            .collect();
        assert_eq!(Value::Array(found), expected, "{name}");
    }
}

#[tokio::test]
async fn every_workload_kind_gets_an_answer_with_its_uid() {
    let state = state(CONFIG, &[]);
    for name in WORKLOADS {
        let body = fixture(&format!("reviews/workloads/{name}.json"));
        let uid = fixture_json(&format!("reviews/workloads/{name}.json"))["request"]["uid"].clone();
        let (status, answer) = post(&state, "/validate?timeout=10s", body).await;
        assert_eq!(status, StatusCode::OK, "{name}");
        assert_eq!(answer["apiVersion"], "admission.k8s.io/v1");
        assert_eq!(answer["kind"], "AdmissionReview");
        assert_eq!(answer["response"]["uid"], uid, "{name}");
        assert!(answer["response"]["allowed"].is_boolean(), "{name}");
        assert!(
            answer["response"].get("patch").is_none(),
            "{name}: a validating webhook never patches"
        );
        // Every fixture workload uses at least one unpinned or unlisted image.
        assert_eq!(answer["response"]["allowed"], false, "{name}: {answer}");
        assert_eq!(answer["response"]["status"]["code"], 403, "{name}");
    }
}

#[tokio::test]
async fn unreadable_bodies_get_400_never_an_allow() {
    let state = state(CONFIG, &[]);
    let cases = [
        ("not-json.txt", "not_json"),
        ("empty.txt", "not_json"),
        ("truncated.json", "not_json"),
        ("array.json", "not_object"),
        ("wrong-apiversion.json", "wrong_api_version"),
        ("wrong-kind.json", "wrong_kind"),
        ("no-request.json", "no_request"),
        ("request-null.json", "no_request"),
        ("request-not-object.json", "no_request"),
        ("no-uid.json", "no_uid"),
        ("empty-uid.json", "no_uid"),
        ("uid-not-string.json", "no_uid"),
        ("object-not-object.json", "bad_field"),
        ("create-object-null.json", "no_object"),
        ("kind-disagrees-with-object.json", "kind_mismatch"),
    ];
    let listed = std::fs::read_dir(fixtures().join("reviews/bad")).unwrap().count();
    assert_eq!(listed, cases.len(), "every bad fixture is exercised");
    for (file, reason) in cases {
        let (status, answer) = post(&state, "/validate", fixture(&format!("reviews/bad/{file}"))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{file}");
        assert_eq!(answer["error"], reason, "{file}: {answer}");
        assert!(answer["message"].as_str().is_some_and(|m| !m.is_empty()), "{file}");
    }
    let (_, metrics) = get(&state, "/metrics").await;
    assert!(
        metrics.contains(
            "portcullis_admission_requests_total{operation=\"unknown\",kind=\"unknown\",decision=\"invalid\"} 15"
        ),
        "{metrics}"
    );
}

#[tokio::test]
async fn oversized_bodies_get_413() {
    let state = state(&format!("{CONFIG}admission: {{ maxBodyBytes: 4096 }}\n"), &[]);
    let (status, answer) = post(&state, "/validate", fixture("reviews/policy/pod-10kb.json")).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(answer["error"], "body_too_large");
    let (status, _) = post(&state, "/validate", fixture("reviews/policy/pod-pinned-clean.json")).await;
    assert_eq!(status, StatusCode::OK, "a body under the limit is still read");
}

#[tokio::test]
async fn a_clean_pinned_pod_is_allowed() {
    let state = state(CONFIG, &[]);
    let (_, answer) = review_clean_pod(&state, "10s").await;
    assert_eq!(answer["response"]["allowed"], true, "{answer}");
    assert!(answer["response"].get("status").is_none());
}

#[tokio::test]
async fn each_violation_is_denied_by_its_policy_with_an_actionable_message() {
    let state = state(CONFIG, &[]);
    let cases = [
        ("pod-hostpath", "pods.host_path", "/var/run/docker.sock"),
        ("pod-privileged", "pods.privileged", "privileged"),
        (
            "pod-latest",
            "images.latest_tag",
            "pin it to a digest: registry.example.com/micro-apps/where2eat@sha256:",
        ),
        ("pod-untagged", "images.latest_tag", "with no tag"),
        (
            "pod-tag-only",
            "images.digest_pinning",
            "pin it: registry.example.com/micro-apps/where2eat@sha256:",
        ),
        (
            "pod-unlisted-registry",
            "images.allowed_registries",
            "registry.example.com, ghcr.io/acme",
        ),
        ("pod-no-labels", "metadata.required_labels", "app.yaml"),
    ];
    for (name, policy, hint) in cases {
        let (_, answer) = post(&state, "/validate", fixture(&format!("reviews/policy/{name}.json"))).await;
        assert_eq!(answer["response"]["allowed"], false, "{name}");
        assert_eq!(denied_by(&answer), [policy], "{name}: {answer}");
        let message = answer["response"]["status"]["message"].as_str().unwrap();
        assert!(message.contains(&format!("- {policy}: ")), "{name}: {message}");
        assert!(message.contains(hint), "{name}: {message}");
    }
}

#[tokio::test]
async fn the_message_lists_every_violated_policy() {
    let state = state(CONFIG, &[]);
    let body = edited("reviews/policy/pod-hostpath.json", |request| {
        request["object"]["spec"]["containers"][0]["securityContext"] = json!({"privileged": true});
        request["object"]["spec"]["hostNetwork"] = json!(true);
    });
    let (_, answer) = post(&state, "/validate", body).await;
    assert_eq!(
        denied_by(&answer),
        ["pods.host_namespaces", "pods.host_path", "pods.privileged"]
    );
    let message = answer["response"]["status"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("3 policies denied this Pod (risk level high):"),
        "{message}"
    );
    for policy in denied_by(&answer) {
        assert!(
            message.contains(&format!("\n- {policy}: ")),
            "{policy} missing in {message}"
        );
    }
}

#[tokio::test]
async fn risk_level_chooses_deny_or_warn() {
    let low = state(CONFIG, &[("team-a", "low")]);
    let (_, answer) = post(&low, "/validate", fixture("reviews/policy/pod-tag-only.json")).await;
    assert_eq!(answer["response"]["allowed"], true, "{answer}");
    assert_eq!(warned_by(&answer), ["images.digest_pinning"]);
    let warnings = answer["response"]["warnings"].as_array().unwrap();
    assert!(
        warnings.iter().all(|w| w.as_str().unwrap().chars().count() <= 120),
        "{warnings:?}"
    );
    let joined = warnings
        .iter()
        .map(|w| w.as_str().unwrap().trim())
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        joined.contains("pin it: registry.example.com/micro-apps/where2eat@sha256:"),
        "{joined}"
    );

    let medium = state(CONFIG, &[("team-a", "medium")]);
    let (_, answer) = post(&medium, "/validate", fixture("reviews/policy/pod-tag-only.json")).await;
    assert_eq!(denied_by(&answer), ["images.digest_pinning"]);
}

#[tokio::test]
async fn an_object_can_raise_its_level_but_never_lower_it() {
    let body_with_level = |level: &'static str| {
        edited("reviews/policy/pod-tag-only.json", move |request| {
            request["object"]["metadata"]["labels"]["portcullis.io/risk-level"] = json!(level);
        })
    };
    let high = state(CONFIG, &[("team-a", "high")]);
    let (_, answer) = post(&high, "/validate", body_with_level("low")).await;
    assert_eq!(
        answer["response"]["allowed"], false,
        "a low label cannot lower a high namespace"
    );
    assert_eq!(answer["response"]["auditAnnotations"]["risk-level"], "high");

    let low = state(CONFIG, &[("team-a", "low")]);
    let (_, answer) = post(&low, "/validate", body_with_level("high")).await;
    assert_eq!(answer["response"]["allowed"], false, "an app may raise its own bar");

    let (_, answer) = post(&low, "/validate", body_with_level("critical")).await;
    assert_eq!(answer["response"]["allowed"], false, "an unknown level counts as high");
    assert!(
        warned_by(&answer).contains(&"portcullis.risk_level".to_string()),
        "{answer}"
    );
}

#[tokio::test]
async fn an_unlabelled_namespace_takes_the_configured_default() {
    let lenient = state(&format!("{CONFIG}risk: {{ default: low }}\n"), &[]);
    let (_, answer) = post(&lenient, "/validate", fixture("reviews/policy/pod-tag-only.json")).await;
    assert_eq!(answer["response"]["allowed"], true);
    let strict = state(CONFIG, &[]);
    let (_, answer) = post(&strict, "/validate", fixture("reviews/policy/pod-tag-only.json")).await;
    assert_eq!(answer["response"]["allowed"], false, "the default default is high");
}

#[tokio::test]
async fn cost_caps_apply_to_low_risk_apps() {
    let low = state(CONFIG, &[("team-a", "low")]);
    let (_, answer) = post(&low, "/validate", fixture("reviews/policy/pod-over-caps.json")).await;
    assert_eq!(denied_by(&answer), ["cost.resources"], "{answer}");
    let high = state(CONFIG, &[("team-a", "high")]);
    let (_, answer) = post(&high, "/validate", fixture("reviews/policy/pod-over-caps.json")).await;
    assert_eq!(answer["response"]["allowed"], true, "{answer}");
}

#[tokio::test]
async fn objects_without_images_pass_untouched() {
    let state = state(CONFIG, &[]);
    let (_, answer) = post(&state, "/validate", fixture("reviews/policy/configmap.json")).await;
    assert_eq!(
        answer["response"],
        json!({"uid": answer["response"]["uid"], "allowed": true})
    );
}

#[tokio::test]
async fn dry_run_gets_the_same_decision() {
    let state = state(CONFIG, &[]);
    let (_, dry) = post(&state, "/validate", fixture("reviews/policy/deployment-dryrun.json")).await;
    let wet = edited("reviews/policy/deployment-dryrun.json", |request| {
        request["dryRun"] = json!(false)
    });
    let (_, wet) = post(&state, "/validate", wet).await;
    assert_eq!(dry["response"]["allowed"], false);
    assert_eq!(dry["response"]["status"], wet["response"]["status"]);
}

#[tokio::test]
async fn enforcement_overrides_roll_a_policy_out_safely() {
    let warn = state(&format!("{CONFIG}enforcement: {{ pods.host_path: warn }}\n"), &[]);
    let (_, answer) = post(&warn, "/validate", fixture("reviews/policy/pod-hostpath.json")).await;
    assert_eq!(answer["response"]["allowed"], true);
    assert_eq!(warned_by(&answer), ["pods.host_path"]);

    let dryrun = state(&format!("{CONFIG}enforcement: {{ pods.host_path: dryrun }}\n"), &[]);
    let (_, answer) = post(&dryrun, "/validate", fixture("reviews/policy/pod-hostpath.json")).await;
    assert_eq!(answer["response"]["allowed"], true);
    assert!(
        answer["response"].get("warnings").is_none(),
        "dryrun only counts and logs"
    );
    assert_eq!(answer["response"]["auditAnnotations"]["dryrun-by"], "pods.host_path");
    let (_, metrics) = get(&dryrun, "/metrics").await;
    assert!(
        metrics.contains("portcullis_policy_evaluations_total{policy=\"pods.host_path\",result=\"deny\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_policy_that_fails_or_overruns_denies_with_its_id() {
    let dir = tempfile::tempdir().unwrap();
    write_library(
        dir.path(),
        &[
            (
                "bad/policy.rego",
                "package bad.result\ndeny contains 42 if input.request\n",
            ),
            ("slow/policy.rego", ENDLESS),
            ("fine/policy.rego", "package fine\ndeny contains \"nope\" if false\n"),
        ],
    );
    let settings = settings(&format!("{CONFIG}admission: {{ policyTimeout: 50ms }}\n"));
    let state = state_with_source(&settings, Source::Dirs(vec![dir.path().to_path_buf()]), &[]);
    let (_, answer) = review_clean_pod(&state, "10s").await;
    assert_eq!(answer["response"]["allowed"], false);
    assert_eq!(denied_by(&answer), ["bad.result", "slow"]);
    let message = answer["response"]["status"]["message"].as_str().unwrap();
    assert!(
        message.contains("- slow: policy could not be evaluated (exceeded its execution time limit"),
        "{message}"
    );
    let (_, metrics) = get(&state, "/metrics").await;
    assert!(
        metrics.contains("portcullis_policy_evaluations_total{policy=\"slow\",result=\"timeout\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("portcullis_policy_evaluations_total{policy=\"bad.result\",result=\"error\"} 1"),
        "{metrics}"
    );
}

/// The overload denial: HTTP 429 in the status the apiserver passes on, and the bound named.
fn assert_shed(answer: &Value) {
    assert_eq!(answer["response"]["allowed"], false, "{answer}");
    assert_eq!(denied_by(answer), ["portcullis.overload"], "{answer}");
    assert_eq!(answer["response"]["status"]["code"], 429, "{answer}");
    assert_eq!(answer["response"]["status"]["reason"], "TooManyRequests", "{answer}");
    let message = answer["response"]["status"]["message"].as_str().unwrap();
    assert!(
        message.contains("overloaded (reviews wait more than 50ms for a CPU)"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_review_that_waits_max_queue_wait_for_a_cpu_is_shed_with_429() {
    // One evaluation at a time, each running to its 400 ms limit: the two reviews behind it
    // would wait 400 ms and are shed after the 50 ms bound instead.
    let (_dir, state) = endless_library("policyTimeout: 400ms, maxConcurrentEvaluations: 1, maxQueueWait: 50ms");
    let review = || review_clean_pod(&state, "10s");
    let answers = tokio::join!(review(), review(), review());
    let answers = [answers.0 .1, answers.1 .1, answers.2 .1];
    let evaluated: Vec<&Value> = answers.iter().filter(|a| denied_by(a) == ["slow"]).collect();
    assert_eq!(evaluated.len(), 1, "{answers:?}");
    assert_eq!(evaluated[0]["response"]["status"]["code"], 403);
    for answer in answers.iter().filter(|a| denied_by(a) != ["slow"]) {
        assert_shed(answer);
    }
    let (_, metrics) = get(&state, "/metrics").await;
    for line in [
        "portcullis_admission_shed_total{reason=\"queue_wait\"} 2",
        "portcullis_admission_shed_total{reason=\"overloaded\"} 0",
        "portcullis_admission_requests_total{operation=\"CREATE\",kind=\"Pod\",decision=\"deny\"} 3",
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }
}

#[tokio::test]
async fn a_review_arriving_while_the_cpu_queue_is_past_the_bound_is_shed_at_once() {
    let settings = settings(&format!("{CONFIG}admission: {{ maxQueueWait: 50ms }}\n"));
    let state = state_with_source(&settings, Source::Embedded, &[]);
    // The probe on a runtime of its own, which the test holds busy (its only thread blocked) as
    // a queue of evaluations holds the serving runtime's one worker.
    let (hold, holds) = std::sync::mpsc::channel::<Duration>();
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let pressure = state.pressure.clone();
    let serving = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let probe = tokio::spawn(async move { pressure.probe(stop).await });
            loop {
                match holds.try_recv() {
                    Ok(busy) => std::thread::sleep(busy),
                    Err(std::sync::mpsc::TryRecvError::Empty) => tokio::time::sleep(Duration::from_millis(1)).await,
                    Err(std::sync::mpsc::TryRecvError::Disconnected) => break,
                }
            }
            probe.await.unwrap();
        });
    });
    let review = || review_clean_pod(&state, "10s");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(review().await.1["response"]["allowed"], true);

    // Held for 3 s; 300 ms in, the runtime owes its timer far more than 50 ms.
    hold.send(Duration::from_secs(3)).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_shed(&review().await.1);

    // Free again: the next review is decided.
    poll_async(
        "the held runtime to catch up",
        Duration::from_secs(10),
        Duration::from_millis(20),
        async || (!state.pressure.overloaded()).then_some(()),
    )
    .await;
    assert_eq!(review().await.1["response"]["allowed"], true);
    let (_, metrics) = get(&state, "/metrics").await;
    assert!(
        metrics.contains("portcullis_admission_shed_total{reason=\"overloaded\"} 1"),
        "{metrics}"
    );
    stop_tx.send(true).unwrap();
    drop(hold);
    serving.join().unwrap();
}

#[tokio::test]
async fn a_policy_that_would_allocate_without_bound_denies_with_its_id() {
    let dir = tempfile::tempdir().unwrap();
    write_library(
        dir.path(),
        &[
            // One builtin call asked for 10^11 numbers (terabytes: the process aborted on the
            // failed allocation), and one for 10^8 in steps; sized by the input, so that only
            // the evaluation can build them.
            (
                "huge/policy.rego",
                "package huge\nn := count(input.request.object.spec.containers) * 100000000000\ndeny contains \"never\" if count(numbers.range(1, n)) < 0\n",
            ),
            (
                "stepped/policy.rego",
                "package stepped\nn := count(input.request.object.spec.containers) * 100000000000\ndeny contains \"never\" if count(numbers.range_step(1, n, 1000)) < 0\n",
            ),
            ("fine/policy.rego", "package fine\ndeny contains \"nope\" if false\n"),
        ],
    );
    for engine in ["compiled", "interpreter"] {
        let settings = settings(&format!("{CONFIG}policies: {{ engine: {engine} }}\n"));
        let state = state_with_source(&settings, Source::Dirs(vec![dir.path().to_path_buf()]), &[]);
        let (_, answer) = review_clean_pod(&state, "10s").await;
        assert_eq!(answer["response"]["allowed"], false, "{engine}");
        assert_eq!(denied_by(&answer), ["huge", "stepped"], "{engine}: {answer}");
        let message = answer["response"]["status"]["message"].as_str().unwrap();
        assert!(
            message.contains("- huge: policy could not be evaluated") && message.contains("memory limit"),
            "{engine}: {message}"
        );
    }
}

#[tokio::test]
async fn past_the_deadline_it_denies_instead_of_hanging() {
    let (_dir, state) = endless_library("policyTimeout: 3s");
    let started = std::time::Instant::now();
    let (status, answer) = review_clean_pod(&state, "1s").await;
    let elapsed = started.elapsed();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["response"]["allowed"], false);
    assert_eq!(denied_by(&answer), ["portcullis.deadline"]);
    // Functional bound, not a speed claim: the apiserver gives up at its 1 s timeout.
    assert!(elapsed < Duration::from_secs(1), "answered after {elapsed:?}");
}

#[tokio::test]
async fn concurrency_is_bounded_and_a_full_server_denies_in_time() {
    // One evaluation at a time, and a queue bound past the second review's deadline: it waits
    // for the slot until its deadline, then is denied in time.
    let (_dir, state) = endless_library("policyTimeout: 2s, maxConcurrentEvaluations: 1, maxQueueWait: 5s");
    let busy = {
        let state = state.clone();
        tokio::spawn(async move { review_clean_pod(&state, "10s").await })
    };
    // Wait (bounded) until the first review holds the only slot.
    try_poll_async(Duration::from_secs(2), Duration::from_millis(5), async || {
        (state.evaluations.available_permits() == 0).then_some(())
    })
    .await;
    assert_eq!(state.evaluations.available_permits(), 0);
    let (_, answer) = review_clean_pod(&state, "1s").await;
    assert_eq!(denied_by(&answer), ["portcullis.deadline"]);
    assert!(answer["response"]["status"]["message"]
        .as_str()
        .unwrap()
        .contains("the server is saturated"));
    let (_, first) = busy.await.unwrap();
    assert_eq!(
        denied_by(&first),
        ["slow"],
        "the first review ends at its policy time limit"
    );
}

#[tokio::test]
async fn unparseable_image_references_are_denied() {
    let state = state(CONFIG, &[]);
    let body = edited("reviews/policy/pod-pinned-clean.json", |request| {
        request["object"]["spec"]["containers"][0]["image"] = json!("Registry.Example.com/Micro-Apps/App:1");
    });
    let (_, answer) = post(&state, "/validate", body).await;
    assert_eq!(denied_by(&answer), ["portcullis.image_reference"], "{answer}");
}

#[tokio::test]
async fn metrics_and_probes() {
    let state = state(CONFIG, &[]);
    post(&state, "/validate", fixture("reviews/policy/pod-hostpath.json")).await;
    post(&state, "/validate", fixture("reviews/policy/pod-pinned-clean.json")).await;
    let (status, metrics) = get(&state, "/metrics").await;
    assert_eq!(status, StatusCode::OK);
    for line in [
        "portcullis_admission_requests_total{operation=\"CREATE\",kind=\"Pod\",decision=\"deny\"} 1",
        "portcullis_admission_requests_total{operation=\"CREATE\",kind=\"Pod\",decision=\"allow\"} 1",
        "portcullis_admission_duration_seconds_count 2",
        "portcullis_policy_evaluations_total{policy=\"pods.host_path\",result=\"deny\"} 1",
        "portcullis_policy_evaluation_duration_seconds_count{policy=\"pods.host_path\"} 2",
        "portcullis_policies_loaded{engine=\"compiled\"} 12",
        "portcullis_policies_loaded{engine=\"interpreter\"} 0",
        "portcullis_build_info{version=\"",
    ] {
        assert!(metrics.contains(line), "missing {line}");
    }
    assert!(!metrics.contains("where2eat"), "no object names in labels");
    assert_eq!(get(&state, "/healthz").await.0, StatusCode::OK);
    assert_eq!(get(&state, "/readyz").await.0, StatusCode::OK);
    state
        .health
        .shutting_down
        .store(true, std::sync::atomic::Ordering::Release);
    assert_eq!(get(&state, "/readyz").await.0, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn a_review_the_apiserver_gave_up_on_is_counted_as_abandoned() {
    let (_dir, state) = endless_library("policyTimeout: 1s");
    let hung_up = tokio::time::timeout(Duration::from_millis(100), review_clean_pod(&state, "10s")).await;
    assert!(hung_up.is_err(), "the client gave up first");
    let (_, metrics) = get(&state, "/metrics").await;
    assert!(metrics.contains("decision=\"abandoned\"} 1"), "{metrics}");
}

#[tokio::test]
async fn a_body_that_never_arrives_is_refused_before_the_deadline() {
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;
    let state = state(CONFIG, &[]);
    let router = portcullis::server::router::webhook_router(state.clone());
    let stalled = Body::from_stream(futures::stream::pending::<Result<Vec<u8>, std::io::Error>>());
    let request = Request::post("/validate?timeout=1s").body(stalled).unwrap();
    let response = tokio::time::timeout(Duration::from_secs(5), router.oneshot(request))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(response.status(), StatusCode::REQUEST_TIMEOUT);
}
