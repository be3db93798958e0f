package images.latest_tag_test

import data.images.latest_tag

_digest := "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

_image(ref, registry, repository, tag, digest) := {
	"path": "spec.containers[0].image",
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
	"request": {"kind": {"kind": "Pod"}, "subResource": "", "object": {"kind": "Pod", "metadata": {"name": "p"}, "spec": {}}},
	"risk_level": risk,
	"namespace": {"name": "team-a", "labels": {}},
	"images": images,
}

test_untagged_image_denied if {
	inp := _input([_image("nginx", "docker.io", "library/nginx", null, null)], "low")
	latest_tag.deny == {"container \"app\" uses image \"nginx\" with no tag, which means \":latest\"; pin it to a digest: docker.io/library/nginx@sha256:<digest>"} with input as inp
}

test_untagged_image_uses_resolved_digest if {
	img := object.union(_image("nginx", "docker.io", "library/nginx", null, null), {"resolved_digest": _digest})
	inp := _input([img], "high")
	latest_tag.deny == {sprintf("container \"app\" uses image \"nginx\" with no tag, which means \":latest\"; pin it to a digest: docker.io/library/nginx@%s", [_digest])} with input as inp
}

test_latest_tag_denied_at_high if {
	inp := _input([_image("ghcr.io/acme/app:latest", "ghcr.io", "acme/app", "latest", null)], "high")
	latest_tag.deny == {"container \"app\" uses image \"ghcr.io/acme/app:latest\", and \":latest\" can point to a different image at any time; pin it to a digest: ghcr.io/acme/app@sha256:<digest>"} with input as inp
}

test_latest_tag_denied_at_low if {
	inp := _input([_image("ghcr.io/acme/app:latest", "ghcr.io", "acme/app", "latest", null)], "low")
	count(latest_tag.deny) == 1 with input as inp
}

test_image_volume_is_named_by_path if {
	img := object.union(_image("registry.example.com/models/llm", "registry.example.com", "models/llm", null, null), {"container": null, "path": "spec.volumes[1].image.reference"})
	inp := _input([img], "medium")
	latest_tag.deny == {"the image at spec.volumes[1].image.reference uses image \"registry.example.com/models/llm\" with no tag, which means \":latest\"; pin it to a digest: registry.example.com/models/llm@sha256:<digest>"} with input as inp
}

test_versioned_tag_allowed if {
	inp := _input([_image("nginx:1.25", "docker.io", "library/nginx", "1.25", null)], "high")
	count(latest_tag.deny) == 0 with input as inp
}

test_digest_only_allowed if {
	ref := sprintf("nginx@%s", [_digest])
	inp := _input([_image(ref, "docker.io", "library/nginx", null, _digest)], "high")
	count(latest_tag.deny) == 0 with input as inp
}

test_latest_beside_a_digest_denied if {
	ref := sprintf("nginx:latest@%s", [_digest])
	inp := _input([_image(ref, "docker.io", "library/nginx", "latest", _digest)], "low")
	expected := sprintf("container \"app\" uses image \"%s\", whose \":latest\" tag contradicts its digest; drop the tag and keep the digest: docker.io/library/nginx@%s", [ref, _digest])
	latest_tag.deny == {expected} with input as inp
}

test_one_denial_per_image if {
	inp := _input(
		[
			_image("nginx", "docker.io", "library/nginx", null, null),
			object.union(_image("redis:latest", "docker.io", "library/redis", "latest", null), {"container": "cache"}),
			_image("envoy:1.30", "docker.io", "library/envoy", "1.30", null),
		],
		"low",
	)
	count(latest_tag.deny) == 2 with input as inp
}

test_no_images_no_denial if {
	inp := {"request": {"kind": {"kind": "ConfigMap"}, "object": {"kind": "ConfigMap", "data": {"image": "nginx"}}}, "risk_level": "high", "images": []}
	count(latest_tag.deny) == 0 with input as inp
}
