//! The kinds portcullis reviews, listed once: image extraction finds each one's pod spec here,
//! and metrics label requests by them (any other kind is `other`, so labels stay bounded).

/// A workload kind and where its pod spec sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkloadKind {
    pub kind: &'static str,
    /// The pod spec as a JSON pointer into the object.
    pub pod_spec_pointer: &'static str,
    /// The same, as the field path messages show (`spec.template.spec`).
    pub pod_spec_path: &'static str,
}

const fn workload(kind: &'static str, pod_spec_pointer: &'static str, pod_spec_path: &'static str) -> WorkloadKind {
    WorkloadKind {
        kind,
        pod_spec_pointer,
        pod_spec_path,
    }
}

/// Every kind whose objects carry a pod spec, as the chart's webhook rules send them.
pub const WORKLOAD_KINDS: [WorkloadKind; 9] = [
    workload("Pod", "/spec", "spec"),
    workload("PodTemplate", "/template/spec", "template.spec"),
    workload("Deployment", "/spec/template/spec", "spec.template.spec"),
    workload("ReplicaSet", "/spec/template/spec", "spec.template.spec"),
    workload("StatefulSet", "/spec/template/spec", "spec.template.spec"),
    workload("DaemonSet", "/spec/template/spec", "spec.template.spec"),
    workload("Job", "/spec/template/spec", "spec.template.spec"),
    workload(
        "CronJob",
        "/spec/jobTemplate/spec/template/spec",
        "spec.jobTemplate.spec.template.spec",
    ),
    workload("ReplicationController", "/spec/template/spec", "spec.template.spec"),
];

/// Kinds reviewed besides the workloads: the ephemeralcontainers subresource's older kind, and
/// Namespaces (for the risk-level label guard).
pub const OTHER_REVIEWED_KINDS: [&str; 2] = ["EphemeralContainers", "Namespace"];

/// The workload kind named `kind`, if it is one.
pub fn workload_kind(kind: &str) -> Option<&'static WorkloadKind> {
    WORKLOAD_KINDS.iter().find(|workload| workload.kind == kind)
}

/// `kind` as a metric label: a reviewed kind as itself, anything else `other` (or `unknown`
/// when empty), so a request can never add a label value.
pub fn kind_label(kind: &str) -> &'static str {
    let reviewed = WORKLOAD_KINDS
        .iter()
        .map(|workload| workload.kind)
        .chain(OTHER_REVIEWED_KINDS);
    for known in reviewed {
        if known == kind {
            return known;
        }
    }
    if kind.is_empty() {
        "unknown"
    } else {
        "other"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_bounded() {
        assert_eq!(kind_label("CronJob"), "CronJob");
        assert_eq!(kind_label("EphemeralContainers"), "EphemeralContainers");
        assert_eq!(kind_label("MyCustomThing-1234"), "other");
        assert_eq!(kind_label(""), "unknown");
    }

    #[test]
    fn every_workload_names_its_pod_spec_both_ways() {
        for workload in WORKLOAD_KINDS {
            let path = workload.pod_spec_pointer.trim_start_matches('/').replace('/', ".");
            assert_eq!(path, workload.pod_spec_path, "{}", workload.kind);
        }
    }
}
