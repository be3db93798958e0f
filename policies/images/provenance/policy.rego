# Deny, at the risk levels in data.yaml (high by default), a signed image without verified SLSA
# provenance from one of the trusted builders. Like images.sbom it speaks only about images
# whose signature verified.

# METADATA
# title: "Signed images carry trusted provenance"
# description: "A signed image carries a verified SLSA provenance attestation from a trusted builder, at the risk levels that require it."
# custom:
#   remediation: "Build the image in the trusted CI pipeline, which attests its provenance, and deploy that build's digest."
#   requires_verification: true
package images.provenance

import data.lib.images

_enabled if data.portcullis.config.images.verification.enabled == true

_applies(img) if {
	_enabled
	input.risk_level in data.images.provenance.risk_levels
	img.verification.status == "verified"
}

# SLSA v1 and v0.2 keep the builder id in different places.
_builder(attestation) := attestation.predicate.runDetails.builder.id

_builder(attestation) := attestation.predicate.builder.id

_provenance(img) := {attestation |
	some attestation in img.verification.attestations
	attestation.verified == true
	attestation.predicate_type in data.images.provenance.predicate_types
}

_trusted(img) if {
	some attestation in _provenance(img)
	_builder(attestation) in data.images.provenance.builders
}

deny contains msg if {
	some img in images.all
	_applies(img)
	count(_provenance(img)) == 0
	msg := sprintf("%s: image \"%s\" has no verified SLSA provenance, which risk level %s requires; publish it from CI: cosign attest --type slsaprovenance1 --predicate provenance.json --key <key> %v/%v@%v", [
		images.subject(img), images.ref(img), input.risk_level, img.registry, img.repository, img.digest,
	])
}

deny contains msg if {
	some img in images.all
	_applies(img)
	count(_provenance(img)) > 0
	not _trusted(img)
	builders := {b | some a in _provenance(img); b := object.get(a, ["predicate", "runDetails", "builder", "id"], object.get(a, ["predicate", "builder", "id"], "(none)"))}
	msg := sprintf("%s: image \"%s\" was built by %s, which is not a trusted builder (%s); build it with the platform's CI", [
		images.subject(img), images.ref(img), concat(", ", sort(builders)), concat(", ", data.images.provenance.builders),
	])
}
