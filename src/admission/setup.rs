//! The reviewer built from settings: the one way `serve`, `check`, the benches and the tests
//! load the policy library and wire the verifier, so they can never decide differently.

use std::sync::Arc;

use super::Reviewer;
use crate::config::Settings;
use crate::images::pull_secrets::PullSecrets;
use crate::images::verify::{Verifier, VerifierError};
use crate::metrics::Metrics;
use crate::namespaces::NamespaceLabels;
use crate::policy::engine::LoadError;
use crate::policy::{input, PolicySet, Source};

/// Loads a policy set with the config's data, as startup and every reload do.
pub fn load_policies(source: &Source, settings: &Settings) -> Result<PolicySet, LoadError> {
    let bundle = source.read()?;
    let verification_enabled = !settings.trust.entries.is_empty();
    let data = input::config_data(
        &settings.allowed_registries,
        settings.risk_default,
        verification_enabled,
    );
    let set = PolicySet::build_on(&bundle, data, settings.policy_timeout, settings.policy_engine)?;
    for policy in set.policies() {
        if let Some(reason) = &policy.interpreted_because {
            tracing::info!(policy = %policy.id, %reason, "policy runs on the interpreter: it does not compile");
        }
    }
    for id in settings.enforcement.keys() {
        if !set.policies().iter().any(|p| &p.id == id) {
            tracing::warn!(policy = %id, "enforcement override names a policy that is not loaded");
        }
    }
    Ok(set)
}

impl Reviewer {
    /// A reviewer for `policies` with the settings' enforcement overrides and default risk
    /// level; images are verified when the settings have trust entries, reading workloads'
    /// imagePullSecrets through `pull_secrets` when given.
    pub fn from_settings(
        settings: &Settings,
        policies: PolicySet,
        namespaces: Arc<dyn NamespaceLabels>,
        metrics: Arc<Metrics>,
        pull_secrets: Option<Arc<PullSecrets>>,
    ) -> Result<Reviewer, VerifierError> {
        let reviewer = Reviewer::new(
            policies,
            settings.enforcement.clone(),
            settings.risk_default,
            namespaces,
        );
        if settings.trust.entries.is_empty() {
            return Ok(reviewer);
        }
        let mut verifier = Verifier::new(settings.trust.clone(), metrics)?;
        if let Some(pull_secrets) = pull_secrets {
            verifier = verifier.with_pull_secrets(pull_secrets);
        }
        Ok(reviewer.with_verifier(Arc::new(verifier)))
    }
}
