# An image with a tag but no digest can change under the same name. Deny it,
# except at the risk levels listed in data.yaml (warn_levels, ["low"] by
# default), where it is a warning. A risk level that is missing or not listed
# gets a denial (fail closed).
#
# ":latest" and untagged images are left to images.latest_tag, which denies
# them at every level with the same advice; reporting them here too would
# show the user two messages for one fix.

# METADATA
# title: "Images are pinned to a digest"
# description: "An image referenced by tag alone can change under the same name; a digest names exactly one build."
# custom:
#   remediation: "Reference the image by digest (name@sha256:...); the message gives the digest to pin when it knows it."
package images.digest_pinning

import data.lib.images

_warn_only if input.risk_level in data.images.digest_pinning.warn_levels

_needs_pin(img) if {
	not images.pinned(img)
	not images.untagged(img)
	img.tag != "latest"
}

_message(img) := sprintf("%s: image \"%s\" is not pinned to a digest; pin it: %s", [
	images.subject(img), images.ref(img), images.pinned_suggestion(img),
])

deny contains msg if {
	not _warn_only
	some img in images.all
	_needs_pin(img)
	msg := _message(img)
}

warn contains msg if {
	_warn_only
	some img in images.all
	_needs_pin(img)
	msg := sprintf("%s (allowed at risk level \"%s\" for now, blocked at higher risk levels)", [_message(img), input.risk_level])
}
