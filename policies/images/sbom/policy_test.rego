package images.sbom_test

import data.images.sbom

_digest := "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

_image(status, attestations) := {
	"path": "spec.containers[0].image", "container": "app",
	"ref": sprintf("registry.example.com/team/app@%s", [_digest]),
	"registry": "registry.example.com", "repository": "team/app",
	"tag": null, "digest": _digest, "pinned": true, "resolved_digest": null,
	"verification": {"status": status, "reason": "", "signers": [], "attestations": attestations},
}

_input(level, images) := {"request": {"kind": {"kind": "Pod"}}, "risk_level": level, "namespace": {"name": "a", "labels": {}}, "images": images}

_on := {"images": {"verification": {"enabled": true}}}

_cyclonedx := {"authority": "ci-key", "predicate_type": "https://cyclonedx.org/bom", "verified": true, "predicate": {}}

test_verified_sbom_allowed_at_medium if {
	count(sbom.deny) == 0 with input as _input("medium", [_image("verified", [_cyclonedx])]) with data.portcullis.config as _on
}

test_missing_sbom_denied_at_medium_with_the_command if {
	expected := sprintf("container \"app\": image \"registry.example.com/team/app@%s\" has no verified SBOM attestation, which risk level medium requires; attach one in CI: cosign attest --type cyclonedx --predicate sbom.cdx.json --key <key> registry.example.com/team/app@%s", [_digest, _digest])
	sbom.deny == {expected} with input as _input("medium", [_image("verified", [])]) with data.portcullis.config as _on
}

test_unverified_sbom_does_not_count if {
	unverified := object.union(_cyclonedx, {"verified": false, "authority": ""})
	count(sbom.deny) == 1 with input as _input("high", [_image("verified", [unverified])]) with data.portcullis.config as _on
}

test_other_predicate_does_not_count if {
	provenance := object.union(_cyclonedx, {"predicate_type": "https://slsa.dev/provenance/v1"})
	count(sbom.deny) == 1 with input as _input("high", [_image("verified", [provenance])]) with data.portcullis.config as _on
}

test_not_required_at_low if {
	count(sbom.deny) == 0 with input as _input("low", [_image("verified", [])]) with data.portcullis.config as _on
}

test_unsigned_images_are_left_to_the_signature_policy if {
	count(sbom.deny) == 0 with input as _input("high", [_image("unsigned", [])]) with data.portcullis.config as _on
}

test_nothing_when_verification_is_off if {
	count(sbom.deny) == 0 with input as _input("high", [_image("skipped", [])]) with data.portcullis.config as {"images": {"verification": {"enabled": false}}}
}
