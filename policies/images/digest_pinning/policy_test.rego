package images.digest_pinning_test

import data.images.digest_pinning

_digest := "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

_image(ref, registry, repository, tag, digest) := {
	"path": "spec.template.spec.containers[0].image",
	"container": "app",
	"ref": ref,
	"registry": registry,
	"repository": repository,
	"tag": tag,
	"digest": digest,
	"pinned": digest != null,
	"resolved_digest": null,
	"verification": {"status": "skipped", "reason": "not configured", "signers": [], "attestations": []},
}

_input(images, risk) := {
	"request": {"kind": {"group": "apps", "version": "v1", "kind": "Deployment"}, "subResource": "", "object": {"kind": "Deployment"}},
	"risk_level": risk,
	"namespace": {"name": "team-a", "labels": {"portcullis.io/risk-level": risk}},
	"images": images,
}

_tagged := _image("registry.example.com/app:1.0", "registry.example.com", "app", "1.0", null)

_message := "container \"app\": image \"registry.example.com/app:1.0\" is not pinned to a digest; pin it: registry.example.com/app@sha256:<digest>"

test_tag_without_digest_denied_at_high if {
	inp := _input([_tagged], "high")
	digest_pinning.deny == {_message} with input as inp
	count(digest_pinning.warn) == 0 with input as inp
}

test_tag_without_digest_denied_at_medium if {
	inp := _input([_tagged], "medium")
	digest_pinning.deny == {_message} with input as inp
}

test_tag_without_digest_warns_at_low if {
	inp := _input([_tagged], "low")
	count(digest_pinning.deny) == 0 with input as inp
	digest_pinning.warn == {"container \"app\": image \"registry.example.com/app:1.0\" is not pinned to a digest; pin it: registry.example.com/app@sha256:<digest> (allowed at risk level \"low\" for now, blocked at higher risk levels)"} with input as inp
}

test_unknown_risk_level_denies if {
	inp := _input([_tagged], "extreme")
	digest_pinning.deny == {_message} with input as inp
}

test_resolved_digest_is_suggested if {
	img := object.union(_tagged, {"resolved_digest": _digest})
	inp := _input([img], "high")
	digest_pinning.deny == {sprintf("container \"app\": image \"registry.example.com/app:1.0\" is not pinned to a digest; pin it: registry.example.com/app@%s", [_digest])} with input as inp
}

test_pinned_allowed if {
	img := _image(sprintf("registry.example.com/app:1.0@%s", [_digest]), "registry.example.com", "app", "1.0", _digest)
	inp := _input([img], "high")
	count(digest_pinning.deny) == 0 with input as inp
	count(digest_pinning.warn) == 0 with input as inp
}

test_latest_and_untagged_left_to_latest_tag if {
	inp := _input(
		[
			_image("nginx", "docker.io", "library/nginx", null, null),
			_image("nginx:latest", "docker.io", "library/nginx", "latest", null),
		],
		"high",
	)
	count(digest_pinning.deny) == 0 with input as inp
}

test_warn_levels_come_from_data if {
	inp := _input([_tagged], "medium")
	count(digest_pinning.deny) == 0 with input as inp with data.images.digest_pinning.warn_levels as ["low", "medium"]
	count(digest_pinning.warn) == 1 with input as inp with data.images.digest_pinning.warn_levels as ["low", "medium"]
}
