//! Cluster access against a real kube-apiserver: namespace risk levels from the cached watch
//! (`risk.namespaceSource: kubernetes`), which follows label changes, and registry credentials
//! from a workload's imagePullSecrets. The control plane (etcd + kube-apiserver built from the
//! Go module proxy) runs on loopback; kubectl is built at the same version.

mod common;

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use common::cluster::ControlPlane;
use common::lab::{PrivateRegistry, PRIVATE_PASSWORD, PRIVATE_USER};
use common::*;
use portcullis::images::pull_secrets::PullSecrets;
use portcullis::namespaces::{KubeNamespaces, NamespaceLabels};
use portcullis::policy::Source;

/// Polls `condition`, bounded to 20 s.
async fn eventually(what: &str, condition: impl Fn() -> bool) {
    for _ in 0..400 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what}: not reached within 20 s");
}

#[tokio::test]
async fn namespace_levels_come_from_a_cached_watch_of_the_cluster() {
    let cluster = ControlPlane::start();
    cluster.kubectl(&["create", "namespace", "team-a"]);
    cluster.kubectl(&["label", "namespace", "team-a", "portcullis.io/risk-level=low"]);
    // The only process-wide setting of this test binary: where the kube client finds its cluster.
    std::env::set_var("KUBECONFIG", &cluster.kubeconfig);

    let namespaces = Arc::new(KubeNamespaces::start().await.expect("watch starts"));
    let watch = namespaces.clone();
    eventually("initial list", move || watch.ready()).await;
    assert_eq!(
        namespaces
            .labels("team-a")
            .get("portcullis.io/risk-level")
            .map(String::as_str),
        Some("low")
    );
    assert!(namespaces
        .labels("kube-system")
        .contains_key("kubernetes.io/metadata.name"));
    assert!(namespaces.labels("no-such-namespace").is_empty());

    let settings = settings(CONFIG);
    let policies = portcullis::server::load_policies(&Source::Embedded, &settings).unwrap();
    let state = portcullis::server::app_state(&settings, policies, namespaces.clone()).unwrap();
    let (_, answer) = post(&state, "/validate", fixture("reviews/policy/pod-tag-only.json")).await;
    assert_eq!(
        answer["response"]["allowed"], true,
        "low namespace: a tag is only warned about: {answer}"
    );
    assert_eq!(get(&state, "/readyz").await.0, 200);

    cluster.kubectl(&[
        "label",
        "--overwrite",
        "namespace",
        "team-a",
        "portcullis.io/risk-level=high",
    ]);
    let watch = namespaces.clone();
    eventually("label change seen", move || {
        watch
            .labels("team-a")
            .get("portcullis.io/risk-level")
            .map(String::as_str)
            == Some("high")
    })
    .await;
    let (_, answer) = post(&state, "/validate", fixture("reviews/policy/pod-tag-only.json")).await;
    assert_eq!(
        denied_by(&answer),
        ["images.digest_pinning"],
        "high namespace: denied: {answer}"
    );
}

#[tokio::test]
async fn image_pull_secrets_are_read_from_the_cluster_and_used_for_their_registry_only() {
    let cluster = ControlPlane::start();
    let dir = tempfile::tempdir().unwrap();
    let private = PrivateRegistry::start(dir.path());
    cluster.kubectl(&["create", "namespace", "team-a"]);
    let secret = |name: &str, server: &str| {
        cluster.kubectl(&[
            "create",
            "secret",
            "docker-registry",
            name,
            "--namespace=team-a",
            &format!("--docker-server={server}"),
            &format!("--docker-username={PRIVATE_USER}"),
            &format!("--docker-password={PRIVATE_PASSWORD}"),
        ]);
    };
    secret("private-registry", &private.registry);
    // The right login, written for another host: never sent to this registry.
    secret("other-registry", "registry.example.com");
    // Read as a user of the API (not the process-wide KUBECONFIG of the other test).
    let kubeconfig = kube::config::Kubeconfig::read_from(&cluster.kubeconfig).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap();
    let pull_secrets = Arc::new(PullSecrets::new(kube::Client::try_from(config).unwrap()));

    let settings = settings(&private.config("imagePullSecrets: true"));
    let policies = portcullis::server::load_policies(&Source::Embedded, &settings).unwrap();
    let state = portcullis::server::app_state_with(
        &settings,
        policies,
        namespaces(&[("team-a", "low")]),
        Some(pull_secrets),
    )
    .unwrap();
    let decide_with = |secrets: &[&str]| {
        let mut request = pod_request(&[&private.image]);
        request["object"]["spec"]["imagePullSecrets"] = secrets.iter().map(|name| json!({"name": name})).collect();
        let state = state.clone();
        async move { post(&state, "/validate?timeout=10s", review(request)).await.1 }
    };

    // Refusals first: they are errors, never cached, while a verified image is (for any pod).
    for secrets in [&[][..], &["other-registry"], &["missing"]] {
        let answer = decide_with(secrets).await;
        assert_eq!(answer["response"]["allowed"], false, "{secrets:?}: {answer}");
        assert!(
            message(&answer).contains("401"),
            "{secrets:?}: the registry refused: {}",
            message(&answer)
        );
    }
    // Secrets in the pod's order; the missing one is skipped, the other host's is not used.
    let answer = decide_with(&["missing", "other-registry", "private-registry"]).await;
    assert_eq!(answer["response"]["allowed"], true, "{answer}");
}
