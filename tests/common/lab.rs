//! The supply-chain lab, shared by `tests/supply_chain.rs` and `benches/verification.rs`: a real
//! registry (Debian's docker-registry, plain HTTP on loopback), images pushed with crane, cosign
//! keys and signatures made by real cosign (built from the Go module proxy by
//! `scripts/tools.sh`), and the background-service wrapper that bounds their lives.
//!
//! Self-contained (std and the dev-dependencies) so a bench can include it with
//! `#[path = "../tests/common/lab.rs"] mod lab;`.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A background service, bounded twice: `timeout 900`, and a shell that stops it (SIGTERM,
/// which `timeout` passes on) as soon as its stdin closes, i.e. when `stdin` is dropped or this
/// test binary exits, however it exits.
pub struct Service {
    pub child: std::process::Child,
    stdin: Option<std::process::ChildStdin>,
}

impl Service {
    pub fn spawn(program: &Path, args: &[&str], log: &Path, stdout: Stdio) -> Service {
        let log = std::fs::File::create(log).unwrap();
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(r#""$@" </dev/null & p=$!; cat >/dev/null; kill "$p" 2>/dev/null; wait "$p""#)
            .arg("sh")
            .arg("timeout")
            .arg("900")
            .arg(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(stdout)
            .stderr(log)
            .spawn()
            .unwrap();
        let stdin = child.stdin.take();
        Service { child, stdin }
    }

    /// Stops the service and waits (10 s at most) for it to end.
    pub fn stop(mut self) {
        drop(self.stdin.take());
        let started = Instant::now();
        while self.child.try_wait().unwrap().is_none() {
            if started.elapsed() > Duration::from_secs(10) {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The path of a tool built (once, then cached) by `scripts/tools.sh`.
pub fn tool(name: &str) -> PathBuf {
    let output = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/tools.sh"))
        .arg(name)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "tools.sh {name}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&output.stdout).trim())
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Runs a command to success and returns its trimmed stdout.
pub fn run(command: &mut Command) -> String {
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{command:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// `REGISTRY/REPO:sha256-HEX.sig`: where cosign keeps the signatures of `pinned`.
pub fn signature_tag(pinned: &str) -> String {
    let (name, digest) = pinned.split_once('@').unwrap();
    format!("{name}:{}.sig", digest.replace(':', "-"))
}

/// `REGISTRY/REPO:sha256-HEX.att`: where cosign keeps the attestations of `pinned`.
pub fn attestation_tag(pinned: &str) -> String {
    signature_tag(pinned).replace(".sig", ".att")
}

/// A running registry in a temporary directory, with crane and cosign at hand.
pub struct Lab {
    /// Keys, layers, the registry's storage and logs.
    pub dir: tempfile::TempDir,
    /// `127.0.0.1:PORT` of the registry (plain HTTP).
    pub registry: String,
    pub cosign: PathBuf,
    pub crane: PathBuf,
    /// The registry's access log: one line per HTTP request it answered.
    access_log: PathBuf,
    _registry_process: Service,
}

/// Starts Debian's docker-registry on a free loopback port with its data in `dir`, plus any
/// extra YAML (an `auth:` section, say), and waits (10 s at most) until it accepts connections.
pub fn start_registry(dir: &Path, extra_yaml: &str, stdout: Stdio) -> (String, Service) {
    let registry = format!("127.0.0.1:{}", free_port());
    let config = dir.join("registry.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nstorage: {{filesystem: {{rootdirectory: {}}}, delete: {{enabled: true}}}}\nhttp: {{addr: {registry}}}\nlog: {{level: error}}\n{extra_yaml}",
            dir.join("data").display()
        ),
    )
    .unwrap();
    let service = Service::spawn(
        &tool("registry"),
        &["serve", config.to_str().unwrap()],
        &dir.join("registry.log"),
        stdout,
    );
    let up = (0..200).any(|_| {
        let connected = std::net::TcpStream::connect(&registry).is_ok();
        if !connected {
            std::thread::sleep(Duration::from_millis(50));
        }
        connected
    });
    assert!(up, "registry did not start");
    (registry, service)
}

/// Pushes `target` (`REGISTRY/REPO:TAG`, plain HTTP), a one-layer image holding `content`,
/// and returns it pinned (`REGISTRY/REPO@sha256:...`). `name` names its files in `work`.
pub fn push_image(crane: &Path, work: &Path, target: &str, name: &str, content: &str) -> String {
    let layer_dir = work.join(format!("layer-{name}"));
    std::fs::create_dir_all(&layer_dir).unwrap();
    std::fs::write(layer_dir.join("content.txt"), content).unwrap();
    let tar = work.join(format!("{name}.tar"));
    run(Command::new("tar")
        .arg("-cf")
        .arg(&tar)
        .arg("-C")
        .arg(&layer_dir)
        .arg("content.txt"));
    let crane = |args: &[&str]| {
        let mut command = Command::new("timeout");
        command.arg("60").arg(crane).args(args).arg("--insecure");
        command
    };
    run(&mut crane(&["append", "-f", tar.to_str().unwrap(), "-t", target]));
    let digest = run(&mut crane(&["digest", target]));
    let (name, _tag) = target.rsplit_once(':').unwrap();
    format!("{name}@{digest}")
}

impl Lab {
    /// Starts the registry and waits (10 s at most) until it accepts connections. Blocks: call
    /// it from a plain thread, not from async code.
    pub fn start() -> Lab {
        let dir = tempfile::tempdir().unwrap();
        let (cosign, crane) = (tool("cosign"), tool("crane"));
        // The access log goes to stdout: keep it, to count the requests a client makes.
        let access_log = dir.path().join("access.log");
        let (registry, registry_process) =
            start_registry(dir.path(), "", std::fs::File::create(&access_log).unwrap().into());
        Lab {
            dir,
            registry,
            cosign,
            crane,
            access_log,
            _registry_process: registry_process,
        }
    }

    /// A crane command against the lab's plain-HTTP registry.
    pub fn crane_cmd(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.crane);
        command.args(args).arg("--insecure");
        command
    }

    /// Pushes `REGISTRY/REPO:TAG`, a one-layer image holding `content`, and returns it pinned
    /// (`REGISTRY/REPO@sha256:...`). `name` names its files in the lab's directory.
    pub fn push(&self, name: &str, repo: &str, tag: &str, content: &str) -> String {
        push_image(
            &self.crane,
            self.dir.path(),
            &format!("{}/{repo}:{tag}", self.registry),
            name,
            content,
        )
    }

    /// `NAME.key` and `NAME.pub` in the lab's directory, with an empty password.
    pub fn generate_key(&self, name: &str) {
        run(Command::new(&self.cosign)
            .current_dir(self.dir.path())
            .env("COSIGN_PASSWORD", "")
            .args(["generate-key-pair", "--output-key-prefix", name]));
    }

    /// The public key `NAME.pub`.
    pub fn key(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.pub"))
    }

    /// cosign's TUF cache for this lab: never the user's, and never filled from the network.
    pub fn tuf_root(&self) -> PathBuf {
        self.dir.path().join("tuf")
    }

    /// A cosign command run in the lab's directory, bounded to 120 s, with the lab's TUF root
    /// and an empty key password.
    pub fn cosign_cmd(&self) -> Command {
        let mut command = Command::new("timeout");
        command
            .arg("120")
            .arg(&self.cosign)
            .current_dir(self.dir.path())
            .env("COSIGN_PASSWORD", "")
            .env("TUF_ROOT", self.tuf_root());
        command
    }

    /// Signs `image` with the private key file `key` (e.g. `trusted.key`), no transparency log.
    pub fn sign(&self, key: &str, image: &str) {
        self.sign_with(key, image, &[]);
    }

    /// [`Lab::sign`] with more cosign flags, e.g. `--new-bundle-format` (a Sigstore bundle in
    /// an OCI referrer instead of the `.sig` tag).
    pub fn sign_with(&self, key: &str, image: &str, flags: &[&str]) {
        run(self
            .cosign_cmd()
            .args(["sign", "--yes", "--key", key, "--tlog-upload=false"])
            .args(["--allow-insecure-registry", "--allow-http-registry"])
            .args(flags)
            .arg(image));
    }

    /// Attests `predicate` of type `kind` (cosign's `--type`) about `image` with `trusted.key`.
    pub fn attest(&self, kind: &str, predicate: &Path, image: &str) {
        self.attest_with(kind, predicate, image, &[]);
    }

    /// [`Lab::attest`] with more cosign flags.
    pub fn attest_with(&self, kind: &str, predicate: &Path, image: &str, flags: &[&str]) {
        run(self
            .cosign_cmd()
            .args(["attest", "--yes", "--key", "trusted.key", "--tlog-upload=false"])
            .args(["--allow-insecure-registry", "--allow-http-registry", "--type", kind])
            .args(flags)
            .arg("--predicate")
            .arg(predicate)
            .arg(image));
    }

    /// The registry's access log so far, one line per request answered (`"GET /v2/... HTTP/1.1"
    /// 200 ...`). The registry writes a line after it answers, so this waits until the log has
    /// not grown for 50 ms (2 s at most).
    pub fn requests(&self) -> Vec<String> {
        let read = || std::fs::read_to_string(&self.access_log).unwrap_or_default();
        let started = Instant::now();
        let mut last = read();
        loop {
            std::thread::sleep(Duration::from_millis(50));
            let now = read();
            if now.len() == last.len() || started.elapsed() > Duration::from_secs(2) {
                return now.lines().map(str::to_string).collect();
            }
            last = now;
        }
    }
}

/// A registry that requires a login (htpasswd, user `ci`, password `s3cret`), holding one image
/// pushed with that login and signed by the cosign key `ci.key`.
pub struct PrivateRegistry {
    /// `127.0.0.1:PORT` (plain HTTP).
    pub registry: String,
    /// The signed image, pinned.
    pub image: String,
    /// The public half of the signing key.
    pub public_key: PathBuf,
    /// A docker config directory (`config.json`) with the login, for `DOCKER_CONFIG`.
    pub docker_config: PathBuf,
    _service: Service,
}

pub const PRIVATE_USER: &str = "ci";
pub const PRIVATE_PASSWORD: &str = "s3cret";

impl PrivateRegistry {
    /// Starts it with its data, keys and logs in `dir`.
    pub fn start(dir: &Path) -> PrivateRegistry {
        let (cosign, crane) = (tool("cosign"), tool("crane"));
        let hash = bcrypt::hash(PRIVATE_PASSWORD, 4).unwrap();
        std::fs::write(dir.join("htpasswd"), format!("{PRIVATE_USER}:{hash}\n")).unwrap();
        let auth = format!(
            "auth: {{htpasswd: {{realm: portcullis-test, path: {}/htpasswd}}}}\n",
            dir.display()
        );
        let (registry, service) = start_registry(dir, &auth, Stdio::null());
        let docker_config = dir.join("docker");
        std::fs::create_dir_all(&docker_config).unwrap();
        let login = format!("{PRIVATE_USER}:{PRIVATE_PASSWORD}");
        let login = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, login);
        std::fs::write(
            docker_config.join("config.json"),
            format!(r#"{{"auths": {{"{registry}": {{"auth": "{login}"}}}}}}"#),
        )
        .unwrap();
        let pushed = {
            let mut push = Command::new(&crane);
            push.env("DOCKER_CONFIG", &docker_config);
            let content = dir.join("content.txt");
            std::fs::write(&content, "private").unwrap();
            let tar = dir.join("layer.tar");
            run(Command::new("tar")
                .arg("-cf")
                .arg(&tar)
                .arg("-C")
                .arg(dir)
                .arg("content.txt"));
            let target = format!("{registry}/private/app:1");
            run(push.args(["append", "--insecure", "-f", tar.to_str().unwrap(), "-t", &target]));
            let digest =
                run(Command::new(&crane)
                    .env("DOCKER_CONFIG", &docker_config)
                    .args(["digest", "--insecure", &target]));
            format!("{registry}/private/app@{digest}")
        };
        run(Command::new(&cosign).current_dir(dir).env("COSIGN_PASSWORD", "").args([
            "generate-key-pair",
            "--output-key-prefix",
            "ci",
        ]));
        run(Command::new("timeout")
            .arg("120")
            .arg(&cosign)
            .current_dir(dir)
            .env("COSIGN_PASSWORD", "")
            .env("DOCKER_CONFIG", &docker_config)
            .env("TUF_ROOT", dir.join("tuf"))
            .args(["sign", "--yes", "--key", "ci.key", "--tlog-upload=false"])
            .args(["--allow-insecure-registry", "--allow-http-registry", &pushed]));
        PrivateRegistry {
            registry,
            image: pushed,
            public_key: dir.join("ci.pub"),
            docker_config,
            _service: service,
        }
    }

    /// A portcullis config trusting `ci.pub` for the registry's `private/**`, with `extra`
    /// lines under `images.verification` (e.g. `dockerConfig: ...`).
    pub fn config(&self, verification: &str) -> String {
        let registry = &self.registry;
        format!(
            "images:\n  registries: {{ allow: [\"{registry}\"], insecure: [\"{registry}\"] }}\n  verification: {{ {verification} }}\n  trust:\n    - name: private\n      images: [\"{registry}/private/**\"]\n      authorities: [{{ name: ci-key, key: {{ path: {} }} }}]\n",
            self.public_key.display()
        )
    }
}
