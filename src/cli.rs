//! Command line. Every flag can also come from a `PORTCULLIS_*` environment variable; flags and
//! environment override the config file.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "portcullis",
    version,
    about = "Kubernetes admission webhook: image supply-chain gates and shared Rego policies"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log format: json or text (overrides logging.format).
    #[arg(long, global = true, env = "PORTCULLIS_LOG_FORMAT")]
    pub log_format: Option<String>,
    /// Log level or filter, e.g. info or portcullis=debug (overrides logging.level).
    #[arg(long, global = true, env = "PORTCULLIS_LOG_LEVEL")]
    pub log_level: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the admission webhook (HTTPS) and the metrics/probe listener.
    Serve(ServeArgs),
    /// Evaluate manifests offline with the webhook's policies and input.
    Check(CheckArgs),
    /// Run the policies' unit tests (test_* rules in *_test.rego files) and gator suites
    /// (suite.yaml).
    Test(TestArgs),
    /// Verify one image against the trust policy and print its facts.
    Verify(VerifyArgs),
    /// Decide what runs in the cluster now with the webhook's policies; with --policies, what a
    /// proposed policy library would newly deny or stop denying (what-if).
    Audit(AuditArgs),
    /// What a pull request of the app needs besides the checks at its risk level: the
    /// approvals and the reviewers (the config's gates).
    Gates(GatesArgs),
}

#[derive(Debug, Args)]
pub struct GatesArgs {
    /// Config file (YAML): its gates and its registry allow-list (app.yaml is validated).
    #[arg(long, env = "PORTCULLIS_CONFIG")]
    pub config: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "text", env = "PORTCULLIS_OUTPUT")]
    pub output: GatesOutput,
    /// The app's app.yaml.
    pub app: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GatesOutput {
    Text,
    Json,
    Markdown,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Config file (YAML).
    #[arg(long, env = "PORTCULLIS_CONFIG")]
    pub config: Option<PathBuf>,
    /// Development mode: self-signed certificates in the state dir; unless the config file says
    /// otherwise, loopback listeners, the embedded policy library and no cluster access.
    #[arg(long, env = "PORTCULLIS_DEV", value_parser = clap::builder::BoolishValueParser::new())]
    pub dev: bool,
    /// Webhook listen address (overrides server.listen).
    #[arg(long, env = "PORTCULLIS_LISTEN")]
    pub listen: Option<String>,
    /// Metrics and probes listen address (overrides server.metricsListen).
    #[arg(long, env = "PORTCULLIS_METRICS_LISTEN")]
    pub metrics_listen: Option<String>,
    /// Where --dev keeps its certificates.
    #[arg(long, env = "PORTCULLIS_STATE_DIR", default_value = ".portcullis-dev")]
    pub state_dir: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CheckOutput {
    Text,
    Json,
    /// GitHub Actions workflow commands: each finding an annotation on its object's line.
    Github,
    /// JUnit XML: a test suite per file, a test case per object and policy.
    Junit,
    /// SARIF 2.1.0: a rule per policy, a result per finding at its file and line.
    Sarif,
    /// A pull-request comment: the verdict and a table of what to change.
    Markdown,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Config file (YAML), the same as the webhook's: registries, policies, enforcement, risk
    /// default, policy time limit.
    #[arg(long, env = "PORTCULLIS_CONFIG")]
    pub config: Option<PathBuf>,
    /// Policy directory (repeatable; overrides policies.dirs). Default: the embedded library.
    #[arg(long = "policies", env = "PORTCULLIS_POLICIES", value_delimiter = ',')]
    pub policies: Vec<PathBuf>,
    /// Risk level of the namespace for every object (low, medium, high); otherwise taken from
    /// Namespace manifests among the inputs, else risk.default.
    #[arg(long, env = "PORTCULLIS_RISK_LEVEL")]
    pub risk_level: Option<String>,
    /// text: a line per finding; json: the results; github: workflow commands (annotations);
    /// junit and sarif for CI test reports and code scanning; markdown for a PR comment.
    #[arg(long, value_enum, default_value = "text", env = "PORTCULLIS_OUTPUT")]
    pub output: CheckOutput,
    /// Write the --output format to this file instead; the text output then goes to stdout
    /// (e.g. --output junit --output-file report.xml, and the findings in the job's log).
    #[arg(long, env = "PORTCULLIS_OUTPUT_FILE")]
    pub output_file: Option<PathBuf>,
    /// Append the markdown summary (verdict and table) to this file; GitHub Actions sets
    /// GITHUB_STEP_SUMMARY to its job summary's.
    #[arg(long, env = "GITHUB_STEP_SUMMARY")]
    pub summary: Option<PathBuf>,
    /// The app's app.yaml (name, owner, risk_level, version, image): validated, its labels
    /// required on every object and pod template, its risk level applied as the label's.
    #[arg(long, env = "PORTCULLIS_APP")]
    pub app: Option<PathBuf>,
    /// Manifests that Gatekeeper templates see as `data.inventory` (repeatable), e.g. the
    /// cluster's objects exported with `kubectl get ingress -A -o yaml`; not checked themselves.
    #[arg(long = "inventory", env = "PORTCULLIS_INVENTORY", value_delimiter = ',')]
    pub inventory: Vec<PathBuf>,
    /// Do not contact registries: image verification facts stay `skipped` and the signature
    /// policy does not apply (for pull requests whose images are not pushed yet).
    #[arg(long, env = "PORTCULLIS_OFFLINE", value_parser = clap::builder::BoolishValueParser::new())]
    pub offline: bool,
    /// Registry logins (a docker config.json) for verification; default: the config's
    /// images.verification.dockerConfig, else $DOCKER_CONFIG/config.json, else
    /// ~/.docker/config.json, as docker and cosign read them.
    #[arg(long, env = "PORTCULLIS_DOCKER_CONFIG")]
    pub docker_config: Option<PathBuf>,
    /// The directory kustomize built the manifests from, with `buildMetadata:
    /// [originAnnotations]` in its kustomization: each finding then points at its object's
    /// source file and line under it, not at the rendered output.
    #[arg(long, env = "PORTCULLIS_KUSTOMIZE_DIR")]
    pub kustomize_dir: Option<PathBuf>,
    /// YAML/JSON files or directories of manifests (multi-document YAML, Lists, AdmissionReviews).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuditOutput {
    Text,
    Json,
    /// openreports.io/v1alpha1 Report and ClusterReport.
    Openreports,
    /// wgpolicyk8s.io/v1alpha2 PolicyReport and ClusterPolicyReport.
    Policyreport,
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Config file (YAML), the same as the webhook's.
    #[arg(long, env = "PORTCULLIS_CONFIG")]
    pub config: Option<PathBuf>,
    /// Kubeconfig to reach the cluster (its current context); default: KUBECONFIG,
    /// ~/.kube/config, or the in-cluster service account.
    #[arg(long, env = "PORTCULLIS_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// Audit only this namespace (repeatable); default: every namespace.
    #[arg(
        long = "namespace",
        short = 'n',
        env = "PORTCULLIS_NAMESPACES",
        value_delimiter = ','
    )]
    pub namespaces: Vec<String>,
    /// A proposed policy library (repeatable): evaluated beside the configured one, and every
    /// finding marked new, resolved or unchanged under it.
    #[arg(long = "policies", env = "PORTCULLIS_PROPOSED_POLICIES", value_delimiter = ',')]
    pub policies: Vec<PathBuf>,
    /// text and json: the findings and a summary; openreports and policyreport: the policy
    /// reports (a List for `kubectl apply -f -`), with a result per object and policy.
    #[arg(long, value_enum, default_value = "text", env = "PORTCULLIS_OUTPUT")]
    pub output: AuditOutput,
    /// Do not contact registries: image verification facts stay `skipped`.
    #[arg(long, env = "PORTCULLIS_OFFLINE", value_parser = clap::builder::BoolishValueParser::new())]
    pub offline: bool,
    /// Audit continuously: a pass every interval (e.g. 10m), its results as metrics on
    /// `server.metricsListen` (with the probes), until SIGTERM. Prints nothing per pass.
    #[arg(long, env = "PORTCULLIS_AUDIT_INTERVAL", value_parser = audit_interval, conflicts_with_all = ["policies", "output"])]
    pub interval: Option<std::time::Duration>,
    /// Registry verifications the audit starts per second at most (a tag resolved, a digest
    /// verified; cache hits are free), so that a pass never floods a registry.
    #[arg(long, default_value_t = 10.0, env = "PORTCULLIS_AUDIT_VERIFICATIONS_PER_SECOND", value_parser = verification_rate)]
    pub verifications_per_second: f64,
    /// With --interval: write each pass's policy reports into the cluster (their CRDs
    /// installed), only the changed ones.
    #[arg(long, value_enum, env = "PORTCULLIS_AUDIT_REPORTS", requires = "interval")]
    pub write_reports: Option<ReportFormat>,
    /// With --interval: audit only while holding this coordination.k8s.io Lease
    /// (NAMESPACE/NAME), so that of several replicas one audits and another takes over.
    #[arg(long, env = "PORTCULLIS_AUDIT_LEASE", value_parser = lease_name, requires = "interval")]
    pub lease: Option<LeaseName>,
    /// With --interval: metrics and probes listen address (overrides server.metricsListen, as
    /// for `serve`), e.g. to run the audit beside the webhook on one host.
    #[arg(long, env = "PORTCULLIS_METRICS_LISTEN", requires = "interval")]
    pub metrics_listen: Option<String>,
}

/// A Lease's namespace and name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseName {
    pub namespace: String,
    pub name: String,
}

/// NAMESPACE/NAME, both DNS labels or subdomains as Kubernetes names them.
fn lease_name(text: &str) -> Result<LeaseName, String> {
    let valid = |part: &str| {
        !part.is_empty()
            && part.len() <= 253
            && part.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && part.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && part
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
    };
    match text.split_once('/') {
        Some((namespace, name)) if valid(namespace) && valid(name) && !namespace.contains('.') => Ok(LeaseName {
            namespace: namespace.to_string(),
            name: name.to_string(),
        }),
        _ => Err(format!(
            "{text:?} is not NAMESPACE/NAME (lower-case names, e.g. portcullis/portcullis-audit)"
        )),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    /// openreports.io/v1alpha1 Report and ClusterReport.
    Openreports,
    /// wgpolicyk8s.io/v1alpha2 PolicyReport and ClusterPolicyReport.
    Policyreport,
}

/// A verification rate: a number from 0.1 to 1000 per second.
fn verification_rate(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(rate) if (0.1..=1000.0).contains(&rate) => Ok(rate),
        _ => Err(format!("{text:?} is not a rate from 0.1 to 1000 per second")),
    }
}

/// An audit interval: a duration from 1s to 24h.
fn audit_interval(text: &str) -> Result<std::time::Duration, String> {
    let interval = crate::duration::parse(text).map_err(|error| error.to_string())?;
    let (min, max) = (
        std::time::Duration::from_secs(1),
        std::time::Duration::from_secs(86_400),
    );
    match interval >= min && interval <= max {
        true => Ok(interval),
        false => Err(format!("{text:?} is out of range (1s to 24h)")),
    }
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Config file (YAML) with images.registries and images.trust.
    #[arg(long, env = "PORTCULLIS_CONFIG")]
    pub config: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "text", env = "PORTCULLIS_OUTPUT")]
    pub output: Output,
    /// Registry logins (a docker config.json); default as for `check`.
    #[arg(long, env = "PORTCULLIS_DOCKER_CONFIG")]
    pub docker_config: Option<PathBuf>,
    /// The image, e.g. registry.example.com/team/app@sha256:... or ...:1.0 (resolved to a digest).
    pub image: String,
}

#[derive(Debug, Args)]
pub struct TestArgs {
    /// Policy directories with *_test.rego files and/or gator suites (kind Suite,
    /// test.gatekeeper.sh). Default: the embedded library.
    pub paths: Vec<PathBuf>,
}
