package images.allowed_registries_test

import data.images.allowed_registries

_image(ref, registry, repository) := {
	"path": "spec.containers[0].image",
	"container": "app",
	"ref": ref,
	"registry": registry,
	"repository": repository,
	"tag": "1.0",
	"digest": null,
	"pinned": false,
	"resolved_digest": null,
	"verification": {"status": "skipped", "reason": "not configured", "signers": [], "attestations": []},
}

_input(images) := {
	"request": {"kind": {"kind": "Pod"}, "subResource": "", "object": {"kind": "Pod"}},
	"risk_level": "high",
	"namespace": {"name": "team-a", "labels": {}},
	"images": images,
}

_config := {"images": {"registries": {"allow": ["registry.example.com", "ghcr.io/acme", "127.0.0.1:5000"]}}}

_allowed_text := "registry.example.com, ghcr.io/acme, 127.0.0.1:5000"

_denied(ref, registry, repository) := msg if {
	inp := _input([_image(ref, registry, repository)])
	cfg := _config
	msgs := allowed_registries.deny with input as inp with data.portcullis.config as cfg
	count(msgs) == 1
	some msg in msgs
}

_allowed(ref, registry, repository) if {
	inp := _input([_image(ref, registry, repository)])
	cfg := _config
	count(allowed_registries.deny) == 0 with input as inp with data.portcullis.config as cfg
}

test_registry_host_allowed if {
	_allowed("registry.example.com/micro-apps/where2eat:1.0", "registry.example.com", "micro-apps/where2eat")
}

test_repository_prefix_allowed if {
	_allowed("ghcr.io/acme/app:1.0", "ghcr.io", "acme/app")
	_allowed("ghcr.io/acme/team/app:1.0", "ghcr.io", "acme/team/app")
}

test_host_with_port_allowed if {
	_allowed("127.0.0.1:5000/app:1.0", "127.0.0.1:5000", "app")
}

test_other_registry_denied if {
	msg := _denied("nginx:1.0", "docker.io", "library/nginx")
	msg == sprintf("container \"app\": image \"nginx:1.0\" comes from docker.io/library/nginx, which is not an allowed registry; use an image from one of: %s", [_allowed_text])
}

test_lookalike_host_denied if {
	msg := _denied("registry.example.com.evil.io/app:1.0", "registry.example.com.evil.io", "app")
	msg == sprintf("container \"app\": image \"registry.example.com.evil.io/app:1.0\" comes from registry.example.com.evil.io/app, which is not an allowed registry; use an image from one of: %s", [_allowed_text])
}

test_partial_segment_denied if {
	msg := _denied("ghcr.io/acmecorp/app:1.0", "ghcr.io", "acmecorp/app")
	msg == sprintf("container \"app\": image \"ghcr.io/acmecorp/app:1.0\" comes from ghcr.io/acmecorp/app, which is not an allowed registry; use an image from one of: %s", [_allowed_text])
}

test_other_repository_on_prefixed_host_denied if {
	_denied("ghcr.io/other/app:1.0", "ghcr.io", "other/app")
}

test_port_must_match if {
	_denied("127.0.0.1:5001/app:1.0", "127.0.0.1:5001", "app")
	_denied("127.0.0.1/app:1.0", "127.0.0.1", "app")
}

test_trailing_slash_and_case_in_entry if {
	inp := _input([_image("ghcr.io/acme/app:1.0", "ghcr.io", "acme/app")])
	cfg := {"images": {"registries": {"allow": ["GHCR.io/acme/"]}}}
	count(allowed_registries.deny) == 0 with input as inp with data.portcullis.config as cfg
}

test_empty_allow_list_denies_everything if {
	inp := _input([_image("registry.example.com/app:1.0", "registry.example.com", "app")])
	cfg := {"images": {"registries": {"allow": []}}}
	allowed_registries.deny == {"container \"app\": image \"registry.example.com/app:1.0\" cannot be admitted because the registry allow-list is empty; the platform team must add the allowed registries to the portcullis config (images.registries.allow)"} with input as inp with data.portcullis.config as cfg
}

test_missing_allow_list_denies_everything if {
	inp := _input([_image("registry.example.com/app:1.0", "registry.example.com", "app")])
	cfg := {"images": {}}
	count(allowed_registries.deny) == 1 with input as inp with data.portcullis.config as cfg
}

test_missing_config_denies_everything if {
	inp := _input([
		_image("registry.example.com/app:1.0", "registry.example.com", "app"),
		object.union(_image("registry.example.com/side:1.0", "registry.example.com", "side"), {"container": "side"}),
	])
	cfg := {}
	count(allowed_registries.deny) == 2 with input as inp with data.portcullis.config as cfg
}

test_no_images_no_denial if {
	inp := _input([])
	count(allowed_registries.deny) == 0 with input as inp
}
