# Deny, at every risk level, an image whose cosign signature portcullis could not verify
# against the trust policy. Native code computes input.images[].verification; this policy says
# what each outcome means for the person who applied the manifest.
#
# It applies only when verification is on (data.portcullis.config.images.verification.enabled:
# the config has trust entries and the run is not `check --offline`). Images on registries
# outside the allow-list are "skipped" (never contacted) and left to images.allowed_registries.

# METADATA
# title: "Images are signed by a trusted key or identity"
# description: "Every image's cosign signature verifies against the platform's trust policy."
# custom:
#   remediation: "Sign the image in the trusted CI pipeline (cosign sign) and deploy the signed digest; the message says what failed."
#   requires_verification: true
package images.signatures

import data.lib.images

_enabled if data.portcullis.config.images.verification.enabled == true

_advice := {
	"unsigned": "sign it in CI with cosign (cosign sign --key <key> %s) and deploy it by digest",
	"invalid": "its signature does not verify with any trusted key (tampered, or signed with another key); sign %s again with a trusted key",
	"untrusted": "it is not signed by an authority trusted for these images; sign %s with the team's key or CI identity",
	"no_trust_policy": "no trust policy covers this repository; use an image from a covered repository or ask the platform team to add one for %s",
	"error": "its signature could not be checked because the registry failed; retry, and tell the platform team if it persists (%s)",
	"timeout": "its signature could not be checked in time; retry in a moment (%s)",
}

deny contains msg if {
	_enabled
	some img in images.all
	status := object.get(img, ["verification", "status"], "missing")
	not status in {"verified", "skipped"}
	advice := object.get(_advice, status, "it could not be verified (%s)")
	msg := sprintf("%s: image \"%s\" is %s: %s; %s", [
		images.subject(img), images.ref(img), status,
		object.get(img, ["verification", "reason"], "no reason given"),
		sprintf(advice, [_target(img)]),
	])
}

# What to sign: the digest that runs.
_target(img) := sprintf("%v/%v@%v", [img.registry, img.repository, img.digest]) if images.pinned(img)

_target(img) := images.pinned_suggestion(img) if not images.pinned(img)
