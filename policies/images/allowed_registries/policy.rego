# Deny every image that does not come from the registry allow-list of the
# portcullis config (images.registries.allow). An entry is a registry host,
# optionally followed by repository path segments:
#   "registry.example.com"  any repository on that host
#   "ghcr.io/acme"          ghcr.io/acme/app, ghcr.io/acme/team/app; not ghcr.io/acmecorp/app
#   "127.0.0.1:5000"        a host with a port
# The host must equal the image's registry exactly (so "registry.example.com"
# does not match "registry.example.com.evil.io"), and the path segments must
# be a prefix, in whole segments, of the image's repository.
# An empty or missing allow-list denies every image (fail closed).

# METADATA
# title: "Images come from allowed registries"
# description: "Every image is pulled from a registry (and repository path) on the platform's allow-list."
# custom:
#   remediation: "Use an image from one of the allowed registries, or ask the platform team to allow yours."
package images.allowed_registries

import data.lib.images

_raw_allow_list := data.portcullis.config.images.registries.allow if _has_allow_list

_raw_allow_list := [] if not _has_allow_list

_allow_list := [entry |
	some raw in _raw_allow_list
	is_string(raw)
	entry := trim_right(trim_space(raw), "/")
	entry != ""
]

_allow_list_empty if count(_allow_list) == 0

_has_allow_list if is_array(data.portcullis.config.images.registries.allow)

_matches(entry, img) if {
	parts := split(entry, "/")
	lower(parts[0]) == img.registry
	prefix := array.slice(parts, 1, count(parts))
	is_string(img.repository)
	repository := split(img.repository, "/")
	count(prefix) <= count(repository)
	array.slice(repository, 0, count(prefix)) == prefix
}

_allowed(img) if {
	some entry in _allow_list
	_matches(entry, img)
}

deny contains msg if {
	_allow_list_empty
	some img in images.all
	msg := sprintf("%s: image \"%s\" cannot be admitted because the registry allow-list is empty; the platform team must add the allowed registries to the portcullis config (images.registries.allow)", [
		images.subject(img), images.ref(img),
	])
}

deny contains msg if {
	not _allow_list_empty
	some img in images.all
	not _allowed(img)
	msg := sprintf("%s: image \"%s\" comes from %v/%v, which is not an allowed registry; use an image from one of: %s", [
		images.subject(img), images.ref(img), img.registry, img.repository, concat(", ", _allow_list),
	])
}
