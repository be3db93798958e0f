//! The server on real sockets and real TLS: protocol versions, certificate rotation through kubelet's `..data`
//! symlink swap while a client keeps sending, graceful shutdown, and policy hot reload.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

use common::volume::MountedVolume;
use common::*;
use portcullis::policy::Source;
use portcullis::server::certs::{self, CertBundle};
use portcullis::server::{AppState, Server};

const ENDLESS: &str = "package slow\ndeny contains \"never\" if {\n  input.request\n  some i in numbers.range(1, 2000)\n  some j in numbers.range(1, 2000)\n  some k in numbers.range(1, 2000)\n  i + j + k < 0\n}\n";

/// The serving certificate's Secret volume.
fn tls_volume(bundle: &CertBundle) -> MountedVolume {
    MountedVolume::new(&tls_files(&bundle.cert, &bundle.key))
}

fn tls_files<'a>(cert: &'a str, key: &'a str) -> [(&'static str, &'a str); 2] {
    [("tls.crt", cert), ("tls.key", key)]
}

struct Running {
    addr: SocketAddr,
    operations: SocketAddr,
    state: AppState,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<(), portcullis::server::ServeError>>,
}

async fn start(extra_config: &str, volume: &MountedVolume, source: Source) -> Running {
    start_with(extra_config, "", volume, source).await
}

/// [`start`], with more `server` settings (`shutdownDelay: 2s, `).
async fn start_with(extra_config: &str, server: &str, volume: &MountedVolume, source: Source) -> Running {
    let yaml = format!(
        "{CONFIG}{extra_config}\nserver: {{ {server}listen: 127.0.0.1:0, metricsListen: 127.0.0.1:0, shutdownGracePeriod: 20s, tls: {{ certFile: {}, keyFile: {}, reloadInterval: 100ms }} }}\n",
        volume.path("tls.crt").display(),
        volume.path("tls.key").display()
    );
    let settings = settings(&yaml);
    let state = state_with_source(&settings, source.clone(), &[]);
    let server = Server::bind(state.clone(), settings, source).await.unwrap();
    let (addr, operations) = (server.webhook_addr().unwrap(), server.operations_addr().unwrap());
    let (shutdown, receiver) = watch::channel(false);
    let task = tokio::spawn(server.run(receiver));
    Running {
        addr,
        operations,
        state,
        shutdown,
        task,
    }
}

fn client(ca: &str, version: Option<reqwest::tls::Version>, fresh_connections: bool) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes()).unwrap())
        .timeout(Duration::from_secs(10));
    if let Some(version) = version {
        builder = builder.min_tls_version(version).max_tls_version(version);
    }
    if fresh_connections {
        builder = builder.pool_max_idle_per_host(0);
    }
    builder.build().unwrap()
}

async fn send(client: &reqwest::Client, addr: SocketAddr) -> Result<serde_json::Value, String> {
    let response = client
        .post(format!("https://localhost:{}/validate?timeout=10s", addr.port()))
        .header("content-type", "application/json")
        .body(fixture("reviews/policy/pod-pinned-clean.json"))
        .send()
        .await
        .map_err(|e| format!("{e:?}"))?;
    if response.status() != 200 {
        return Err(format!("status {}", response.status()));
    }
    response.json().await.map_err(|e| e.to_string())
}

/// A raw TLS connection to the webhook, trusting only `ca`.
async fn tls_connect(addr: SocketAddr, ca: &str) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca.as_bytes()).unwrap())
        .unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap()
}

/// The leaf certificate the server presents on a new connection.
async fn served_certificate(addr: SocketAddr, ca: &str) -> Vec<u8> {
    let tls = tls_connect(addr, ca).await;
    tls.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

fn der(pem: &str) -> Vec<u8> {
    CertificateDer::from_pem_slice(pem.as_bytes()).unwrap().to_vec()
}

#[tokio::test]
async fn serves_tls_1_2_and_1_3_over_http_1_1() {
    let bundle = certs::generate(&["localhost", "127.0.0.1"]).unwrap();
    let volume = tls_volume(&bundle);
    let running = start("", &volume, Source::Embedded).await;
    for version in [reqwest::tls::Version::TLS_1_2, reqwest::tls::Version::TLS_1_3] {
        let client = client(&bundle.ca_cert, Some(version), false);
        let response = client
            .post(format!("https://localhost:{}/validate", running.addr.port()))
            .body(fixture("reviews/policy/pod-pinned-clean.json"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{version:?}: {e:?}"));
        assert_eq!(response.version(), reqwest::Version::HTTP_11);
        let answer: serde_json::Value = response.json().await.unwrap();
        assert_eq!(answer["response"]["allowed"], true, "{version:?}");
    }
    let metrics = reqwest::get(format!("http://{}/metrics", running.operations))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("decision=\"allow\"} 2"), "{metrics}");
    running.shutdown.send(true).unwrap();
    running.task.await.unwrap().unwrap();
}

#[tokio::test]
async fn certificate_rotation_by_symlink_swap_fails_no_request() {
    let first = certs::generate(&["localhost"]).unwrap();
    let second = certs::reissue(&first, &["localhost"]).unwrap();
    let mut volume = tls_volume(&first);
    let running = start("", &volume, Source::Embedded).await;
    assert_eq!(served_certificate(running.addr, &first.ca_cert).await, der(&first.cert));

    // A client that opens a new TLS connection for every request keeps sending throughout.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let sender = {
        let (stop, ok, failed, ca, addr) = (
            stop.clone(),
            ok.clone(),
            failed.clone(),
            first.ca_cert.clone(),
            running.addr,
        );
        tokio::spawn(async move {
            let client = client(&ca, None, true);
            let mut errors = Vec::new();
            for _ in 0..5000 {
                if stop.load(Ordering::Acquire) {
                    break;
                }
                match send(&client, addr).await {
                    Ok(_) => ok.fetch_add(1, Ordering::AcqRel),
                    Err(e) => {
                        errors.push(e);
                        failed.fetch_add(1, Ordering::AcqRel)
                    }
                };
            }
            errors
        })
    };
    wait_until("5 answered requests", || ok.load(Ordering::Acquire) >= 5).await;
    volume.swap(&tls_files(&second.cert, &second.key));
    let rotated = try_poll_async(Duration::from_secs(5), Duration::from_millis(25), async || {
        (served_certificate(running.addr, &first.ca_cert).await == der(&second.cert)).then_some(())
    })
    .await
    .is_some();
    assert!(rotated, "the new certificate was never served");
    let after_rotation = ok.load(Ordering::Acquire);
    wait_until("5 more answered requests after the rotation", || {
        ok.load(Ordering::Acquire) >= after_rotation + 5
    })
    .await;
    stop.store(true, Ordering::Release);
    let errors = sender.await.unwrap();
    assert_eq!(
        failed.load(Ordering::Acquire),
        0,
        "failed requests during rotation: {errors:?}"
    );
    assert!(ok.load(Ordering::Acquire) >= 10);

    // A mixed pair (new certificate, old key) is never served: the last good pair stays. The
    // reload loop counts the refusal, so the check runs once the pair has been seen.
    let metrics = format!("http://{}/metrics", running.operations);
    let refused = tls_reload_failures(&metrics).await;
    let third = certs::reissue(&first, &["localhost"]).unwrap();
    volume.swap(&tls_files(&third.cert, &second.key));
    poll_async(
        "portcullis_tls_reloads_total{result=\"failure\"} to count the mixed pair",
        Duration::from_secs(10),
        Duration::from_millis(25),
        async || (tls_reload_failures(&metrics).await > refused).then_some(()),
    )
    .await;
    assert_eq!(
        served_certificate(running.addr, &first.ca_cert).await,
        der(&second.cert)
    );
    // Once the key arrives too, the pair is taken.
    volume.swap(&tls_files(&third.cert, &third.key));
    let taken = try_poll_async(Duration::from_secs(5), Duration::from_millis(25), async || {
        (served_certificate(running.addr, &first.ca_cert).await == der(&third.cert)).then_some(())
    })
    .await
    .is_some();
    assert!(taken);
    running.shutdown.send(true).unwrap();
    running.task.await.unwrap().unwrap();
}

#[tokio::test]
async fn shutdown_finishes_in_flight_reviews_and_closes_keep_alives() {
    let bundle = certs::generate(&["localhost"]).unwrap();
    let volume = tls_volume(&bundle);
    let dir = tempfile::tempdir().unwrap();
    write_library(dir.path(), &[("slow/policy.rego", ENDLESS)]);
    let running = start(
        "admission: { policyTimeout: 1s }\n",
        &volume,
        Source::Dirs(vec![dir.path().to_path_buf()]),
    )
    .await;

    // An idle keep-alive connection, after one request on it.
    let mut idle = open_keep_alive(running.addr, &bundle.ca_cert).await;

    // A review in flight (it runs until its 1 s policy limit).
    let in_flight = {
        let (ca, addr) = (bundle.ca_cert.clone(), running.addr);
        tokio::spawn(async move { send(&client(&ca, None, false), addr).await })
    };
    let evaluations = running.state.evaluations.clone();
    let capacity = evaluations.available_permits();
    wait_until("the review to take an evaluation slot", move || {
        evaluations.available_permits() < capacity
    })
    .await;

    running.shutdown.send(true).unwrap();
    let ready = format!("http://{}/readyz", running.operations);
    // 503 ends the wait; so does a refused connection (the listener already gone: too late).
    let not_ready = try_poll_async(
        Duration::from_secs(1),
        Duration::from_millis(5),
        async || match reqwest::get(&ready).await {
            Ok(response) if response.status() == 503 => Some(true),
            Err(_) => Some(false),
            _ => None,
        },
    )
    .await
    .unwrap_or(false);
    assert!(not_ready, "readiness never dropped while a review was still in flight");

    let answer = in_flight.await.unwrap().expect("the in-flight review is answered");
    assert_eq!(denied_by(&answer), ["slow"]);
    let mut buffer = [0u8; 64];
    let closed = tokio::time::timeout(Duration::from_secs(10), idle.read(&mut buffer)).await;
    assert!(
        matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
        "keep-alive connection was not closed: {closed:?}"
    );
    tokio::time::timeout(Duration::from_secs(10), running.task)
        .await
        .expect("server stopped")
        .unwrap()
        .unwrap();
    assert!(
        tokio::net::TcpStream::connect(running.addr).await.is_err(),
        "no longer accepting"
    );
}

#[tokio::test]
async fn past_the_pending_handshake_bound_a_connection_is_closed_before_tls_and_counted() {
    let bundle = certs::generate(&["localhost"]).unwrap();
    let volume = tls_volume(&bundle);
    let running = start_with("", "maxPendingHandshakes: 2, ", &volume, Source::Embedded).await;
    let metrics = format!("http://{}/metrics", running.operations);

    // Finished handshakes give their place back: three connections set up, all kept open.
    let mut established = Vec::new();
    for _ in 0..3 {
        established.push(open_keep_alive(running.addr, &bundle.ca_cert).await);
    }

    // Two clients that connect and never say hello hold both places (the listener takes
    // connections in the order they arrived); the third is closed without a byte of TLS.
    let silent = [
        tokio::net::TcpStream::connect(running.addr).await.unwrap(),
        tokio::net::TcpStream::connect(running.addr).await.unwrap(),
    ];
    let mut refused = tokio::net::TcpStream::connect(running.addr).await.unwrap();
    let mut buffer = [0u8; 16];
    // Within 2 s, well before the 10 s a handshake may take: closed at once, not timed out.
    let read = tokio::time::timeout(Duration::from_secs(2), refused.read(&mut buffer))
        .await
        .expect("the refused connection is closed at once");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    wait_for_metric(&metrics, "portcullis_connections_refused_total 1\n").await;

    // The connections already set up are still answered.
    for tls in &mut established {
        tls.write_all(b"GET /nothing HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await
            .unwrap();
        let read = tls.read(&mut buffer).await.unwrap();
        assert!(buffer[..read].starts_with(b"HTTP/1.1 404"));
    }

    // Once the silent clients leave, new connections are served again.
    drop(silent);
    let fresh = client(&bundle.ca_cert, None, true);
    poll_async(
        "a new connection to be served",
        Duration::from_secs(10),
        Duration::from_millis(20),
        async || send(&fresh, running.addr).await.ok(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_answers_every_review_sent_and_counts_each_once() {
    let bundle = certs::generate(&["localhost"]).unwrap();
    let volume = tls_volume(&bundle);
    let running = start_with("", "shutdownDelay: 3s, ", &volume, Source::Embedded).await;
    let url = format!("https://localhost:{}/validate?timeout=10s", running.addr.port());
    let client = common::load::Client::new(&url, &bundle.ca_cert, Duration::from_secs(10), 1000);
    let targets = [
        "reviews/policy/pod-pinned-clean.json",
        "reviews/policy/pod-privileged.json",
    ]
    .map(|name| common::load::Target {
        name: name.to_string(),
        body: Arc::new(fixture(name)),
    });
    let metrics = format!("http://{}/metrics", running.operations);
    let reviews_counted = async || common::load::reviews_counted(&scrape(&metrics).await);
    let before = reviews_counted().await;

    // 40 reviews a second for 3 s; the signal (the shutdown watch `serve` turns on at SIGTERM)
    // after 1 s: the server keeps serving through its 3 s shutdown delay.
    let (samples, ()) = tokio::join!(client.attack(&targets, 40.0, Duration::from_secs(3)), async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        running.shutdown.send(true).unwrap();
    });
    let summary = common::load::Summary::of(&samples);
    assert_eq!(summary.requests, 120);
    assert_eq!(summary.errors, 0, "{:?}", common::load::Summary::errors_of(&samples));
    assert_eq!(summary.allowed + summary.denied, 120, "{summary:?}");
    assert_eq!(reviews_counted().await - before, 120.0, "each review counted once");
    tokio::time::timeout(Duration::from_secs(20), running.task)
        .await
        .expect("server stopped")
        .unwrap()
        .unwrap();
}

async fn open_keep_alive(addr: SocketAddr, ca: &str) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let mut tls = tls_connect(addr, ca).await;
    tls.write_all(b"GET /nothing HTTP/1.1\r\nHost: localhost\r\nConnection: keep-alive\r\n\r\n")
        .await
        .unwrap();
    let mut buffer = vec![0u8; 4096];
    let read = tls.read(&mut buffer).await.unwrap();
    assert!(
        String::from_utf8_lossy(&buffer[..read]).starts_with("HTTP/1.1 404"),
        "{}",
        String::from_utf8_lossy(&buffer[..read])
    );
    tls
}

/// Polls a condition, bounded to 10 s.
async fn wait_until(what: &str, condition: impl Fn() -> bool) {
    poll_async(what, Duration::from_secs(10), Duration::from_millis(5), async || {
        condition().then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_bad_policy_update_keeps_the_last_good_set() {
    let bundle = certs::generate(&["localhost"]).unwrap();
    let volume = tls_volume(&bundle);
    let dir = tempfile::tempdir().unwrap();
    write_library(
        dir.path(),
        &[(
            "first/policy.rego",
            "package first\ndeny contains \"first says no\" if input.request\n",
        )],
    );
    let running = start(
        "policies: { reloadInterval: 100ms }\n",
        &volume,
        Source::Dirs(vec![dir.path().to_path_buf()]),
    )
    .await;
    let client = client(&bundle.ca_cert, None, false);
    let metrics = format!("http://{}/metrics", running.operations);
    assert_eq!(denied_by(&send(&client, running.addr).await.unwrap()), ["first"]);

    std::fs::write(
        dir.path().join("first/policy.rego"),
        "package first\ndeny contains if {\n",
    )
    .unwrap();
    wait_for_metric(&metrics, "portcullis_policy_reloads_total{result=\"failure\"} 1").await;
    assert_eq!(
        denied_by(&send(&client, running.addr).await.unwrap()),
        ["first"],
        "the last good set stays"
    );

    std::fs::remove_dir_all(dir.path().join("first")).unwrap();
    write_library(
        dir.path(),
        &[(
            "second/policy.rego",
            "package second\ndeny contains \"second says no\" if input.request\n",
        )],
    );
    wait_for_metric(&metrics, "portcullis_policy_reloads_total{result=\"success\"} 1").await;
    assert_eq!(denied_by(&send(&client, running.addr).await.unwrap()), ["second"]);

    // Gatekeeper templates and constraints reload the same way: a constraint that does not fit
    // its template's schema is refused, a fixed one is loaded.
    let gatekeeper = |message: &str| SAYS_NO.replace("MESSAGE", message);
    write_library(dir.path(), &[("gatekeeper/says-no.yaml", &gatekeeper("3"))]);
    wait_for_metric(&metrics, "portcullis_policy_reloads_total{result=\"failure\"} 2").await;
    assert_eq!(denied_by(&send(&client, running.addr).await.unwrap()), ["second"]);
    write_library(dir.path(), &[("gatekeeper/says-no.yaml", &gatekeeper("\"no\""))]);
    wait_for_metric(&metrics, "portcullis_policy_reloads_total{result=\"success\"} 2").await;
    assert_eq!(
        denied_by(&send(&client, running.addr).await.unwrap()),
        ["K8sSaysNo/no", "second"]
    );
    running.shutdown.send(true).unwrap();
    running.task.await.unwrap().unwrap();
}

/// A ConstraintTemplate whose constraint denies everything with its `message` parameter.
const SAYS_NO: &str = r#"
apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata: {name: k8ssaysno}
spec:
  crd:
    spec:
      names: {kind: K8sSaysNo}
      validation:
        openAPIV3Schema:
          properties: {message: {type: string}}
  targets:
  - target: admission.k8s.gatekeeper.sh
    rego: |
      package k8ssaysno
      violation[{"msg": input.parameters.message}] { input.review.object }
---
apiVersion: constraints.gatekeeper.sh/v1beta1
kind: K8sSaysNo
metadata: {name: no}
spec: {parameters: {message: MESSAGE}}
"#;

/// Polls /metrics until it shows `line`, bounded to 10 s.
async fn wait_for_metric(url: &str, line: &str) {
    poll_async(line, Duration::from_secs(10), Duration::from_millis(25), async || {
        scrape(url).await.contains(line).then_some(())
    })
    .await;
}

async fn scrape(url: &str) -> String {
    reqwest::get(url).await.unwrap().text().await.unwrap()
}

/// `portcullis_tls_reloads_total{result="failure"}` from /metrics (0 before the first).
async fn tls_reload_failures(url: &str) -> f64 {
    scrape(url)
        .await
        .lines()
        .filter(|line| line.starts_with("portcullis_tls_reloads_total{") && line.contains("result=\"failure\""))
        .filter_map(|line| line.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

/// `serve` on one core evaluates on its only worker: the review still stops at its deadline
/// (long before the policy's own time limit), and the probes answer while it runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn on_one_core_a_review_stops_at_its_deadline_and_the_probes_still_answer() {
    let bundle = certs::generate(&["localhost"]).unwrap();
    let volume = tls_volume(&bundle);
    let dir = tempfile::tempdir().unwrap();
    write_library(dir.path(), &[("slow/policy.rego", ENDLESS)]);
    let running = start(
        "admission: { policyTimeout: 20s }\n",
        &volume,
        Source::Dirs(vec![dir.path().to_path_buf()]),
    )
    .await;

    // The probe runs on a thread of its own: the test's runtime has the one worker too.
    let (evaluations, operations) = (running.state.evaluations.clone(), running.operations);
    let capacity = evaluations.available_permits();
    let probe = std::thread::spawn(move || {
        let taken = (0..2000).any(|_| {
            std::thread::sleep(Duration::from_millis(5));
            evaluations.available_permits() < capacity
        });
        assert!(taken, "the review never took a slot");
        let mut stream = std::net::TcpStream::connect(operations).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        std::io::Write::write_all(&mut stream, b"GET /healthz HTTP/1.0\r\n\r\n").unwrap();
        let mut answer = String::new();
        std::io::Read::read_to_string(&mut stream, &mut answer).unwrap();
        (answer, std::time::Instant::now())
    });

    let started = std::time::Instant::now();
    let response = client(&bundle.ca_cert, None, false)
        .post(format!("https://localhost:{}/validate?timeout=2s", running.addr.port()))
        .header("content-type", "application/json")
        .body(fixture("reviews/policy/pod-pinned-clean.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let answer: serde_json::Value = response.json().await.unwrap();
    let answered = std::time::Instant::now();
    assert_eq!(answer["response"]["allowed"], false, "{answer}");
    assert!(
        answered - started < Duration::from_secs(10),
        "answered after {:?}: the deadline (2 s) did not stop the 20 s policy",
        answered - started
    );
    let (probe, probed) = probe.join().unwrap();
    assert!(probe.starts_with("HTTP/1.0 200"), "{probe}");
    assert!(probed < answered, "the probe waited for the evaluation");
    let _ = running.shutdown.send(true);
}
