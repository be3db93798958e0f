# Deny, at every risk level, an image that would run whatever ":latest"
# points to when the pod starts: an explicit ":latest" tag, or no tag and no
# digest at all (which means ":latest").
#
# An image pinned to a digest is allowed even when it also carries ":latest"
# ("nginx:latest@sha256:..."): the runtime pulls the digest and ignores the
# tag, so what runs cannot change.
package images.latest_tag

import data.lib.images

deny contains msg if {
	some img in images.all
	images.untagged(img)
	msg := sprintf("%s uses image \"%s\" with no tag, which means \":latest\"; pin it to a digest: %s", [
		images.subject(img), images.ref(img), images.pinned_suggestion(img),
	])
}

deny contains msg if {
	some img in images.all
	img.tag == "latest"
	not images.pinned(img)
	msg := sprintf("%s uses image \"%s\", and \":latest\" can point to a different image at any time; pin it to a digest: %s", [
		images.subject(img), images.ref(img), images.pinned_suggestion(img),
	])
}
