//! The `portcullis` binary: parse the command line, load the config, run the command.
//! Only this file exits the process.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;

use portcullis::cli::{CheckArgs, Cli, Command, Output, ServeArgs, TestArgs, VerifyArgs};
use portcullis::config::{Config, NamespaceSource, Settings};
use portcullis::images::pull_secrets::{PullSecretRefs, PullSecrets};
use portcullis::images::verify::{status_label, Verifier};
use portcullis::images::ImageReference;
use portcullis::inventory::InventorySync;
use portcullis::namespaces::{KubeNamespaces, NamespaceLabels, StaticNamespaces};
use portcullis::policy::{testing, Source};
use portcullis::risk::RiskLevel;
use portcullis::server::{self, certs, dev, Server};
use portcullis::{check, telemetry};

/// Exit status for usage, config and load errors.
const USAGE_ERROR: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    portcullis::tls_provider();
    let result = match &cli.command {
        Command::Serve(args) => serve(&cli, args),
        Command::Check(args) => run_check(&cli, args),
        Command::Test(args) => run_tests(args),
        Command::Verify(args) => run_verify(&cli, args),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(message) => {
            eprintln!("portcullis: {message}");
            ExitCode::from(USAGE_ERROR)
        }
    }
}

/// Config file (or defaults) with the command-line overrides applied, validated.
fn settings(cli: &Cli, file: Option<&Path>, dev: bool, adjust: impl FnOnce(&mut Config)) -> Result<Settings, String> {
    let mut config = match file {
        Some(path) => Config::load(path).map_err(|e| e.to_string())?,
        None => Config::default(),
    };
    if let Some(format) = &cli.log_format {
        config.logging.format = format.clone();
    }
    if let Some(level) = &cli.log_level {
        config.logging.level = level.clone();
    }
    adjust(&mut config);
    let settings = config.validate(dev).map_err(|e| e.to_string())?;
    telemetry::init(settings.log_format, &settings.log_level);
    Ok(settings)
}

fn serve(cli: &Cli, args: &ServeArgs) -> Result<u8, String> {
    let mut settings = settings(cli, args.config.as_deref(), args.dev, |config| {
        if let Some(listen) = &args.listen {
            config.server.listen = Some(listen.clone());
        }
        if let Some(listen) = &args.metrics_listen {
            config.server.metrics_listen = Some(listen.clone());
        }
    })?;
    let dev_files = if args.dev {
        let files = certs::ensure_dev_files(&args.state_dir).map_err(|e| e.to_string())?;
        settings.tls_cert = files.cert.clone();
        settings.tls_key = files.key.clone();
        Some(files)
    } else {
        None
    };
    let source = Source::from_dirs(&settings.policy_dirs);
    let policies = server::load_policies(&source, &settings)
        .map_err(|e| format!("cannot load policies from {}: {e}", source.describe()))?;
    tracing::info!(policies = policies.policies().len(), source = %source.describe(), "policy library loaded");

    runtime()?.block_on(async move {
        // One Kubernetes client for every feature that reads the API, built by the first.
        let mut api = ApiClient::default();
        let namespaces: Arc<dyn NamespaceLabels> = match settings.namespace_source {
            NamespaceSource::Kubernetes => Arc::new(KubeNamespaces::start(
                api.get()
                    .await
                    .map_err(|e| server::ServeError::Namespaces(e.to_string()).to_string())?,
            )),
            NamespaceSource::None => Arc::new(StaticNamespaces::default()),
        };
        let pull_secrets = if settings.trust.read_pull_secrets {
            let client = api
                .get()
                .await
                .map_err(|e| format!("images.verification.imagePullSecrets needs the Kubernetes API: {e}"))?;
            Some(Arc::new(PullSecrets::new(client)))
        } else {
            None
        };
        let state = server::app_state_with(&settings, policies, namespaces, pull_secrets)?;
        if !settings.inventory.is_empty() {
            let client = api
                .get()
                .await
                .map_err(|e| format!("policies.inventory needs the Kubernetes API: {e}"))?;
            InventorySync::start(client, &settings.inventory)
                .await?
                .follow(state.reviewer.clone(), state.metrics.clone());
        }
        let server = Server::bind(state, settings, source).await.map_err(|e| e.to_string())?;
        let addr = server.webhook_addr().map_err(|e| e.to_string())?;
        let operations = server.operations_addr().map_err(|e| e.to_string())?;
        tracing::info!(webhook = %addr, operations = %operations, "listening");
        if let Some(files) = dev_files {
            let host = if addr.ip().is_unspecified() {
                "127.0.0.1".to_string()
            } else {
                addr.ip().to_string()
            };
            let url = format!("https://{host}:{}/validate", addr.port());
            let ca = std::fs::read_to_string(&files.ca_cert)
                .map_err(|e| format!("cannot read {}: {e}", files.ca_cert.display()))?;
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
        server.run(shutdown_rx).await.map_err(|e| e.to_string())
    })?;
    Ok(0)
}

/// The Kubernetes client of `serve`, built on first use from the in-cluster config or
/// KUBECONFIG, then shared (one connection pool for the watches and the Secret reads).
#[derive(Default)]
struct ApiClient(Option<kube::Client>);

impl ApiClient {
    async fn get(&mut self) -> Result<kube::Client, kube::Error> {
        if let Some(client) = &self.0 {
            return Ok(client.clone());
        }
        let client = kube::Client::try_default().await?;
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

fn run_check(cli: &Cli, args: &CheckArgs) -> Result<u8, String> {
    let mut settings = settings(cli, args.config.as_deref(), false, |config| {
        if !args.policies.is_empty() {
            config.policies.dirs = args.policies.iter().map(|p| p.display().to_string()).collect();
        }
    })?;
    if args.offline {
        settings.trust.entries.clear();
    }
    let risk_level = match &args.risk_level {
        Some(text) => Some(
            RiskLevel::parse(text).ok_or_else(|| format!("--risk-level {text:?} is not one of low, medium, high"))?,
        ),
        None => None,
    };
    let source = Source::from_dirs(&settings.policy_dirs);
    let policies = server::load_policies(&source, &settings)
        .map_err(|e| format!("cannot load policies from {}: {e}", source.describe()))?;
    let documents = check::read_inputs(&args.paths).map_err(|e| e.to_string())?;
    let mut reviewer = portcullis::admission::Reviewer::new(
        policies,
        settings.enforcement.clone(),
        settings.risk_default,
        check::namespace_source(&documents, risk_level),
    );
    if !args.inventory.is_empty() {
        let inventory = check::read_inventory(&args.inventory).map_err(|e| format!("--inventory: {e}"))?;
        reviewer.replace_inventory(inventory)?;
    }
    let runtime = if settings.trust.entries.is_empty() {
        None
    } else {
        let metrics = Arc::new(portcullis::metrics::Metrics::new());
        reviewer = reviewer.with_verifier(Arc::new(Verifier::new(settings.trust.clone(), metrics)?));
        Some(runtime()?)
    };
    let results = check::evaluate(&reviewer, &documents, runtime.as_ref());
    match args.output {
        Output::Text => {
            print!("{}", check::render_text(&results));
            let denied = results.iter().filter(|r| !r.allowed).count();
            eprintln!("checked {} object(s): {denied} denied", results.len());
        }
        Output::Json => println!("{}", check::render_json(&results)),
    }
    Ok(check::exit_code(&results) as u8)
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Runtime::new().map_err(|e| format!("cannot start the async runtime: {e}"))
}

fn run_verify(cli: &Cli, args: &VerifyArgs) -> Result<u8, String> {
    let settings = settings(cli, args.config.as_deref(), false, |_| {})?;
    if settings.trust.entries.is_empty() {
        return Err("no trust policy configured: add images.trust entries to the config".into());
    }
    let image = ImageReference::parse(&args.image).map_err(|e| format!("{:?}: {e}", args.image))?;
    let verifier = Verifier::new(settings.trust.clone(), Arc::new(portcullis::metrics::Metrics::new()))?;
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

fn run_tests(args: &TestArgs) -> Result<u8, String> {
    let source = Source::from_dirs(&args.paths);
    let timeout = std::time::Duration::from_secs(5);
    let results = testing::run_all(&source, timeout).map_err(|e| e.to_string())?;
    print!("{}", testing::render(&results));
    Ok(u8::from(results.iter().any(|r| !r.passed)))
}
