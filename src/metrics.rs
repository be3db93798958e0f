//! Prometheus metrics in a registry owned by the app state. Label values are bounded: enums,
//! policy ids from the loaded library, and request kinds from a fixed list. A leaf: callers
//! hand it labels and durations, it knows nothing of reviews or images.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// From 100 µs to 10 s.
const LATENCY_BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub operation: &'static str,
    pub kind: &'static str,
    pub decision: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PolicyResultLabels {
    pub policy: String,
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PolicyLabels {
    pub policy: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EngineLabels {
    pub engine: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TrustKindLabels {
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: &'static str,
}

/// Why a review was denied without its policies being evaluated (see [`Metrics::record_shed`]).
pub const SHED_REASONS: [&str; 3] = ["overloaded", "queue_wait", "deadline"];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RegistryLabels {
    /// Only ever an allow-listed registry host: nothing else is contacted.
    pub registry: String,
    pub code: String,
}

/// The supply-chain KPIs: what the admitted images had.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AdmittedLabels {
    pub risk_level: &'static str,
    pub pinned: &'static str,
    pub signed: &'static str,
    pub sbom: &'static str,
    pub provenance: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabels {
    pub status: &'static str,
}

/// A kind of `policies.inventory`, e.g. `networking.k8s.io/v1/Ingress` (from the config).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WatchLabels {
    pub watch: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct InventoryLabels {
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VersionLabels {
    pub version: &'static str,
}

/// The audit's findings on the running fleet (reported objects only).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ViolationLabels {
    pub policy: String,
    pub enforcement: &'static str,
    pub risk_level: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: String,
}

/// The fleet posture: running images (those of Pods) by risk level, with `posture` one of
/// `running` (all of them), `pinned`, `signed`, `sbom`, `provenance`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FleetImageLabels {
    pub risk_level: String,
    pub posture: &'static str,
}

/// What the continuous audit exports, registered only by [`Metrics::for_audit`]: the webhook
/// never shows audit series that would not move.
#[derive(Clone)]
pub struct AuditMetrics {
    pub violations: Family<ViolationLabels, Gauge>,
    pub objects: Family<KindLabels, Gauge>,
    pub images: Family<FleetImageLabels, Gauge>,
    /// When the last pass completed (seconds since the epoch; 0 before the first).
    pub last_pass: Gauge<f64, AtomicU64>,
    pub pass_duration: Gauge<f64, AtomicU64>,
    /// When the audit started, and its interval: with the last pass, what tells a stale audit.
    pub started: Gauge<f64, AtomicU64>,
    pub interval: Gauge<f64, AtomicU64>,
    pub passes: Family<ResultLabels, Counter>,
    /// 1 while this process audits (holds the lease, or needs none), 0 on standby.
    pub leading: Gauge,
    /// Objects decided again between passes because they changed.
    pub changes: Counter,
}

impl AuditMetrics {
    /// One pass done: completed, or failed (the cluster could not be listed).
    pub fn record_pass(&self, success: bool) {
        self.passes
            .get_or_create(&ResultLabels {
                result: success_label(success),
            })
            .inc();
    }

    fn register(registry: &mut Registry) -> AuditMetrics {
        let metrics = AuditMetrics {
            violations: Family::default(),
            objects: Family::default(),
            images: Family::default(),
            last_pass: Gauge::default(),
            pass_duration: Gauge::default(),
            started: Gauge::default(),
            interval: Gauge::default(),
            passes: Family::default(),
            leading: Gauge::default(),
            changes: Counter::default(),
        };
        registry.register(
            "audit_violations",
            "Findings on the running fleet in the last audit pass, by policy, enforcement and risk level",
            metrics.violations.clone(),
        );
        registry.register(
            "audit_objects",
            "Objects audited in the last pass, by kind",
            metrics.objects.clone(),
        );
        registry.register(
            "fleet_images",
            "Images running now (those of Pods) by risk level: all, pinned, signed, with a verified SBOM, with provenance",
            metrics.images.clone(),
        );
        registry.register(
            "audit_last_pass_timestamp_seconds",
            "When the last audit pass completed (0: none yet)",
            metrics.last_pass.clone(),
        );
        registry.register(
            "audit_pass_duration_seconds",
            "How long the last completed audit pass took",
            metrics.pass_duration.clone(),
        );
        registry.register(
            "audit_started_timestamp_seconds",
            "When the continuous audit started",
            metrics.started.clone(),
        );
        registry.register(
            "audit_interval_seconds",
            "The continuous audit's interval between the starts of two passes",
            metrics.interval.clone(),
        );
        registry.register(
            "audit_passes",
            "Audit passes, by result: success, or failure (the cluster could not be listed)",
            metrics.passes.clone(),
        );
        registry.register(
            "audit_leader",
            "1 while this replica audits (it holds the audit's Lease, or runs without one), 0 on standby",
            metrics.leading.clone(),
        );
        registry.register(
            "audit_changes",
            "Objects decided again between passes because a watch reported them created or changed",
            metrics.changes.clone(),
        );
        for result in [true, false].map(success_label) {
            metrics.passes.get_or_create(&ResultLabels { result }).inc_by(0);
        }
        metrics
    }
}

/// Every value of `portcullis_policy_evaluations_total`'s `result`.
pub const POLICY_RESULTS: [&str; 5] = ["pass", "deny", "warn", "error", "timeout"];

/// Every value of `portcullis_image_verifications_total`'s `status` (as `images::verify`
/// names them).
pub const VERIFICATION_STATUSES: [&str; 8] = [
    "verified",
    "unsigned",
    "invalid",
    "untrusted",
    "no_trust_policy",
    "error",
    "timeout",
    "skipped",
];

fn success_label(success: bool) -> &'static str {
    if success {
        "success"
    } else {
        "failure"
    }
}

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ExceptionLabels {
    pub policy: String,
    /// `active` or `expired`.
    pub state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ExceptionObjectLabels {
    /// `namespace/name` (a `namespace` label would clash with the scrape target's).
    pub exception: String,
}

pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    duration: Histogram,
    shed: Family<ReasonLabels, Counter>,
    connections_refused: Counter,
    policy_evaluations: Family<PolicyResultLabels, Counter>,
    policy_duration: Family<PolicyLabels, Histogram>,
    policies_loaded: Family<EngineLabels, Gauge>,
    inventory_objects: Family<InventoryLabels, Gauge>,
    watch_stale: Family<WatchLabels, Gauge>,
    certificate_expiry: Gauge,
    policy_reloads: Family<ResultLabels, Counter>,
    tls_reloads: Family<ResultLabels, Counter>,
    trust_material: Family<TrustKindLabels, Gauge>,
    trust_expiry: Family<TrustKindLabels, Gauge>,
    trust_reloads: Family<ResultLabels, Counter>,
    registry_requests: Family<RegistryLabels, Counter>,
    verifications: Family<StatusLabels, Counter>,
    verification_duration: Histogram,
    cache_requests: Family<ResultLabels, Counter>,
    refreshes: Family<ResultLabels, Counter>,
    images_admitted: Family<AdmittedLabels, Counter>,
    exceptions: Family<ExceptionLabels, Gauge>,
    exceptions_refused: Gauge,
    exception_expiry: Family<ExceptionObjectLabels, Gauge>,
    findings_excused: Family<PolicyLabels, Counter>,
    /// The exception series last published, so that the next publication removes only those
    /// that are gone (a scrape never sees the families emptied).
    exception_series: std::sync::Mutex<(Vec<ExceptionLabels>, Vec<ExceptionObjectLabels>)>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("portcullis");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "admission_requests",
            "Admission reviews answered, by operation, kind and decision",
            requests.clone(),
        );
        let duration = latency_histogram();
        registry.register(
            "admission_duration_seconds",
            "Time from request to answer of an admission review",
            duration.clone(),
        );
        let shed = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "admission_shed",
            "Reviews denied without evaluating their policies, by reason: overloaded (the CPU queue was past admission.maxQueueWait when it arrived), queue_wait (it waited admission.maxQueueWait for an evaluation slot), deadline (the admission deadline ran out); each is also counted in admission_requests as a deny",
            shed.clone(),
        );
        let connections_refused = Counter::default();
        registry.register(
            "connections_refused",
            "Connections closed before their TLS handshake because server.maxPendingHandshakes were already waiting for theirs (a connection storm the CPU could not take)",
            connections_refused.clone(),
        );
        let policy_evaluations = Family::<PolicyResultLabels, Counter>::default();
        registry.register(
            "policy_evaluations",
            "Policy evaluations by policy and result (pass, deny, warn, error, timeout)",
            policy_evaluations.clone(),
        );
        let policy_duration =
            Family::<PolicyLabels, Histogram>::new_with_constructor(latency_histogram as fn() -> Histogram);
        registry.register(
            "policy_evaluation_duration_seconds",
            "Time to evaluate one policy (a native policy: its share of the one-pass evaluation's measured time, the shares from each policy timed alone: all in the first review, then one in turn, once a second at most)",
            policy_duration.clone(),
        );
        let policies_loaded = Family::<EngineLabels, Gauge>::default();
        registry.register(
            "policies_loaded",
            "Policies in the active policy set, by the engine they run on (compiled: regorus's bytecode VM; interpreter: a policy that does not compile)",
            policies_loaded.clone(),
        );
        let inventory_objects = Family::<InventoryLabels, Gauge>::default();
        registry.register(
            "inventory_objects",
            "Objects of each synced kind in the Gatekeeper inventory the policies see",
            inventory_objects.clone(),
        );
        let watch_stale = Family::<WatchLabels, Gauge>::default();
        registry.register(
            "kube_watch_stale_seconds",
            "How long each cached watch of the Kubernetes API (namespaces, PolicyExceptions, inventory kinds) has been failing to reach it, 0 when current; decisions meanwhile use what it read before",
            watch_stale.clone(),
        );
        let certificate_expiry = Gauge::default();
        registry.register(
            "tls_certificate_expiry_timestamp_seconds",
            "When the webhook's serving certificate expires, in seconds since the epoch",
            certificate_expiry.clone(),
        );
        let policy_reloads = Family::<ResultLabels, Counter>::default();
        registry.register(
            "policy_reloads",
            "Policy library reloads by result (success, failure)",
            policy_reloads.clone(),
        );
        let tls_reloads = Family::<ResultLabels, Counter>::default();
        registry.register(
            "tls_reloads",
            "Changes of the serving certificate files by result (success, failure: refused, the previous pair still served)",
            tls_reloads.clone(),
        );
        let trust_material = Family::<TrustKindLabels, Gauge>::default();
        registry.register(
            "trust_material",
            "Trust material the verifier uses, by kind (key: a public key of an authority; fulcio_ca, rekor_key, ctlog_key, timestamp_authority: from the trusted root)",
            trust_material.clone(),
        );
        let trust_expiry = Family::<TrustKindLabels, Gauge>::default();
        registry.register(
            "trust_material_expiry_timestamp_seconds",
            "When the last of each kind of trust material stops vouching for new signatures (its validFor end, a CA's certificate expiry), in seconds since the epoch; no series for a kind that does not expire",
            trust_expiry.clone(),
        );
        let trust_reloads = Family::<ResultLabels, Counter>::default();
        registry.register(
            "trust_reloads",
            "Changes of the trust material (trusted root, key files) by result (success, failure: refused, the previous material still used)",
            trust_reloads.clone(),
        );
        let registry_requests = Family::<RegistryLabels, Counter>::default();
        registry.register(
            "registry_requests",
            "Requests to image registries by registry and HTTP status (or timeout, error)",
            registry_requests.clone(),
        );
        let verifications = Family::<StatusLabels, Counter>::default();
        registry.register(
            "image_verifications",
            "Image verifications by status",
            verifications.clone(),
        );
        let verification_duration = latency_histogram();
        registry.register(
            "image_verification_duration_seconds",
            "Time to establish one image's verification facts (cache hits included)",
            verification_duration.clone(),
        );
        let cache_requests = Family::<ResultLabels, Counter>::default();
        registry.register(
            "verification_cache_requests",
            "Verification cache lookups: hit, miss (this review verified), coalesced (waited for another)",
            cache_requests.clone(),
        );
        let refreshes = Family::<ResultLabels, Counter>::default();
        registry.register(
            "verification_refreshes",
            "Cached verdicts verified again in the background, ahead of their expiry, because a review used them in the last quarter of their lifetime: refreshed (replaced), failed (an error or timeout; the old verdict serves until it expires)",
            refreshes.clone(),
        );
        let images_admitted = Family::<AdmittedLabels, Counter>::default();
        registry.register(
            "images_admitted",
            "Images in admitted reviews, by risk level and whether each was pinned, signed, with a verified SBOM and provenance",
            images_admitted.clone(),
        );
        // The label values the dashboard and the alerts select, at zero from startup: a panel
        // shows 0, not "No data", and an alert can tell "none" from "not scraped".
        for result in ["hit", "miss", "coalesced"] {
            cache_requests.get_or_create(&ResultLabels { result }).inc_by(0);
        }
        for result in ["refreshed", "failed"] {
            refreshes.get_or_create(&ResultLabels { result }).inc_by(0);
        }
        for status in VERIFICATION_STATUSES {
            verifications.get_or_create(&StatusLabels { status }).inc_by(0);
        }
        for reason in SHED_REASONS {
            shed.get_or_create(&ReasonLabels { reason }).inc_by(0);
        }
        for result in [true, false].map(success_label) {
            policy_reloads.get_or_create(&ResultLabels { result }).inc_by(0);
            tls_reloads.get_or_create(&ResultLabels { result }).inc_by(0);
            trust_reloads.get_or_create(&ResultLabels { result }).inc_by(0);
        }
        for risk_level in ["low", "medium", "high"] {
            for flags in 0..16u8 {
                let flag = |bit: u8| yes_no(flags & bit != 0);
                images_admitted
                    .get_or_create(&AdmittedLabels {
                        risk_level,
                        pinned: flag(1),
                        signed: flag(2),
                        sbom: flag(4),
                        provenance: flag(8),
                    })
                    .inc_by(0);
            }
        }
        let build_info = Family::<VersionLabels, Gauge>::default();
        registry.register("build_info", "Build information", build_info.clone());
        build_info
            .get_or_create(&VersionLabels {
                version: env!("CARGO_PKG_VERSION"),
            })
            .set(1);
        let exceptions = Family::<ExceptionLabels, Gauge>::default();
        registry.register(
            "exceptions",
            "PolicyExceptions by the policy they name and their state (active, expired)",
            exceptions.clone(),
        );
        let exceptions_refused = Gauge::default();
        registry.register(
            "exceptions_refused",
            "PolicyException objects that cover nothing because they are not valid (the log says why)",
            exceptions_refused.clone(),
        );
        let exception_expiry = Family::<ExceptionObjectLabels, Gauge>::default();
        registry.register(
            "exception_expiry_timestamp_seconds",
            "When each PolicyException expires, in seconds since the epoch",
            exception_expiry.clone(),
        );
        let findings_excused = Family::<PolicyLabels, Counter>::default();
        registry.register(
            "findings_excused",
            "Denials a PolicyException turned into warnings, by policy",
            findings_excused.clone(),
        );
        Metrics {
            registry,
            requests,
            duration,
            shed,
            connections_refused,
            policy_evaluations,
            policy_duration,
            policies_loaded,
            inventory_objects,
            watch_stale,
            certificate_expiry,
            policy_reloads,
            tls_reloads,
            trust_material,
            trust_expiry,
            trust_reloads,
            registry_requests,
            verifications,
            verification_duration,
            cache_requests,
            refreshes,
            images_admitted,
            exceptions,
            exceptions_refused,
            exception_expiry,
            findings_excused,
            exception_series: Default::default(),
        }
    }

    /// The webhook's metrics with the continuous audit's registered beside them.
    pub fn for_audit() -> (Metrics, AuditMetrics) {
        let mut metrics = Metrics::new();
        let audit = AuditMetrics::register(&mut metrics.registry);
        (metrics, audit)
    }

    /// Records one answered review (or one that could not be read, with `unknown` labels).
    pub fn record_review(&self, labels: RequestLabels, elapsed: Duration) {
        self.requests.get_or_create(&labels).inc();
        self.duration.observe(elapsed.as_secs_f64());
    }

    /// Records one review denied without its policies: `reason` is one of [`SHED_REASONS`].
    pub fn record_shed(&self, reason: &'static str) {
        self.shed.get_or_create(&ReasonLabels { reason }).inc();
    }

    pub fn record_connection_refused(&self) {
        self.connections_refused.inc();
    }

    /// Records one policy's evaluation in a review: `result` is pass, deny, warn, error or
    /// timeout.
    pub fn record_policy_evaluation(&self, policy: &str, result: &'static str, duration: Duration) {
        self.policy_evaluations
            .get_or_create(&PolicyResultLabels {
                policy: policy.to_string(),
                result,
            })
            .inc();
        self.policy_duration
            .get_or_create(&PolicyLabels {
                policy: policy.to_string(),
            })
            .observe(duration.as_secs_f64());
    }

    /// Records one image of an admitted review, for the supply-chain KPIs.
    pub fn record_admitted_image(&self, labels: AdmittedLabels) {
        self.images_admitted.get_or_create(&labels).inc();
    }

    pub fn record_registry_request(&self, registry: &str, code: &str) {
        self.registry_requests
            .get_or_create(&RegistryLabels {
                registry: registry.to_string(),
                code: code.to_string(),
            })
            .inc();
    }

    pub fn record_verification(&self, status: &'static str, elapsed: Duration) {
        self.verifications.get_or_create(&StatusLabels { status }).inc();
        self.verification_duration.observe(elapsed.as_secs_f64());
    }

    pub fn record_cache(&self, result: &'static str) {
        self.cache_requests.get_or_create(&ResultLabels { result }).inc();
    }

    /// A background refresh of a cached verdict ended: `refreshed` or `failed`.
    pub fn record_refresh(&self, result: &'static str) {
        self.refreshes.get_or_create(&ResultLabels { result }).inc();
    }

    /// The serving certificate's expiry (seconds since the epoch; 0 when it cannot be read).
    pub fn set_certificate_expiry(&self, expires_at: Option<i64>) {
        self.certificate_expiry.set(expires_at.unwrap_or(0));
    }

    /// The trust material in use: `(kind, count, expiry)` for each kind; a kind that does not
    /// expire has no expiry series (an alert on it would only ever compare against infinity).
    pub fn set_trust_material(&self, material: &[(&'static str, usize, Option<i64>)]) {
        for &(kind, count, expires) in material {
            let labels = TrustKindLabels { kind };
            self.trust_material.get_or_create(&labels).set(count as i64);
            match expires {
                Some(at) if count > 0 => {
                    self.trust_expiry.get_or_create(&labels).set(at);
                }
                _ => {
                    self.trust_expiry.remove(&labels);
                }
            }
        }
    }

    /// A change of the trust files: loaded, or refused (the previous material stays in use).
    pub fn record_trust_reload(&self, success: bool) {
        self.trust_reloads
            .get_or_create(&ResultLabels {
                result: success_label(success),
            })
            .inc();
    }

    /// Every policy of a loaded set, each result at zero from now on, so that a dashboard or
    /// an alert reading one (`result="error"`) finds the series before the first such result.
    pub fn known_policies(&self, ids: impl IntoIterator<Item = String>) {
        for policy in ids {
            for result in POLICY_RESULTS {
                self.policy_evaluations
                    .get_or_create(&PolicyResultLabels {
                        policy: policy.clone(),
                        result,
                    })
                    .inc_by(0);
            }
        }
    }

    /// The active set's policies by engine (every engine named, with 0 where none runs).
    pub fn set_policies_loaded(&self, by_engine: &[(&'static str, usize)]) {
        for &(engine, count) in by_engine {
            self.policies_loaded
                .get_or_create(&EngineLabels { engine })
                .set(count as i64);
        }
    }

    /// Objects of one synced kind in the installed inventory.
    pub fn set_inventory_objects(&self, kind: String, count: usize) {
        self.inventory_objects
            .get_or_create(&InventoryLabels { kind })
            .set(count as i64);
    }

    /// Sets each watch's staleness: seconds failing, 0 when current.
    pub fn set_watch_staleness(&self, watch: &str, stale_for: Option<std::time::Duration>) {
        self.watch_stale
            .get_or_create(&WatchLabels {
                watch: watch.to_string(),
            })
            .set(stale_for.map_or(0, |d| d.as_secs() as i64));
    }

    pub fn record_reload(&self, success: bool) {
        self.policy_reloads
            .get_or_create(&ResultLabels {
                result: success_label(success),
            })
            .inc();
    }

    /// A change of the serving certificate's files: loaded, or refused (a half-written pair, a
    /// key that does not match); the previous pair keeps serving after a refusal.
    pub fn record_tls_reload(&self, success: bool) {
        self.tls_reloads
            .get_or_create(&ResultLabels {
                result: success_label(success),
            })
            .inc();
    }

    /// One denial a PolicyException turned into a warning.
    pub fn record_excused(&self, policy: &str) {
        self.findings_excused
            .get_or_create(&PolicyLabels {
                policy: policy.to_string(),
            })
            .inc();
    }

    /// The exceptions as they stand: counts by (policy, state), the refused objects, and each
    /// exception's expiry (`namespace/name`, Unix seconds). Series of deleted ones disappear.
    pub fn set_exceptions(
        &self,
        by_policy: &[(String, &'static str, usize)],
        refused: usize,
        expiries: &[(String, i64)],
    ) {
        let mut published = self
            .exception_series
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let counts: Vec<ExceptionLabels> = by_policy
            .iter()
            .map(|(policy, state, count)| {
                let labels = ExceptionLabels {
                    policy: policy.clone(),
                    state,
                };
                self.exceptions.get_or_create(&labels).set(*count as i64);
                labels
            })
            .collect();
        let ends: Vec<ExceptionObjectLabels> = expiries
            .iter()
            .map(|(exception, at)| {
                let labels = ExceptionObjectLabels {
                    exception: exception.clone(),
                };
                self.exception_expiry.get_or_create(&labels).set(*at);
                labels
            })
            .collect();
        for gone in published.0.iter().filter(|labels| !counts.contains(labels)) {
            self.exceptions.remove(gone);
        }
        for gone in published.1.iter().filter(|labels| !ends.contains(labels)) {
            self.exception_expiry.remove(gone);
        }
        self.exceptions_refused.set(refused as i64);
        *published = (counts, ends);
    }

    /// The registry in Prometheus text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

/// `true` or `false`, as label values.
pub fn yes_no(value: bool) -> &'static str {
    if value {
        "true"
    } else {
        "false"
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn exception_series_of_deleted_exceptions_go_the_others_stay() {
        let metrics = super::Metrics::new();
        let policy = |state| vec![("pods.host_path".to_string(), state, 1)];
        metrics.set_exceptions(
            &policy("active"),
            0,
            &[("team-a/a".into(), 10), ("team-a/b".into(), 20)],
        );
        metrics.set_exceptions(&policy("expired"), 2, &[("team-a/b".into(), 20)]);
        let text = metrics.encode();
        assert!(
            text.contains("portcullis_exceptions{policy=\"pods.host_path\",state=\"expired\"} 1"),
            "{text}"
        );
        assert!(!text.contains("state=\"active\""), "{text}");
        assert!(
            text.contains("portcullis_exception_expiry_timestamp_seconds{exception=\"team-a/b\"} 20"),
            "{text}"
        );
        assert!(!text.contains("team-a/a"), "{text}");
        assert!(text.contains("portcullis_exceptions_refused 2"), "{text}");
    }

    use super::*;

    #[test]
    fn exposes_the_documented_names() {
        let metrics = Metrics::new();
        let labels = RequestLabels {
            operation: "CREATE",
            kind: "Pod",
            decision: "allow",
        };
        metrics.record_review(labels, Duration::from_millis(2));
        metrics.record_reload(false);
        metrics.record_tls_reload(false);
        metrics.set_policies_loaded(&[("compiled", 3), ("interpreter", 0)]);
        let text = metrics.encode();
        for name in [
            "portcullis_admission_requests_total{operation=\"CREATE\",kind=\"Pod\",decision=\"allow\"} 1",
            "portcullis_admission_duration_seconds_bucket",
            "portcullis_policies_loaded{engine=\"compiled\"} 3",
            "portcullis_policies_loaded{engine=\"interpreter\"} 0",
            "portcullis_policy_reloads_total{result=\"failure\"} 1",
            "portcullis_tls_reloads_total{result=\"failure\"} 1",
            "portcullis_build_info{version=",
        ] {
            assert!(text.contains(name), "missing {name} in\n{text}");
        }
    }
}
