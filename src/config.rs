//! The configuration file: every field has a safe default, and validation reports every
//! problem at once so an operator fixes the file in one pass.
//!
//! Parsing keeps values as plain strings and integers and checks them in [`Config::validate`],
//! which turns the raw file into [`Settings`], the typed values the rest of the program uses.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::duration;
use crate::images::config::ImagesConfig;
use crate::images::trust::TrustPolicy;
use crate::policy::evaluator::EngineChoice;
use crate::results::Enforcement;
use crate::risk::RiskLevel;
use crate::telemetry::LogFormat;

/// The file as written. Field names are camelCase, like Kubernetes objects.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Config {
    pub server: ServerConfig,
    pub admission: AdmissionConfig,
    pub policies: PoliciesConfig,
    /// Per-policy enforcement override: policy id -> `deny` | `warn` | `dryrun`.
    pub enforcement: BTreeMap<String, String>,
    pub risk: RiskConfig,
    pub images: ImagesConfig,
    pub logging: LoggingConfig,
    /// Per risk level, the human approvals a pull request needs (`portcullis gates`).
    pub gates: BTreeMap<String, GateConfig>,
    pub exceptions: ExceptionsConfig,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ExceptionsConfig {
    /// Where `serve` and the audit read PolicyExceptions: `kubernetes` (a watch; the CRD must
    /// be installed, as the chart does) or `none` (the default). `check` reads them from its
    /// inputs either way.
    pub source: String,
    /// The longest an exception may run, from its creation to its `expiresAt`.
    pub max_days: i64,
}

impl Default for ExceptionsConfig {
    fn default() -> Self {
        ExceptionsConfig {
            source: "none".into(),
            max_days: i64::from(crate::exceptions::DEFAULT_MAX_DAYS),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, rename_all = "camelCase")]
pub struct GateConfig {
    pub approvals: i64,
    pub reviewers: Vec<String>,
}

/// What a pull request at one risk level needs besides the checks: approvals, and from whom.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Gate {
    pub approvals: u32,
    /// Reviewer teams or users (as the code host names them: `@org/team`); empty: anyone.
    pub reviewers: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ServerConfig {
    /// Default `0.0.0.0:8443`; `127.0.0.1:8443` with `--dev`.
    pub listen: Option<String>,
    /// Default `0.0.0.0:9090`; `127.0.0.1:9090` with `--dev`.
    pub metrics_listen: Option<String>,
    pub tls: TlsConfig,
    /// How long to keep serving after SIGTERM while endpoints are removed (not ready meanwhile).
    pub shutdown_delay: String,
    /// How long in-flight reviews may take to finish after that.
    pub shutdown_grace_period: String,
    /// Connections accepted and still in their TLS handshake; past this, new ones are closed
    /// before theirs.
    pub max_pending_handshakes: i64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, rename_all = "camelCase")]
pub struct TlsConfig {
    pub cert_file: String,
    pub key_file: String,
    pub reload_interval: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, rename_all = "camelCase")]
pub struct AdmissionConfig {
    pub max_body_bytes: i64,
    pub max_concurrent_reviews: i64,
    /// Policy evaluations running at once (CPU-bound); 0 means one per CPU.
    pub max_concurrent_evaluations: i64,
    /// Used when the apiserver sends no `?timeout=` (it always does; curl may not).
    pub default_timeout: String,
    /// Answer this long before the apiserver's deadline.
    pub deadline_margin: String,
    /// A review that would wait longer than this for the CPU is shed with a fast denial.
    pub max_queue_wait: String,
    /// Execution-time limit of one policy evaluation.
    pub policy_timeout: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, rename_all = "camelCase")]
pub struct PoliciesConfig {
    /// Policy directories; empty means the default library embedded in the binary.
    pub dirs: Vec<String>,
    pub reload_interval: String,
    /// Kinds whose objects Gatekeeper templates see in `data.inventory` (like the `syncOnly`
    /// list of Gatekeeper's Config); empty means no sync and an empty inventory.
    pub inventory: Vec<InventoryKind>,
    /// `compiled` (regorus's bytecode VM for every policy that compiles, the interpreter for
    /// the others; the default) or `interpreter` (every policy on the interpreter).
    pub engine: String,
}

/// A kind to sync into `data.inventory`: `group` is empty for the core API.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(default, rename_all = "camelCase")]
pub struct InventoryKind {
    pub group: String,
    pub version: String,
    pub kind: String,
}

impl std::fmt::Display for InventoryKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.group.as_str() {
            "" => write!(f, "{}/{}", self.version, self.kind),
            group => write!(f, "{group}/{}/{}", self.version, self.kind),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, rename_all = "camelCase")]
pub struct RiskConfig {
    /// Level of a namespace without the `portcullis.io/risk-level` label.
    pub default: String,
    /// Where namespace labels come from in `serve`: `kubernetes` (a cached watch; the default)
    /// or `none` (the default with `--dev`).
    pub namespace_source: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, rename_all = "camelCase")]
pub struct LoggingConfig {
    pub format: String,
    pub level: String,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: None,
            metrics_listen: None,
            tls: TlsConfig::default(),
            shutdown_delay: "0s".into(),
            shutdown_grace_period: "25s".into(),
            max_pending_handshakes: 1024,
        }
    }
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            cert_file: "/tls/tls.crt".into(),
            key_file: "/tls/tls.key".into(),
            reload_interval: "5s".into(),
        }
    }
}

impl Default for AdmissionConfig {
    fn default() -> Self {
        AdmissionConfig {
            max_body_bytes: 7 * 1024 * 1024,
            max_concurrent_reviews: 64,
            max_concurrent_evaluations: 0,
            default_timeout: "10s".into(),
            deadline_margin: "500ms".into(),
            max_queue_wait: "500ms".into(),
            policy_timeout: "500ms".into(),
        }
    }
}

impl Default for PoliciesConfig {
    fn default() -> Self {
        PoliciesConfig {
            dirs: Vec::new(),
            reload_interval: "10s".into(),
            inventory: Vec::new(),
            engine: "compiled".into(),
        }
    }
}

impl Default for RiskConfig {
    fn default() -> Self {
        RiskConfig {
            default: "high".into(),
            namespace_source: None,
        }
    }
}

impl Default for LoggingConfig {
    fn default() -> Self {
        LoggingConfig {
            format: "json".into(),
            level: "info".into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NamespaceSource {
    Kubernetes,
    None,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub metrics_listen: SocketAddr,
    pub tls_cert: PathBuf,
    pub tls_key: PathBuf,
    pub tls_reload_interval: Duration,
    pub shutdown_delay: Duration,
    pub shutdown_grace_period: Duration,
    pub max_pending_handshakes: usize,
    pub max_body_bytes: usize,
    pub max_concurrent_reviews: usize,
    pub max_concurrent_evaluations: usize,
    pub default_timeout: Duration,
    pub deadline_margin: Duration,
    pub max_queue_wait: Duration,
    pub policy_timeout: Duration,
    pub policy_dirs: Vec<PathBuf>,
    pub policy_reload_interval: Duration,
    pub inventory: Vec<InventoryKind>,
    pub policy_engine: EngineChoice,
    pub enforcement: BTreeMap<String, Enforcement>,
    pub risk_default: RiskLevel,
    pub namespace_source: NamespaceSource,
    pub allowed_registries: Vec<String>,
    pub trust: TrustPolicy,
    pub log_format: LogFormat,
    pub log_level: String,
    /// The gate of each risk level, low to high (no approvals where the file says none).
    pub gates: BTreeMap<RiskLevel, Gate>,
    /// `serve` and the audit watch PolicyExceptions.
    pub exceptions_watched: bool,
    pub exceptions_max_days: u32,
}

/// Every problem found in a config file, each on its own line.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n{}", .0.iter().map(|e| format!("  - {e}")).collect::<Vec<_>>().join("\n"))]
pub struct ConfigErrors(pub Vec<String>);

/// An exception longer than a year is a policy change, not an exception.
const MAX_EXCEPTION_DAYS: i64 = 366;

/// Largest body we accept: the apiserver's own request limit is about 3 MiB per object.
const MAX_BODY_CAP: i64 = 64 * 1024 * 1024;

impl Config {
    /// Reads a YAML file; unknown keys are collected as errors, not ignored.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigErrors(vec![format!("cannot read config file {}: {e}", path.display())]))?;
        Config::from_yaml(&text)
    }

    pub fn from_yaml(text: &str) -> Result<Config, ConfigErrors> {
        if text.trim().is_empty() {
            return Ok(Config::default());
        }
        let mut unknown = Vec::new();
        let deserializer = yaml_serde::Deserializer::from_str(text);
        let config: Config =
            serde_ignored::deserialize(deserializer, |path| unknown.push(format!("unknown field `{path}`")))
                .map_err(|e| ConfigErrors(vec![format!("config file is not valid: {e}")]))?;
        if unknown.is_empty() {
            Ok(config)
        } else {
            Err(ConfigErrors(unknown))
        }
    }

    /// Checks every field and returns the typed settings, or all the errors found. `dev` picks
    /// the development defaults for what the file leaves unset (loopback, no cluster).
    pub fn validate(&self, dev: bool) -> Result<Settings, ConfigErrors> {
        let host = if dev { "127.0.0.1" } else { "0.0.0.0" };
        let listen_text = self.server.listen.clone().unwrap_or_else(|| format!("{host}:8443"));
        let metrics_text = self
            .server
            .metrics_listen
            .clone()
            .unwrap_or_else(|| format!("{host}:9090"));
        let namespace_text = self
            .risk
            .namespace_source
            .clone()
            .unwrap_or_else(|| if dev { "none" } else { "kubernetes" }.into());
        let mut errors = Vec::new();
        let mut addr = |field: &str, text: &str| -> SocketAddr {
            text.parse().unwrap_or_else(|_| {
                errors.push(format!("{field}: {text:?} is not an address like 0.0.0.0:8443"));
                SocketAddr::from(([127, 0, 0, 1], 0))
            })
        };
        let listen = addr("server.listen", &listen_text);
        let metrics_listen = addr("server.metricsListen", &metrics_text);
        if listen == metrics_listen && listen.port() != 0 {
            errors.push("server.listen and server.metricsListen must differ".into());
        }

        let mut dur =
            |field: &str, text: &str, min: Duration, max: Duration| duration::field(&mut errors, field, text, min, max);
        let ms = Duration::from_millis;
        let s = Duration::from_secs;
        let tls_reload_interval = dur(
            "server.tls.reloadInterval",
            &self.server.tls.reload_interval,
            ms(100),
            s(3600),
        );
        let shutdown_delay = dur("server.shutdownDelay", &self.server.shutdown_delay, s(0), s(300));
        let shutdown_grace_period = dur(
            "server.shutdownGracePeriod",
            &self.server.shutdown_grace_period,
            s(0),
            s(600),
        );
        let default_timeout = dur("admission.defaultTimeout", &self.admission.default_timeout, s(1), s(30));
        let deadline_margin = dur("admission.deadlineMargin", &self.admission.deadline_margin, s(0), s(5));
        let max_queue_wait = dur("admission.maxQueueWait", &self.admission.max_queue_wait, ms(10), s(30));
        let policy_timeout = dur("admission.policyTimeout", &self.admission.policy_timeout, ms(1), s(30));
        let policy_reload_interval = dur(
            "policies.reloadInterval",
            &self.policies.reload_interval,
            ms(100),
            s(3600),
        );

        if self.server.tls.cert_file.is_empty() || self.server.tls.key_file.is_empty() {
            errors.push("server.tls.certFile and server.tls.keyFile must be set".into());
        }
        let max_body_bytes = self.admission.max_body_bytes;
        if !(1024..=MAX_BODY_CAP).contains(&max_body_bytes) {
            errors.push(format!(
                "admission.maxBodyBytes: {max_body_bytes} is out of range (1024 to {MAX_BODY_CAP})"
            ));
        }
        if !(0..=1024).contains(&self.admission.max_concurrent_evaluations) {
            errors.push(format!(
                "admission.maxConcurrentEvaluations: {} is out of range (0 = one per CPU, up to 1024)",
                self.admission.max_concurrent_evaluations
            ));
        }
        let max_pending_handshakes = self.server.max_pending_handshakes;
        if !(1..=65_536).contains(&max_pending_handshakes) {
            errors.push(format!(
                "server.maxPendingHandshakes: {max_pending_handshakes} is out of range (1 to 65536)"
            ));
        }
        let max_concurrent_reviews = self.admission.max_concurrent_reviews;
        if !(1..=10_000).contains(&max_concurrent_reviews) {
            errors.push(format!(
                "admission.maxConcurrentReviews: {max_concurrent_reviews} is out of range (1 to 10000)"
            ));
        }

        let policy_engine = match self.policies.engine.as_str() {
            "compiled" => EngineChoice::Compiled,
            "interpreter" => EngineChoice::Interpreter,
            other => {
                errors.push(format!(
                    "policies.engine: {other:?} is not an engine (compiled or interpreter)"
                ));
                EngineChoice::Compiled
            }
        };

        let mut enforcement = BTreeMap::new();
        for (policy, action) in &self.enforcement {
            match Enforcement::parse(action) {
                Some(parsed) => {
                    enforcement.insert(policy.clone(), parsed);
                }
                None => errors.push(format!(
                    "enforcement.{policy}: {action:?} is not one of deny, warn, dryrun"
                )),
            }
        }
        let risk_default = RiskLevel::parse(&self.risk.default).unwrap_or_else(|| {
            errors.push(format!(
                "risk.default: {:?} is not one of low, medium, high",
                self.risk.default
            ));
            RiskLevel::High
        });
        let namespace_source = match namespace_text.as_str() {
            "kubernetes" => NamespaceSource::Kubernetes,
            "none" => NamespaceSource::None,
            other => {
                errors.push(format!(
                    "risk.namespaceSource: {other:?} is not one of kubernetes, none"
                ));
                NamespaceSource::None
            }
        };
        let trust = TrustPolicy::from_config(&self.images, &mut errors);
        let gates = gates(&self.gates, &mut errors);
        let exceptions_watched = match self.exceptions.source.as_str() {
            "kubernetes" => true,
            "none" => false,
            other => {
                errors.push(format!("exceptions.source: {other:?} is not one of kubernetes, none"));
                false
            }
        };
        if !(1..=MAX_EXCEPTION_DAYS).contains(&self.exceptions.max_days) {
            errors.push(format!(
                "exceptions.maxDays: {} is out of range (1 to {MAX_EXCEPTION_DAYS})",
                self.exceptions.max_days
            ));
        }
        let log_format = match self.logging.format.as_str() {
            "json" => LogFormat::Json,
            "text" => LogFormat::Text,
            other => {
                errors.push(format!("logging.format: {other:?} is not one of json, text"));
                LogFormat::Json
            }
        };
        if !valid_log_filter(&self.logging.level) {
            errors.push(format!(
                "logging.level: {:?} is not a level or filter like info or portcullis=debug",
                self.logging.level
            ));
        }
        for dir in &self.policies.dirs {
            if !Path::new(dir).is_dir() {
                errors.push(format!("policies.dirs: {dir:?} is not a directory"));
            }
        }
        check_inventory(&self.policies.inventory, &mut errors);

        if !errors.is_empty() {
            return Err(ConfigErrors(errors));
        }
        Ok(Settings {
            listen,
            metrics_listen,
            tls_cert: PathBuf::from(&self.server.tls.cert_file),
            tls_key: PathBuf::from(&self.server.tls.key_file),
            tls_reload_interval,
            shutdown_delay,
            shutdown_grace_period,
            max_pending_handshakes: max_pending_handshakes as usize,
            max_body_bytes: max_body_bytes as usize,
            max_concurrent_reviews: max_concurrent_reviews as usize,
            max_concurrent_evaluations: match self.admission.max_concurrent_evaluations {
                0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
                n => n as usize,
            },
            default_timeout,
            deadline_margin,
            max_queue_wait,
            policy_timeout,
            policy_dirs: self.policies.dirs.iter().map(PathBuf::from).collect(),
            policy_reload_interval,
            inventory: self.policies.inventory.clone(),
            policy_engine,
            enforcement,
            risk_default,
            namespace_source,
            allowed_registries: self.images.registries.allow.clone(),
            trust,
            log_format,
            log_level: self.logging.level.clone(),
            gates,
            exceptions_watched,
            exceptions_max_days: self.exceptions.max_days as u32,
        })
    }
}

/// The three levels' gates; a level the file leaves out needs no approval. A higher level may
/// never ask for fewer approvals than a lower one: that would lower the bar where it matters.
fn gates(config: &BTreeMap<String, GateConfig>, errors: &mut Vec<String>) -> BTreeMap<RiskLevel, Gate> {
    let mut gates: BTreeMap<RiskLevel, Gate> = RiskLevel::ALL.iter().map(|level| (*level, Gate::default())).collect();
    for (key, gate) in config {
        let Some(level) = RiskLevel::parse(key) else {
            errors.push(format!("gates.{key}: not a risk level (low, medium, high)"));
            continue;
        };
        if !(0..=20).contains(&gate.approvals) {
            errors.push(format!(
                "gates.{key}.approvals: {} is out of range (0 to 20)",
                gate.approvals
            ));
        }
        if gate.reviewers.iter().any(|r| r.trim().is_empty()) {
            errors.push(format!("gates.{key}.reviewers: an empty name"));
        }
        gates.insert(
            level,
            Gate {
                approvals: gate.approvals.clamp(0, 20) as u32,
                reviewers: gate.reviewers.clone(),
            },
        );
    }
    for pair in RiskLevel::ALL.windows(2) {
        let (lower, higher) = (&gates[&pair[0]], &gates[&pair[1]]);
        if higher.approvals < lower.approvals {
            errors.push(format!(
                "gates.{}.approvals: {} is fewer than {}'s {}; a higher risk level never needs fewer approvals",
                pair[1], higher.approvals, pair[0], lower.approvals
            ));
        }
    }
    gates
}

/// Each inventory kind names a version and a kind, once; Secrets are refused, since syncing
/// them would copy every credential of the cluster into policy data.
fn check_inventory(kinds: &[InventoryKind], errors: &mut Vec<String>) {
    for (index, entry) in kinds.iter().enumerate() {
        let field = format!("policies.inventory[{index}]");
        if entry.version.is_empty() || entry.kind.is_empty() {
            errors.push(format!(
                "{field}: version and kind must be set (group is empty for the core API)"
            ));
        } else if entry.group.is_empty() && entry.kind == "Secret" {
            errors.push(format!(
                "{field}: Secrets are never synced (policies would hold every credential of the cluster)"
            ));
        } else if kinds[..index].contains(entry) {
            errors.push(format!("{field}: {entry} is listed twice"));
        }
    }
}

/// A level (`info`) or a filter with targets (`info,portcullis=debug`). A bare word that is not a
/// level would be read as a target name and silence every log line, so it is refused.
fn valid_log_filter(filter: &str) -> bool {
    const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];
    tracing_subscriber::EnvFilter::try_new(filter).is_ok()
        && filter
            .split(',')
            .all(|directive| directive.contains('=') || LEVELS.contains(&directive.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_is_the_safe_default() {
        let settings = Config::from_yaml("").unwrap().validate(false).unwrap();
        assert_eq!(settings.risk_default, RiskLevel::High);
        assert_eq!(settings.max_body_bytes, 7 * 1024 * 1024);
        assert_eq!(settings.policy_timeout, Duration::from_millis(500));
        assert!(settings.allowed_registries.is_empty());
        assert!(settings.policy_dirs.is_empty());
    }

    #[test]
    fn gates_by_risk_level() {
        let yaml = "gates: { medium: { approvals: 1 }, high: { approvals: 2, reviewers: ['@acme/security'] } }\nserver: { tls: { certFile: c, keyFile: k } }\n";
        let settings = Config::from_yaml(yaml).unwrap().validate(false).unwrap();
        assert_eq!(
            settings.gates[&RiskLevel::Low],
            Gate::default(),
            "a level left out needs no approval"
        );
        assert_eq!(settings.gates[&RiskLevel::Medium].approvals, 1);
        assert_eq!(
            settings.gates[&RiskLevel::High].reviewers,
            vec!["@acme/security".to_string()]
        );

        let yaml = "gates: { extreme: {}, low: { approvals: 3, reviewers: [''] }, medium: { approvals: 21 }, high: { approvals: 2 } }\n";
        let errors = Config::from_yaml(yaml).unwrap().validate(false).unwrap_err().0;
        for expected in [
            "gates.extreme: not a risk level",
            "gates.low.reviewers: an empty name",
            "gates.medium.approvals: 21 is out of range",
            "gates.high.approvals: 2 is fewer than medium's 20",
        ] {
            assert!(
                errors.iter().any(|e| e.contains(expected)),
                "missing {expected} in {errors:#?}"
            );
        }
    }

    #[test]
    fn every_error_is_listed_at_once() {
        let yaml = r#"
admission: { maxBodyBytes: 0, policyTimeout: soon, maxConcurrentReviews: 0 }
risk: { default: extreme, namespaceSource: etcd }
enforcement: { pods.host_path: ignore }
images: { registries: { allow: ["https://ghcr.io", "Registry.Example.com"] } }
logging: { format: xml, level: inf }
server: { listen: nowhere }
exceptions: { source: crd, maxDays: 400 }
"#;
        let errors = Config::from_yaml(yaml).unwrap().validate(false).unwrap_err().0;
        for expected in [
            "admission.maxBodyBytes",
            "admission.policyTimeout",
            "admission.maxConcurrentReviews",
            "risk.default",
            "risk.namespaceSource",
            "enforcement.pods.host_path",
            "\"https://ghcr.io\"",
            "\"Registry.Example.com\"",
            "logging.format",
            "logging.level",
            "server.listen",
            "exceptions.source",
            "exceptions.maxDays: 400 is out of range (1 to 366)",
        ] {
            assert!(
                errors.iter().any(|e| e.contains(expected)),
                "missing {expected} in {errors:#?}"
            );
        }
        assert_eq!(errors.len(), 13, "{errors:#?}");
    }

    #[test]
    fn unknown_keys_are_all_reported() {
        let errors = Config::from_yaml("risk: { defualt: low }\nimage: {}\n").unwrap_err().0;
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors.iter().any(|e| e.contains("risk.defualt")));
        assert!(errors.iter().any(|e| e.contains("image")));
    }

    #[test]
    fn wrong_types_are_errors_not_defaults() {
        let error = Config::from_yaml("admission: { maxBodyBytes: lots }").unwrap_err();
        assert!(error.to_string().contains("maxBodyBytes"), "{error}");
    }

    #[test]
    fn inventory_kinds_are_checked() {
        let yaml = r#"
policies:
  inventory:
  - {group: networking.k8s.io, version: v1, kind: Ingress}
  - {version: v1, kind: Namespace}
  - {group: networking.k8s.io, version: v1, kind: Ingress}
  - {version: v1, kind: Secret}
  - {group: apps, kind: Deployment}
"#;
        let errors = Config::from_yaml(yaml).unwrap().validate(false).unwrap_err().0;
        assert_eq!(
            errors,
            [
                "policies.inventory[2]: networking.k8s.io/v1/Ingress is listed twice",
                "policies.inventory[3]: Secrets are never synced (policies would hold every credential of the cluster)",
                "policies.inventory[4]: version and kind must be set (group is empty for the core API)",
            ]
        );
        let settings = Config::from_yaml("policies: {inventory: [{version: v1, kind: Namespace}]}")
            .unwrap()
            .validate(false)
            .unwrap();
        assert_eq!(settings.inventory[0].to_string(), "v1/Namespace");
    }

    #[test]
    fn overrides_parse() {
        let yaml = "enforcement: { images.digest_pinning: warn, pods.privileged: dryrun }\nrisk: { default: low }";
        let settings = Config::from_yaml(yaml).unwrap().validate(false).unwrap();
        assert_eq!(settings.enforcement["images.digest_pinning"], Enforcement::Warn);
        assert_eq!(settings.enforcement["pods.privileged"], Enforcement::DryRun);
        assert_eq!(settings.risk_default, RiskLevel::Low);
    }
}
