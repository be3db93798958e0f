//! `portcullis serve`: the HTTPS webhook and the plain-HTTP operations listener, with
//! certificate and policy reload and graceful shutdown.

pub mod certs;
pub mod dev;
pub mod pressure;
pub mod router;
pub mod slots;
pub mod tls;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::admission::setup::load_policies;
use crate::admission::Reviewer;
use crate::background;
use crate::config::Settings;
use crate::images::pull_secrets::PullSecrets;
use crate::images::verify::{TrustReload, Verifier, VerifierError};
use crate::metrics::Metrics;
use crate::namespaces::NamespaceLabels;
use crate::policy::engine::LoadError;
use crate::policy::evaluator::EngineKind;
use crate::policy::gatekeeper::InventoryError;
use crate::policy::{PolicySet, Source};

pub use router::{AppState, Health, Limits};

/// A TLS handshake that takes longer than this is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Idle keep-alive connections are closed after this; the apiserver reconnects cheaply.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("TLS: {0}")]
    Tls(#[from] tls::TlsError),
    #[error("TLS: {0}")]
    TlsConfig(#[source] rustls::Error),
    #[error("cannot start the probes and metrics listener: {source}")]
    Operations {
        #[source]
        source: std::io::Error,
    },
}

/// Why a changed policy library was not installed (the last good one stays).
#[derive(Debug, thiserror::Error)]
enum ReloadError {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(transparent)]
    Inventory(#[from] InventoryError),
}

/// Everything `serve` runs, bound to its sockets but not yet serving.
pub struct Server {
    pub state: AppState,
    webhook_router: axum::Router,
    webhook: TcpListener,
    operations: TcpListener,
    cert: Arc<tls::ReloadingCert>,
    settings: Settings,
    source: Source,
}

impl Server {
    /// Binds both listeners and loads the certificate; errors here are startup errors.
    pub async fn bind(state: AppState, settings: Settings, source: Source) -> Result<Server, ServeError> {
        let cert = Arc::new(tls::ReloadingCert::load(&settings.tls_cert, &settings.tls_key)?);
        let webhook = listen(settings.listen)?;
        let operations = listen(settings.metrics_listen)?;
        let webhook_router = router::webhook_router(state.clone());
        Ok(Server {
            state,
            webhook_router,
            webhook,
            operations,
            cert,
            settings,
            source,
        })
    }

    /// Serves `router` instead of the webhook routes, on the same TLS and HTTP stack (the
    /// benchmark's constant-answer floor).
    pub fn with_webhook_router(mut self, router: axum::Router) -> Server {
        self.webhook_router = router;
        self
    }

    pub fn webhook_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.webhook.local_addr()
    }

    pub fn operations_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.operations.local_addr()
    }

    /// Serves until `shutdown` turns true, then drains: not ready, keep serving for the
    /// configured delay, stop accepting, let in-flight reviews finish, close keep-alives.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) -> Result<(), ServeError> {
        let Server {
            state,
            webhook_router,
            webhook,
            operations,
            cert,
            settings,
            source,
        } = self;
        let tls_config = cert.server_config().map_err(ServeError::TlsConfig)?;
        let acceptor = TlsAcceptor::from(Arc::new(tls_config));

        let (stop_tx, stop_rx) = watch::channel(false);
        let reloads = [
            tokio::spawn(reload_certificates(
                cert,
                state.metrics.clone(),
                settings.tls_reload_interval,
                stop_rx.clone(),
            )),
            tokio::spawn(reload_policies(
                state.clone(),
                settings.clone(),
                source,
                stop_rx.clone(),
            )),
            tokio::spawn(reload_trust(state.clone(), stop_rx.clone())),
            tokio::spawn({
                let (pressure, stop) = (state.pressure.clone(), stop_rx.clone());
                async move { pressure.probe(stop).await }
            }),
        ];
        let operations_server =
            serve_operations(operations, router::operations_router(state.clone()), stop_rx.clone())?;

        let graceful = GracefulShutdown::new();
        // A handshake costs the CPU about as much as a cheap review. Under a storm of new
        // connections (clients whose requests timed out reconnect), unbounded handshakes queue
        // behind each other until none finishes in time: past the bound a connection is closed
        // at once, which costs nothing, and the connections already set up keep being answered.
        let handshakes = Arc::new(tokio::sync::Semaphore::new(settings.max_pending_handshakes));
        let serve = |tcp: tokio::net::TcpStream| match handshakes.clone().try_acquire_owned() {
            Ok(handshake) => spawn_connection(
                tcp,
                handshake,
                acceptor.clone(),
                webhook_router.clone(),
                graceful.watcher(),
            ),
            Err(_) => refuse(tcp, &state.metrics),
        };
        loop {
            tokio::select! {
                // Unconstrained: the whole accept queue is taken at once, not a budget's worth
                // per turn of a runtime that is busy evaluating.
                accepted = tokio::task::unconstrained(webhook.accept()) => {
                    if let Ok((tcp, _peer)) = accepted {
                        serve(tcp);
                    }
                }
                _ = shutdown.wait_for(|s| *s) => break,
            }
        }

        state.health.shutting_down.store(true, Ordering::Release);
        tracing::info!(delay = ?settings.shutdown_delay, "shutting down: not ready, draining");
        // Keep accepting while endpoints are being removed, so no new request is refused.
        let drain_until = tokio::time::Instant::now() + settings.shutdown_delay;
        while let Ok(Ok((tcp, _))) = tokio::time::timeout_at(drain_until, webhook.accept()).await {
            serve(tcp);
        }
        drop(webhook);
        if tokio::time::timeout(settings.shutdown_grace_period, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!("grace period over with reviews still in flight");
        }
        let _ = stop_tx.send(true);
        for task in reloads {
            let _ = task.await;
        }
        let _ = tokio::task::spawn_blocking(move || operations_server.join()).await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// A listener with the longest accept queue the kernel allows (`net.core.somaxconn` caps it):
/// when the apiserver opens many connections at once (it opens one per request in flight under
/// load), a short queue overflows, and each dropped connection attempt costs its client a
/// second or more of SYN retransmission, past any shedding.
fn listen(addr: std::net::SocketAddr) -> Result<TcpListener, ServeError> {
    const BACKLOG: u32 = 4096;
    let bound = || {
        let socket = match addr {
            std::net::SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
            std::net::SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
        };
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        socket.listen(BACKLOG)
    };
    bound().map_err(|source| ServeError::Bind {
        addr: addr.to_string(),
        source,
    })
}

/// The probes and metrics on a thread and runtime of their own, so that they answer while
/// the admission runtime is busy: with one core, reviews are evaluated on its only worker.
fn serve_operations(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    mut stop: watch::Receiver<bool>,
) -> Result<std::thread::JoinHandle<()>, ServeError> {
    let failed = |source| ServeError::Operations { source };
    // A listener belongs to the runtime it was made in; the new one takes it over.
    let listener = listener.into_std().map_err(failed)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(failed)?;
    std::thread::Builder::new()
        .name("operations".into())
        .spawn(move || {
            runtime.block_on(async move {
                let listener = match tokio::net::TcpListener::from_std(listener) {
                    Ok(listener) => listener,
                    Err(error) => return tracing::error!(%error, "the operations listener stopped"),
                };
                let stopped = async move {
                    let _ = stop.wait_for(|s| *s).await;
                };
                if let Err(error) = axum::serve(listener, router).with_graceful_shutdown(stopped).await {
                    tracing::error!(%error, "the operations listener stopped");
                }
            })
        })
        .map_err(failed)
}

/// Serves one connection: TLS handshake (holding one of the pending-handshake places until it
/// ends), then HTTP/1.1 under the graceful-shutdown watcher (which finishes the request in
/// flight and closes the connection instead of keeping it alive).
fn spawn_connection(
    tcp: tokio::net::TcpStream,
    handshake: tokio::sync::OwnedSemaphorePermit,
    acceptor: TlsAcceptor,
    router: axum::Router,
    watcher: hyper_util::server::graceful::Watcher,
) {
    tokio::spawn(async move {
        let Ok(Ok(stream)) = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await else {
            return;
        };
        drop(handshake);
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT)
            .serve_connection(TokioIo::new(stream), TowerToHyperService::new(router));
        if let Err(error) = watcher.watch(connection).await {
            tracing::debug!(%error, "connection ended with an error");
        }
    });
}

/// Closes a connection before its TLS handshake, with a reset (no lingering close).
fn refuse(tcp: tokio::net::TcpStream, metrics: &Metrics) {
    let _ = tcp.set_zero_linger();
    drop(tcp);
    metrics.record_connection_refused();
}

/// `work`'s output, or `None` once `stop` turns true first. The reload loops wait through it,
/// so shutdown never waits for a poll or a reload (under full load a low-priority reload may
/// take seconds).
async fn until_stopped<T>(stop: &mut watch::Receiver<bool>, work: impl std::future::Future<Output = T>) -> Option<T> {
    tokio::select! {
        output = work => Some(output),
        _ = stop.wait_for(|s| *s) => None,
    }
}

async fn reload_certificates(
    cert: Arc<tls::ReloadingCert>,
    metrics: Arc<Metrics>,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    metrics.set_certificate_expiry(cert.expires_at());
    let mut refused_last = None;
    loop {
        if until_stopped(&mut stop, tokio::time::sleep(interval)).await.is_none() {
            return;
        }
        match cert.reload() {
            tls::Reload::Unchanged => refused_last = None,
            tls::Reload::Reloaded => {
                refused_last = None;
                metrics.record_tls_reload(true);
                metrics.set_certificate_expiry(cert.expires_at());
                tracing::info!("serving certificate reloaded");
            }
            tls::Reload::Refused { reason, message, files } => {
                // Counted and logged once per refused change (the same files, or the same
                // unreadable file, seen again at the next poll are not a new refusal).
                let refusal = Some((reason, files));
                if refused_last != refusal {
                    metrics.record_tls_reload(false);
                    tracing::warn!(reason = %message, "new certificate files not usable yet; still serving the previous pair");
                }
                refused_last = refusal;
            }
        }
    }
}

/// Polls the trust files (trusted root, authorities' keys) when images are verified; new
/// material replaces the old only when it makes a valid trust policy.
pub async fn reload_trust(state: AppState, mut stop: watch::Receiver<bool>) {
    let Some(verifier) = state.reviewer.verifier().cloned() else {
        return;
    };
    let publish = |verifier: &Verifier| {
        let material: Vec<_> = verifier
            .trust_material()
            .into_iter()
            .map(|m| (m.kind, m.count, m.expires))
            .collect();
        state.metrics.set_trust_material(&material);
    };
    publish(&verifier);
    let interval = verifier.reload_interval();
    let mut refused_last = None;
    loop {
        if until_stopped(&mut stop, tokio::time::sleep(interval)).await.is_none() {
            return;
        }
        // Reading files and parsing keys: off the workers that answer reviews, below them.
        let reloading = verifier.clone();
        let reloaded = until_stopped(
            &mut stop,
            background::run("trust-reload", move || reloading.reload_trust()),
        );
        let Some(reloaded) = reloaded.await else { return };
        let reload = match reloaded {
            Ok(reload) => reload,
            Err(error) => {
                state.metrics.record_trust_reload(false);
                tracing::error!(%error, "keeping the trust material in use");
                continue;
            }
        };
        match reload {
            TrustReload::Unchanged => refused_last = None,
            TrustReload::Reloaded => {
                refused_last = None;
                state.metrics.record_trust_reload(true);
                publish(&verifier);
                tracing::info!("trust material reloaded");
            }
            TrustReload::Refused { errors } => {
                // Counted and logged once per refused change, not at every poll.
                if refused_last.as_ref() != Some(&errors) {
                    state.metrics.record_trust_reload(false);
                    tracing::error!(errors = %errors.join("; "), "new trust material refused; keeping the material in use");
                }
                refused_last = Some(errors);
            }
        }
    }
}

/// Polls the policy directories; a new set replaces the old only if it loads completely.
pub async fn reload_policies(state: AppState, settings: Settings, source: Source, mut stop: watch::Receiver<bool>) {
    if source == Source::Embedded {
        return;
    }
    let mut last = source.fingerprint().ok();
    loop {
        if until_stopped(&mut stop, tokio::time::sleep(settings.policy_reload_interval))
            .await
            .is_none()
        {
            return;
        }
        let current = source.fingerprint().ok();
        if current == last {
            continue;
        }
        last = current;
        let (source, settings, reviewer) = (source.clone(), settings.clone(), state.reviewer.clone());
        let loading = background::run("policy-reload", move || {
            let set = load_policies(&source, &settings)?;
            let on = [EngineKind::Compiled, EngineKind::Interpreter].map(|kind| set.on_engine(kind));
            let counts = (set.policies().len(), set.engines(), on, set.ids());
            reviewer.replace_policies(set)?;
            Ok::<_, ReloadError>(counts)
        });
        let Some(loaded) = until_stopped(&mut stop, loading).await else {
            return;
        };
        match loaded {
            Ok(Ok((count, engines, [compiled, interpreted], ids))) => {
                state.metrics.set_policies_loaded(&engines);
                state.metrics.known_policies(ids);
                state.metrics.record_reload(true);
                tracing::info!(policies = count, compiled, interpreted, "policy library reloaded");
            }
            Ok(Err(error)) => {
                state.metrics.record_reload(false);
                tracing::error!(%error, "new policy library rejected; keeping the last good one");
            }
            Err(error) => {
                state.metrics.record_reload(false);
                tracing::error!(%error, "keeping the last good library");
            }
        }
    }
}

/// The state `serve` runs on: `reviewer`, the metrics it records into, and the settings'
/// limits.
pub fn app_state_from(settings: &Settings, reviewer: Reviewer, metrics: Arc<Metrics>) -> AppState {
    metrics.set_policies_loaded(&reviewer.policies().engines());
    metrics.known_policies(reviewer.policies().ids());
    AppState {
        reviewer: Arc::new(reviewer),
        metrics,
        review_slots: Arc::new(slots::ReviewSlots::new(settings.max_concurrent_reviews)),
        evaluations: Arc::new(tokio::sync::Semaphore::new(settings.max_concurrent_evaluations)),
        limits: Limits {
            max_body_bytes: settings.max_body_bytes,
            default_timeout: settings.default_timeout,
            deadline_margin: settings.deadline_margin,
        },
        health: Arc::new(Health::default()),
        pressure: Arc::new(pressure::Pressure::new(settings.max_queue_wait)),
    }
}

/// The app state for a loaded policy set, as `serve` builds it without a cluster (tests and
/// benches): fresh metrics, the reviewer from [`Reviewer::from_settings`].
pub fn app_state(
    settings: &Settings,
    policies: PolicySet,
    namespaces: Arc<dyn NamespaceLabels>,
) -> Result<AppState, VerifierError> {
    app_state_with(settings, policies, namespaces, None)
}

/// [`app_state`], with workloads' imagePullSecrets read through `pull_secrets`.
pub fn app_state_with(
    settings: &Settings,
    policies: PolicySet,
    namespaces: Arc<dyn NamespaceLabels>,
    pull_secrets: Option<Arc<PullSecrets>>,
) -> Result<AppState, VerifierError> {
    let metrics = Arc::new(Metrics::new());
    let reviewer = Reviewer::from_settings(settings, policies, namespaces, metrics.clone(), pull_secrets)?;
    Ok(app_state_from(settings, reviewer, metrics))
}
