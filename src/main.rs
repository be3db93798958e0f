//! The `portcullis` binary: parse the command line, load the config, run the command.
//! Only this file exits the process.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;

/// mimalloc, on every target: measured against glibc's and musl's allocators in
/// docs/benchmarks.md (a review allocates and frees thousands of small values).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use portcullis::admission::setup::load_policies;
use portcullis::admission::Reviewer;
use portcullis::audit::{self, reports, AuditError};
use portcullis::batch;
use portcullis::check::InputErrors;
use portcullis::cli::{
    AuditArgs, AuditOutput, CheckArgs, CheckOutput, Cli, Command, GatesArgs, GatesOutput, Output, ReportFormat,
    ServeArgs, TestArgs, VerifyArgs,
};
use portcullis::config::{Config, ConfigErrors, NamespaceSource, Settings};
use portcullis::exceptions::watch::KubeExceptions;
use portcullis::exceptions::{ExceptionSource, StaticExceptions};
use portcullis::images::pull_secrets::{PullSecretRefs, PullSecrets};
use portcullis::images::secret_keys::SecretKeys;
use portcullis::images::trust::TrustPolicy;
use portcullis::images::verify::{status_label, Verifier, VerifierError};
use portcullis::images::{ImageReference, ReferenceError};
use portcullis::inventory::{InventorySync, UnknownKinds};
use portcullis::metrics::Metrics;
use portcullis::namespaces::{KubeNamespaces, NamespaceLabels, StaticNamespaces};
use portcullis::policy::engine::LoadError;
use portcullis::policy::evaluator::EngineKind;
use portcullis::policy::gatekeeper::InventoryError;
use portcullis::policy::testing::{self, TestError};
use portcullis::policy::Source;
use portcullis::risk::RiskLevel;
use portcullis::server::certs::{self, CertError};
use portcullis::server::{self, dev, ServeError, Server};
use portcullis::{check, telemetry};

/// Exit status for usage, config and load errors.
const USAGE_ERROR: u8 = 2;

/// Everything that stops a command before it can give its answer; `main` alone turns it into
/// text on stderr and exit status 2.
#[derive(Debug, thiserror::Error)]
enum StartupError {
    #[error(transparent)]
    Config(#[from] ConfigErrors),
    #[error("cannot load policies from {from}: {source}")]
    Policies {
        from: String,
        #[source]
        source: LoadError,
    },
    #[error("cannot start the async runtime: {0}")]
    Runtime(#[source] std::io::Error),
    #[error(transparent)]
    Serve(#[from] ServeError),
    #[error("cannot read the address it listens on: {0}")]
    ListenAddress(#[source] std::io::Error),
    #[error(transparent)]
    DevCertificates(#[from] CertError),
    #[error(transparent)]
    App(#[from] check::AppErrors),
    #[error("cannot write {path}: {source}")]
    OutputFile {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read {path}: {source}")]
    ReadFile {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Verifier(#[from] VerifierError),
    #[error(transparent)]
    SecretKeys(#[from] portcullis::images::secret_keys::SecretKeysError),
    #[error("cannot watch namespaces (set risk.namespaceSource: none outside a cluster): {0}")]
    Namespaces(#[source] kube::Error),
    #[error("{feature} needs the Kubernetes API: {source}")]
    KubernetesApi {
        feature: &'static str,
        #[source]
        source: kube::Error,
    },
    #[error(transparent)]
    InventorySync(#[from] UnknownKinds),
    #[error(transparent)]
    Inputs(#[from] InputErrors),
    #[error("--inventory: {0}")]
    InventoryInputs(#[source] InputErrors),
    #[error(transparent)]
    Inventory(#[from] InventoryError),
    #[error("--risk-level {0:?} is not one of low, medium, high")]
    RiskLevel(String),
    #[error("no trust policy configured: add images.trust entries to the config")]
    NoTrustPolicy,
    #[error("{image:?}: {source}")]
    ImageReference {
        image: String,
        #[source]
        source: ReferenceError,
    },
    #[error(transparent)]
    Tests(#[from] TestError),
    #[error("audit: {0}")]
    Audit(#[from] AuditError),
    #[error("audit --write-reports: {0}")]
    AuditReports(#[from] audit::writer::WriteError),
    #[error("audit --lease: {0}")]
    AuditLease(#[from] audit::lease::LeaseError),
}

fn main() -> ExitCode {
    without_huge_pages();
    let cli = Cli::parse();
    portcullis::tls_provider();
    let result = match &cli.command {
        Command::Serve(args) => serve(&cli, args),
        Command::Check(args) => run_check(&cli, args),
        Command::Test(args) => run_tests(args),
        Command::Verify(args) => run_verify(&cli, args),
        Command::Audit(args) => run_audit(&cli, args),
        Command::Gates(args) => run_gates(&cli, args),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            eprintln!("portcullis: {error}");
            ExitCode::from(USAGE_ERROR)
        }
    }
}

/// Transparent huge pages off for this process. With them, the first touch of a 2 MiB region
/// of the allocator's arena makes all of it resident: resident memory rose and fell in 2 MiB
/// steps unrelated to the reviews, 15 MiB (37%) above the same load without them
/// (docs/reliability.md). mimalloc is built not to ask for them (`no_thp`), which is enough
/// where the kernel gives them only when asked (`madvise`); this covers kernels that give them
/// to every process (`always`). Best effort: a kernel without the setting keeps its default.
fn without_huge_pages() {
    #[cfg(target_os = "linux")]
    let _ = rustix::thread::disable_transparent_huge_pages(true);
}

/// Config file (or defaults) with the command-line overrides applied, validated.
fn settings(
    cli: &Cli,
    file: Option<&Path>,
    dev: bool,
    adjust: impl FnOnce(&mut Config),
) -> Result<Settings, StartupError> {
    let mut config = match file {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    if let Some(format) = &cli.log_format {
        config.logging.format = format.clone();
    }
    if let Some(level) = &cli.log_level {
        config.logging.level = level.clone();
    }
    adjust(&mut config);
    let settings = config.validate(dev)?;
    telemetry::init(settings.log_format, &settings.log_level);
    Ok(settings)
}

/// The configured policy library, loaded; the error names where it was read from.
fn policies(settings: &Settings) -> Result<(Source, portcullis::policy::PolicySet), StartupError> {
    let source = Source::from_dirs(&settings.policy_dirs);
    let policies = load_policies(&source, settings).map_err(|source_error| StartupError::Policies {
        from: source.describe(),
        source: source_error,
    })?;
    Ok((source, policies))
}

fn serve(cli: &Cli, args: &ServeArgs) -> Result<u8, StartupError> {
    let mut settings = settings(cli, args.config.as_deref(), args.dev, |config| {
        if let Some(listen) = &args.listen {
            config.server.listen = Some(listen.clone());
        }
        if let Some(listen) = &args.metrics_listen {
            config.server.metrics_listen = Some(listen.clone());
        }
    })?;
    let dev_files = if args.dev {
        let files = certs::ensure_dev_files(&args.state_dir)?;
        settings.tls_cert = files.cert.clone();
        settings.tls_key = files.key.clone();
        Some(files)
    } else {
        None
    };
    let (source, policies) = policies(&settings)?;
    tracing::info!(
        policies = policies.policies().len(),
        compiled = policies.on_engine(EngineKind::Compiled),
        interpreted = policies.on_engine(EngineKind::Interpreter),
        source = %source.describe(),
        "policy library loaded"
    );

    runtime()?.block_on(async move {
        // One Kubernetes client for every feature that reads the API, built by the first.
        let mut api = ApiClient::default();
        let namespaces: Arc<dyn NamespaceLabels> = match settings.namespace_source {
            NamespaceSource::Kubernetes => Arc::new(KubeNamespaces::start(
                api.get().await.map_err(StartupError::Namespaces)?,
            )),
            NamespaceSource::None => Arc::new(StaticNamespaces::default()),
        };
        let pull_secrets = if settings.trust.read_pull_secrets {
            let client = api.get_for("images.verification.imagePullSecrets").await?;
            Some(Arc::new(PullSecrets::new(client)))
        } else {
            None
        };
        if settings.trust.awaits_secret_keys() {
            let client = api.get_for("images.trust[].authorities[].key.secretRef").await?;
            settings.trust = read_secret_keys(&settings.trust, client).await?;
        }
        let metrics = Arc::new(Metrics::new());
        let mut reviewer = Reviewer::from_settings(&settings, policies, namespaces, metrics.clone(), pull_secrets)?;
        if settings.exceptions_watched {
            let client = api.get_for("exceptions.source").await?;
            reviewer = reviewer.with_exceptions(watched_exceptions(client, &settings, &metrics));
        }
        let state = server::app_state_from(&settings, reviewer, metrics);
        if !settings.inventory.is_empty() {
            let client = api.get_for("policies.inventory").await?;
            InventorySync::start(client, &settings.inventory)
                .await?
                .follow(state.reviewer.clone(), state.metrics.clone());
        }
        let server = Server::bind(state, settings, source).await?;
        let addr = server.webhook_addr().map_err(StartupError::ListenAddress)?;
        let operations = server.operations_addr().map_err(StartupError::ListenAddress)?;
        tracing::info!(webhook = %addr, operations = %operations, "listening");
        if let Some(files) = dev_files {
            let host = if addr.ip().is_unspecified() {
                "127.0.0.1".to_string()
            } else {
                addr.ip().to_string()
            };
            let url = format!("https://{host}:{}/validate", addr.port());
            let ca = std::fs::read_to_string(&files.ca_cert).map_err(|source| StartupError::ReadFile {
                path: files.ca_cert.display().to_string(),
                source,
            })?;
            println!("portcullis (dev) is serving {url}");
            println!("metrics and probes: http://{operations}/metrics");
            println!("CA certificate: {}", files.ca_cert.display());
            println!(
                "try: curl --cacert {} -H 'Content-Type: application/json' --data @review.json {url}",
                files.ca_cert.display()
            );
            println!("---");
            print!("{}", dev::webhook_configuration(&url, &ca));
        }
        let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            wait_for_signal().await;
            let _ = shutdown_tx.send(true);
            // A second signal means "now": skip the drain.
            wait_for_signal().await;
            eprintln!("portcullis: second signal, exiting without draining");
            std::process::exit(1);
        });
        Ok::<(), StartupError>(server.run(shutdown_rx).await?)
    })?;
    Ok(0)
}

/// The trust policy with the keys that authorities take from Secrets, which are watched from
/// now on (a rotated Secret is used at the next trust reload).
async fn read_secret_keys(trust: &TrustPolicy, client: kube::Client) -> Result<TrustPolicy, StartupError> {
    let keys = SecretKeys::watch(client, &trust.secret_refs).await?;
    trust
        .with_secret_keys(keys)
        .map_err(|errors| StartupError::Config(ConfigErrors(errors)))
}

/// PolicyExceptions followed by a watch, their metrics kept up to date.
fn watched_exceptions(client: kube::Client, settings: &Settings, metrics: &Arc<Metrics>) -> Arc<dyn ExceptionSource> {
    Arc::new(KubeExceptions::start(
        client,
        settings.exceptions_max_days,
        metrics.clone(),
    ))
}

/// The registry logins of a command run where a person or CI job runs it (`check`, `verify`):
/// `flag`, else the config's, else the docker config docker and cosign would read
/// (`$DOCKER_CONFIG/config.json`, `~/.docker/config.json`) when there is one. `serve` and the
/// audit read only what their config names.
fn use_docker_config(config: &mut Config, flag: Option<&Path>) {
    let verification = &mut config.images.verification;
    if let Some(path) = flag {
        verification.docker_config = Some(path.display().to_string());
        return;
    }
    if verification.docker_config.is_some() {
        return;
    }
    let directory = std::env::var_os("DOCKER_CONFIG")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".docker")));
    let found = directory
        .map(|dir| dir.join("config.json"))
        .filter(|file| file.is_file());
    verification.docker_config = found.map(|file| file.display().to_string());
}

/// The Kubernetes client of `serve`, built on first use from the in-cluster config or
/// KUBECONFIG, then shared (one connection pool for the watches and the Secret reads).
#[derive(Default)]
struct ApiClient(Option<kube::Client>);

impl ApiClient {
    /// The client, for `feature` (named in the error when there is no cluster to reach).
    async fn get_for(&mut self, feature: &'static str) -> Result<kube::Client, StartupError> {
        self.get()
            .await
            .map_err(|source| StartupError::KubernetesApi { feature, source })
    }

    async fn get(&mut self) -> Result<kube::Client, kube::Error> {
        if let Some(client) = &self.0 {
            return Ok(client.clone());
        }
        let client = kube_client(None).await?;
        self.0 = Some(client.clone());
        Ok(client)
    }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

fn run_check(cli: &Cli, args: &CheckArgs) -> Result<u8, StartupError> {
    let mut settings = settings(cli, args.config.as_deref(), false, |config| {
        if !args.policies.is_empty() {
            config.policies.dirs = args.policies.iter().map(|p| p.display().to_string()).collect();
        }
        // Offline, no registry is asked: no login is read either.
        if !args.offline {
            use_docker_config(config, args.docker_config.as_deref());
        }
    })?;
    // The gates list what the config applies in the cluster, whether or not this run verifies.
    let verifying = !settings.trust.entries.is_empty();
    if args.offline {
        settings.trust.entries.clear();
    }
    let risk_level = match &args.risk_level {
        Some(text) => Some(RiskLevel::parse(text).ok_or_else(|| StartupError::RiskLevel(text.clone()))?),
        None => None,
    };
    let app = match &args.app {
        Some(path) => Some(check::read_app(path, &settings.allowed_registries)?),
        None => None,
    };
    let (_, policies) = policies(&settings)?;
    let metadata = policies.metadata();
    let mut documents = check::read_inputs(&args.paths)?;
    if let Some(dir) = &args.kustomize_dir {
        check::point_at_origins(&mut documents, dir)?;
    }
    // The labels and images as written; then the app's level as the label would give it.
    let app_findings = app.as_ref().map(|app| app.findings(&documents));
    if let Some(app) = &app {
        app.apply_risk_level(&mut documents);
    }
    let namespaces = check::namespace_source(&documents, risk_level);
    let exceptions = check::exception_source(&documents, settings.exceptions_max_days)?;
    let reviewer = Reviewer::from_settings(&settings, policies, namespaces, Arc::new(Metrics::new()), None)?
        .with_exceptions(Arc::new(exceptions));
    if !args.inventory.is_empty() {
        let inventory = check::read_inventory(&args.inventory).map_err(StartupError::InventoryInputs)?;
        reviewer.replace_inventory(inventory)?;
    }
    // Verification is registry I/O: an async runtime only when it is on.
    let runtime = if settings.trust.entries.is_empty() {
        None
    } else {
        Some(runtime()?)
    };
    let mut results = batch::evaluate(&reviewer, &documents, runtime.as_ref());
    if let Some(findings) = app_findings {
        check::add_findings(&mut results, findings);
    }
    // The verdict and table, then, with --app, what the pull request needs at the app's level;
    // rendered once for the output and the summary.
    let markdown = (args.output == CheckOutput::Markdown || args.summary.is_some()).then(|| {
        let gates = app.as_ref().map(|app| {
            let at = check::gates::policies_at(&reviewer.policies(), &settings.enforcement, verifying, app.risk_level);
            format!(
                "\n{}",
                check::gates::render_markdown(app, &settings.gates[&app.risk_level], &at)
            )
        });
        check::render_markdown(&results, &metadata) + &gates.unwrap_or_default()
    });
    let rendered = match args.output {
        CheckOutput::Text => batch::render_text(&results),
        CheckOutput::Github => check::render_github(&results, &metadata),
        CheckOutput::Json => batch::render_json(&results) + "\n",
        CheckOutput::Junit => check::render_junit(&results),
        CheckOutput::Sarif => check::render_sarif(&results, &metadata) + "\n",
        CheckOutput::Markdown => markdown.clone().unwrap_or_default(),
    };
    if let (Some(path), Some(markdown)) = (&args.summary, &markdown) {
        append(path, markdown).map_err(|source| StartupError::OutputFile {
            path: path.display().to_string(),
            source,
        })?;
    }
    match &args.output_file {
        Some(path) => {
            std::fs::write(path, rendered).map_err(|source| StartupError::OutputFile {
                path: path.display().to_string(),
                source,
            })?;
            print!("{}", batch::render_text(&results));
        }
        None => print!("{rendered}"),
    }
    let denied = results.iter().filter(|r| !r.allowed).count();
    eprintln!("checked {} object(s): {denied} denied", results.len());
    Ok(batch::exit_code(&results) as u8)
}

fn run_gates(cli: &Cli, args: &GatesArgs) -> Result<u8, StartupError> {
    let settings = settings(cli, args.config.as_deref(), false, |_| {})?;
    let app = check::read_app(&args.app, &settings.allowed_registries)?;
    let (_, policies) = policies(&settings)?;
    let gate = &settings.gates[&app.risk_level];
    let verifying = !settings.trust.entries.is_empty();
    let policies = check::gates::policies_at(&policies, &settings.enforcement, verifying, app.risk_level);
    print!(
        "{}",
        match args.output {
            GatesOutput::Text => check::gates::render_text(&app, gate, &policies),
            GatesOutput::Json => check::gates::render_json(&app, gate, &policies),
            GatesOutput::Markdown => check::gates::render_markdown(&app, gate, &policies),
        }
    );
    Ok(0)
}

/// Appends `text` to `path` (a job summary is shared by a job's steps).
fn append(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    file.write_all(text.as_bytes())
}

fn run_audit(cli: &Cli, args: &AuditArgs) -> Result<u8, StartupError> {
    let mut settings = settings(cli, args.config.as_deref(), false, |config| {
        if let Some(listen) = &args.metrics_listen {
            config.server.metrics_listen = Some(listen.clone());
        }
    })?;
    if args.offline {
        settings.trust.entries.clear();
    }
    settings.trust.verification_rate = Some(args.verifications_per_second);
    let (source, installed) = policies(&settings)?;
    if let Some(interval) = args.interval {
        return run_continuous_audit(settings, source, installed, args, interval);
    }
    let proposed = match args.policies.as_slice() {
        [] => None,
        dirs => {
            let source = Source::Dirs(dirs.to_vec());
            Some(
                load_policies(&source, &settings).map_err(|error| StartupError::Policies {
                    from: source.describe(),
                    source: error,
                })?,
            )
        }
    };
    // The kinds either set's Gatekeeper constraints select are listed too.
    let selection = audit::Selection {
        namespaces: &args.namespaces,
        page: audit::PAGE,
        matches: std::iter::once(&installed)
            .chain(&proposed)
            .flat_map(|set| set.constraints().iter().map(|c| c.matcher.clone()))
            .collect(),
    };
    let runtime = runtime()?;
    let (client, namespaces, exceptions, inventory) = runtime.block_on(async {
        let client = audit_client(args.kubeconfig.as_deref()).await?;
        let namespaces = audit::namespaces(&client, audit::PAGE)
            .await
            .map_err(AuditError::List)?;
        let exceptions = match settings.exceptions_watched {
            true => audit::exceptions(&client, audit::PAGE, settings.exceptions_max_days)
                .await
                .map_err(AuditError::List)?,
            false => StaticExceptions::default(),
        };
        let inventory = match settings.inventory.is_empty() {
            true => None,
            false => Some(
                audit::inventory(&client, &settings.inventory, audit::PAGE)
                    .await
                    .map_err(AuditError::List)?,
            ),
        };
        Ok::<_, StartupError>((client, namespaces, exceptions, inventory))
    })?;
    if !settings.trust.entries.is_empty() && settings.trust.awaits_secret_keys() {
        settings.trust = runtime.block_on(read_secret_keys(&settings.trust, client.clone()))?;
    }
    let pull_secrets = settings
        .trust
        .read_pull_secrets
        .then(|| Arc::new(PullSecrets::new(client.clone())));
    let namespaces = Arc::new(namespaces);
    let metrics = Arc::new(Metrics::new());
    let exceptions: Arc<dyn ExceptionSource> = Arc::new(exceptions);
    let reviewer = Reviewer::from_settings(&settings, installed, namespaces.clone(), metrics.clone(), pull_secrets)?
        .with_exceptions(exceptions.clone());
    // The proposal decides on the facts the installed reviewer gathered: each image verified once.
    let proposal = match proposed {
        Some(set) => {
            Some(Reviewer::from_settings(&settings, set, namespaces, metrics, None)?.with_exceptions(exceptions))
        }
        None => None,
    };
    if let Some(inventory) = inventory {
        for reviewer in std::iter::once(&reviewer).chain(&proposal) {
            reviewer.replace_inventory(inventory.clone())?;
        }
    }
    let online = !settings.trust.entries.is_empty();
    let audited = audit::pass(&runtime, &client, &selection, &reviewer, proposal.as_ref(), online)?.audited;
    let summary = audit::Summary::of(&audited);
    let findings: Vec<&batch::ObjectResult> = audit::reported(&audited)
        .map(|audited| &audited.result)
        .filter(|result| !result.findings.is_empty())
        .collect();
    let print_reports = |format| {
        // A List written report by report: the reports are never all in memory.
        let mut out = std::io::stdout().lock();
        let items = reports::render(format, audit::reported(&audited), std::time::SystemTime::now());
        let _ = writeln!(out, "{{\"apiVersion\": \"v1\", \"kind\": \"List\", \"items\": [");
        for (n, report) in items.enumerate() {
            let separator = if n == 0 { "" } else { ",\n" };
            let _ = write!(
                out,
                "{separator}{}",
                serde_json::to_string_pretty(&report).unwrap_or_default()
            );
        }
        let _ = writeln!(out, "\n]}}");
    };
    match args.output {
        AuditOutput::Text => print!(
            "{}{}",
            batch::render_text(findings.iter().copied()),
            summary.render_text()
        ),
        AuditOutput::Json => {
            let document = serde_json::json!({"results": findings, "summary": summary});
            println!("{}", serde_json::to_string_pretty(&document).unwrap_or_default());
        }
        AuditOutput::Openreports => print_reports(reports::Format::OpenReports),
        AuditOutput::Policyreport => print_reports(reports::Format::PolicyReport),
    }
    Ok(audit::exit_code(findings.into_iter(), proposal.is_some()) as u8)
}

/// `audit --interval`: a pass every interval with one reviewer (its verification cache warm
/// between passes), the Namespaces, the inventory and the policy library followed as the
/// webhook follows them, the results as metrics beside the probes on `server.metricsListen`,
/// until SIGTERM; with `--lease`, only while holding it.
fn run_continuous_audit(
    mut settings: Settings,
    source: Source,
    installed: portcullis::policy::PolicySet,
    args: &AuditArgs,
    interval: std::time::Duration,
) -> Result<u8, StartupError> {
    let selection = audit::Selection {
        namespaces: &args.namespaces,
        page: audit::PAGE,
        matches: installed.constraints().iter().map(|c| c.matcher.clone()).collect(),
    };
    let ids = installed.ids();
    let (metrics, audit_metrics) = Metrics::for_audit();
    let metrics = Arc::new(metrics);
    let runtime = runtime()?;
    let (client, state, listener, mut writer, lease) = runtime.block_on(async {
        let client = audit_client(args.kubeconfig.as_deref()).await?;
        let namespaces: Arc<dyn NamespaceLabels> = Arc::new(KubeNamespaces::start(client.clone()));
        if settings.trust.awaits_secret_keys() {
            settings.trust = read_secret_keys(&settings.trust, client.clone()).await?;
        }
        let pull_secrets = settings
            .trust
            .read_pull_secrets
            .then(|| Arc::new(PullSecrets::new(client.clone())));
        let mut reviewer = Reviewer::from_settings(&settings, installed, namespaces, metrics.clone(), pull_secrets)?;
        if settings.exceptions_watched {
            reviewer = reviewer.with_exceptions(watched_exceptions(client.clone(), &settings, &metrics));
        }
        let state = server::app_state_from(&settings, reviewer, metrics.clone());
        if !settings.inventory.is_empty() {
            InventorySync::start(client.clone(), &settings.inventory)
                .await?
                .follow(state.reviewer.clone(), state.metrics.clone());
        }
        let writer = match args.write_reports {
            None => None,
            Some(format) => {
                let format = match format {
                    ReportFormat::Openreports => reports::Format::OpenReports,
                    ReportFormat::Policyreport => reports::Format::PolicyReport,
                };
                Some(audit::writer::ReportWriter::open(client.clone(), format).await?)
            }
        };
        let listener = tokio::net::TcpListener::bind(settings.metrics_listen)
            .await
            .map_err(StartupError::ListenAddress)?;
        let lease = match &args.lease {
            None => None,
            Some(lease) => {
                let identity = audit::lease::identity();
                tracing::info!(lease = %format!("{}/{}", lease.namespace, lease.name), %identity, "audit joins the lease");
                Some(audit::lease::Lease::join(client.clone(), &lease.namespace, &lease.name, &identity).await?)
            }
        };
        Ok::<_, StartupError>((client, state, listener, writer, lease))
    })?;
    let operations = listener.local_addr().map_err(StartupError::ListenAddress)?;
    let router = server::router::operations_router(state.clone());
    runtime.spawn(async move {
        if let Err(error) = axum::serve(listener, router).await {
            tracing::error!(%error, "the metrics listener stopped");
        }
    });
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (stop_reloads, reloads_stopped) = tokio::sync::watch::channel(false);
    let stopping = stop.clone();
    runtime.spawn(async move {
        wait_for_signal().await;
        stopping.store(true, std::sync::atomic::Ordering::Release);
        let _ = stop_reloads.send(true);
    });
    runtime.spawn(server::reload_policies(
        state.clone(),
        settings.clone(),
        source,
        reloads_stopped.clone(),
    ));
    runtime.spawn(server::reload_trust(state.clone(), reloads_stopped));
    tracing::info!(%operations, interval = %portcullis::duration::format(interval), "continuous audit: metrics and probes listening");
    let mut exporter = audit::continuous::Exporter::new(audit_metrics, ids, interval, std::time::SystemTime::now());
    let continuous = audit::continuous::Continuous {
        runtime: &runtime,
        client: &client,
        selection: &selection,
        reviewer: &state.reviewer,
        online: !settings.trust.entries.is_empty(),
        interval,
        lease: lease.as_ref(),
    };
    continuous.run(&mut exporter, writer.as_mut(), &stop);
    if let Some(lease) = lease {
        runtime.block_on(lease.release());
    }
    tracing::info!("continuous audit stopped");
    Ok(0)
}

/// The audit's client of the cluster it audits.
async fn audit_client(kubeconfig: Option<&Path>) -> Result<kube::Client, StartupError> {
    kube_client(kubeconfig)
        .await
        .map_err(|source| StartupError::KubernetesApi {
            feature: "audit",
            source,
        })
}

/// A client for `kubeconfig`'s current context, or the default configuration. Connections and
/// reads give up after bounds (`watch_health::bounded`): a watch's staleness is told by its
/// errors, even when the apiserver hangs.
async fn kube_client(kubeconfig: Option<&Path>) -> Result<kube::Client, kube::Error> {
    let config = match kubeconfig {
        None => kube::Config::infer().await.map_err(kube::Error::InferConfig)?,
        Some(path) => {
            let file = kube::config::Kubeconfig::read_from(path).map_err(kube::Error::InferKubeconfig)?;
            kube::Config::from_custom_kubeconfig(file, &kube::config::KubeConfigOptions::default())
                .await
                .map_err(kube::Error::InferKubeconfig)?
        }
    };
    kube::Client::try_from(portcullis::watch_health::bounded(config))
}

fn runtime() -> Result<tokio::runtime::Runtime, StartupError> {
    tokio::runtime::Runtime::new().map_err(StartupError::Runtime)
}

fn run_verify(cli: &Cli, args: &VerifyArgs) -> Result<u8, StartupError> {
    let settings = settings(cli, args.config.as_deref(), false, |config| {
        use_docker_config(config, args.docker_config.as_deref());
    })?;
    if settings.trust.entries.is_empty() {
        return Err(StartupError::NoTrustPolicy);
    }
    let image = ImageReference::parse(&args.image).map_err(|source| StartupError::ImageReference {
        image: args.image.clone(),
        source,
    })?;
    let verifier = Arc::new(Verifier::new(settings.trust.clone(), Arc::new(Metrics::new()))?);
    let verified = runtime()?.block_on(verifier.verify(
        &image,
        &PullSecretRefs::default(),
        std::time::Instant::now() + std::time::Duration::from_secs(60),
    ));
    let digest = image.digest.clone().or_else(|| verified.resolved_digest.clone());
    let facts = &verified.verification;
    match args.output {
        Output::Json => {
            let document = serde_json::json!({
                "image": image.to_string(),
                "digest": digest,
                "verification": facts,
            });
            println!("{}", serde_json::to_string_pretty(&document).unwrap_or_default());
        }
        Output::Text => {
            println!("image:   {image}");
            println!("digest:  {}", digest.as_deref().unwrap_or("(unknown)"));
            println!("status:  {}", status_label(facts.status));
            println!("reason:  {}", facts.reason);
            for signer in &facts.signers {
                let identity = match (&signer.issuer, &signer.subject) {
                    (Some(issuer), Some(subject)) => format!(" ({subject} from {issuer})"),
                    _ => String::new(),
                };
                println!("signer:  {} [{}]{identity}", signer.authority, signer.kind);
            }
            for attestation in &facts.attestations {
                println!(
                    "attested: {} by {} (verified: {})",
                    attestation.predicate_type, attestation.authority, attestation.verified
                );
            }
        }
    }
    Ok(u8::from(
        facts.status != portcullis::images::VerificationStatus::Verified,
    ))
}

fn run_tests(args: &TestArgs) -> Result<u8, StartupError> {
    let source = Source::from_dirs(&args.paths);
    let timeout = std::time::Duration::from_secs(5);
    let results = testing::run_all(&source, timeout)?;
    print!("{}", testing::render(&results));
    Ok(u8::from(results.iter().any(|r| !r.passed)))
}
