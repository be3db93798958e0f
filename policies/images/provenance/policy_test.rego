package images.provenance_test

import data.images.provenance

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

_v1(builder) := {"authority": "ci-key", "predicate_type": "https://slsa.dev/provenance/v1", "verified": true, "predicate": {"runDetails": {"builder": {"id": builder}}}}

_v02(builder) := {"authority": "ci-key", "predicate_type": "https://slsa.dev/provenance/v0.2", "verified": true, "predicate": {"builder": {"id": builder}}}

test_trusted_builder_allowed_at_high if {
	count(provenance.deny) == 0 with input as _input("high", [_image("verified", [_v1("https://ci.example.com/builders/micro-apps")])]) with data.portcullis.config as _on
}

test_v02_trusted_builder_allowed if {
	count(provenance.deny) == 0 with input as _input("high", [_image("verified", [_v02("https://ci.example.com/builders/micro-apps")])]) with data.portcullis.config as _on
}

test_untrusted_builder_denied_naming_it if {
	inp := _input("high", [_image("verified", [_v1("https://laptop.example/evil")])])
	some msg in provenance.deny with input as inp with data.portcullis.config as _on
	contains(msg, "was built by https://laptop.example/evil, which is not a trusted builder (https://ci.example.com/builders/micro-apps)")
}

test_missing_provenance_denied_at_high if {
	some msg in provenance.deny with input as _input("high", [_image("verified", [])]) with data.portcullis.config as _on
	contains(msg, "has no verified SLSA provenance, which risk level high requires")
}

test_unverified_provenance_does_not_count if {
	unverified := object.union(_v1("https://ci.example.com/builders/micro-apps"), {"verified": false})
	count(provenance.deny) == 1 with input as _input("high", [_image("verified", [unverified])]) with data.portcullis.config as _on
}

test_not_required_at_medium if {
	count(provenance.deny) == 0 with input as _input("medium", [_image("verified", [])]) with data.portcullis.config as _on
}
