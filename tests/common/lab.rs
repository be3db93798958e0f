//! The supply-chain lab, shared by `tests/supply_chain.rs` and `benches/verification.rs`: a real
//! registry (Debian's docker-registry, plain HTTP on loopback), images pushed with crane, cosign
//! keys and signatures made by real cosign (built from the Go module proxy by
//! `scripts/tools.sh`), and the background-service wrapper that bounds their lives.
//!
//! The benches reach it through `tests/common/mod.rs` (`#[path = "../tests/common/mod.rs"]`).
//!
//! Ports: a server that can bind port 0 does, and its port is read back from its listening
//! socket ([`listening_port`]); a port is never probed free, closed and handed out, since the
//! kernel may give it to an outgoing connection a moment later. [`pick_port`] is for the rest.
#![allow(dead_code)]

use std::collections::{BTreeSet, HashMap};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::poll::try_poll;

/// How long a [`Service`] may run, in seconds (`timeout`'s bound): 900 unless a long bench (the
/// 30-minute soak) sets more with [`set_service_limit`].
static SERVICE_LIMIT_SECONDS: AtomicU32 = AtomicU32::new(900);

pub fn set_service_limit(limit: Duration) {
    SERVICE_LIMIT_SECONDS.store(limit.as_secs().try_into().unwrap_or(u32::MAX), Ordering::Relaxed);
}

/// A background service, bounded twice: `timeout` (900 s, see [`set_service_limit`]), and a shell that stops it (SIGTERM,
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
            .arg(SERVICE_LIMIT_SECONDS.load(Ordering::Relaxed).to_string())
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

/// The lowest port of the kernel's ephemeral range (`ip_local_port_range`), where outgoing
/// connections take their local ports; Linux's default when the file cannot be read.
fn ephemeral_low() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse().ok())
        .unwrap_or(32768)
}

/// The first port [`pick_port`] hands out (below it sit well-known services).
const PICK_FROM: u16 = 10000;

/// A loopback port for a server that must be told its port before it starts (a URL registered
/// first) and keep it across restarts: below the kernel's ephemeral range, so no outgoing
/// connection ever sits on it; never the same one twice in this process; nobody listening on
/// it now. Another process can still bind it first: the caller retries, bounded, with a new
/// port when its server reports "address already in use".
pub fn pick_port() -> u16 {
    static START: OnceLock<u32> = OnceLock::new();
    static HANDED_OUT: AtomicU32 = AtomicU32::new(0);
    let low = ephemeral_low();
    assert!(
        low > PICK_FROM + 1000,
        "the ephemeral range starts at {low}: no room for test ports from {PICK_FROM} below it"
    );
    let span = u32::from(low - PICK_FROM);
    // A different start in each process, so concurrent test binaries rarely meet.
    let start = *START.get_or_init(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .subsec_nanos();
        (nanos ^ std::process::id().wrapping_mul(2_654_435_761)) % span
    });
    for _ in 0..100 {
        let n = HANDED_OUT.fetch_add(1, Ordering::SeqCst);
        assert!(n < span, "every port from {PICK_FROM} to {low} has been handed out");
        let port = PICK_FROM + u16::try_from((start + n) % span).unwrap();
        let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        if TcpStream::connect_timeout(&address, Duration::from_secs(1)).is_err() {
            return port;
        }
    }
    panic!("no loopback port without a listener below {low} after 100 tries");
}

/// A loopback address where nothing listens ("registry down"): a socket bound there and never
/// listening holds the port, so connections are refused and no other socket can take it while
/// this value lives.
pub struct ClosedPort {
    /// `127.0.0.1:PORT`.
    pub addr: String,
    _socket: tokio::net::TcpSocket,
}

impl ClosedPort {
    pub fn new() -> ClosedPort {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).unwrap();
        let addr = socket.local_addr().unwrap().to_string();
        ClosedPort { addr, _socket: socket }
    }
}

/// A kubeconfig in `dir` whose server is a closed loopback port (kept closed while the returned
/// value lives): every request to that "cluster" fails to connect.
pub fn unreachable_kubeconfig(dir: &Path) -> (PathBuf, ClosedPort) {
    let closed = ClosedPort::new();
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters: [{{name: c, cluster: {{server: 'https://{}', insecure-skip-tls-verify: true}}}}]\nusers: [{{name: u, user: {{token: t}}}}]\ncontexts: [{{name: x, context: {{cluster: c, user: u}}}}]\ncurrent-context: x\n",
            closed.addr
        ),
    )
    .unwrap();
    (kubeconfig, closed)
}

/// The TCP port that `service` (any process of the tree it started) listens on, if it does
/// yet: read from `/proc`, for a server told to bind port 0 that does not print the port.
pub fn listening_port(service: &Service) -> Option<u16> {
    let mut sockets = BTreeSet::new();
    for pid in process_tree(service.child.id()) {
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            let Ok(target) = std::fs::read_link(fd.path()) else {
                continue;
            };
            let target = target.to_string_lossy();
            if let Some(inode) = target.strip_prefix("socket:[").and_then(|t| t.strip_suffix(']')) {
                sockets.insert(inode.to_string());
            }
        }
    }
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    table.lines().skip(1).find_map(|line| {
        // sl, local address (HEX_IP:HEX_PORT), remote address, state (0A: LISTEN), ..., inode.
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 10 || fields[3] != "0A" || !sockets.contains(fields[9]) {
            return None;
        }
        u16::from_str_radix(fields[1].rsplit(':').next()?, 16).ok()
    })
}

/// `root` and every process descended from it.
fn process_tree(root: u32) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|name| name.parse::<u32>().ok()) else {
            continue;
        };
        // `PID (COMM) STATE PPID ...`; COMM may hold spaces and parentheses.
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok());
        if let Some(ppid) = ppid {
            children.entry(ppid).or_default().push(pid);
        }
    }
    let mut tree = vec![root];
    let mut next = 0;
    while next < tree.len() {
        tree.extend(children.get(&tree[next]).into_iter().flatten());
        next += 1;
    }
    tree
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

/// Uploads `blob` to the repository at `base` (`http://REGISTRY/v2/REPO`) of `registry`, in one
/// monolithic upload, and gives its digest.
pub fn upload_blob(registry: &str, base: &str, blob: &[u8]) -> String {
    let http = reqwest::blocking::Client::new();
    let digest = format!("sha256:{}", hex::encode(<sha2::Sha256 as sha2::Digest>::digest(blob)));
    let upload = http.post(format!("{base}/blobs/uploads/")).send().unwrap();
    assert_eq!(upload.status(), 202, "blob upload start");
    let location = upload.headers()["location"].to_str().unwrap().to_string();
    let location = if location.starts_with("http") {
        location
    } else {
        format!("http://{registry}{location}")
    };
    let separator = if location.contains('?') { '&' } else { '?' };
    let put = http
        .put(format!("{location}{separator}digest={digest}"))
        .body(blob.to_vec())
        .send()
        .unwrap();
    assert!(put.status().is_success(), "blob upload: {}", put.status());
    digest
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
    /// cosign 3, built on first use.
    cosign3: std::sync::OnceLock<PathBuf>,
    pub crane: PathBuf,
    /// The registry's access log: one line per HTTP request it answered.
    access_log: PathBuf,
    _registry_process: Service,
}

/// Starts Debian's docker-registry on a free loopback port with its data in `dir`, plus any
/// extra YAML (an `auth:` section, say), and waits (10 s at most) until it accepts connections.
pub fn start_registry(dir: &Path, extra_yaml: &str, stdout: Stdio) -> (String, Service) {
    let config = dir.join("registry.yml");
    // Port 0: the registry binds a free port itself; it is read back from its listening socket.
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nstorage: {{filesystem: {{rootdirectory: {}}}, delete: {{enabled: true}}}}\nhttp: {{addr: 127.0.0.1:0}}\nlog: {{level: error}}\n{extra_yaml}",
            dir.join("data").display()
        ),
    )
    .unwrap();
    let log = dir.join("registry.log");
    let service = Service::spawn(&tool("registry"), &["serve", config.to_str().unwrap()], &log, stdout);
    (loopback_address(&service, &log), service)
}

/// `127.0.0.1:PORT` of the port `service` listens on, once it does (10 s at most; past that,
/// a panic with its `log`).
fn loopback_address(service: &Service, log: &Path) -> String {
    let port = try_poll(Duration::from_secs(10), Duration::from_millis(50), || {
        listening_port(service)
    });
    let port = port.unwrap_or_else(|| {
        panic!(
            "{} did not start within 10 s; its log:\n{}",
            log.display(),
            std::fs::read_to_string(log).unwrap_or_default()
        )
    });
    format!("127.0.0.1:{port}")
}

/// Starts a registry that serves the OCI 1.1 referrers API (`tests/referrers-registry`:
/// go-containerregistry's registry, in memory) on a free loopback port, its log in `dir`, and
/// waits (10 s at most) until it accepts connections.
pub fn start_referrers_registry(dir: &Path) -> (String, Service) {
    let log = dir.join("referrers-registry.log");
    let service = Service::spawn(&tool("referrers-registry"), &[], &log, Stdio::null());
    (loopback_address(&service, &log), service)
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

/// cosign 3 offline: its default signing config comes from the public TUF repository, and its
/// default transparency log is the public Rekor.
const COSIGN3_OFFLINE: [&str; 2] = ["--use-signing-config=false", "--tlog-upload=false"];

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
            cosign3: std::sync::OnceLock::new(),
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
        self.cosign_of(&self.cosign)
    }

    /// cosign 3 (built on first use).
    pub fn cosign3(&self) -> &Path {
        self.cosign3.get_or_init(|| tool("cosign3"))
    }

    /// [`Lab::cosign_cmd`] of cosign 3.
    pub fn cosign3_cmd(&self) -> Command {
        self.cosign_of(self.cosign3())
    }

    fn cosign_of(&self, cosign: &Path) -> Command {
        let mut command = Command::new("timeout");
        command
            .arg("120")
            .arg(cosign)
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

    /// Signs `image` with cosign 3 and its defaults (a Sigstore bundle, attached as an OCI
    /// referrer), offline: no signing config from the public TUF repository, no transparency log.
    pub fn sign_v3(&self, key: &str, image: &str) {
        run(self
            .cosign3_cmd()
            .args(["sign", "--yes", "--key", key])
            .args(COSIGN3_OFFLINE)
            .args(["--allow-insecure-registry", "--allow-http-registry"])
            .arg(image));
    }

    /// Attests `predicate` of type `kind` about `image` with `trusted.key`, as [`Lab::sign_v3`].
    pub fn attest_v3(&self, kind: &str, predicate: &Path, image: &str) {
        run(self
            .cosign3_cmd()
            .args(["attest", "--yes", "--key", "trusted.key", "--type", kind])
            .args(COSIGN3_OFFLINE)
            .args(["--allow-insecure-registry", "--allow-http-registry", "--predicate"])
            .arg(predicate)
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
