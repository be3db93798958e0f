//! Registry access as fleets need it, against Debian's docker-registry: credentials from a
//! docker config (a registry that requires a login, with htpasswd; the login `check` and
//! `verify` find as docker does), proof that credentials go only to the host they are for,
//! pull tokens from a real token auth kept and reused, and a registry that asks to come back
//! (429 and 503 with Retry-After, through a proxy in front of it).

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use serde_json::json;

use common::lab::PrivateRegistry;
use common::*;
use portcullis::config::Config;
use portcullis::images::pull_secrets::PullSecretRefs;
use portcullis::images::verify::Verifier;
use portcullis::images::{ImageReference, VerificationStatus};
use portcullis::metrics::Metrics;

/// A fake registry that answers every request with `reply` and records the request heads.
fn fake_registry(reply: String) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(50).flatten() {
            stream.set_read_timeout(Some(Duration::from_secs(5))).ok();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut head = String::new();
            while reader.read_line(&mut head).is_ok_and(|n| n > 2) && !head.ends_with("\r\n\r\n") {}
            record.lock().unwrap().push(head);
            let mut stream = stream;
            let _ = stream.write_all(reply.as_bytes());
        }
    });
    (addr, seen)
}

fn unauthorized(challenge: &str) -> String {
    format!(
        "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: {challenge}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
}

async fn verify(yaml: &str, image: &str) -> portcullis::images::Verification {
    let settings = settings(yaml);
    let verifier = Arc::new(Verifier::new(settings.trust.clone(), Arc::new(Metrics::new())).unwrap());
    let image = ImageReference::parse(image).unwrap();
    verifier
        .verify(
            &image,
            &PullSecretRefs::default(),
            std::time::Instant::now() + Duration::from_secs(20),
        )
        .await
        .verification
}

#[tokio::test]
async fn a_private_registry_is_read_with_its_own_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let private = PrivateRegistry::start(dir.path());
    let image = &private.image;
    let login = format!("dockerConfig: {}", private.docker_config.join("config.json").display());
    let trust = |with_login: bool| private.config(if with_login { &login } else { "" });
    let with_login = verify(&trust(true), image).await;
    assert_eq!(with_login.status, VerificationStatus::Verified, "{with_login:?}");

    let without = verify(&trust(false), image).await;
    assert_eq!(
        without.status,
        VerificationStatus::Error,
        "a refused login is an error, never unsigned: {without:?}"
    );
    assert!(without.reason.contains("401"), "{}", without.reason);
}

#[tokio::test]
async fn credentials_never_go_to_another_host() {
    let dir = tempfile::tempdir().unwrap();
    // Registry A has credentials configured; B does not and asks for Basic auth.
    let (a, _) = fake_registry(unauthorized("Basic realm=\"a\""));
    let (b, seen_by_b) = fake_registry(unauthorized("Basic realm=\"b\""));
    // Registry C (with credentials) sends its token requests to a token service on host D.
    let (d, seen_by_d) = fake_registry("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 15\r\nConnection: close\r\n\r\n{\"token\":\"t-1\"}".into());
    let (c, seen_by_c) = fake_registry(unauthorized(&format!(
        "Bearer realm=\"http://{d}/token\",service=\"c\""
    )));
    let auths = json!({"auths": {
        a.clone(): {"auth": base64::engine::general_purpose::STANDARD.encode("ci:for-a")},
        c.clone(): {"auth": base64::engine::general_purpose::STANDARD.encode("ci:for-c")},
    }});
    std::fs::write(dir.path().join("config.json"), auths.to_string()).unwrap();
    let key = dir.path().join("k.pub");
    std::fs::write(&key, rcgen::KeyPair::generate().unwrap().public_key_pem()).unwrap();
    let yaml = format!(
        "images:\n  registries: {{ allow: [\"{a}\", \"{b}\", \"{c}\", \"{d}\"], insecure: [\"{a}\", \"{b}\", \"{c}\", \"{d}\"] }}\n  verification: {{ dockerConfig: {} }}\n  trust:\n    - name: all\n      images: [\"{a}/**\", \"{b}/**\", \"{c}/**\"]\n      authorities: [{{ name: k, key: {{ path: {} }} }}]\n",
        dir.path().join("config.json").display(),
        key.display()
    );
    let digest = format!("sha256:{}", "d".repeat(64));

    let on_b = verify(&yaml, &format!("{b}/app@{digest}")).await;
    assert_eq!(on_b.status, VerificationStatus::Error);
    let requests = seen_by_b.lock().unwrap().clone();
    assert!(!requests.is_empty(), "B was asked");
    assert!(
        requests
            .iter()
            .all(|r| !r.to_ascii_lowercase().contains("authorization:")),
        "A's credentials went to B: {requests:?}"
    );

    let on_c = verify(&yaml, &format!("{c}/app@{digest}")).await;
    assert_eq!(on_c.status, VerificationStatus::Error, "{on_c:?}");
    let token_requests = seen_by_d.lock().unwrap().clone();
    assert!(!token_requests.is_empty(), "C's token service was asked");
    assert!(
        token_requests
            .iter()
            .all(|r| !r.to_ascii_lowercase().contains("authorization:")),
        "C's credentials went to another host: {token_requests:?}"
    );
    let to_c = seen_by_c.lock().unwrap().clone();
    assert!(
        to_c.iter()
            .any(|r| r.to_ascii_lowercase().contains("authorization: bearer t-1")),
        "the token was used at C: {to_c:?}"
    );
}

#[test]
fn verify_and_check_read_the_login_docker_and_cosign_would_read() {
    let dir = tempfile::tempdir().unwrap();
    let private = PrivateRegistry::start(dir.path());
    let config = dir.path().join("portcullis.yaml");
    std::fs::write(&config, private.config("")).unwrap();
    let empty_home = dir.path().join("home");
    std::fs::create_dir_all(&empty_home).unwrap();
    let portcullis = |args: &[&str], env: &[(&str, &std::path::Path)]| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"));
        command.args(args).env_remove("DOCKER_CONFIG").env("HOME", &empty_home);
        for (key, value) in env {
            command.env(key, value);
        }
        command.output().unwrap()
    };
    let verify = |extra: &[&str], env: &[(&str, &std::path::Path)]| {
        let mut args = vec!["verify", "--config", config.to_str().unwrap(), "--output", "json"];
        args.extend(extra);
        args.push(&private.image);
        let output = portcullis(&args, env);
        let document: serde_json::Value = serde_json::from_slice(&output.stdout)
            .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&output.stderr)));
        document["verification"]["status"].as_str().unwrap().to_string()
    };
    assert_eq!(verify(&[], &[]), "error", "no login anywhere: the registry refuses");
    assert_eq!(verify(&[], &[("DOCKER_CONFIG", &private.docker_config)]), "verified");
    let file = private.docker_config.join("config.json");
    assert_eq!(verify(&["--docker-config", file.to_str().unwrap()], &[]), "verified");
    let home = dir.path().join("user");
    std::fs::create_dir_all(home.join(".docker")).unwrap();
    std::fs::copy(&file, home.join(".docker/config.json")).unwrap();
    assert_eq!(verify(&[], &[("HOME", &home)]), "verified", "~/.docker/config.json");

    // check, online, with the login from DOCKER_CONFIG: the signed image is admitted.
    let manifest = dir.path().join("pod.yaml");
    std::fs::write(
        &manifest,
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: app, namespace: team-a}}\nspec: {{containers: [{{name: app, image: '{}'}}]}}\n",
            private.image
        ),
    )
    .unwrap();
    let check = |env: &[(&str, &std::path::Path)]| {
        let args = [
            "check",
            "--config",
            config.to_str().unwrap(),
            "--output",
            "json",
            manifest.to_str().unwrap(),
        ];
        let output = portcullis(&args, env);
        let report: serde_json::Value = serde_json::from_slice(&output.stdout)
            .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&output.stderr)));
        let findings = report["results"][0]["findings"].as_array().unwrap().clone();
        findings.iter().any(|f| f["policy"] == "images.signatures")
    };
    assert!(check(&[]), "without the login the signature cannot be read");
    assert!(
        !check(&[("DOCKER_CONFIG", &private.docker_config)]),
        "with it, the image is verified"
    );
}

#[tokio::test]
async fn a_pull_token_is_asked_for_once_per_repository_and_reused_until_it_expires() {
    let dir = tempfile::tempdir().unwrap();
    let (tokens, issued) = common::tokens::token_service(dir.path());
    let auth = common::tokens::token_auth(dir.path(), &tokens);
    // Pushed while the registry is open (crane refuses a token service on a loopback
    // address), then served from the same storage behind the token auth.
    let (open, service) = common::lab::start_registry(dir.path(), "", std::process::Stdio::null());
    let crane = common::lab::tool("crane");
    let mut pushed: Vec<String> = (0..3)
        .map(|n| {
            let target = format!("{open}/tokens/app:{n}");
            common::lab::push_image(&crane, dir.path(), &target, &format!("t{n}"), &format!("build {n}"))
        })
        .collect();
    pushed.push(common::lab::push_image(
        &crane,
        dir.path(),
        &format!("{open}/tokens/other:1"),
        "o",
        "other",
    ));
    drop(service);
    let (registry, _service) = common::lab::start_registry(dir.path(), &auth, std::process::Stdio::null());
    let mut images: Vec<String> = pushed.iter().map(|image| image.replace(&open, &registry)).collect();
    let other = images.pop().unwrap();

    let key = dir.path().join("k.pub");
    std::fs::write(&key, rcgen::KeyPair::generate().unwrap().public_key_pem()).unwrap();
    let yaml = format!(
        "images:\n  registries: {{ allow: [\"{registry}\", \"{tokens}\"], insecure: [\"{registry}\", \"{tokens}\"] }}\n  trust:\n    - name: all\n      images: [\"{registry}/**\"]\n      authorities: [{{ name: k, key: {{ path: {} }} }}]\n",
        key.display()
    );
    let settings = settings(&yaml);
    let verifier = Arc::new(Verifier::new(settings.trust.clone(), Arc::new(Metrics::new())).unwrap());
    let verify = |image: String| {
        let verifier = &verifier;
        async move {
            let image = ImageReference::parse(&image).unwrap();
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            verifier
                .verify(&image, &PullSecretRefs::default(), deadline)
                .await
                .verification
        }
    };
    let before = *issued.lock().unwrap();
    for image in &images {
        // Each verification asks the registry several things (referrers, signatures,
        // attestations), each behind the token auth.
        let verification = verify(image.clone()).await;
        assert_eq!(
            verification.status,
            VerificationStatus::Unsigned,
            "{image}: {verification:?}"
        );
    }
    assert_eq!(
        *issued.lock().unwrap() - before,
        1,
        "one token for three verifications of one repository"
    );
    let verification = verify(other).await;
    assert_eq!(verification.status, VerificationStatus::Unsigned, "{verification:?}");
    assert_eq!(*issued.lock().unwrap() - before, 2, "another repository: its own token");
}

/// A proxy in front of `registry` that answers the first `throttled` requests `status` (429 Too
/// Many Requests or 503 Service Unavailable) with `Retry-After: retry_after`, then forwards
/// each request (method, path, Accept) and its answer. Returns its address and how many
/// requests it received.
fn throttling_proxy(
    registry: String,
    status: &'static str,
    throttled: usize,
    retry_after: &'static str,
) -> (String, Arc<Mutex<usize>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let received = Arc::new(Mutex::new(0));
    let count = received.clone();
    std::thread::spawn(move || {
        let client = reqwest::blocking::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        for stream in listener.incoming().flatten() {
            stream.set_read_timeout(Some(Duration::from_secs(5))).ok();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut head = String::new();
            while reader.read_line(&mut head).is_ok_and(|n| n > 2) && !head.ends_with("\r\n\r\n") {}
            let seen = {
                let mut count = count.lock().unwrap();
                *count += 1;
                *count
            };
            let mut stream = stream;
            if seen <= throttled {
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\nRetry-After: {retry_after}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
                continue;
            }
            let mut words = head.split_whitespace();
            let (method, path) = (words.next().unwrap_or("GET"), words.next().unwrap_or("/"));
            let accept = head
                .lines()
                .find_map(|line| line.strip_prefix("accept: ").or_else(|| line.strip_prefix("Accept: ")))
                .unwrap_or("*/*");
            let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
            let answer = client
                .request(method, format!("http://{registry}{path}"))
                .header("Accept", accept)
                .send()
                .unwrap();
            let status = answer.status();
            let mut out = format!(
                "HTTP/1.1 {} {}\r\n",
                status.as_u16(),
                status.canonical_reason().unwrap_or("")
            );
            for name in ["content-type", "docker-content-digest"] {
                if let Some(value) = answer.headers().get(name).and_then(|v| v.to_str().ok()) {
                    out.push_str(&format!("{name}: {value}\r\n"));
                }
            }
            let body = answer.bytes().unwrap();
            out.push_str(&format!("Content-Length: {}\r\nConnection: close\r\n\r\n", body.len()));
            let _ = stream.write_all(out.as_bytes());
            let _ = stream.write_all(&body);
        }
    });
    (addr, received)
}

/// The lab's registry with one image, `micro/app:1` holding `content`, signed with the lab's
/// key `trusted`; the image pinned.
fn lab_with_a_signed_image(content: &str) -> (common::lab::Lab, String) {
    let lab = common::lab::Lab::start();
    lab.generate_key("trusted");
    let pushed = lab.push("signed", "micro/app", "1", content);
    lab.sign("trusted.key", &pushed);
    (lab, pushed)
}

#[tokio::test]
async fn a_registry_that_asks_to_come_back_is_retried_when_it_says_within_the_deadline() {
    let (lab, pushed) = lab_with_a_signed_image("throttled build");
    let config = |proxy: &str| {
        format!(
            "images:\n  registries: {{ allow: [\"{proxy}\"], insecure: [\"{proxy}\"] }}\n  trust:\n    - name: all\n      images: [\"{proxy}/**\"]\n      authorities: [{{ name: k, key: {{ path: {} }} }}]\n",
            lab.key("trusted").display()
        )
    };
    let verify_through = |proxy: String| {
        let settings = settings(&config(&proxy));
        let image = pushed.replace(&lab.registry, &proxy);
        async move {
            let metrics = Arc::new(Metrics::new());
            let verifier = Arc::new(Verifier::new(settings.trust.clone(), metrics.clone()).unwrap());
            let image = ImageReference::parse(&image).unwrap();
            let started = std::time::Instant::now();
            let deadline = started + Duration::from_secs(10);
            let verification = verifier
                .verify(&image, &PullSecretRefs::default(), deadline)
                .await
                .verification;
            (verification, started.elapsed(), metrics.encode())
        }
    };

    // Two 429s, then two 503s, saying "in a second" (the verification's first requests, sent
    // together): waited for, then the answers.
    for (status, code) in [("429 Too Many Requests", "429"), ("503 Service Unavailable", "503")] {
        let (proxy, received) = throttling_proxy(lab.registry.clone(), status, 2, "1");
        let (verification, took, metrics) = verify_through(proxy.clone()).await;
        assert_eq!(
            verification.status,
            VerificationStatus::Verified,
            "{code}: {verification:?}"
        );
        assert!(took >= Duration::from_secs(1), "{code}: it waited as asked: {took:?}");
        let throttled = format!("portcullis_registry_requests_total{{registry=\"{proxy}\",code=\"{code}\"}} 2");
        assert!(metrics.contains(&throttled), "{metrics}");
        assert!(*received.lock().unwrap() > 2);
    }

    // "In two minutes": past what a review may wait, so not waited for at all.
    let (proxy, _) = throttling_proxy(lab.registry.clone(), "429 Too Many Requests", usize::MAX, "120");
    let (verification, took, _) = verify_through(proxy).await;
    assert_eq!(verification.status, VerificationStatus::Error, "{verification:?}");
    assert!(verification.reason.contains("429"), "{}", verification.reason);
    assert!(took < Duration::from_secs(3), "not waited for: {took:?}");
}

#[tokio::test]
async fn a_registry_with_a_private_ca_is_trusted_for_its_host_only() {
    let (lab, pushed) = lab_with_a_signed_image("served over TLS");
    // The same storage, served over HTTPS with a certificate of a private CA.
    let bundle = portcullis::server::certs::generate(&["127.0.0.1"]).unwrap();
    let tls = lab.dir.path().join("tls");
    std::fs::create_dir_all(&tls).unwrap();
    std::fs::write(tls.join("cert.pem"), &bundle.cert).unwrap();
    std::fs::write(tls.join("key.pem"), &bundle.key).unwrap();
    std::fs::write(tls.join("ca.pem"), &bundle.ca_cert).unwrap();
    std::fs::write(
        tls.join("other-ca.pem"),
        portcullis::server::certs::generate(&["x"]).unwrap().ca_cert,
    )
    .unwrap();
    let config = tls.join("registry.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nstorage: {{filesystem: {{rootdirectory: {}}}}}\nhttp: {{addr: 127.0.0.1:0, tls: {{certificate: {}, key: {}}}}}\nlog: {{level: error}}\n",
            lab.dir.path().join("data").display(),
            tls.join("cert.pem").display(),
            tls.join("key.pem").display()
        ),
    )
    .unwrap();
    let service = common::lab::Service::spawn(
        &common::lab::tool("registry"),
        &["serve", config.to_str().unwrap()],
        &tls.join("registry.log"),
        std::process::Stdio::null(),
    );
    let port = try_poll(Duration::from_secs(10), Duration::from_millis(50), || {
        common::lab::listening_port(&service)
    })
    .expect("the TLS registry listens");
    let registry = format!("127.0.0.1:{port}");
    let image = pushed.replace(&lab.registry, &registry);
    let verify_with = |ca: Option<&str>| {
        let ca_files = ca
            .map(|file| format!(", caFiles: {{\"{registry}\": {}}}", tls.join(file).display()))
            .unwrap_or_default();
        let yaml = format!(
            "images:\n  registries: {{ allow: [\"{registry}\"]{ca_files} }}\n  trust:\n    - name: all\n      images: [\"{registry}/**\"]\n      authorities: [{{ name: k, key: {{ path: {} }} }}]\n",
            lab.key("trusted").display()
        );
        let image = image.clone();
        async move { verify(&yaml, &image).await }
    };
    let without = verify_with(None).await;
    assert_eq!(
        without.status,
        VerificationStatus::Error,
        "a certificate of an unknown CA: {without:?}"
    );
    let wrong = verify_with(Some("other-ca.pem")).await;
    assert_eq!(wrong.status, VerificationStatus::Error, "another CA: {wrong:?}");
    let with = verify_with(Some("ca.pem")).await;
    assert_eq!(with.status, VerificationStatus::Verified, "its CA: {with:?}");

    let errors = Config::from_yaml(&format!(
        "images:\n  registries: {{ allow: [\"{registry}\"], caFiles: {{\"{registry}\": /nonexistent.pem, \"elsewhere.example.com\": {}}} }}\n",
        tls.join("key.pem").display()
    ))
    .unwrap()
    .validate(false)
    .unwrap_err()
    .0;
    assert!(
        errors.iter().any(|e| e.contains("cannot read \"/nonexistent.pem\"")),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.contains("\"elsewhere.example.com\" is not on images.registries.allow")),
        "{errors:?}"
    );
    assert!(
        errors.iter().any(|e| e.contains("holds no PEM certificate")),
        "{errors:?}"
    );
}
