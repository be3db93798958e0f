package images.signatures_test

import data.images.signatures

_digest := "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

_image(status, reason) := {
	"path": "spec.containers[0].image",
	"container": "app",
	"ref": sprintf("registry.example.com/team/app@%s", [_digest]),
	"registry": "registry.example.com",
	"repository": "team/app",
	"tag": null,
	"digest": _digest,
	"pinned": true,
	"resolved_digest": null,
	"verification": {"status": status, "reason": reason, "signers": [], "attestations": []},
}

_input(images) := {
	"request": {"kind": {"kind": "Pod"}, "object": {"kind": "Pod", "metadata": {"name": "p"}, "spec": {}}},
	"risk_level": "low",
	"namespace": {"name": "team-a", "labels": {}},
	"images": images,
}

_on := {"images": {"verification": {"enabled": true}}}

test_verified_image_allowed if {
	inp := _input([_image("verified", "signed by ci-key")])
	count(signatures.deny) == 0 with input as inp with data.portcullis.config as _on
}

test_unsigned_image_denied_with_what_to_do if {
	inp := _input([_image("unsigned", "no cosign signature")])
	expected := sprintf("container \"app\": image \"registry.example.com/team/app@%s\" is unsigned: no cosign signature; sign it in CI with cosign (cosign sign --key <key> registry.example.com/team/app@%s) and deploy it by digest", [_digest, _digest])
	signatures.deny == {expected} with input as inp with data.portcullis.config as _on
}

test_every_failure_class_is_denied if {
	every status in ["invalid", "untrusted", "no_trust_policy", "error", "timeout"] {
		inp := _input([_image(status, "because")])
		count(signatures.deny) == 1 with input as inp with data.portcullis.config as _on
	}
}

test_registry_failure_is_not_called_unsigned if {
	inp := _input([_image("error", "registry down")])
	some msg in signatures.deny with input as inp with data.portcullis.config as _on
	contains(msg, "is error: registry down")
	not contains(msg, "unsigned")
}

test_skipped_images_are_left_to_the_allow_list if {
	inp := _input([_image("skipped", "not on the allow-list")])
	count(signatures.deny) == 0 with input as inp with data.portcullis.config as _on
}

test_nothing_when_verification_is_off if {
	inp := _input([_image("skipped", "not configured")])
	count(signatures.deny) == 0 with input as inp with data.portcullis.config as {"images": {"verification": {"enabled": false}}}
}

test_unpinned_image_is_told_the_resolved_digest if {
	img := object.union(_image("unsigned", "no signature"), {"digest": null, "pinned": false, "tag": "1.0", "ref": "registry.example.com/team/app:1.0", "resolved_digest": _digest})
	some msg in signatures.deny with input as _input([img]) with data.portcullis.config as _on
	contains(msg, sprintf("cosign sign --key <key> registry.example.com/team/app@%s", [_digest]))
}
