//! Keyless (Fulcio certificate + Rekor bundle) image verification through the full webhook,
//! against real parts: Debian's docker-registry, images pushed with crane, signatures made by
//! real cosign against the local Fulcio + Rekor of `tests/sigstore-local` (`@sigstore/mock`
//! behind `server.mjs`), and the `trusted_root.json` that server writes given to portcullis as
//! `images.trustedRoot`. Each case is a Pod review answered by the in-process router.

mod common;

use std::collections::HashMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use base64::Engine as _;
use serde_json::Value;

use common::lab::{push_image, run, start_registry, tool, upload_blob};
use common::volume::MountedVolume;
use common::*;
use portcullis::policy::Source;
use portcullis::server::AppState;

const ISSUER: &str = "https://issuer.example";
const SUBJECT: &str = "alice@example.com";
/// The authority name every config here gives the keyless identity.
const AUTHORITY: &str = "release-signer";
/// cosign's annotation holding the Rekor bundle (SET + entry) of a classic signature.
const BUNDLE_ANNOTATION: &str = "dev.sigstore.cosign/bundle";
/// cosign's annotation holding an RFC 3161 timestamp of a classic signature.
const TIMESTAMP_ANNOTATION: &str = "dev.sigstore.cosign/rfc3161timestamp";

/// The lab: a registry, a local Sigstore and images signed in every way the cases need.
struct Lab {
    dir: tempfile::TempDir,
    registry: String,
    images: HashMap<&'static str, String>,
    /// The trusted root of the Sigstore that made the signatures.
    trusted_root: PathBuf,
    /// The trusted root of another local Sigstore (its own keys), which signed nothing here.
    foreign_root: PathBuf,
    /// Services live while these pipes are open: they close when the test binary exits.
    _services: Vec<Service>,
}

fn lab() -> &'static Lab {
    static LAB: OnceLock<Lab> = OnceLock::new();
    // Set up on a plain thread: the setup blocks, and tests call this from async code.
    LAB.get_or_init(|| std::thread::spawn(Lab::start).join().expect("lab setup"))
}

fn sigstore_local() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sigstore-local")
}

/// A local Sigstore (Fulcio + CT log + Rekor) on a free loopback port.
struct Sigstore {
    url: String,
    state: PathBuf,
    service: Service,
}

impl Sigstore {
    fn start(state: &Path, options: &[&str]) -> Sigstore {
        let node = PathBuf::from("node");
        let server = sigstore_local().join("server.mjs");
        let mut args = vec![server.to_str().unwrap(), state.to_str().unwrap(), "0", "--quiet"];
        args.extend_from_slice(options);
        let log = state.with_extension("log");
        let mut service = Service::spawn(&node, &args, &log, Stdio::piped());
        // The server prints exactly one JSON line once it listens; read it with a bound.
        let stdout = service.child.stdout.take().unwrap();
        let (send, receive) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = std::io::BufReader::new(stdout).read_line(&mut line);
            let _ = send.send(line);
        });
        let line = receive.recv_timeout(Duration::from_secs(60)).unwrap_or_default();
        let info: Value = serde_json::from_str(&line).unwrap_or_else(|_| {
            panic!(
                "server.mjs did not start: {line:?} {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            )
        });
        let url = info["url"].as_str().unwrap().to_string();
        assert!(url.starts_with("http://127.0.0.1:"), "{url}");
        Sigstore {
            url,
            state: state.to_path_buf(),
            service,
        }
    }

    fn trusted_root(&self) -> PathBuf {
        self.state.join("trusted_root.json")
    }
}

/// `npm ci` in tests/sigstore-local when its node_modules (not committed) is missing.
fn install_sigstore_local() {
    if sigstore_local().join("node_modules/@sigstore/mock").is_dir() {
        return;
    }
    run(Command::new("timeout")
        .args(["600", "npm", "ci", "--no-audit", "--no-fund"])
        .current_dir(sigstore_local()));
}

impl Lab {
    fn start() -> Lab {
        let dir = tempfile::tempdir().unwrap();
        let (cosign, cosign3, crane) = (tool("cosign"), tool("cosign3"), tool("crane"));
        install_sigstore_local();
        let mut services = Vec::new();

        // --- the registry
        let (registry, registry_service) = start_registry(dir.path(), "", Stdio::null());
        services.push(registry_service);

        // --- the Sigstores
        let sigstore = Sigstore::start(&dir.path().join("sigstore"), &[]);
        // Another Sigstore, with keys of its own: only its trusted root is used.
        let foreign = Sigstore::start(&dir.path().join("foreign"), &[]);
        let foreign_root = foreign.trusted_root();
        foreign.service.stop();
        // The same Sigstore (a copy of its state: the same CA, CT log and Rekor keys) with its
        // clock frozen two hours ago. The mock freezes Fulcio's and Rekor's time together, so
        // signing with this Fulcio and the live Rekor gives a certificate that had expired (10
        // minutes of life) when Rekor logged the signature.
        let past_state = dir.path().join("sigstore-past");
        run(Command::new("cp").arg("-r").arg(&sigstore.state).arg(&past_state));
        let clock = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
            - 2 * 3600;
        let clock_text = run(Command::new("date").args(["-u", "-d", &format!("@{clock}"), "+%Y-%m-%dT%H:%M:%SZ"]));
        let past = Sigstore::start(&past_state, &[&format!("--clock={clock_text}")]);

        // --- the images
        let mut images = HashMap::new();
        let mut push = |name: &'static str| {
            let pinned = push_image(&crane, dir.path(), &format!("{registry}/keyless/{name}:1"), name, name);
            images.insert(name, pinned.clone());
            pinned
        };

        let tuf = dir.path().join("tuf");
        let trusted_root = sigstore.trusted_root();
        // cosign keyless: a token for the identity, a certificate from `fulcio`, the signature
        // logged in `rekor`; always the local trusted root, so cosign never reaches for the
        // public TUF repository.
        let keyless_with = |cosign: &Path,
                            what: &[&str],
                            image: &str,
                            issuer: &str,
                            subject: &str,
                            fulcio: &Sigstore,
                            rekor: &Sigstore| {
            let token = run(Command::new("timeout")
                .args(["30", "node"])
                .arg(sigstore_local().join("token.mjs"))
                .args([issuer, subject]));
            run(Command::new("timeout")
                .arg("120")
                .arg(cosign)
                .current_dir(dir.path())
                .env("TUF_ROOT", &tuf)
                .env_remove("SIGSTORE_ROOT_FILE")
                .env_remove("SIGSTORE_REKOR_PUBLIC_KEY")
                .env_remove("SIGSTORE_CT_LOG_PUBLIC_KEY_FILE")
                .args(what)
                .args(["--yes", "--fulcio-url", &fulcio.url, "--rekor-url", &rekor.url])
                .args(["--identity-token", &token, "--trusted-root"])
                .arg(&trusted_root)
                .args(["--allow-insecure-registry", "--allow-http-registry", image]));
        };
        let cosign_keyless =
            |what: &[&str], image: &str, issuer: &str, subject: &str, fulcio: &Sigstore, rekor: &Sigstore| {
                keyless_with(&cosign, what, image, issuer, subject, fulcio, rekor)
            };
        let sign = |image: &str, issuer: &str, subject: &str, fulcio: &Sigstore, rekor: &Sigstore| {
            cosign_keyless(&["sign"], image, issuer, subject, fulcio, rekor)
        };
        let sbom = dir.path().join("sbom.json");
        std::fs::write(
            &sbom,
            r#"{"bomFormat": "CycloneDX", "specVersion": "1.5", "components": []}"#,
        )
        .unwrap();
        let attest_sbom = |image: &str, subject: &str, fulcio: &Sigstore, rekor: &Sigstore| {
            let predicate = ["attest", "--type", "cyclonedx", "--predicate", sbom.to_str().unwrap()];
            cosign_keyless(&predicate, image, ISSUER, subject, fulcio, rekor)
        };
        let alice = push("alice");
        sign(&alice, ISSUER, SUBJECT, &sigstore, &sigstore);
        let mallory = push("mallory");
        sign(&mallory, ISSUER, "mallory@example.com", &sigstore, &sigstore);
        let evil_issuer = push("evil-issuer");
        sign(&evil_issuer, "https://evil.example", SUBJECT, &sigstore, &sigstore);
        // Certificate and Rekor entry both two hours old: the certificate has expired since,
        // but it was valid when Rekor logged the signature.
        let old = push("old");
        sign(&old, ISSUER, SUBJECT, &past, &past);
        // Certificate two hours old, Rekor entry now: expired at the integrated time.
        let expired = push("expired");
        sign(&expired, ISSUER, SUBJECT, &past, &sigstore);
        // The same, then its Rekor bundle replaced with the one of `old`: a genuine bundle, by
        // the trusted Rekor key, whose integrated time is inside the certificate's validity,
        // but which logs another signature.
        let borrowed = push("borrowed");
        sign(&borrowed, ISSUER, SUBJECT, &past, &sigstore);
        // What the time cases rest on: the past Fulcio's certificates are valid from `clock`
        // for 10 minutes (server.mjs); `old` was logged at `clock`, `expired` and `borrowed` now.
        assert_eq!(integrated_time(&registry, &old), clock);
        for image in [&expired, &borrowed] {
            assert!(integrated_time(&registry, image) > clock + 600, "{image}");
        }
        let old_bundle = manifest(&registry, &old, "sig")["layers"][0]["annotations"][BUNDLE_ANNOTATION].clone();
        edit_manifest(&registry, &borrowed, "sig", |manifest| {
            manifest["layers"][0]["annotations"][BUNDLE_ANNOTATION] = old_bundle;
        });

        // Keyless SBOM attestations: by the trusted identity; by another subject; two hours old
        // (certificate and log entry, like `old`); and, like `borrowed`, one with a two-hour-old
        // certificate whose Rekor bundle was swapped for that of `old-sbom`: a genuine bundle,
        // inside the certificate's validity, logging another envelope.
        attest_sbom(&alice, SUBJECT, &sigstore, &sigstore);
        let mallory_sbom = push("mallory-sbom");
        sign(&mallory_sbom, ISSUER, SUBJECT, &sigstore, &sigstore);
        attest_sbom(&mallory_sbom, "mallory@example.com", &sigstore, &sigstore);
        let old_sbom = push("old-sbom");
        sign(&old_sbom, ISSUER, SUBJECT, &past, &past);
        attest_sbom(&old_sbom, SUBJECT, &past, &past);
        let borrowed_sbom = push("borrowed-sbom");
        sign(&borrowed_sbom, ISSUER, SUBJECT, &past, &past);
        attest_sbom(&borrowed_sbom, SUBJECT, &past, &sigstore);
        let old_sbom_bundle =
            manifest(&registry, &old_sbom, "att")["layers"][0]["annotations"][BUNDLE_ANNOTATION].clone();
        assert!(
            old_sbom_bundle.is_string(),
            "cosign wrote no Rekor bundle on the attestation"
        );
        edit_manifest(&registry, &borrowed_sbom, "att", |manifest| {
            manifest["layers"][0]["annotations"][BUNDLE_ANNOTATION] = old_sbom_bundle;
        });

        // Sigstore bundles in the OCI referrers, keyless: cosign 3 with its defaults (the
        // explicit URLs instead of a signing config from the public TUF repository) and cosign
        // 2 with --new-bundle-format. Signed and SBOM-attested by alice with each; signed by
        // alice, attested by mallory; a two-hour-old certificate logged now (expired at the
        // integrated time), signing and attesting; and both formats of alice on one image.
        // cosign 3 checks the bundle it made and refuses one whose certificate had expired when
        // it was logged or timestamped; cosign 2 writes it, so it makes those.
        let v3 = |what: &[&str], image: &str, subject: &str| {
            let what = [what, &["--use-signing-config=false"]].concat();
            keyless_with(&cosign3, &what, image, ISSUER, subject, &sigstore, &sigstore)
        };
        let v2_bundle = |what: &[&str], image: &str, fulcio: &Sigstore| {
            let what = [what, &["--new-bundle-format"]].concat();
            keyless_with(&cosign, &what, image, ISSUER, SUBJECT, fulcio, &sigstore)
        };
        let sbom_args = ["attest", "--type", "cyclonedx", "--predicate", sbom.to_str().unwrap()];
        let bundled_v3 = push("bundled-v3");
        v3(&["sign"], &bundled_v3, SUBJECT);
        v3(&sbom_args, &bundled_v3, SUBJECT);
        let bundled_v2 = push("bundled-v2");
        v2_bundle(&["sign"], &bundled_v2, &sigstore);
        v2_bundle(&sbom_args, &bundled_v2, &sigstore);
        let bundled_mallory_sbom = push("bundled-mallory-sbom");
        v3(&["sign"], &bundled_mallory_sbom, SUBJECT);
        v3(&sbom_args, &bundled_mallory_sbom, "mallory@example.com");
        let bundled_expired = push("bundled-expired");
        v2_bundle(&["sign"], &bundled_expired, &past);
        let bundled_expired_sbom = push("bundled-expired-sbom");
        v3(&["sign"], &bundled_expired_sbom, SUBJECT);
        v2_bundle(&sbom_args, &bundled_expired_sbom, &past);
        // Like `borrowed-sbom` in the bundle format: the attestation bundle given the log entry
        // of the image's signing bundle (a genuine entry of the trusted log, another envelope).
        let bundled_borrowed_sbom = push("bundled-borrowed-sbom");
        v3(&["sign"], &bundled_borrowed_sbom, SUBJECT);
        v3(&sbom_args, &bundled_borrowed_sbom, SUBJECT);
        give_the_attestation_the_signature_log_entry(&registry, &bundled_borrowed_sbom);
        // Bundles with an RFC 3161 timestamp instead of a log entry: signed and attested now
        // (cosign 3); signed by a two-hour-old certificate stamped now (expired at the
        // timestamp's time, cosign 2); signed now, attested by such a certificate.
        let tsa = format!("{}/api/v1/timestamp", sigstore.url);
        let stamp_flags = ["--tlog-upload=false", "--timestamp-server-url", &tsa];
        let bundled_stamped = push("bundled-stamped");
        v3(&[&["sign"][..], &stamp_flags].concat(), &bundled_stamped, SUBJECT);
        v3(&[&sbom_args[..], &stamp_flags].concat(), &bundled_stamped, SUBJECT);
        let bundled_stamped_expired = push("bundled-stamped-expired");
        v2_bundle(&[&["sign"][..], &stamp_flags].concat(), &bundled_stamped_expired, &past);
        let bundled_stamped_expired_sbom = push("bundled-stamped-expired-sbom");
        v3(
            &[&["sign"][..], &stamp_flags].concat(),
            &bundled_stamped_expired_sbom,
            SUBJECT,
        );
        v2_bundle(
            &[&sbom_args[..], &stamp_flags].concat(),
            &bundled_stamped_expired_sbom,
            &past,
        );
        for bundle in Referrers::read(&registry, &bundled_stamped).bundles() {
            let material = &bundle["verificationMaterial"];
            assert!(
                material["tlogEntries"].as_array().is_none_or(Vec::is_empty),
                "a log entry: {material}"
            );
            assert!(
                material["timestampVerificationData"]["rfc3161Timestamps"][0]["signedTimestamp"].is_string(),
                "no timestamp: {material}"
            );
        }
        let both_formats = push("both-formats");
        sign(&both_formats, ISSUER, SUBJECT, &sigstore, &sigstore);
        v3(&["sign"], &both_formats, SUBJECT);
        for image in [&bundled_v3, &bundled_v2] {
            let (base, tag) = cosign_location(&registry, image, "sig");
            let status = reqwest::blocking::get(format!("{base}/manifests/{tag}"))
                .unwrap()
                .status();
            assert_eq!(status, 404, "{image} has a .sig tag: not signed as a bundle only");
        }

        // RFC 3161 timestamps instead of a log entry (cosign's --timestamp-server-url with
        // --tlog-upload=false), the timestamp authority the same in both Sigstores (one key, one
        // persisted certificate): a certificate of now, timestamped now; a two-hour-old
        // certificate timestamped two hours ago (expired since, valid at its timestamp); and a
        // two-hour-old certificate timestamped now, expired at the timestamp's time.
        let stamped_sign = |image: &str, fulcio: &Sigstore, tsa: &Sigstore| {
            let tsa = format!("{}/api/v1/timestamp", tsa.url);
            let sign = ["sign", "--tlog-upload=false", "--timestamp-server-url", &tsa];
            cosign_keyless(&sign, image, ISSUER, SUBJECT, fulcio, fulcio)
        };
        let stamped = push("stamped");
        stamped_sign(&stamped, &sigstore, &sigstore);
        let stamped_old = push("stamped-old");
        stamped_sign(&stamped_old, &past, &past);
        let stamped_expired = push("stamped-expired");
        stamped_sign(&stamped_expired, &past, &sigstore);
        // Timestamped SBOM attestations (cosign stamps the whole envelope): by a certificate of
        // now, and by a two-hour-old one stamped now.
        let stamped_attest = |image: &str, fulcio: &Sigstore| {
            let attest = [&sbom_args[..], &["--tlog-upload=false", "--timestamp-server-url", &tsa]].concat();
            cosign_keyless(&attest, image, ISSUER, SUBJECT, fulcio, fulcio)
        };
        stamped_attest(&stamped, &sigstore);
        let stamped_expired_sbom = push("stamped-expired-sbom");
        stamped_sign(&stamped_expired_sbom, &sigstore, &sigstore);
        stamped_attest(&stamped_expired_sbom, &past);
        let stamped_layers = [&stamped, &stamped_old, &stamped_expired, &stamped_expired_sbom]
            .map(|image| (image, "sig"))
            .into_iter()
            .chain([(&stamped, "att"), (&stamped_expired_sbom, "att")]);
        for (image, suffix) in stamped_layers {
            let annotations = &manifest(&registry, image, suffix)["layers"][0]["annotations"];
            assert!(
                annotations[TIMESTAMP_ANNOTATION].is_string(),
                "no timestamp on {image}.{suffix}: {annotations}"
            );
            assert!(
                annotations[BUNDLE_ANNOTATION].is_null(),
                "a log entry on {image}.{suffix}: {annotations}"
            );
        }

        // Verification is offline (the trusted root file): the Sigstores are done.
        past.service.stop();
        sigstore.service.stop();
        Lab {
            registry,
            images,
            trusted_root,
            foreign_root,
            dir,
            _services: services,
        }
    }

    /// A config trusting `authority` (a keyless identity, YAML flow mapping) for the lab's
    /// images, with `root` as the Sigstore trusted root.
    fn config(&self, root: &Path, authority: &str) -> String {
        let registry = &self.registry;
        format!(
            r#"images:
  registries:
    allow: ["{registry}"]
    insecure: ["{registry}"]
  trustedRoot: "{root}"
  verification: {{ registryTimeout: 10s }}
  trust:
    - name: keyless-apps
      images: ["{registry}/keyless/**"]
      authorities:
        - {{ name: {AUTHORITY}, keyless: {authority} }}
"#,
            root = root.display(),
        )
    }

    /// The exact identity the images are signed with, and the lab's own trusted root.
    fn alice(&self) -> String {
        self.config(
            &self.trusted_root,
            &format!(r#"{{ issuer: "{ISSUER}", subject: "{SUBJECT}" }}"#),
        )
    }

    fn state(&self, config: &str) -> AppState {
        self.state_at(config, "low")
    }

    fn state_at(&self, config: &str, level: &str) -> AppState {
        state_with_source(&settings(config), Source::Embedded, &[("team-a", level)])
    }
}

/// The cosign manifest (`sha256-<hex>.<suffix>`: `sig` or `att`) of a pinned image, with its
/// repository's URL.
fn cosign_location(registry: &str, pinned: &str, suffix: &str) -> (String, String) {
    let (name, digest) = pinned.split_once('@').unwrap();
    let repository = name.strip_prefix(&format!("{registry}/")).unwrap();
    (
        format!("http://{registry}/v2/{repository}"),
        format!("{}.{suffix}", digest.replace(':', "-")),
    )
}

fn manifest(registry: &str, pinned: &str, suffix: &str) -> Value {
    let (base, tag) = cosign_location(registry, pinned, suffix);
    reqwest::blocking::Client::new()
        .get(format!("{base}/manifests/{tag}"))
        .header("accept", "application/vnd.oci.image.manifest.v1+json")
        .send()
        .unwrap()
        .json()
        .unwrap()
}

/// The Rekor integrated time in the bundle of the signature of `pinned`.
fn integrated_time(registry: &str, pinned: &str) -> i64 {
    let manifest = manifest(registry, pinned, "sig");
    let bundle = manifest["layers"][0]["annotations"][BUNDLE_ANNOTATION]
        .as_str()
        .unwrap_or_else(|| panic!("no Rekor bundle on the signature of {pinned}: {manifest}"));
    let bundle: Value = serde_json::from_str(bundle).unwrap();
    bundle["Payload"]["integratedTime"].as_i64().unwrap()
}

/// Rewrites a cosign manifest of `pinned` (its layers, what was signed, unchanged).
fn edit_manifest(registry: &str, pinned: &str, suffix: &str, edit: impl FnOnce(&mut Value)) {
    let (base, tag) = cosign_location(registry, pinned, suffix);
    let mut manifest = manifest(registry, pinned, suffix);
    let media_type = manifest["mediaType"]
        .as_str()
        .unwrap_or("application/vnd.oci.image.manifest.v1+json")
        .to_string();
    edit(&mut manifest);
    let put = reqwest::blocking::Client::new()
        .put(format!("{base}/manifests/{tag}"))
        .header("content-type", media_type)
        .body(serde_json::to_vec(&manifest).unwrap())
        .send()
        .unwrap();
    assert!(put.status().is_success(), "manifest upload: {}", put.status());
}

const INDEX: &str = "application/vnd.oci.image.index.v1+json";
const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// The referrers of `pinned` as cosign 3 keeps them on a registry without the referrers API:
/// the index under the referrers tag, and each listed manifest with its Sigstore bundle.
struct Referrers {
    /// The repository's URL.
    base: String,
    tag: String,
    index: Value,
    manifests: Vec<(Value, Value)>,
}

impl Referrers {
    fn read(registry: &str, pinned: &str) -> Referrers {
        let (name, digest) = pinned.split_once('@').unwrap();
        let repository = name.strip_prefix(&format!("{registry}/")).unwrap();
        let base = format!("http://{registry}/v2/{repository}");
        let tag = digest.replace(':', "-");
        let get = |path: &str, accept: &str| -> Value {
            reqwest::blocking::Client::new()
                .get(format!("{base}/{path}"))
                .header("accept", accept)
                .send()
                .unwrap()
                .json()
                .unwrap()
        };
        let index = get(&format!("manifests/{tag}"), INDEX);
        let manifests = index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|descriptor| {
                let manifest = get(
                    &format!("manifests/{}", descriptor["digest"].as_str().unwrap()),
                    MANIFEST,
                );
                let bundle = get(
                    &format!("blobs/{}", manifest["layers"][0]["digest"].as_str().unwrap()),
                    "*/*",
                );
                (manifest, bundle)
            })
            .collect();
        Referrers {
            base,
            tag,
            index,
            manifests,
        }
    }

    fn bundles(&self) -> impl Iterator<Item = &Value> {
        self.manifests.iter().map(|(_, bundle)| bundle)
    }

    /// Replaces the bundle of the `position`th referrer (a new blob, manifest and index).
    fn replace(mut self, registry: &str, position: usize, bundle: &Value) {
        let http = reqwest::blocking::Client::new();
        let sha256 = |bytes: &[u8]| format!("sha256:{}", hex::encode(<sha2::Sha256 as sha2::Digest>::digest(bytes)));
        let put = |url: String, content_type: &str, body: Vec<u8>| {
            let answer = http
                .put(&url)
                .header("content-type", content_type)
                .body(body)
                .send()
                .unwrap();
            assert!(answer.status().is_success(), "PUT {url}: {}", answer.status());
        };
        let blob = serde_json::to_vec(bundle).unwrap();
        let blob_digest = upload_blob(registry, &self.base, &blob);
        let mut manifest = self.manifests[position].0.clone();
        manifest["layers"][0]["digest"] = blob_digest.into();
        manifest["layers"][0]["size"] = blob.len().into();
        let manifest = serde_json::to_vec(&manifest).unwrap();
        put(
            format!("{}/manifests/{}", self.base, sha256(&manifest)),
            MANIFEST,
            manifest.clone(),
        );
        self.index["manifests"][position]["digest"] = sha256(&manifest).into();
        self.index["manifests"][position]["size"] = manifest.len().into();
        let index = serde_json::to_vec(&self.index).unwrap();
        put(format!("{}/manifests/{}", self.base, self.tag), INDEX, index);
    }
}

/// The predicate type of a bundle's statement.
fn predicate_type(bundle: &Value) -> String {
    let payload = base64::engine::general_purpose::STANDARD
        .decode(bundle["dsseEnvelope"]["payload"].as_str().unwrap())
        .unwrap();
    let statement: Value = serde_json::from_slice(&payload).unwrap();
    statement["predicateType"].as_str().unwrap().to_string()
}

/// Gives the attestation bundle among the referrers of `pinned` the transparency-log entry of
/// its signing bundle; all the rest (envelope, certificate) stays.
fn give_the_attestation_the_signature_log_entry(registry: &str, pinned: &str) {
    let referrers = Referrers::read(registry, pinned);
    let signing = |bundle: &Value| predicate_type(bundle).contains("cosign/sign");
    let entry = referrers.bundles().find(|b| signing(b)).expect("a signing bundle")["verificationMaterial"]
        ["tlogEntries"]
        .clone();
    let position = referrers
        .bundles()
        .position(|b| !signing(b))
        .expect("an attestation bundle");
    let mut bundle = referrers.manifests[position].1.clone();
    assert_ne!(bundle["verificationMaterial"]["tlogEntries"], entry);
    bundle["verificationMaterial"]["tlogEntries"] = entry;
    referrers.replace(registry, position, &bundle);
}

/// Asserts a denial by `images.signatures` whose message has `expected`.
fn assert_denied(answer: &Value, expected: &str) {
    assert_eq!(answer["response"]["allowed"], false, "{answer}");
    assert_eq!(denied_by(answer), ["images.signatures"], "{answer}");
    assert!(message(answer).contains(expected), "{}", message(answer));
}

async fn verification_count(state: &AppState, status: &str) -> String {
    let (_, metrics) = get(state, "/metrics").await;
    let needle = format!("portcullis_image_verifications_total{{status=\"{status}\"}} ");
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(&needle))
        .unwrap_or("0")
        .to_string()
}

#[tokio::test]
async fn a_keyless_signature_of_the_trusted_identity_is_admitted() {
    let lab = lab();
    let state = lab.state(&lab.alice());
    let answer = decide(&state, &lab.images["alice"]).await;
    assert_eq!(answer["response"]["allowed"], true, "{answer}");
    assert_eq!(verification_count(&state, "verified").await, "1");
    let (_, metrics) = get(&state, "/metrics").await;
    assert!(
        metrics.contains("portcullis_images_admitted_total{risk_level=\"low\",pinned=\"true\",signed=\"true\",sbom=\"true\",provenance=\"false\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_subject_regexp_authority_admits_the_same_signature() {
    let lab = lab();
    let state = lab.state(&lab.config(
        &lab.trusted_root,
        &format!(r#"{{ issuer: "{ISSUER}", subjectRegExp: "^alice@example\\.com$" }}"#),
    ));
    let answer = decide(&state, &lab.images["alice"]).await;
    assert_eq!(answer["response"]["allowed"], true, "{answer}");
    assert_eq!(verification_count(&state, "verified").await, "1");
    // The expression is anchored: another subject under it is not admitted.
    let answer = decide(&state, &lab.images["mallory"]).await;
    assert_denied(&answer, "is untrusted: ");
}

#[tokio::test]
async fn a_signature_by_another_subject_is_untrusted() {
    let lab = lab();
    let state = lab.state(&lab.alice());
    let answer = decide(&state, &lab.images["mallory"]).await;
    assert_denied(
        &answer,
        &format!("is untrusted: signed, but not by an authority trusted for these images ({AUTHORITY})"),
    );
    assert_eq!(verification_count(&state, "untrusted").await, "1");
}

#[tokio::test]
async fn a_signature_from_another_issuer_is_untrusted() {
    let lab = lab();
    let state = lab.state(&lab.alice());
    let answer = decide(&state, &lab.images["evil-issuer"]).await;
    assert_denied(
        &answer,
        &format!("is untrusted: signed, but not by an authority trusted for these images ({AUTHORITY})"),
    );
    assert_eq!(verification_count(&state, "untrusted").await, "1");
}

#[tokio::test]
async fn a_trusted_root_from_another_sigstore_trusts_no_signature() {
    let lab = lab();
    let config = lab.config(
        &lab.foreign_root,
        &format!(r#"{{ issuer: "{ISSUER}", subject: "{SUBJECT}" }}"#),
    );
    let state = lab.state(&config);
    let answer = decide(&state, &lab.images["alice"]).await;
    // The Rekor bundle names a log whose key the foreign root does not have, so the `sigstore`
    // crate drops the signature layer (a bundle it cannot verify makes the layer unusable):
    // no usable signature is left, which portcullis reports as `invalid` (a signature is present
    // but none verifies), not `untrusted` (a valid signature by someone else).
    assert_denied(&answer, "is invalid: ");
    assert_eq!(verification_count(&state, "invalid").await, "1");
    assert_eq!(verification_count(&state, "verified").await, "0");
}

#[tokio::test]
async fn a_certificate_expired_when_rekor_logged_the_signature_is_untrusted() {
    let lab = lab();
    let state = lab.state(&lab.alice());
    let answer = decide(&state, &lab.images["expired"]).await;
    // The `sigstore` crate checks the certificate against the Rekor integrated time and, when
    // it fails, keeps the layer without its certificate: to portcullis that is a signature
    // with no trusted identity, so `untrusted`.
    assert_denied(
        &answer,
        &format!("is untrusted: signed, but not by an authority trusted for these images ({AUTHORITY})"),
    );
    assert_eq!(verification_count(&state, "verified").await, "0");
}

#[tokio::test]
async fn a_certificate_valid_when_rekor_logged_the_signature_still_verifies_after_it_expired() {
    let lab = lab();
    let state = lab.state(&lab.alice());
    // Certificate and Rekor entry both two hours old: the certificate (10 minutes of life) has
    // long expired, but the time that counts is the integrated time.
    let answer = decide(&state, &lab.images["old"]).await;
    assert_eq!(answer["response"]["allowed"], true, "{answer}");
    assert_eq!(verification_count(&state, "verified").await, "1");
}

#[tokio::test]
async fn a_rekor_bundle_of_another_signature_does_not_vouch_for_this_one() {
    let lab = lab();
    let state = lab.state(&lab.alice());
    // A genuine bundle (the trusted Rekor key signed it, its time is inside the certificate's
    // validity) that logs another image's signature: it proves nothing about when this
    // signature was made, so the certificate, expired when this signature was logged, must not
    // be accepted. The bundle does not belong to the signature: `invalid`.
    let answer = decide(&state, &lab.images["borrowed"]).await;
    assert_denied(&answer, "is invalid: ");
    assert_eq!(verification_count(&state, "verified").await, "0");
}

#[tokio::test]
async fn a_keyless_sbom_attestation_counts_only_from_a_trusted_identity_and_its_own_log_entry() {
    let lab = lab();
    let state = lab.state_at(&lab.alice(), "medium");
    for (image, why) in [
        ("alice", "SBOM attested by alice"),
        ("old-sbom", "attested by alice two hours ago, logged then"),
    ] {
        let answer = decide(&state, &lab.images[image]).await;
        assert_eq!(answer["response"]["allowed"], true, "{why}: {answer}");
    }
    for (image, why) in [
        ("mallory-sbom", "attested by another subject"),
        (
            "borrowed-sbom",
            "attested by alice, but its Rekor bundle logs another envelope",
        ),
    ] {
        let answer = decide(&state, &lab.images[image]).await;
        assert_eq!(answer["response"]["allowed"], false, "{why}: {answer}");
        assert_eq!(denied_by(&answer), ["images.sbom"], "{why}: {answer}");
    }
}

/// The lab's trusted root with `edit` applied, as JSON text.
fn edited_root(edit: impl FnOnce(&mut Value)) -> String {
    let mut root: Value = serde_json::from_slice(&std::fs::read(&lab().trusted_root).unwrap()).unwrap();
    edit(&mut root);
    root.to_string()
}

/// Seconds since the epoch as the trusted root writes times.
fn rfc3339(unix: i64) -> String {
    jiff::Timestamp::from_second(unix).unwrap().to_string()
}

async fn metric(state: &AppState, line: &str) -> Option<String> {
    let (_, metrics) = get(state, "/metrics").await;
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(line).map(|value| value.trim().to_string()))
}

#[tokio::test]
async fn a_log_key_or_ca_outside_its_valid_for_window_when_the_signature_was_logged_vouches_for_nothing() {
    let lab = lab();
    // A blocking client: off the test's runtime.
    let logged = tokio::task::spawn_blocking(move || integrated_time(&lab.registry, &lab.images["alice"]))
        .await
        .unwrap();
    type Edit = Box<dyn FnOnce(&mut Value)>;
    let cases: [(&str, Edit, bool); 5] = [
        (
            "the Rekor key retired before the signature was logged",
            Box::new(move |root| root["tlogs"][0]["publicKey"]["validFor"]["end"] = rfc3339(logged - 1).into()),
            false,
        ),
        (
            "the Rekor key in use only after the signature was logged",
            Box::new(move |root| root["tlogs"][0]["publicKey"]["validFor"]["start"] = rfc3339(logged + 1).into()),
            false,
        ),
        (
            "the Fulcio CA retired before the signature was logged",
            Box::new(move |root| root["certificateAuthorities"][0]["validFor"]["end"] = rfc3339(logged - 1).into()),
            false,
        ),
        (
            "the Fulcio CA in use only after the signature was logged",
            Box::new(move |root| root["certificateAuthorities"][0]["validFor"]["start"] = rfc3339(logged + 1).into()),
            false,
        ),
        // Retired since, but valid when the signature was logged: a rotation does not revoke
        // what was signed before it.
        (
            "both retired after the signature was logged",
            Box::new(move |root| {
                root["tlogs"][0]["publicKey"]["validFor"]["end"] = rfc3339(logged + 1).into();
                root["certificateAuthorities"][0]["validFor"]["end"] = rfc3339(logged + 1).into();
            }),
            true,
        ),
    ];
    for (case, edit, admitted) in cases {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("trusted_root.json");
        std::fs::write(&root, edited_root(edit)).unwrap();
        let config = lab.config(&root, &format!(r#"{{ issuer: "{ISSUER}", subject: "{SUBJECT}" }}"#));
        let state = lab.state(&config);
        let answer = decide(&state, &lab.images["alice"]).await;
        if admitted {
            assert_eq!(answer["response"]["allowed"], true, "{case}: {answer}");
        } else {
            assert_denied(
                &answer,
                "its signing time is not vouched for: the transparency-log key, the timestamp or the Fulcio certificate authority was not valid then (validFor in the trusted root",
            );
            assert_eq!(verification_count(&state, "untrusted").await, "1", "{case}");
        }
    }
}

#[tokio::test]
async fn a_rotated_trusted_root_is_used_without_a_restart_and_no_verdict_outlives_it() {
    let lab = lab();
    let text = |path: &Path| std::fs::read_to_string(path).unwrap();
    let (ours, foreign) = (text(&lab.trusted_root), text(&lab.foreign_root));
    fn root(content: &str) -> [(&'static str, &str); 1] {
        [("trusted_root.json", content)]
    }
    let mut volume = MountedVolume::new(&root(&foreign));
    let config = lab
        .config(
            &volume.path("trusted_root.json"),
            &format!(r#"{{ issuer: "{ISSUER}", subject: "{SUBJECT}" }}"#),
        )
        .replace("images:\n", "images:\n  reloadInterval: 100ms\n");
    let state = lab.state(&config);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let reloads = tokio::spawn(portcullis::server::reload_trust(state.clone(), stopped));
    let reloads_of = async |result: &str| {
        metric(
            &state,
            &format!("portcullis_trust_reloads_total{{result=\"{result}\"}}"),
        )
        .await
    };
    let wait_for = async |result: &str, count: &str| {
        poll_async(
            &format!("trust reload {result} number {count}"),
            Duration::from_secs(10),
            Duration::from_millis(50),
            async || (reloads_of(result).await.as_deref() == Some(count)).then_some(()),
        )
        .await
    };

    // Under another Sigstore's root nothing it logged verifies; that verdict is cached.
    assert_denied(&decide(&state, &lab.images["alice"]).await, "is invalid: ");
    assert_eq!(
        metric(&state, "portcullis_trust_material{kind=\"fulcio_ca\"}")
            .await
            .as_deref(),
        Some("1"),
        "the material in use is published"
    );

    volume.swap(&root(&ours));
    wait_for("success", "1").await;
    let answer = decide(&state, &lab.images["alice"]).await;
    assert_eq!(
        answer["response"]["allowed"], true,
        "the new root is used at once: {answer}"
    );

    // A broken root is refused, counted once however many polls see it, and the root in use stays.
    volume.swap(&root("{ not json"));
    wait_for("failure", "1").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(reloads_of("failure").await.as_deref(), Some("1"));
    assert_eq!(reloads_of("success").await.as_deref(), Some("1"));

    // Back to the foreign root: the verdict made under ours is not served from the cache.
    volume.swap(&root(&foreign));
    wait_for("success", "2").await;
    assert_denied(&decide(&state, &lab.images["alice"]).await, "is invalid: ");
    assert_eq!(verification_count(&state, "invalid").await, "2");
    assert_eq!(verification_count(&state, "verified").await, "1");

    stop.send(true).unwrap();
    reloads.await.unwrap();
}

#[tokio::test]
async fn a_timestamp_of_a_trusted_authority_vouches_for_the_signing_time_as_a_log_entry_does() {
    let lab = lab();
    let alice = format!(r#"{{ issuer: "{ISSUER}", subject: "{SUBJECT}" }}"#);
    let state = lab.state(&lab.alice());
    for image in ["stamped", "stamped-old"] {
        let answer = decide(&state, &lab.images[image]).await;
        assert_eq!(answer["response"]["allowed"], true, "{image}: {answer}");
    }
    assert_eq!(verification_count(&state, "verified").await, "2");

    // The certificate had expired when the signature was timestamped.
    let answer = decide(&state, &lab.images["stamped-expired"]).await;
    assert_denied(&answer, "is untrusted: ");
    assert_eq!(verification_count(&state, "untrusted").await, "1");

    // A timestamped SBOM attestation counts; one whose certificate had expired when it was
    // timestamped does not.
    let medium = lab.state_at(&lab.alice(), "medium");
    let answer = decide(&medium, &lab.images["stamped"]).await;
    assert_eq!(answer["response"]["allowed"], true, "{answer}");
    let answer = decide(&medium, &lab.images["stamped-expired-sbom"]).await;
    assert_eq!(denied_by(&answer), ["images.sbom"], "{answer}");

    // No timestamp authority in the root, or one whose window ended before: no signing time.
    for (case, edit) in [
        (
            "no authority",
            Box::new(|root: &mut Value| root["timestampAuthorities"] = Value::Array(vec![]))
                as Box<dyn FnOnce(&mut Value)>,
        ),
        (
            "retired",
            Box::new(|root: &mut Value| {
                root["timestampAuthorities"][0]["validFor"]["end"] =
                    rfc3339(jiff::Timestamp::now().as_second() - 3600).into()
            }),
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("trusted_root.json");
        std::fs::write(&root, edited_root(edit)).unwrap();
        let state = lab.state(&lab.config(&root, &alice));
        let answer = decide(&state, &lab.images["stamped"]).await;
        assert_denied(&answer, "is untrusted: ");
        assert_eq!(verification_count(&state, "verified").await, "0", "{case}");
    }
}

/// `portcullis verify` of the lab image `image` with [`Lab::alice`]'s config: its exit status
/// and what it printed.
fn verify_command(image: &str) -> (Option<i32>, String) {
    let lab = lab();
    let config = lab.dir.path().join(format!("verify-{image}.yaml"));
    std::fs::write(&config, lab.alice()).unwrap();
    let output = Command::new("timeout")
        .arg("120")
        .arg(env!("CARGO_BIN_EXE_portcullis"))
        .args(["verify", "--config", config.to_str().unwrap()])
        .arg(&lab.images[image])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout).to_string() + &String::from_utf8_lossy(&output.stderr);
    (output.status.code(), text)
}

#[test]
fn verify_command_prints_the_keyless_signer() {
    let (status, text) = verify_command("alice");
    assert_eq!(status, Some(0), "{text}");
    assert!(text.contains("status:  verified"), "{text}");
    assert!(
        text.contains(&format!("signer:  {AUTHORITY} [keyless] ({SUBJECT} from {ISSUER})")),
        "{text}"
    );
}

#[tokio::test]
async fn keyless_sigstore_bundles_of_cosign_3_and_2_are_verified_and_their_sbom_attestations_count() {
    let lab = lab();
    let state = lab.state(&lab.alice());
    for image in ["bundled-v3", "bundled-v2"] {
        let answer = decide(&state, &lab.images[image]).await;
        assert_eq!(answer["response"]["allowed"], true, "{image}: {answer}");
    }
    assert_eq!(verification_count(&state, "verified").await, "2");
    // The fleet KPI counts the keyless SBOMs of both.
    let (_, metrics) = get(&state, "/metrics").await;
    assert!(
        metrics.contains("portcullis_images_admitted_total{risk_level=\"low\",pinned=\"true\",signed=\"true\",sbom=\"true\",provenance=\"false\"} 2"),
        "{metrics}"
    );
    // A certificate that had expired when the log entry was made vouches for nothing.
    let answer = decide(&state, &lab.images["bundled-expired"]).await;
    assert_denied(&answer, "is untrusted: ");

    let state = lab.state_at(&lab.alice(), "medium");
    for image in ["bundled-v3", "bundled-v2"] {
        let answer = decide(&state, &lab.images[image]).await;
        assert_eq!(answer["response"]["allowed"], true, "{image}: {answer}");
    }
    for (image, why) in [
        ("bundled-mallory-sbom", "SBOM attested by another subject"),
        (
            "bundled-expired-sbom",
            "SBOM attested with a certificate expired when it was logged",
        ),
        (
            "bundled-borrowed-sbom",
            "SBOM bundle whose log entry is a genuine entry of another envelope",
        ),
    ] {
        let answer = decide(&state, &lab.images[image]).await;
        assert_eq!(answer["response"]["allowed"], false, "{why}: {answer}");
        assert_eq!(denied_by(&answer), ["images.sbom"], "{why}: {answer}");
    }
}

#[test]
fn one_identity_signing_in_both_formats_is_one_signer() {
    let (status, text) = verify_command("both-formats");
    assert_eq!(status, Some(0), "{text}");
    assert!(text.contains("status:  verified"), "{text}");
    assert_eq!(text.matches("signer:").count(), 1, "{text}");
}

#[tokio::test]
async fn a_keyless_bundle_with_a_trusted_timestamp_instead_of_a_log_entry_is_verified_and_its_sbom_counts() {
    let lab = lab();
    let answer = decide(&lab.state_at(&lab.alice(), "medium"), &lab.images["bundled-stamped"]).await;
    assert_eq!(answer["response"]["allowed"], true, "{answer}");

    // The certificate had expired when the signature, or the attestation, was timestamped.
    let state = lab.state(&lab.alice());
    assert_denied(
        &decide(&state, &lab.images["bundled-stamped-expired"]).await,
        "is untrusted: ",
    );
    let answer = decide(
        &lab.state_at(&lab.alice(), "medium"),
        &lab.images["bundled-stamped-expired-sbom"],
    )
    .await;
    assert_eq!(denied_by(&answer), ["images.sbom"], "{answer}");

    // A root without the timestamp authority: neither a log entry nor a trusted timestamp.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("trusted_root.json");
    std::fs::write(
        &root,
        edited_root(|root| root["timestampAuthorities"] = Value::Array(vec![])),
    )
    .unwrap();
    let alice = format!(r#"{{ issuer: "{ISSUER}", subject: "{SUBJECT}" }}"#);
    let state = lab.state(&lab.config(&root, &alice));
    assert_denied(&decide(&state, &lab.images["bundled-stamped"]).await, "is untrusted: ");
}
