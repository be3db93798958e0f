//! A throwaway Kubernetes control plane (etcd + kube-apiserver, built from the Go module proxy
//! by `scripts/tools.sh`) on loopback, started by `scripts/control-plane.sh`, and the kubectl
//! of the same Kubernetes version. Shared by `tests/cluster.rs` and `tests/e2e.rs`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use super::lab::{run, tool};

pub struct ControlPlane {
    dir: tempfile::TempDir,
    /// The admin's kubeconfig (user `admin` in `system:masters`).
    pub kubeconfig: PathBuf,
    /// kubectl built at the apiserver's version.
    pub kubectl_bin: PathBuf,
}

impl ControlPlane {
    /// Starts a fresh cluster (about 4 s once the binaries are cached). It is stopped when the
    /// value is dropped and, should this test binary be killed first, by the script's watcher
    /// once this process is gone.
    pub fn start() -> ControlPlane {
        // The kube clients a test builds next need rustls's provider; a test run alone has no
        // other test to install it first.
        portcullis::tls_provider();
        let kubectl_bin = tool("kubectl");
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("home")).unwrap();
        let output = Command::new(script())
            .arg("start")
            .arg(dir.path())
            .env("CONTROL_PLANE_OWNER", std::process::id().to_string())
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "control plane: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let kubeconfig = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
        ControlPlane {
            dir,
            kubeconfig,
            kubectl_bin,
        }
    }

    /// Stops the apiserver (etcd and the data stay): clients' connections are refused.
    pub fn stop_apiserver(&self) {
        self.script_command("stop-apiserver");
    }

    /// Freezes the apiserver (SIGSTOP): connections stay open and new ones are accepted by the
    /// kernel, but nothing is ever answered, as with a hung apiserver or a path that drops
    /// packets.
    pub fn pause_apiserver(&self) {
        self.signal_apiserver("-STOP");
    }

    /// Thaws the frozen apiserver (SIGCONT).
    pub fn resume_apiserver(&self) {
        self.signal_apiserver("-CONT");
    }

    fn signal_apiserver(&self, signal: &str) {
        let pid = std::fs::read_to_string(self.dir.path().join("apiserver.pid")).unwrap();
        run(Command::new("kill").arg(signal).arg(pid.trim()));
    }

    /// Starts the stopped apiserver again, on the same port, and waits for its `/readyz`.
    pub fn start_apiserver(&self) {
        self.script_command("start-apiserver");
    }

    fn script_command(&self, command: &str) {
        run(Command::new(script()).arg(command).arg(self.dir.path()));
    }

    /// A client of the cluster as its admin (from the kubeconfig, not the process's
    /// `KUBECONFIG`).
    pub async fn client(&self) -> kube::Client {
        let kubeconfig = kube::config::Kubeconfig::read_from(&self.kubeconfig).unwrap();
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .unwrap();
        kube::Client::try_from(portcullis::watch_health::bounded(config)).unwrap()
    }

    /// The control plane's directory: logs (`apiserver.log`, `etcd.log`), `pki/`, `kubeconfig`.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A HOME for the clients (kubectl's discovery cache, helm's directories), inside `dir`.
    pub fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    /// `kubectl --kubeconfig KUBECONFIG`, bounded to 120 s, with this cluster's HOME.
    pub fn kubectl_cmd(&self) -> Command {
        let mut command = Command::new("timeout");
        command
            .arg("120")
            .arg(&self.kubectl_bin)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .env("HOME", self.home())
            .env_remove("KUBECONFIG");
        command
    }

    /// Runs kubectl with `stdin` (empty when `None`) and returns what it did.
    pub fn kubectl_output(&self, args: &[&str], stdin: Option<&[u8]>) -> Output {
        let mut command = self.kubectl_cmd();
        command
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().unwrap();
        let input = stdin.unwrap_or_default().to_vec();
        let mut pipe = child.stdin.take().unwrap();
        // A thread, so a large input cannot deadlock against kubectl's full output pipes.
        let writer = std::thread::spawn(move || {
            let _ = std::io::Write::write_all(&mut pipe, &input);
        });
        let output = child.wait_with_output().unwrap();
        writer.join().unwrap();
        output
    }

    /// Runs kubectl to success (asserting it) and returns its stdout.
    pub fn kubectl(&self, args: &[&str]) -> String {
        let output = self.kubectl_output(args, None);
        assert!(
            output.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}

impl ControlPlane {
    /// The PolicyException CRD as the chart installs it (`templates/exceptions.yaml`), ready
    /// for objects.
    pub fn install_exception_crd(&self) {
        let chart = concat!(env!("CARGO_MANIFEST_DIR"), "/charts/portcullis");
        let text = run(Command::new(tool("helm")).args([
            "template",
            "portcullis",
            chart,
            "--show-only",
            "templates/exceptions.yaml",
        ]));
        let crd = text
            .split("\n---")
            .find(|document| document.contains("kind: CustomResourceDefinition"))
            .expect("the chart's CRD");
        let applied = self.kubectl_output(&["apply", "-f", "-"], Some(crd.as_bytes()));
        assert!(applied.status.success(), "{}", String::from_utf8_lossy(&applied.stderr));
        self.kubectl(&[
            "wait",
            "--for=condition=Established",
            "crd/policyexceptions.portcullis.io",
        ]);
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        let _ = Command::new(script()).arg("stop").arg(self.dir.path()).output();
    }
}

fn script() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/control-plane.sh"))
}
