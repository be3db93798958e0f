# Deny, at the risk levels in data.yaml (medium and high by default), a signed image without a
# verified SBOM attestation. Unsigned or unverifiable images are images.signatures' business;
# this policy speaks only about verified ones, so each problem is reported once.

# METADATA
# title: "Signed images carry an SBOM"
# description: "A signed image carries a verified SBOM attestation, at the risk levels that require it."
# custom:
#   remediation: "Generate an SBOM in CI and attach it with cosign attest, then deploy that build's digest."
#   requires_verification: true
package images.sbom

import data.lib.images

_enabled if data.portcullis.config.images.verification.enabled == true

deny contains msg if {
	_enabled
	input.risk_level in data.images.sbom.risk_levels
	some img in images.all
	img.verification.status == "verified"
	not _has_sbom(img)
	msg := sprintf("%s: image \"%s\" has no verified SBOM attestation, which risk level %s requires; attach one in CI: cosign attest --type cyclonedx --predicate sbom.cdx.json --key <key> %v/%v@%v", [
		images.subject(img), images.ref(img), input.risk_level,
		img.registry, img.repository, _digest(img),
	])
}

_has_sbom(img) if {
	some attestation in img.verification.attestations
	attestation.verified == true
	attestation.predicate_type in data.images.sbom.predicate_types
}

_digest(img) := img.digest if images.pinned(img)

_digest(img) := images.suggested_digest(img) if not images.pinned(img)
