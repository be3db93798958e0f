//! What an audit pass found, in numbers: objects by kind, findings by policy, and the fleet
//! posture, the running images (those of Pods) by risk level: pinned, signed, with an SBOM,
//! with provenance.

use std::collections::BTreeMap;

use serde::Serialize;

use super::audited::Audited;
use crate::batch::Change;

#[derive(Debug, Default, Serialize)]
pub struct Summary {
    pub objects: usize,
    pub kinds: BTreeMap<String, usize>,
    /// Reported objects denied (under the proposal, with what-if).
    pub denied: usize,
    /// Findings of reported objects, by policy and action (a what-if's resolved ones left out).
    pub findings: BTreeMap<String, BTreeMap<&'static str, usize>>,
    /// The running images by risk level.
    pub images: BTreeMap<String, ImageCounts>,
    /// The same findings by policy, action and the object's risk level (the audit's metrics).
    #[serde(skip)]
    pub violations: BTreeMap<(String, &'static str, String), usize>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ImageCounts {
    pub running: usize,
    pub pinned: usize,
    pub signed: usize,
    pub sbom: usize,
    pub provenance: usize,
}

impl Summary {
    /// The numbers of an audit pass: every object counts by kind and its Pods' images in the
    /// posture; findings and denials count on the objects they are reported on.
    pub fn of<'a>(audited: impl IntoIterator<Item = &'a Audited>) -> Summary {
        let mut summary = Summary::default();
        for Audited { result, reported, .. } in audited {
            summary.objects += 1;
            *summary.kinds.entry(result.kind.clone()).or_default() += 1;
            if result.kind == "Pod" {
                let counts = summary.images.entry(result.risk_level.clone()).or_default();
                for image in &result.images {
                    counts.running += 1;
                    counts.pinned += usize::from(image.pinned);
                    counts.signed += usize::from(image.signed);
                    counts.sbom += usize::from(image.sbom);
                    counts.provenance += usize::from(image.provenance);
                }
            }
            if !reported {
                continue;
            }
            summary.denied += usize::from(!result.allowed);
            for finding in result.findings.iter().filter(|f| f.change != Some(Change::Resolved)) {
                *summary
                    .findings
                    .entry(finding.policy.clone())
                    .or_default()
                    .entry(finding.action)
                    .or_default() += 1;
                *summary
                    .violations
                    .entry((finding.policy.clone(), finding.action, result.risk_level.clone()))
                    .or_default() += 1;
            }
        }
        summary
    }

    /// The summary as lines of text.
    pub fn render_text(&self) -> String {
        let kinds: Vec<String> = self.kinds.iter().map(|(kind, n)| format!("{kind} {n}")).collect();
        let mut out = format!(
            "audited {} object(s) ({}): {} denied\n",
            self.objects,
            kinds.join(", "),
            self.denied
        );
        for (policy, actions) in &self.findings {
            let actions: Vec<String> = actions.iter().map(|(action, n)| format!("{n} {action}")).collect();
            out.push_str(&format!("  {policy}: {}\n", actions.join(", ")));
        }
        for (level, c) in &self.images {
            out.push_str(&format!(
                "running images at risk level {level}: {}, pinned {}, signed {}, with SBOM {}, with provenance {}\n",
                c.running, c.pinned, c.signed, c.sbom, c.provenance
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::Posture;
    use crate::batch::{FindingResult, ObjectResult};

    fn pod(
        kind: &str,
        reported: bool,
        allowed: bool,
        findings: &[(&str, &'static str)],
        images: Vec<Posture>,
    ) -> Audited {
        let result = ObjectResult {
            origin: "cluster".into(),
            location: None,
            kind: kind.into(),
            namespace: "a".into(),
            name: "x".into(),
            allowed,
            risk_level: "low".into(),
            findings: findings
                .iter()
                .map(|(policy, action)| FindingResult::new(policy, action, "m".into()))
                .collect(),
            images,
            applied: vec![],
        };
        Audited {
            api_version: "v1".into(),
            uid: "u".into(),
            controller: None,
            reported,
            result,
            digest: 0,
        }
    }

    #[test]
    fn posture_counts_what_runs_and_findings_count_once() {
        let signed = Posture {
            pinned: true,
            signed: true,
            sbom: true,
            provenance: false,
        };
        let results = [
            pod(
                "Deployment",
                true,
                false,
                &[("pinned", "deny")],
                vec![Posture::default()],
            ),
            // The Deployment's Pod: counted in the posture, its finding reported on the owner.
            pod("Pod", false, false, &[("pinned", "deny")], vec![Posture::default()]),
            pod("Pod", true, true, &[("latest", "warn")], vec![signed, signed]),
        ];
        let summary = Summary::of(&results);
        assert_eq!(summary.objects, 3);
        assert_eq!(summary.denied, 1);
        assert_eq!(summary.findings["pinned"]["deny"], 1);
        assert_eq!(summary.findings["latest"]["warn"], 1);
        assert_eq!(
            summary.violations.keys().collect::<Vec<_>>(),
            [
                &("latest".to_string(), "warn", "low".to_string()),
                &("pinned".to_string(), "deny", "low".to_string())
            ]
        );
        assert_eq!(
            summary.images["low"],
            ImageCounts {
                running: 3,
                pinned: 2,
                signed: 2,
                sbom: 2,
                provenance: 0
            }
        );
    }
}
