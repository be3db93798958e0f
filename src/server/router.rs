//! HTTP routes. Handlers only translate between HTTP and the admission pipeline.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde_json::json;
use tokio::sync::Semaphore;
use tracing::Instrument;

use crate::admission::{respond, review, Outcome, Reviewer, Subject};
use crate::duration;
use crate::metrics::{Metrics, RequestLabels};
use crate::policy::input::Request;
use crate::policy::Decision;
use crate::results::Enforcement;

use super::pressure::Pressure;
use super::slots::ReviewSlots;

/// Policy id used when no policy decided because time or capacity ran out.
pub const DEADLINE_CHECK: &str = "portcullis.deadline";
pub const INTERNAL_CHECK: &str = "portcullis.internal";
/// Policy id used when a review is shed because the server is overloaded.
pub const OVERLOAD_CHECK: &str = "portcullis.overload";

/// The longest the apiserver lets a webhook take.
const MAX_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_body_bytes: usize,
    pub default_timeout: Duration,
    pub deadline_margin: Duration,
}

/// Readiness inputs that change while running.
#[derive(Debug, Default)]
pub struct Health {
    pub shutting_down: AtomicBool,
}

#[derive(Clone)]
pub struct AppState {
    pub reviewer: Arc<Reviewer>,
    pub metrics: Arc<Metrics>,
    /// Reviews in progress that contact registries (verification I/O and evaluation), a pool
    /// per registry.
    pub review_slots: Arc<ReviewSlots>,
    /// Policy evaluations running (CPU-bound, about one per core: more would only make each
    /// slower and push them past their time limit).
    pub evaluations: Arc<Semaphore>,
    pub limits: Limits,
    pub health: Arc<Health>,
    /// How long work waits for the CPU; reviews are shed past `admission.maxQueueWait`.
    pub pressure: Arc<Pressure>,
}

/// The webhook listener's routes (served over TLS).
pub fn webhook_router(state: AppState) -> Router {
    Router::new().route("/validate", post(validate)).with_state(state)
}

/// The plain-HTTP operations listener: probes and metrics.
pub fn operations_router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn readyz(State(state): State<AppState>) -> Response {
    if state.health.shutting_down.load(Ordering::Acquire) {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down").into_response();
    }
    if let Some(reason) = state.reviewer.not_ready() {
        return (StatusCode::SERVICE_UNAVAILABLE, reason).into_response();
    }
    // Stale caches keep deciding (the API being down must not stop every deployment): still
    // ready, and the body says what is stale.
    let stale: Vec<String> = state
        .reviewer
        .watches()
        .iter()
        .filter_map(|watch| watch.stale())
        .map(|stale| format!("\nstale: {stale}"))
        .collect();
    format!("ok{}", stale.concat()).into_response()
}

async fn metrics(State(state): State<AppState>) -> Response {
    for watch in state.reviewer.watches() {
        let stale_for = watch.stale().map(|stale| stale.for_);
        state.metrics.set_watch_staleness(watch.name(), stale_for);
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
        .into_response()
}

async fn validate(State(state): State<AppState>, RawQuery(query): RawQuery, body: Body) -> Response {
    let recording = Recording::start(state.metrics.clone());
    let deadline = recording.started + deadline_budget(query.as_deref(), state.limits);
    let limited = Limited::new(body, state.limits.max_body_bytes).collect();
    let bytes = match tokio::time::timeout_at(deadline.into(), limited).await {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(error)) if error.downcast_ref::<LengthLimitError>().is_some() => {
            let message = format!("request body exceeds {} bytes", state.limits.max_body_bytes);
            return recording.refuse(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", message);
        }
        Ok(Err(_)) => {
            let message = "request body could not be read".to_string();
            return recording.refuse(StatusCode::BAD_REQUEST, "body_unreadable", message);
        }
        Err(_) => {
            let message = "request body did not arrive before the deadline".to_string();
            return recording.refuse(StatusCode::REQUEST_TIMEOUT, "body_timeout", message);
        }
    };
    let review = match review::parse(&bytes) {
        Ok(review) => review,
        Err(error) => return recording.refuse(StatusCode::BAD_REQUEST, error.reason(), error.to_string()),
    };
    drop(bytes);

    let subject = Subject::of(&review.request);
    let span = tracing::info_span!("review", uid = %review.uid, kind = %subject.kind, operation = %subject.operation);
    let Decided { outcome, shed } = decide_before(&state, review.request, deadline)
        .instrument(span.clone())
        .await;
    let elapsed = recording.started.elapsed();
    span.in_scope(|| log_decision(&subject, &outcome.decision, elapsed));
    let mut answer = respond::respond(&review.uid, &subject.kind, &outcome.decision);
    if let Some(shed) = shed {
        state.metrics.record_shed(shed.reason());
        if matches!(shed, Shed::Overloaded | Shed::QueueWait) {
            respond::too_many_requests(&mut answer);
        }
    }
    recording.finish(&subject, &outcome);
    Json(answer).into_response()
}

/// Records every review in the metrics exactly once: answered, refused, or abandoned when the
/// apiserver hung up before the answer (the handler is then dropped mid-way).
struct Recording {
    metrics: Arc<Metrics>,
    started: Instant,
    recorded: bool,
}

impl Recording {
    fn start(metrics: Arc<Metrics>) -> Recording {
        Recording {
            metrics,
            started: Instant::now(),
            recorded: false,
        }
    }

    fn finish(mut self, subject: &Subject, outcome: &Outcome) {
        let decision = if outcome.decision.allowed { "allow" } else { "deny" };
        self.metrics
            .record_review(subject.request_labels(decision), self.started.elapsed());
        outcome.record(&self.metrics);
        self.recorded = true;
    }

    /// A review that never reached a decision: no operation or kind to tell.
    fn record_unread(&self, decision: &'static str) {
        let labels = RequestLabels {
            operation: "unknown",
            kind: "unknown",
            decision,
        };
        self.metrics.record_review(labels, self.started.elapsed());
    }

    fn refuse(mut self, status: StatusCode, reason: &'static str, message: String) -> Response {
        self.record_unread("invalid");
        self.recorded = true;
        tracing::warn!(
            status = status.as_u16(),
            reason,
            "refused a request that is not a readable AdmissionReview"
        );
        (status, Json(json!({"error": reason, "message": message}))).into_response()
    }
}

impl Drop for Recording {
    fn drop(&mut self) {
        if !self.recorded {
            self.record_unread("abandoned");
        }
    }
}

/// Why a review was denied without its policies being evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shed {
    /// The runtime's queue was past `admission.maxQueueWait` when the review arrived.
    Overloaded,
    /// The review waited `admission.maxQueueWait` for an evaluation slot.
    QueueWait,
    /// The admission deadline ran out before the step named.
    Deadline(&'static str),
}

impl Shed {
    /// The label of `portcullis_admission_shed_total`.
    fn reason(self) -> &'static str {
        match self {
            Shed::Overloaded => "overloaded",
            Shed::QueueWait => "queue_wait",
            Shed::Deadline(_) => "deadline",
        }
    }

    fn decision(self, risk_level: crate::risk::RiskLevel, max_queue_wait: Duration) -> Decision {
        let (policy, message) = match self {
            Shed::Overloaded | Shed::QueueWait => (
                OVERLOAD_CHECK,
                format!(
                    "portcullis is overloaded (reviews wait more than {} for a CPU); denied without evaluating the policies, retry shortly",
                    duration::format(max_queue_wait)
                ),
            ),
            Shed::Deadline(what) => (
                DEADLINE_CHECK,
                format!("portcullis could not {what} before the admission deadline; denied to fail closed, retry shortly"),
            ),
        };
        Decision::fail_closed(risk_level, policy, message)
    }
}

/// A review's outcome, and why its policies were not evaluated if they were not.
struct Decided {
    outcome: Outcome,
    shed: Option<Shed>,
}

/// Decides on the blocking pool under the concurrency limit; past the deadline, or when the
/// server is overloaded, denies with a reason instead of keeping the apiserver waiting.
async fn decide_before(state: &AppState, request: regorus::Value, deadline: Instant) -> Decided {
    let deadline = tokio::time::Instant::from_std(deadline);
    let reviewer = state.reviewer.clone();
    // Cheap and synchronous; it also gives the risk level for answers made without policies.
    let mut facts = reviewer.facts(&request);
    let risk_level = facts.risk_level;
    let max_queue_wait = state.pressure.max_queue_wait();
    let shed = |why: Shed| Decided {
        outcome: Outcome {
            decision: why.decision(risk_level, max_queue_wait),
            results: Vec::new(),
            images: Vec::new(),
        },
        shed: Some(why),
    };
    if state.pressure.overloaded() {
        return shed(Shed::Overloaded);
    }
    // Only reviews that wait on registries take review slots, one of each registry's pool: a
    // slow or unreachable registry holds its own slots, never the CPU-only reviews or the
    // reviews of other registries.
    let registries = reviewer.registries_contacted(&facts);
    let mut permit = None;
    if !registries.is_empty() {
        let Ok(slots) = tokio::time::timeout_at(deadline, state.review_slots.acquire(&registries)).await else {
            return shed(Shed::Deadline(
                "start the review (too many reviews of its registries in progress)",
            ));
        };
        permit = Some(slots);
    }
    // Verification is registry I/O on the async runtime (for images off the allow-list, only
    // their `skipped` facts). It gets three quarters of the time left, so that an answer (a
    // `timeout` fact the policies deny) still fits in the deadline.
    let now = tokio::time::Instant::now();
    let verification_deadline = now + deadline.saturating_duration_since(now) * 3 / 4;
    reviewer.verify(&mut facts, verification_deadline.into_std()).await;
    // CPU is what runs short under load: wait for it no longer than the bound.
    let queue_deadline = deadline.min(tokio::time::Instant::now() + max_queue_wait);
    let Ok(Ok(cpu)) = tokio::time::timeout_at(queue_deadline, state.evaluations.clone().acquire_owned()).await else {
        return shed(match queue_deadline < deadline {
            true => Shed::QueueWait,
            false => Shed::Deadline("evaluate the policies (the server is saturated)"),
        });
    };
    let decided = |outcome| Decided { outcome, shed: None };
    let internal_error = || {
        decided(Outcome {
            decision: Decision::fail_closed(
                risk_level,
                INTERNAL_CHECK,
                "portcullis hit an internal error reviewing this request; denied to fail closed".into(),
            ),
            results: Vec::new(),
            images: Vec::new(),
        })
    };
    let too_slow = || shed(Shed::Deadline("finish the review"));
    // Every evaluation also stops at the deadline, wherever it runs.
    let stop = Some(deadline.into_std());
    let runtime = tokio::runtime::Handle::current();
    let one_worker =
        runtime.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread && runtime.metrics().num_workers() == 1;
    if one_worker && !state.pressure.falling_behind() {
        // `serve` on one core (one worker): a hop to the blocking pool and back would only add
        // two task switches (measured: 18 to 30% more reviews per second without them). The
        // evaluation stops at the deadline by itself; the probes have a runtime of their own.
        // Not once the worker falls behind: then evaluations go to the blocking pool, where the
        // OS shares the core between them and the worker, so that TLS handshakes, request reads
        // and shed answers are not queued behind evaluations (inline, under three times the
        // capacity, new connections waited seconds for their handshakes and timed out).
        // (A current-thread runtime is someone else's program embedding the router: its other
        // tasks must not wait for an evaluation.)
        let _permits = (permit, cpu);
        let evaluated = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            reviewer.evaluate_before(Request::Engine(&request), facts, stop)
        }));
        return match evaluated {
            Ok(_) if tokio::time::Instant::now() >= deadline => too_slow(),
            Ok(outcome) => decided(outcome),
            Err(_panic) => internal_error(),
        };
    }
    let span = tracing::Span::current();
    // The permits move into the task: a review that overruns its deadline still holds its slots
    // until it ends (each rule evaluation stops at the deadline or the policy time limit), so
    // the number of evaluations running never exceeds the limit.
    let task = tokio::task::spawn_blocking(move || {
        let _permits = (permit, cpu);
        span.in_scope(|| reviewer.evaluate_before(Request::Engine(&request), facts, stop))
    });
    match tokio::time::timeout_at(deadline, task).await {
        // An evaluation the deadline stopped ends at the deadline, not before it: the review
        // ran out of time, whichever of the two noticed first.
        Ok(Ok(_)) if tokio::time::Instant::now() >= deadline => too_slow(),
        Ok(Ok(outcome)) => decided(outcome),
        Ok(Err(_panic)) => internal_error(),
        Err(_) => too_slow(),
    }
}

/// Time we may spend: the apiserver's `?timeout=` (or the default) minus the margin, never
/// less than a few milliseconds so that a deny can still be sent.
pub fn deadline_budget(query: Option<&str>, limits: Limits) -> Duration {
    let requested = query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|pair| pair.strip_prefix("timeout="))
        .and_then(|value| duration::parse(value).ok())
        .filter(|d| !d.is_zero())
        .unwrap_or(limits.default_timeout)
        .min(MAX_TIMEOUT);
    let margin = limits.deadline_margin.min(requested / 2);
    requested.saturating_sub(margin).max(Duration::from_millis(5))
}

/// One line per decision; never the object itself.
fn log_decision(subject: &Subject, decision: &Decision, elapsed: Duration) {
    tracing::info!(
        namespace = %subject.namespace,
        name = %subject.name,
        dry_run = subject.dry_run,
        decision = if decision.allowed { "allow" } else { "deny" },
        risk_level = %decision.risk_level,
        denied_by = %decision.policies(Enforcement::Deny).join(","),
        warned_by = %decision.policies(Enforcement::Warn).join(","),
        dryrun_by = %decision.policies(Enforcement::DryRun).join(","),
        duration_ms = elapsed.as_secs_f64() * 1000.0,
        "admission decision"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_body_bytes: 1024,
        default_timeout: Duration::from_secs(10),
        deadline_margin: Duration::from_millis(500),
    };

    #[test]
    fn deadline_follows_the_apiserver_timeout() {
        assert_eq!(
            deadline_budget(Some("timeout=10s"), LIMITS),
            Duration::from_millis(9500)
        );
        assert_eq!(
            deadline_budget(Some("x=1&timeout=2s"), LIMITS),
            Duration::from_millis(1500)
        );
        assert_eq!(deadline_budget(Some("timeout=1s"), LIMITS), Duration::from_millis(500));
        assert_eq!(deadline_budget(None, LIMITS), Duration::from_millis(9500));
        assert_eq!(
            deadline_budget(Some("timeout=junk"), LIMITS),
            Duration::from_millis(9500)
        );
        assert_eq!(
            deadline_budget(Some("timeout=5m"), LIMITS),
            Duration::from_millis(29500)
        );
        assert_eq!(deadline_budget(Some("timeout=4ms"), LIMITS), Duration::from_millis(5));
    }
}
