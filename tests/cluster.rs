//! Cluster access against a real kube-apiserver: namespace risk levels from the cached watch
//! (`risk.namespaceSource: kubernetes`), which follows label changes, and registry credentials
//! from a workload's imagePullSecrets, and Gatekeeper's `data.inventory` synced from the cluster
//! (`policies.inventory`). The control plane (etcd + kube-apiserver built from the
//! Go module proxy) runs on loopback; kubectl is built at the same version.

mod common;

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use common::cluster::ControlPlane;
use common::lab::{PrivateRegistry, PRIVATE_PASSWORD, PRIVATE_USER};
use common::*;
use portcullis::images::pull_secrets::PullSecrets;
use portcullis::images::secret_keys::SecretKeys;
use portcullis::images::verify::{Verifier, VerifierError};
use portcullis::inventory::InventorySync;
use portcullis::metrics::Metrics;
use portcullis::namespaces::{KubeNamespaces, NamespaceLabels};
use portcullis::policy::Source;
use portcullis::server::AppState;

/// Polls `condition`, bounded to 20 s.
async fn eventually<F: std::future::Future<Output = bool>>(what: &str, condition: impl Fn() -> F) {
    poll_async(what, Duration::from_secs(20), Duration::from_millis(50), async || {
        condition().await.then_some(())
    })
    .await;
}

#[tokio::test]
async fn namespace_levels_come_from_a_cached_watch_of_the_cluster() {
    let cluster = ControlPlane::start();
    cluster.kubectl(&["create", "namespace", "team-a"]);
    cluster.kubectl(&["label", "namespace", "team-a", "portcullis.io/risk-level=low"]);
    // The only process-wide setting of this test binary: where the kube client finds its cluster.
    std::env::set_var("KUBECONFIG", &cluster.kubeconfig);

    let client = kube::Client::try_default().await.expect("a client for KUBECONFIG");
    let namespaces = Arc::new(KubeNamespaces::start(client));
    eventually("initial list", || std::future::ready(namespaces.ready())).await;
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
    let policies = portcullis::admission::setup::load_policies(&Source::Embedded, &settings).unwrap();
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
    eventually("label change seen", || {
        std::future::ready(
            namespaces
                .labels("team-a")
                .get("portcullis.io/risk-level")
                .map(String::as_str)
                == Some("high"),
        )
    })
    .await;
    let (_, answer) = post(&state, "/validate", fixture("reviews/policy/pod-tag-only.json")).await;
    assert_eq!(
        denied_by(&answer),
        ["images.digest_pinning"],
        "high namespace: denied: {answer}"
    );
}

/// The body of `/readyz` once its status is 200.
async fn ready_body(state: &AppState) -> String {
    let (status, body) = get(state, "/readyz").await;
    assert_eq!(status, 200, "{body}");
    body
}

/// Namespace `team-a` labelled high risk in `cluster`, watched, and a webhook serving from that
/// watch, ready.
async fn serving_a_high_risk_namespace(cluster: &ControlPlane) -> AppState {
    cluster.kubectl(&["create", "namespace", "team-a"]);
    cluster.kubectl(&["label", "namespace", "team-a", "portcullis.io/risk-level=high"]);
    let namespaces = Arc::new(KubeNamespaces::start(cluster.client().await));
    eventually("the first list", || std::future::ready(namespaces.ready())).await;
    let settings = settings(CONFIG);
    let policies = portcullis::admission::setup::load_policies(&Source::Embedded, &settings).unwrap();
    let state = portcullis::server::app_state(&settings, policies, namespaces).unwrap();
    assert_eq!(ready_body(&state).await, "ok");
    state
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_the_apiserver_is_down_reviews_are_decided_from_the_caches_and_readiness_says_what_is_stale() {
    let cluster = ControlPlane::start();
    let state = serving_a_high_risk_namespace(&cluster).await;

    // Reviews flow all along: one every 20 ms, each answer kept with whether the API was down.
    let api_down = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flow = tokio::spawn({
        let (state, api_down, stop) = (state.clone(), api_down.clone(), stop.clone());
        async move {
            let mut answers = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let down = api_down.load(std::sync::atomic::Ordering::SeqCst);
                let (status, answer) = post(&state, "/validate", fixture("reviews/policy/pod-tag-only.json")).await;
                answers.push((down, status, answer));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            answers
        }
    });

    api_down.store(true, std::sync::atomic::Ordering::SeqCst);
    let stopped = std::time::Instant::now();
    cluster.stop_apiserver();
    let exited = std::time::Instant::now();
    eventually("readiness to say the namespace watch is stale", || async {
        ready_body(&state)
            .await
            .contains("\nstale: namespaces: no answer from the Kubernetes API for")
    })
    .await;
    println!(
        "the apiserver took {:?} to exit; stale reported {:?} after",
        exited - stopped,
        exited.elapsed()
    );
    let (_, metrics) = get(&state, "/metrics").await;
    assert!(
        metrics.contains("portcullis_kube_watch_stale_seconds{watch=\"namespaces\"} "),
        "{metrics}"
    );
    // Long enough for several failed retries of the watch, reviews flowing.
    tokio::time::sleep(Duration::from_secs(3)).await;
    api_down.store(false, std::sync::atomic::Ordering::SeqCst);
    cluster.start_apiserver();
    let restarted = std::time::Instant::now();
    println!("the apiserver was away for {:?}", stopped.elapsed());

    // The watch resumes: a change made after the restart is seen, and nothing is stale.
    cluster.kubectl(&[
        "label",
        "--overwrite",
        "namespace",
        "team-a",
        "portcullis.io/risk-level=low",
    ]);
    eventually("the change made after the restart to be seen", || async {
        let (_, answer) = post(&state, "/validate", fixture("reviews/policy/pod-tag-only.json")).await;
        answer["response"]["allowed"] == true
    })
    .await;
    println!("a change after the restart seen {:?} after it", restarted.elapsed());
    assert_eq!(ready_body(&state).await, "ok");
    let (_, metrics) = get(&state, "/metrics").await;
    assert!(
        metrics.contains("portcullis_kube_watch_stale_seconds{watch=\"namespaces\"} 0\n"),
        "{metrics}"
    );

    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let answers = flow.await.unwrap();
    let during = answers.iter().filter(|(down, _, _)| *down).count();
    assert!(during >= 50, "only {during} reviews while the API was down");
    println!("{} reviews, {during} of them while the API was down", answers.len());
    for (down, status, answer) in &answers {
        assert_eq!(*status, 200, "{answer}");
        // High, from the cache, until the change to low after the restart.
        let allowed = answer["response"]["allowed"] == true;
        assert!(
            allowed && !down || denied_by(answer) == ["images.digest_pinning"],
            "down: {down}: {answer}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_apiserver_is_reported_stale_within_the_read_timeout_and_decisions_go_on() {
    use portcullis::watch_health::{API_READ_TIMEOUT, MAX_RETRY, WATCH_TIMEOUT};
    let cluster = ControlPlane::start();
    let state = serving_a_high_risk_namespace(&cluster).await;

    // Frozen, not stopped: no connection is refused, no error is sent, nothing is answered.
    cluster.pause_apiserver();
    let paused = std::time::Instant::now();
    // The longest it may take: a watch silent until the server would have ended it, then a
    // request that waits a whole read timeout on a pooled connection, then a retry.
    let bound = WATCH_TIMEOUT + Duration::from_secs(5) + API_READ_TIMEOUT + MAX_RETRY + Duration::from_secs(10);
    poll_async(
        "readiness to say the namespace watch is stale",
        bound,
        Duration::from_millis(250),
        async || {
            ready_body(&state)
                .await
                .contains("\nstale: namespaces: no answer from the Kubernetes API for")
                .then_some(())
        },
    )
    .await;
    println!("a hung apiserver reported stale after {:?}", paused.elapsed());
    // Decisions go on from the cache (team-a is high: a tag is denied) and the watch stays stale
    // while the apiserver is frozen, however its attempts fail.
    for _ in 0..4 {
        let (status, answer) = post(&state, "/validate", fixture("reviews/policy/pod-tag-only.json")).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(denied_by(&answer), ["images.digest_pinning"], "{answer}");
        assert!(ready_body(&state).await.contains("\nstale: namespaces:"));
        tokio::time::sleep(Duration::from_secs(5)).await;
    }

    cluster.resume_apiserver();
    cluster.kubectl(&[
        "label",
        "--overwrite",
        "namespace",
        "team-a",
        "portcullis.io/risk-level=low",
    ]);
    eventually("the change made after the thaw to be seen", || async {
        let (_, answer) = post(&state, "/validate", fixture("reviews/policy/pod-tag-only.json")).await;
        answer["response"]["allowed"] == true
    })
    .await;
    assert_eq!(ready_body(&state).await, "ok");
}

/// A `kubernetes.io/dockerconfigjson` Secret `name` in team-a with the private registry's login,
/// written for `server`.
fn pull_secret(cluster: &ControlPlane, name: &str, server: &str) {
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
}

/// The webhook's state verifying the private registry's images (team-a at risk level low),
/// reading workloads' pull secrets from `cluster` as a user of the API (not the process-wide
/// KUBECONFIG of another test).
async fn reading_pull_secrets(cluster: &ControlPlane, private: &PrivateRegistry) -> AppState {
    let pull_secrets = Arc::new(PullSecrets::new(cluster.client().await));
    let settings = settings(&private.config("imagePullSecrets: true"));
    let policies = portcullis::admission::setup::load_policies(&Source::Embedded, &settings).unwrap();
    portcullis::server::app_state_with(
        &settings,
        policies,
        namespaces(&[("team-a", "low")]),
        Some(pull_secrets),
    )
    .unwrap()
}

#[tokio::test]
async fn image_pull_secrets_are_read_from_the_cluster_and_used_for_their_registry_only() {
    let cluster = ControlPlane::start();
    let dir = tempfile::tempdir().unwrap();
    let private = PrivateRegistry::start(dir.path());
    cluster.kubectl(&["create", "namespace", "team-a"]);
    pull_secret(&cluster, "private-registry", &private.registry);
    // The right login, written for another host: never sent to this registry.
    pull_secret(&cluster, "other-registry", "registry.example.com");
    let state = reading_pull_secrets(&cluster, &private).await;
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

/// An Ingress review for `host` (CREATE, or UPDATE of an existing object).
fn ingress_review(namespace: &str, name: &str, host: &str) -> Vec<u8> {
    review(json!({
        "uid": "ingress", "operation": "CREATE", "namespace": namespace, "name": name,
        "kind": {"group": "networking.k8s.io", "version": "v1", "kind": "Ingress"},
        "resource": {"group": "networking.k8s.io", "version": "v1", "resource": "ingresses"},
        "userInfo": {"username": "dev"},
        "object": {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                   "metadata": {"name": name, "namespace": namespace},
                   "spec": {"rules": [{"host": host}]}},
    }))
}

#[tokio::test]
async fn gatekeeper_inventory_is_synced_from_the_cluster() {
    let cluster = ControlPlane::start();
    for namespace in ["team-a", "team-b"] {
        cluster.kubectl(&["create", "namespace", namespace]);
    }
    let create_ingress = |name: &str, host: &str| {
        cluster.kubectl(&[
            "create",
            "ingress",
            name,
            "--namespace=team-a",
            &format!("--rule={host}/=web:80"),
        ]);
    };
    create_ingress("shop", "shop.example.com");
    let client = cluster.client().await;

    // gatekeeper-library's unique-ingress-host, unchanged, with the sync its sync.yaml asks for.
    let sample = gatekeeper_library().join("uniqueingresshost");
    let read = |relative: &str| std::fs::read_to_string(sample.join(relative)).unwrap();
    let library = tempfile::tempdir().unwrap();
    write_library(
        library.path(),
        &[
            ("template.yaml", &read("template.yaml")),
            ("constraint.yaml", &read("samples/unique-ingress-host/constraint.yaml")),
        ],
    );
    let settings = settings(&format!(
        "policies: {{dirs: [{:?}], inventory: [{{group: networking.k8s.io, version: v1, kind: Ingress}}]}}\n",
        library.path().display()
    ));

    // Kinds the cluster does not serve are all refused at startup.
    let wrong = portcullis::config::Config::from_yaml(
        "policies: {inventory: [{group: example.com, version: v1, kind: Widget}, {version: v1, kind: Ingress}]}",
    )
    .unwrap()
    .validate(true)
    .unwrap();
    let error = InventorySync::start(client.clone(), &wrong.inventory)
        .await
        .err()
        .expect("unknown kinds are refused")
        .to_string();
    assert!(
        error.contains("example.com/v1/Widget") && error.contains("v1/Ingress"),
        "{error}"
    );

    let source = Source::from_dirs(&settings.policy_dirs);
    let policies = portcullis::admission::setup::load_policies(&source, &settings).unwrap();
    let state = portcullis::server::app_state(&settings, policies, namespaces(&[])).unwrap();
    let verdict = |namespace: &'static str, name: &'static str, host: &'static str| {
        let state = state.clone();
        async move {
            let (_, answer) = post(&state, "/validate", ingress_review(namespace, name, host)).await;
            answer
        }
    };
    // Without the inventory the template sees no other ingress.
    assert_eq!(
        verdict("team-b", "copy", "shop.example.com").await["response"]["allowed"],
        true
    );

    let sync = InventorySync::start(client, &settings.inventory).await.unwrap();
    let _follow = sync.follow(state.reviewer.clone(), state.metrics.clone());
    let (status, reason) = get(&state, "/readyz").await;
    assert_eq!((status.as_u16(), reason.as_str()), (503, "inventory not synced"));
    eventually("ready after the first list", || async {
        get(&state, "/readyz").await.0 == 200
    })
    .await;

    let answer = verdict("team-b", "copy", "shop.example.com").await;
    assert_eq!(answer["response"]["allowed"], false, "{answer}");
    assert_eq!(
        message(&answer),
        "1 policy denied this Ingress (risk level high):\n- K8sUniqueIngressHost/unique-ingress-host: \
         ingress host conflicts with an existing ingress <shop.example.com>"
    );
    // The object itself (an update) and another host are fine.
    assert_eq!(
        verdict("team-a", "shop", "shop.example.com").await["response"]["allowed"],
        true
    );
    assert_eq!(
        verdict("team-b", "copy", "blog.example.com").await["response"]["allowed"],
        true
    );
    let (_, metrics) = get(&state, "/metrics").await;
    assert!(
        metrics.contains("portcullis_inventory_objects{kind=\"networking.k8s.io/v1/Ingress\"} 1"),
        "{metrics}"
    );

    // Changes in the cluster reach the policies: a new ingress, then a deleted one.
    create_ingress("blog", "blog.example.com");
    eventually("the new ingress is in the inventory", || async {
        verdict("team-b", "copy", "blog.example.com").await["response"]["allowed"] == false
    })
    .await;
    cluster.kubectl(&["delete", "ingress", "shop", "--namespace=team-a"]);
    eventually("the deleted ingress left the inventory", || async {
        verdict("team-b", "copy", "shop.example.com").await["response"]["allowed"] == true
    })
    .await;
}

#[tokio::test]
async fn a_pod_spec_without_pull_secrets_uses_its_service_accounts_as_the_kubelet_does() {
    let cluster = ControlPlane::start();
    let dir = tempfile::tempdir().unwrap();
    let private = PrivateRegistry::start(dir.path());
    cluster.kubectl(&["create", "namespace", "team-a"]);
    pull_secret(&cluster, "private-registry", &private.registry);
    cluster.kubectl(&["create", "serviceaccount", "builder", "--namespace=team-a"]);
    cluster.kubectl(&[
        "patch",
        "serviceaccount",
        "builder",
        "--namespace=team-a",
        "-p",
        r#"{"imagePullSecrets": [{"name": "private-registry"}]}"#,
    ]);
    let state = reading_pull_secrets(&cluster, &private).await;
    // A Deployment: its pod template has no pull secrets (the apiserver adds the
    // ServiceAccount's to Pods only), and its pods will pull with the ServiceAccount's.
    let decide = |account: Option<&str>, secrets: &[&str]| {
        let pod = pod_request(&[&private.image]);
        let mut spec = pod["object"]["spec"].clone();
        if let Some(account) = account {
            spec["serviceAccountName"] = json!(account);
        }
        if !secrets.is_empty() {
            spec["imagePullSecrets"] = secrets.iter().map(|name| json!({"name": name})).collect();
        }
        let request = json!({
            "uid": "uid-sa", "operation": "CREATE", "namespace": "team-a",
            "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
            "resource": {"group": "apps", "version": "v1", "resource": "deployments"},
            "userInfo": {"username": "flux"},
            "object": {"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "web", "namespace": "team-a", "labels": pod["object"]["metadata"]["labels"]},
                "spec": {"selector": {"matchLabels": {"app": "web"}},
                    "template": {"metadata": {"labels": {"app": "web"}}, "spec": spec}}}
        });
        let state = state.clone();
        async move { post(&state, "/validate?timeout=10s", review(request)).await.1 }
    };
    // Refusals first (never cached): the default ServiceAccount has no pull secret, a missing
    // one is skipped, and a pod spec that names its own secrets does not get the account's.
    for (account, secrets) in [
        (None, &[][..]),
        (Some("missing"), &[]),
        (Some("builder"), &["other"][..]),
    ] {
        let answer = decide(account, secrets).await;
        assert_eq!(
            answer["response"]["allowed"], false,
            "{account:?} {secrets:?}: {answer}"
        );
        assert!(message(&answer).contains("401"), "{account:?}: {}", message(&answer));
    }
    let answer = decide(Some("builder"), &[]).await;
    assert_eq!(
        answer["response"]["allowed"], true,
        "the ServiceAccount's pull secret: {answer}"
    );
}

/// The Secret `release-signing` in the default namespace holding `pem` under `cosign.pub`,
/// created or replaced in one write.
fn key_secret(cluster: &ControlPlane, pem: &str) {
    use base64::Engine as _;
    let secret = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "release-signing", "namespace": "default"},
        "data": {"cosign.pub": base64::engine::general_purpose::STANDARD.encode(pem)},
    });
    let applied = cluster.kubectl_output(&["apply", "-f", "-"], Some(secret.to_string().as_bytes()));
    assert!(applied.status.success(), "{}", String::from_utf8_lossy(&applied.stderr));
}

#[tokio::test]
async fn a_key_in_a_secret_is_watched_and_its_rotation_used_without_a_restart() {
    let cluster = ControlPlane::start();
    let dir = tempfile::tempdir().unwrap();
    let private = PrivateRegistry::start(dir.path());
    let signing_key = std::fs::read_to_string(&private.public_key).unwrap();
    let another_key = rcgen::KeyPair::generate().unwrap().public_key_pem();
    key_secret(&cluster, &another_key);
    let registry = &private.registry;
    let config = |key: &str| {
        format!(
            "images:
  reloadInterval: 100ms
  registries: {{ allow: [\"{registry}\"], insecure: [\"{registry}\"] }}
  verification: {{ dockerConfig: {docker} }}
  trust:
    - name: private
      images: [\"{registry}/private/**\"]
      authorities: [{{ name: release-key, key: {{ secretRef: {{ name: {key}, key: cosign.pub }} }} }}]
",
            docker = private.docker_config.join("config.json").display(),
        )
    };
    let client = cluster.client().await;
    let watched = |name: &str| {
        let (client, settings) = (client.clone(), settings(&config(name)));
        async move {
            let keys = SecretKeys::watch(client, &settings.trust.secret_refs).await.unwrap();
            settings.trust.with_secret_keys(keys).map(|trust| (settings, trust))
        }
    };

    // A Secret that is not there is a startup error naming it; so is a verifier built before
    // the Secrets are read.
    let errors = watched("missing").await.unwrap_err();
    assert!(
        errors
            .iter()
            .any(|e| e.contains("Secret default/missing does not exist")),
        "{errors:?}"
    );
    let unread = Verifier::new(settings(&config("release-signing")).trust, Arc::new(Metrics::new()));
    assert!(matches!(unread, Err(VerifierError::SecretKeysNotRead(_))));

    let (mut settings, trust) = watched("release-signing").await.unwrap();
    settings.trust = trust;
    let policies = portcullis::admission::setup::load_policies(&Source::Embedded, &settings).unwrap();
    let state =
        portcullis::server::app_state_with(&settings, policies, namespaces(&[("team-a", "low")]), None).unwrap();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let reloads = tokio::spawn(portcullis::server::reload_trust(state.clone(), stopped));

    let answer = decide(&state, &private.image).await;
    assert_eq!(
        denied_by(&answer),
        ["images.signatures"],
        "signed with another key: {answer}"
    );

    // The signing key rotated into the Secret: followed by the watch, used at the next reload.
    key_secret(&cluster, &signing_key);
    eventually("the rotated key in use", || {
        let state = state.clone();
        async move {
            let (_, metrics) = get(&state, "/metrics").await;
            metrics.contains("portcullis_trust_reloads_total{result=\"success\"} 1")
        }
    })
    .await;
    let answer = decide(&state, &private.image).await;
    assert_eq!(answer["response"]["allowed"], true, "{answer}");
    let (_, metrics) = get(&state, "/metrics").await;
    assert!(
        metrics.contains("portcullis_kube_watch_stale_seconds{watch=\"secrets/release-signing\"} 0"),
        "the Secret's watch is reported, and current: {metrics}"
    );

    stop.send(true).unwrap();
    reloads.await.unwrap();
}
