//! A native policy's own words, from the OPA METADATA annotation above its `package` (the same
//! YAML-in-comments block `opa inspect` and Regal read): `title`, `description` and
//! `custom.remediation`, which the CI outputs show beside a finding.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What a policy says about itself; every field optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PolicyMetadata {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// What to change so that the policy passes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remediation: Option<String>,
    /// It judges verified images (`custom.requires_verification`): it applies only where image
    /// verification is on.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub requires_verification: bool,
}

/// Each policy's metadata by id, for the outputs that show a policy's own words.
pub type Metadata = BTreeMap<String, PolicyMetadata>;

#[derive(Deserialize)]
struct Annotation {
    title: Option<String>,
    description: Option<String>,
    #[serde(default)]
    custom: Custom,
}

#[derive(Deserialize, Default)]
struct Custom {
    remediation: Option<String>,
    #[serde(default)]
    requires_verification: bool,
}

/// The package's METADATA block in `text`: the comment lines after `# METADATA` that end right
/// above the `package` line. `Ok(None)` when there is none; an error names what does not parse.
pub fn package_metadata(text: &str) -> Result<Option<PolicyMetadata>, String> {
    let lines: Vec<&str> = text.lines().collect();
    let Some(package) = lines.iter().position(|line| line.trim_start().starts_with("package ")) else {
        return Ok(None);
    };
    // The comment block directly above `package`, and its METADATA line.
    let start = lines[..package]
        .iter()
        .rposition(|line| !line.trim_start().starts_with('#'))
        .map_or(0, |index| index + 1);
    let block = &lines[start..package];
    let Some(marker) = block.iter().position(|line| line.trim() == "# METADATA") else {
        return Ok(None);
    };
    let yaml: String = block[marker + 1..]
        .iter()
        .map(|line| {
            let line = line.trim_start().trim_start_matches('#');
            format!("{}\n", line.strip_prefix(' ').unwrap_or(line))
        })
        .collect();
    let annotation: Annotation =
        yaml_serde::from_str(&yaml).map_err(|e| format!("its METADATA annotation is not YAML: {e}"))?;
    Ok(Some(PolicyMetadata {
        title: annotation.title,
        description: annotation.description,
        remediation: annotation.custom.remediation,
        requires_verification: annotation.custom.requires_verification,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_block_above_the_package() {
        let text = "# Deny hostPath volumes.\n# METADATA\n# title: No hostPath volumes\n# description: >-\n#   They give the pod\n#   the node's files.\n# custom:\n#   remediation: Use an emptyDir.\npackage pods.host_path\n";
        assert_eq!(
            package_metadata(text).unwrap(),
            Some(PolicyMetadata {
                title: Some("No hostPath volumes".into()),
                description: Some("They give the pod the node's files.".into()),
                remediation: Some("Use an emptyDir.".into()),
                requires_verification: false,
            })
        );
    }

    #[test]
    fn none_without_a_block_or_when_it_is_not_above_the_package() {
        assert_eq!(package_metadata("# just a comment\npackage a\n").unwrap(), None);
        let detached = "# METADATA\n# title: x\n\npackage a\n";
        assert_eq!(package_metadata(detached).unwrap(), None);
    }

    #[test]
    fn a_block_that_is_not_yaml_is_an_error() {
        let text = "# METADATA\n# title: [unclosed\npackage a\n";
        assert!(package_metadata(text).unwrap_err().contains("not YAML"));
    }
}
