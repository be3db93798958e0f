//! The continuous audit: a full pass every interval with the same reviewer, whose verification
//! cache stays warm between passes (a digest is verified again only when its entry expires),
//! and each pass's results as metrics. Every series exists from startup: each policy of the
//! set at every enforcement and risk level, each audited kind, each posture at every risk
//! level start at zero, so a dashboard shows 0, not "No data", and a series that a pass no
//! longer finds goes back to zero rather than vanishing.

use std::collections::{BTreeSet, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;

use super::audited::{digest, Completed};
use super::changes::{Change, Watches};
use super::fleet::Fleet;
use super::lease::Lease;
use super::writer::{ReportWriter, Written};
use super::{listing, pass, Pass, Selection, Summary};
use crate::admission::{Reviewer, Revision};
use crate::metrics::{AuditMetrics, FleetImageLabels, KindLabels, ViolationLabels};
use crate::results::Enforcement;
use crate::risk::RiskLevel;

/// How often the audit looks at its lease, its stop flag and its watches when idle.
const TICK: Duration = Duration::from_millis(100);
/// Changes are published (metrics, reports) at most this often: a burst of changes is one
/// rendering of the reports, not one per object.
const SETTLE: Duration = Duration::from_secs(1);

const POSTURES: [&str; 5] = ["running", "pinned", "signed", "sbom", "provenance"];

/// Sets the audit's series from each pass.
pub struct Exporter {
    metrics: AuditMetrics,
    /// Every violation series set so far (the known ones at zero included).
    violations: HashSet<ViolationLabels>,
    kinds: BTreeSet<String>,
}

impl Exporter {
    /// Every known series at zero: `policies` (the ids findings carry) at every enforcement
    /// and risk level, the audited kinds, the posture at every risk level; and the audit's
    /// `interval` and start.
    pub fn new(
        metrics: AuditMetrics,
        policies: impl IntoIterator<Item = String>,
        interval: Duration,
        started: SystemTime,
    ) -> Exporter {
        let mut violations = HashSet::new();
        for policy in policies {
            for enforcement in [Enforcement::Deny, Enforcement::Warn, Enforcement::DryRun] {
                for level in RiskLevel::ALL {
                    violations.insert(ViolationLabels {
                        policy: policy.clone(),
                        enforcement: enforcement.as_str(),
                        risk_level: level.to_string(),
                    });
                }
            }
        }
        let exporter = Exporter {
            metrics,
            violations,
            kinds: listing::audited_kind_names().into_iter().collect(),
        };
        exporter.record(&Summary::default());
        exporter.metrics.interval.set(interval.as_secs_f64());
        exporter.metrics.started.set(epoch_seconds(started));
        exporter
    }

    /// A completed pass: its numbers replace the last pass's.
    pub fn completed(&mut self, summary: &Summary, took: Duration, at: SystemTime) {
        self.updated(summary);
        self.metrics.last_pass.set(epoch_seconds(at));
        self.metrics.pass_duration.set(took.as_secs_f64());
        self.metrics.record_pass(true);
    }

    /// The fleet changed between passes: the numbers as they are now.
    pub fn updated(&mut self, summary: &Summary) {
        self.learn(summary);
        self.record(summary);
    }

    /// A pass that could not list the cluster: the last pass's numbers stay, its timestamp ages.
    pub fn failed(&self) {
        self.metrics.record_pass(false);
    }

    /// Auditing, or on standby: a standby's numbers are zeros (the active replica's count), so
    /// that sums over replicas count each object once.
    pub fn leading(&self, leading: bool) {
        self.metrics.leading.set(i64::from(leading));
        if !leading {
            self.record(&Summary::default());
        }
    }

    /// The label sets of `summary` are known from now on (a later pass sets them to zero).
    fn learn(&mut self, summary: &Summary) {
        for (policy, enforcement, risk_level) in summary.violations.keys() {
            self.violations.insert(ViolationLabels {
                policy: policy.clone(),
                enforcement,
                risk_level: risk_level.clone(),
            });
        }
        self.kinds.extend(summary.kinds.keys().cloned());
    }

    fn record(&self, summary: &Summary) {
        for labels in &self.violations {
            let key = (labels.policy.clone(), labels.enforcement, labels.risk_level.clone());
            let count = summary.violations.get(&key).copied().unwrap_or(0);
            self.metrics.violations.get_or_create(labels).set(count as i64);
        }
        for kind in &self.kinds {
            let count = summary.kinds.get(kind).copied().unwrap_or(0);
            self.metrics
                .objects
                .get_or_create(&KindLabels { kind: kind.clone() })
                .set(count as i64);
        }
        let levels: BTreeSet<String> = RiskLevel::ALL
            .iter()
            .map(ToString::to_string)
            .chain(summary.images.keys().cloned())
            .collect();
        for risk_level in levels {
            let counts = summary.images.get(&risk_level).copied().unwrap_or_default();
            let values = [
                counts.running,
                counts.pinned,
                counts.signed,
                counts.sbom,
                counts.provenance,
            ];
            for (posture, value) in POSTURES.into_iter().zip(values) {
                let labels = FleetImageLabels {
                    risk_level: risk_level.clone(),
                    posture,
                };
                self.metrics.images.get_or_create(&labels).set(value as i64);
            }
        }
    }
}

fn epoch_seconds(at: SystemTime) -> f64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

/// What a continuous audit runs on.
pub struct Continuous<'a> {
    pub runtime: &'a tokio::runtime::Runtime,
    pub client: &'a kube::Client,
    pub selection: &'a Selection<'a>,
    pub reviewer: &'a Reviewer,
    /// Verify images (trust entries configured).
    pub online: bool,
    /// From the start of one full pass to the start of the next (at once again when a pass
    /// took longer).
    pub interval: Duration,
    /// Audit only while holding it; without one, always.
    pub lease: Option<&'a Lease>,
}

/// Where the audit stands between passes.
struct Between<'s> {
    exporter: &'s mut Exporter,
    writer: Option<&'s mut ReportWriter>,
}

impl Continuous<'_> {
    /// Runs until `stop` is set: waits for the lease (when there is one) and for the reviewer
    /// to be ready (the Namespaces, and the inventory when configured, synced), then a full
    /// pass, then each change its watches report decided as it comes, until the interval is
    /// over or what decides everything changed (the policy library, a namespace's risk
    /// level): then a full pass again. The results go to the metrics and, with a writer, to
    /// the reports.
    pub fn run(&self, exporter: &mut Exporter, writer: Option<&mut ReportWriter>, stop: &AtomicBool) {
        let stopped = || stop.load(Ordering::Acquire);
        let mut state = Between { exporter, writer };
        let mut leading = false;
        while !stopped() {
            if self.leading() != leading {
                leading = !leading;
                state.exporter.leading(leading);
                tracing::info!(leading, "audit lease {}", if leading { "acquired" } else { "not held" });
            }
            if !leading {
                std::thread::sleep(TICK);
                continue;
            }
            if let Some(reason) = self.reviewer.not_ready() {
                tracing::info!(reason, "audit waits for its caches");
                std::thread::sleep(Duration::from_secs(1));
                continue;
            }
            let revision = self.reviewer.revision();
            let started = Instant::now();
            let due = started + self.interval;
            match pass(
                self.runtime,
                self.client,
                self.selection,
                self.reviewer,
                None,
                self.online,
            ) {
                Ok(Completed { audited, listed }) => {
                    let mut fleet = Fleet::new(audited);
                    let took = started.elapsed();
                    let summary = Summary::of(fleet.iter());
                    // Reports first: a pass counted in the metrics is one whose reports are
                    // written (what a scrape sees done is done everywhere).
                    let written = self.write(&mut state, &fleet);
                    state.exporter.completed(&summary, took, SystemTime::now());
                    tracing::info!(
                        objects = summary.objects,
                        denied = summary.denied,
                        seconds = took.as_secs_f64(),
                        reports_applied = written.applied,
                        reports_unchanged = written.unchanged,
                        reports_deleted = written.deleted,
                        reports_failed = written.failed,
                        "audit pass completed"
                    );
                    let mut watches = Watches::start(self.runtime.handle(), listed);
                    self.follow(&mut state, &mut fleet, &mut watches, due, revision, stop);
                }
                Err(error) => {
                    state.exporter.failed();
                    tracing::error!(%error, "audit pass failed; the next one starts on schedule");
                    while !stopped() && self.leading() && Instant::now() < due {
                        std::thread::sleep(TICK);
                    }
                }
            }
        }
    }

    fn leading(&self) -> bool {
        self.lease.is_none_or(Lease::leading)
    }

    /// Decides each change as it comes until `due`, a stop, the lease lost, a watch that
    /// cannot resume, or a new `revision`; the results published at most every [`SETTLE`].
    fn follow(
        &self,
        state: &mut Between,
        fleet: &mut Fleet,
        watches: &mut Watches,
        due: Instant,
        revision: Revision,
        stop: &AtomicBool,
    ) {
        let mut unpublished: Option<Instant> = None;
        while !stop.load(Ordering::Acquire) && self.leading() && Instant::now() < due {
            if self.reviewer.revision() != revision {
                tracing::info!(
                    "the policy library, a namespace's risk level or a PolicyException changed: a full pass"
                );
                break;
            }
            let changed = match watches.next(self.runtime, TICK) {
                None => false,
                Some(Change::Applied(object)) => self.decide(fleet, object, state.exporter),
                Some(Change::Deleted { uid }) => fleet.remove(&uid),
                Some(Change::Lost { kind }) => {
                    tracing::info!(%kind, "a watch cannot resume: a full pass");
                    break;
                }
            };
            if changed && unpublished.is_none() {
                unpublished = Some(Instant::now());
            }
            if unpublished.is_some_and(|since| since.elapsed() >= SETTLE) {
                self.publish(state, fleet);
                unpublished = None;
            }
        }
        if unpublished.is_some() && self.leading() {
            self.publish(state, fleet);
        }
    }

    /// A created or changed object decided again, unless what decides it did not change (a
    /// status update). Whether its result changed the fleet.
    fn decide(&self, fleet: &mut Fleet, object: Value, exporter: &Exporter) -> bool {
        let uid = object
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if fleet.holds(uid, digest(&object)) {
            return false;
        }
        let mut pass = Pass::new(self.reviewer, None, self.online.then_some(self.runtime));
        if let Err(error) = pass.decide(vec![object]) {
            tracing::warn!(%error, "a changed object cannot be decided; the next pass tries again");
            return false;
        }
        exporter.metrics.changes.inc();
        for audited in pass.finish() {
            fleet.update(audited);
        }
        true
    }

    /// The fleet as it is now, to the metrics and the reports.
    fn publish(&self, state: &mut Between, fleet: &Fleet) {
        state.exporter.updated(&Summary::of(fleet.iter()));
        let written = self.write(state, fleet);
        tracing::debug!(
            reports_applied = written.applied,
            reports_deleted = written.deleted,
            reports_failed = written.failed,
            "audit results updated"
        );
    }

    fn write(&self, state: &mut Between, fleet: &Fleet) -> Written {
        match state.writer.as_deref_mut() {
            Some(writer) => self.runtime.block_on(writer.write(fleet.iter(), SystemTime::now())),
            None => Written::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;

    fn line<'a>(text: &'a str, series: &str) -> Option<&'a str> {
        text.lines().find(|l| l.starts_with(series))
    }

    #[test]
    fn every_series_exists_from_startup_and_goes_back_to_zero() {
        let (metrics, audit) = Metrics::for_audit();
        let mut exporter = Exporter::new(
            audit,
            ["images.digest_pinning".to_string()],
            Duration::from_secs(600),
            SystemTime::UNIX_EPOCH + Duration::from_secs(50),
        );
        let text = metrics.encode();
        let pinning =
            r#"portcullis_audit_violations{policy="images.digest_pinning",enforcement="deny",risk_level="high"}"#;
        assert_eq!(line(&text, pinning), Some(format!("{pinning} 0").as_str()));
        assert!(line(&text, r#"portcullis_audit_objects{kind="Pod"} 0"#).is_some());
        assert!(line(&text, r#"portcullis_fleet_images{risk_level="low",posture="signed"} 0"#).is_some());
        assert!(line(&text, "portcullis_audit_last_pass_timestamp_seconds 0").is_some());
        assert!(line(&text, "portcullis_audit_started_timestamp_seconds 50").is_some());
        assert!(line(&text, "portcullis_audit_interval_seconds 600").is_some());
        assert!(line(&text, r#"portcullis_audit_passes_total{result="failure"} 0"#).is_some());

        let mut summary = Summary::default();
        summary
            .violations
            .insert(("images.digest_pinning".into(), "deny", "high".into()), 2);
        // A finding of portcullis's own checks: not known at startup.
        summary
            .violations
            .insert(("portcullis.images".into(), "deny", "low".into()), 1);
        summary.kinds.insert("Pod".into(), 3);
        exporter.completed(
            &summary,
            Duration::from_millis(1500),
            SystemTime::UNIX_EPOCH + Duration::from_secs(100),
        );
        let text = metrics.encode();
        assert_eq!(line(&text, pinning), Some(format!("{pinning} 2").as_str()));
        let own = r#"portcullis_audit_violations{policy="portcullis.images",enforcement="deny",risk_level="low"}"#;
        assert_eq!(line(&text, own), Some(format!("{own} 1").as_str()));
        assert!(line(&text, r#"portcullis_audit_objects{kind="Pod"} 3"#).is_some());
        assert!(line(&text, "portcullis_audit_last_pass_timestamp_seconds 100").is_some());
        assert!(line(&text, "portcullis_audit_pass_duration_seconds 1.5").is_some());
        assert!(line(&text, r#"portcullis_audit_passes_total{result="success"} 1"#).is_some());

        exporter.completed(&Summary::default(), Duration::from_secs(1), SystemTime::UNIX_EPOCH);
        let text = metrics.encode();
        assert_eq!(line(&text, own), Some(format!("{own} 0").as_str()));
        assert_eq!(line(&text, pinning), Some(format!("{pinning} 0").as_str()));
    }

    #[test]
    fn the_webhook_registers_no_audit_series() {
        assert!(!Metrics::new().encode().contains("portcullis_audit_"));
    }
}
