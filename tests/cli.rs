//! The binary as CI and operators run it: `check`, `test`, and `serve` startup, with exit codes.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

use common::*;
use portcullis::admission::Reviewer;

fn portcullis(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("PORTCULLIS_CONFIG")
        .env_remove("GITHUB_STEP_SUMMARY")
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

const DEV_CONFIG: &str = "examples/config/dev.yaml";

#[test]
fn check_allows_a_clean_app_and_exits_0() {
    let output = portcullis(&["check", "--config", DEV_CONFIG, "tests/fixtures/manifests/good"]);
    assert_eq!(output.status.code(), Some(0), "{}{}", stdout(&output), stderr(&output));
    assert!(
        stdout(&output).contains("deployment.yaml#1: allow Deployment team-a/where2eat\n"),
        "{}",
        stdout(&output)
    );
    assert_eq!(stdout(&output).lines().count(), 3, "one line per object");
}

#[test]
fn check_denies_with_policy_and_message_and_exits_1() {
    let output = portcullis(&["check", "--config", DEV_CONFIG, "tests/fixtures/manifests/bad/app.yaml"]);
    assert_eq!(output.status.code(), Some(1));
    let text = stdout(&output);
    assert!(
        text.contains("app.yaml#1: deny Deployment team-a/where2eat images.digest_pinning: container \"app\""),
        "{text}"
    );
    assert!(
        text.contains("pin it: registry.example.com/micro-apps/where2eat@sha256:"),
        "{text}"
    );
    assert!(
        text.contains("app.yaml#2: deny Pod team-a/debug-shell pods.host_path: "),
        "{text}"
    );
}

#[test]
fn check_takes_the_risk_level_from_a_namespace_manifest_or_the_flag() {
    let with_namespace = portcullis(&["check", "--config", DEV_CONFIG, "tests/fixtures/manifests/risk"]);
    assert_eq!(
        with_namespace.status.code(),
        Some(0),
        "warnings never fail the run: {}",
        stdout(&with_namespace)
    );
    assert!(stdout(&with_namespace).contains("warn Deployment sandbox/prototype images.digest_pinning: "));

    let alone = portcullis(&[
        "check",
        "--config",
        DEV_CONFIG,
        "tests/fixtures/manifests/risk/deployment-tag-only.yaml",
    ]);
    assert_eq!(
        alone.status.code(),
        Some(1),
        "an unlabelled namespace is high by default"
    );

    let flagged = portcullis(&[
        "check",
        "--config",
        DEV_CONFIG,
        "--risk-level",
        "low",
        "tests/fixtures/manifests/risk/deployment-tag-only.yaml",
    ]);
    assert_eq!(flagged.status.code(), Some(0));
}

#[test]
fn check_json_output() {
    let output = portcullis(&[
        "check",
        "--config",
        DEV_CONFIG,
        "--output",
        "json",
        "tests/fixtures/manifests",
    ]);
    assert_eq!(output.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["summary"]["objects"], 7);
    assert_eq!(report["summary"]["denied"], 2);
    let pod = report["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "debug-shell")
        .unwrap();
    assert_eq!(pod["allowed"], false);
    assert_eq!(pod["findings"][0]["policy"], "pods.host_path");
    assert_eq!(pod["findings"][0]["action"], "deny");
}

/// A Pod that only `pods.host_path` denies, in flow style (one line) for a List's items.
fn host_path_pod(name: &str) -> String {
    format!(
        "{{apiVersion: v1, kind: Pod, metadata: {{name: {name}, namespace: team-a, labels: {{app.kubernetes.io/name: {name}, app.kubernetes.io/version: '1', portcullis.io/owner: rebecca.yu}}}}, \
         spec: {{containers: [{{name: shell, image: 'registry.example.com/tools/shell@sha256:4958b267fba756f6fd9ff0a61bc7f4bf9243077ae3971b409a8eb787ee51aeeb', \
         securityContext: {{allowPrivilegeEscalation: false}}, volumeMounts: [{{name: host, mountPath: /host}}]}}], volumes: [{{name: host, hostPath: {{path: /}}}}]}}}}"
    )
}

#[test]
fn check_points_each_finding_at_its_objects_file_and_line_as_github_annotations_and_in_json() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("app.yaml");
    // Objects at lines 3 (a document after a comment), 8 and 10 (a List's items, a comment
    // between them) and 12.
    let text = format!(
        "# the app\n---\n{}\n---\napiVersion: v1\nkind: List\nitems:\n- {}\n# the next item\n- {}\n---\n{}\n",
        host_path_pod("solo"),
        host_path_pod("first"),
        host_path_pod("second"),
        host_path_pod("last")
    );
    std::fs::write(&file, text).unwrap();
    let path = file.to_str().unwrap();
    let lines = [("solo", 3), ("first", 8), ("second", 10), ("last", 12)];

    let output = portcullis(&["check", "--config", DEV_CONFIG, "--output", "github", path]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let text = stdout(&output);
    let commands: Vec<&str> = text.lines().collect();
    assert_eq!(commands.len(), 4, "{text}");
    for ((name, line), command) in lines.iter().zip(&commands) {
        // GitHub's syntax: ::error file=F,line=L,title=T::MESSAGE
        let expected =
            format!("::error file={path},line={line},title=No hostPath volumes (pods.host_path)::Pod team-a/{name}: ");
        assert!(command.starts_with(&expected), "{command}\n{expected}");
    }
    assert!(
        stderr(&output).contains("checked 4 object(s): 4 denied"),
        "{}",
        stderr(&output)
    );

    let output = portcullis(&["check", "--config", DEV_CONFIG, "--output", "json", path]);
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    let found: Vec<(String, u64)> = report["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            assert_eq!(r["location"]["file"], path);
            (
                r["name"].as_str().unwrap().to_string(),
                r["location"]["line"].as_u64().unwrap(),
            )
        })
        .collect();
    let expected: Vec<(String, u64)> = lines.iter().map(|(n, l)| (n.to_string(), *l)).collect();
    assert_eq!(found, expected);
}

#[test]
fn check_applies_policy_exceptions_among_its_inputs_and_refuses_invalid_ones() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("pods.yaml"),
        format!("{}\n---\n{}\n", host_path_pod("debug-shell"), host_path_pod("other")),
    )
    .unwrap();
    let digest = "sha256:4958b267fba756f6fd9ff0a61bc7f4bf9243077ae3971b409a8eb787ee51aeeb";
    let exception = |name: &str, pod: &str, expires: &str, images: &str| {
        format!(
            "apiVersion: portcullis.io/v1alpha1\nkind: PolicyException\nmetadata: {{name: {name}, namespace: team-a}}\n\
             spec: {{policies: [pods.host_path], match: {{kinds: [Pod], names: [{pod}]}}, images: [{images}], expiresAt: '{expires}', ticket: OPS-4711}}\n"
        )
    };
    let soon = jiff::Timestamp::from_second(jiff::Timestamp::now().as_second() + 86400)
        .unwrap()
        .to_string();
    let exceptions = dir.path().join("exceptions.yaml");
    // debug-shell: excused while it runs this digest; other: its exception has ended.
    std::fs::write(
        &exceptions,
        format!(
            "{}---\n{}",
            exception("debug-shell", "debug-shell", &soon, digest),
            exception("ended", "other", "2026-01-01T00:00:00Z", "")
        ),
    )
    .unwrap();
    let path = dir.path().to_str().unwrap();
    let output = portcullis(&["check", "--config", DEV_CONFIG, path]);
    assert_eq!(output.status.code(), Some(1), "other is denied: {}", stderr(&output));
    let text = stdout(&output);
    let excused = text
        .lines()
        .find(|l| l.contains("Pod team-a/debug-shell"))
        .unwrap_or_default();
    assert!(
        excused.contains("warn Pod team-a/debug-shell pods.host_path: ")
            && excused.contains(&format!(
                "(excused by PolicyException team-a/debug-shell until {soon}, ticket OPS-4711)"
            )),
        "{text}"
    );
    assert!(text.contains("deny Pod team-a/other pods.host_path: "), "{text}");

    // Bound to another digest: the next build is not excused.
    let next = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
    std::fs::write(&exceptions, exception("debug-shell", "debug-shell", &soon, next)).unwrap();
    let output = portcullis(&["check", "--config", DEV_CONFIG, path]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(
        text.contains("deny Pod team-a/debug-shell pods.host_path: ") && !text.contains("excused"),
        "{text}"
    );

    // One the cluster's admission policy would refuse is an input error, with its line.
    std::fs::write(
        &exceptions,
        format!(
            "# too long\n{}",
            exception("forever", "debug-shell", "2099-01-01T00:00:00Z", digest)
        ),
    )
    .unwrap();
    let output = portcullis(&["check", "--config", DEV_CONFIG, path]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let expected = format!(
        "{}:2: PolicyException team-a/forever: spec.expiresAt 2099-01-01T00:00:00Z is more than 90 days after now",
        exceptions.display()
    );
    assert!(stderr(&output).contains(&expected), "{}", stderr(&output));
}

#[test]
fn check_writes_the_markdown_verdict_as_output_or_appended_to_the_job_summary() {
    let output = portcullis(&[
        "check",
        "--config",
        DEV_CONFIG,
        "--output",
        "markdown",
        "tests/fixtures/manifests/bad/app.yaml",
    ]);
    assert_eq!(output.status.code(), Some(1));
    let text = stdout(&output);
    assert!(
        text.starts_with("### ❌ portcullis: 2 of 2 object(s) would be refused\n"),
        "{text}"
    );
    assert!(
        text.contains(
            "| deny | `Pod team-a/debug-shell` | No hostPath volumes (`pods.host_path`) | Pod \"debug-shell\": volume \"host\" mounts"
        ),
        "{text}"
    );
    assert!(
        text.contains("| `tests/fixtures/manifests/bad/app.yaml:22` |"),
        "{text}"
    );

    // GitHub's job summary file: each run (each step) appends.
    let dir = tempfile::tempdir().unwrap();
    let summary = dir.path().join("summary.md");
    std::fs::write(&summary, "earlier step\n").unwrap();
    for paths in ["tests/fixtures/manifests/good", "tests/fixtures/manifests/bad/app.yaml"] {
        let output = Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .args(["check", "--config", DEV_CONFIG, "--output", "github", paths])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env_remove("PORTCULLIS_CONFIG")
            .env("GITHUB_STEP_SUMMARY", &summary)
            .output()
            .unwrap();
        assert!(
            stdout(&output).is_empty() || stdout(&output).starts_with("::"),
            "{}",
            stdout(&output)
        );
    }
    let written = std::fs::read_to_string(&summary).unwrap();
    assert!(
        written.starts_with("earlier step\n### ✅ portcullis: all 3 object(s) admitted\n"),
        "{written}"
    );
    assert!(
        written.contains("\n### ❌ portcullis: 2 of 2 object(s) would be refused\n"),
        "{written}"
    );
}

#[test]
fn check_with_the_apps_app_yaml_validates_it_requires_its_labels_and_applies_its_risk_level() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    };
    let app = write(
        "app.yaml",
        "name: prototype\nowner: rebecca.yu\nrisk_level: high\nversion: 0.0.1\nimage:\n  repository: registry.example.com/micro-apps/prototype\n",
    );
    // A tag-only image only warns in the sandbox namespace (low); app.yaml raises it to high, and
    // the labels do not say what app.yaml says.
    let manifests = "tests/fixtures/manifests/risk";
    let output = portcullis(&["check", "--config", DEV_CONFIG, "--app", &app, manifests]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(
        text.contains("deny Deployment sandbox/prototype images.digest_pinning: "),
        "the app's level, not the namespace's: {text}"
    );
    assert!(
        text.contains(&format!(
            "deny Deployment sandbox/prototype app.labels: label portcullis.io/risk-level is missing; {app} says risk_level: \"high\""
        )),
        "{text}"
    );
    assert!(
        !text.contains("Namespace sandbox app.labels"),
        "Namespaces are the platform's: {text}"
    );

    let bad = write(
        "bad.yaml",
        "name: Proto\nowner: rebecca yu\nrisk_level: extreme\nversion: \"1\"\nimage:\n  repository: docker.io/library/nginx\n",
    );
    let output = portcullis(&["check", "--config", DEV_CONFIG, "--app", &bad, manifests]);
    assert_eq!(output.status.code(), Some(2));
    let said = stderr(&output);
    for (line, field) in [
        (1, "name"),
        (2, "owner"),
        (3, "risk_level"),
        (4, "version"),
        (6, "image.repository"),
    ] {
        assert!(said.contains(&format!("{bad}:{line}: {field}: ")), "{field}: {said}");
    }
    assert!(stdout(&output).is_empty(), "nothing is decided on an invalid app.yaml");
}

#[test]
fn gates_say_what_a_pull_request_needs_at_the_apps_risk_level() {
    // As the app's CI runs it: from the app's root, where the config's paths are relative.
    let in_app = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .args(args)
            .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/micro-app"))
            .env_remove("PORTCULLIS_CONFIG")
            .env_remove("GITHUB_STEP_SUMMARY")
            .output()
            .unwrap()
    };
    let config = "platform/portcullis.yaml";
    let output = in_app(&["gates", "--config", config, "app.yaml"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(
        text.starts_with(
            "where2eat (risk level medium): the checks and 1 approval(s) from @acme/platform\n\
             the checks at risk level medium: 10 policies (10 deny)\n"
        ),
        "{text}"
    );
    // The SBOM policy's data names medium, the cost policy's low only; the platform's config
    // verifies images, so the policies on verified images are listed.
    assert!(
        text.contains("\n  deny   images.sbom\n") && text.contains("\n  deny   images.signatures\n"),
        "{text}"
    );
    assert!(
        !text.contains("cost.resources") && !text.contains("images.provenance"),
        "{text}"
    );
    let output = in_app(&["gates", "--config", config, "--output", "json", "app.yaml"]);
    let document: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(document["approvals"], 1);
    assert_eq!(document["reviewers"], serde_json::json!(["@acme/platform"]));
    assert_eq!(document["risk_level"], "medium");
    let sbom = document["policies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == "images.sbom")
        .cloned();
    assert_eq!(
        sbom,
        Some(serde_json::json!({"id": "images.sbom", "title": "Signed images carry an SBOM", "action": "deny"}))
    );

    // check's markdown ends with them when it knows the app.
    let output = in_app(&[
        "check",
        "--offline",
        "--config",
        config,
        "--app",
        "app.yaml",
        "--output",
        "markdown",
        "platform/namespace.yaml",
    ]);
    assert!(
        stdout(&output).contains(
            "\n**Gates at risk level medium** (from `app.yaml`): the checks and 1 approval(s) from `@acme/platform`.\n\
             \n<details><summary>The checks at risk level medium: 10 policies (10 deny)</summary>\n"
        ) && stdout(&output).ends_with("| No privileged containers (`pods.privileged`) | deny |\n\n</details>\n"),
        "{}{}",
        stdout(&output),
        stderr(&output)
    );

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("app.yaml");
    std::fs::write(&bad, "name: x\n").unwrap();
    let output = in_app(&["gates", "--config", config, bad.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2), "an invalid app.yaml has no gates");
}

#[test]
fn check_takes_an_admission_review_as_is() {
    let output = portcullis(&[
        "check",
        "--config",
        DEV_CONFIG,
        "tests/fixtures/reviews/policy/pod-hostpath.json",
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stdout(&output).contains("deny Pod team-a/where2eat-dind pods.host_path: "),
        "{}",
        stdout(&output)
    );
}

#[test]
fn check_usage_and_load_errors_exit_2() {
    let missing = portcullis(&["check", "tests/fixtures/manifests/nope.yaml"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        stderr(&missing).contains("nope.yaml: no such file"),
        "{}",
        stderr(&missing)
    );
    let level = portcullis(&["check", "--risk-level", "extreme", "tests/fixtures/manifests/good"]);
    assert_eq!(level.status.code(), Some(2));
    let policies = portcullis(&[
        "check",
        "--policies",
        "tests/fixtures/manifests",
        "tests/fixtures/manifests/good",
    ]);
    assert_eq!(
        policies.status.code(),
        Some(2),
        "a directory without policies is a load error"
    );
    let no_args = portcullis(&["check"]);
    assert_eq!(no_args.status.code(), Some(2));
    let unwritable = portcullis(&[
        "check",
        "--output",
        "junit",
        "--output-file",
        "/nonexistent/report.xml",
        "tests/fixtures/manifests/good",
    ]);
    assert_eq!(unwritable.status.code(), Some(2), "a report CI would miss is an error");
    assert!(
        stderr(&unwritable).contains("cannot write /nonexistent/report.xml"),
        "{}",
        stderr(&unwritable)
    );
}

/// `check` and the webhook reach the same decision on the same request.
#[tokio::test]
async fn check_and_the_webhook_agree_on_every_policy_fixture() {
    let state = state(CONFIG, &[]);
    let reviewer: Reviewer = {
        let settings = settings(CONFIG);
        let set =
            portcullis::admission::setup::load_policies(&portcullis::policy::Source::Embedded, &settings).unwrap();
        let metrics = std::sync::Arc::new(portcullis::metrics::Metrics::new());
        Reviewer::from_settings(&settings, set, namespaces(&[]), metrics, None).unwrap()
    };
    let dir = fixtures().join("reviews/policy");
    let mut files: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().map(|e| e.path()).collect();
    files.sort();
    assert!(files.len() >= 12);
    for file in files {
        let documents = portcullis::check::read_inputs(std::slice::from_ref(&file)).unwrap();
        let offline = portcullis::batch::evaluate(&reviewer, &documents, None);
        let (_, online) = post(&state, "/validate", std::fs::read(&file).unwrap()).await;
        assert_eq!(
            Value::Bool(offline[0].allowed),
            online["response"]["allowed"],
            "{}",
            file.display()
        );
        let offline_denials: Vec<&str> = offline[0]
            .findings
            .iter()
            .filter(|f| f.action == "deny")
            .map(|f| f.policy.as_str())
            .collect();
        let mut online_denials = denied_by(&online);
        online_denials.dedup();
        let mut offline_denials: Vec<String> = offline_denials.into_iter().map(String::from).collect();
        offline_denials.dedup();
        assert_eq!(offline_denials, online_denials, "{}", file.display());
    }
}

#[test]
fn test_runs_the_embedded_library() {
    let output = portcullis(&["test"]);
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
    let last = stdout(&output).lines().last().unwrap_or_default().to_string();
    let passed: usize = last
        .strip_suffix(" passed, 0 failed")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{last}"));
    assert!(passed >= 100, "{last}");
}

#[test]
fn test_reports_failures_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    write_library(
        dir.path(),
        &[
            ("p/policy.rego", "package p\ndeny contains \"no\" if input.bad\n"),
            (
                "p/policy_test.rego",
                "package p_test\nimport data.p\ntest_bad_denied if { \"no\" in p.deny with input as {\"bad\": true} }\ntest_wrong_expectation if { count(p.deny) == 1 with input as {} }\n",
            ),
        ],
    );
    let output = portcullis(&["test", dir.path().to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    let text = stdout(&output);
    assert!(text.contains("FAIL data.p_test.test_wrong_expectation"), "{text}");
    assert_eq!(text.lines().last(), Some("1 passed, 1 failed"));
}

#[test]
fn test_refuses_duplicate_test_names() {
    let dir = tempfile::tempdir().unwrap();
    write_library(
        dir.path(),
        &[
            ("p/policy.rego", "package p\ndeny contains \"no\" if false\n"),
            (
                "p/policy_test.rego",
                "package p_test\ntest_a if true\ntest_a if false\n",
            ),
        ],
    );
    let output = portcullis(&["test", dir.path().to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("duplicate test names"), "{}", stderr(&output));
}

#[test]
fn serve_refuses_an_unsafe_config_listing_every_error() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        "risk: { default: none }\nadmission: { maxBodyBytes: 0 }\nenforcement: { pods.privileged: off }\n",
    )
    .unwrap();
    let output = portcullis(&["serve", "--config", config.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    let text = stderr(&output);
    for field in ["risk.default", "admission.maxBodyBytes", "enforcement.pods.privileged"] {
        assert!(text.contains(field), "{field} missing from {text}");
    }
}

#[test]
fn serve_refuses_a_policy_set_that_does_not_load() {
    let dir = tempfile::tempdir().unwrap();
    write_library(
        dir.path(),
        &[("broken/policy.rego", "package broken\ndeny contains if {\n")],
    );
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, format!("policies: {{ dirs: [{}] }}\n", dir.path().display())).unwrap();
    let output = portcullis(&[
        "serve",
        "--dev",
        "--state-dir",
        dir.path().join("state").to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("broken/policy.rego"), "{}", stderr(&output));
}

/// `serve --dev` on loopback ports of its own, its state in `state_dir`; the child once it
/// serves, its webhook URL, and the rest of what it prints.
fn serve_dev(
    state_dir: &Path,
) -> (
    std::process::Child,
    String,
    std::io::Lines<BufReader<std::process::ChildStdout>>,
) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args([
            "serve",
            "--dev",
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
            "--config",
            DEV_CONFIG,
        ])
        .arg("--state-dir")
        .arg(state_dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let url = first
        .strip_prefix("portcullis (dev) is serving ")
        .unwrap_or_else(|| panic!("{first}"))
        .to_string();
    (child, url, lines)
}

#[tokio::test]
async fn serve_dev_prints_what_to_register_and_stops_on_sigterm() {
    let state_dir = tempfile::tempdir().unwrap();
    let (mut child, url, mut lines) = serve_dev(state_dir.path());
    let printed: Vec<String> = lines.by_ref().take(30).map(Result::unwrap).collect();
    let printed = printed.join("\n");
    assert!(
        printed.contains(&format!(
            "CA certificate: {}",
            state_dir.path().join("ca.crt").display()
        )),
        "{printed}"
    );
    assert!(printed.contains("kind: ValidatingWebhookConfiguration"));
    assert!(printed.contains(&format!("url: {url}")));
    for file in ["ca.crt", "tls.crt", "tls.key"] {
        assert!(Path::new(&state_dir.path().join(file)).is_file(), "{file}");
    }

    let ca = std::fs::read(state_dir.path().join("ca.crt")).unwrap();
    let client = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let answer: Value = client
        .post(&url)
        .body(fixture("reviews/policy/pod-pinned-clean.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["response"]["allowed"], true, "{answer}");

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = try_poll_async(Duration::from_secs(10), Duration::from_millis(50), async || {
        child.try_wait().unwrap()
    })
    .await;
    assert_eq!(status.and_then(|s| s.code()), Some(0), "graceful exit after SIGTERM");
}

/// Transparent huge pages made resident memory move in 2 MiB steps, 15 MiB above the same
/// load without them (docs/reliability.md): the process turns them off, and where the kernel
/// gives them only when asked, not one is held, not even from before `main`.
#[test]
fn serve_runs_without_transparent_huge_pages() {
    let thp_enabled = |pid: u32| {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        common::load::proc_field(&status, "THP_enabled:").expect("THP_enabled in /proc/PID/status")
    };
    // This kernel has huge pages, and this process (whose setting a child inherits) has them on:
    // otherwise the child's setting would say nothing of the fix.
    let system = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled")
        .expect("a kernel with transparent huge pages");
    assert_eq!(thp_enabled(std::process::id()), 1);

    let state_dir = tempfile::tempdir().unwrap();
    let (mut child, _url, _lines) = serve_dev(state_dir.path());
    let (setting, held) = (thp_enabled(child.id()), common::load::holdings(child.id()));
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(setting, 0);
    if !system.contains("[always]") {
        assert_eq!(held.expect("the server's holdings").huge_kib, 0);
    }
}

#[test]
fn audit_of_a_cluster_it_cannot_reach_is_an_error_not_a_clean_fleet() {
    let dir = tempfile::tempdir().unwrap();
    let (kubeconfig, _closed) = common::lab::unreachable_kubeconfig(dir.path());
    let output = portcullis(&[
        "audit",
        "--output",
        "json",
        "--kubeconfig",
        kubeconfig.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        output.stdout.is_empty(),
        "nothing reported: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    assert!(
        stderr(&output).contains("audit: cannot list Namespace"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn audit_refuses_a_rate_an_interval_a_lease_or_an_address_it_cannot_use_and_continuous_flags_without_an_interval() {
    for (args, says) in [
        (&["--verifications-per-second", "0"][..], "not a rate from 0.1 to 1000"),
        (
            &["--verifications-per-second", "many"][..],
            "not a rate from 0.1 to 1000",
        ),
        (&["--interval", "500ms"][..], "out of range (1s to 24h)"),
        (&["--write-reports", "openreports"][..], "--interval"),
        (&["--lease", "portcullis/audit"][..], "--interval"),
        (&["--metrics-listen", "127.0.0.1:9191"][..], "--interval"),
        (
            &["--interval", "1m", "--metrics-listen", "localhost"][..],
            "server.metricsListen: \"localhost\" is not an address",
        ),
        (&["--interval", "1m", "--lease", "audit"][..], "not NAMESPACE/NAME"),
        (
            &["--interval", "1m", "--lease", "Portcullis/audit"][..],
            "not NAMESPACE/NAME",
        ),
    ] {
        let output = portcullis(&[&["audit"][..], args].concat());
        assert_eq!(output.status.code(), Some(2), "{args:?}: {}", stderr(&output));
        assert!(stderr(&output).contains(says), "{args:?}: {}", stderr(&output));
    }
}
