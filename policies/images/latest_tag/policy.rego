# Deny, at every risk level, an image that would run whatever ":latest"
# points to when the pod starts: an explicit ":latest" tag, or no tag and no
# digest at all (which means ":latest").
#
# A ":latest" tag is denied even beside a digest ("nginx:latest@sha256:..."):
# the runtime pulls the digest, but the manifest then says two different
# things and a later edit that drops the digest silently floats again.

# METADATA
# title: "No :latest images"
# description: "An image tagged :latest (or not tagged at all) runs whatever the tag points to when the pod starts."
# custom:
#   remediation: "Use a versioned tag pinned to its digest, e.g. name:1.4.2@sha256:..."
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

deny contains msg if {
	some img in images.all
	img.tag == "latest"
	images.pinned(img)
	msg := sprintf("%s uses image \"%s\", whose \":latest\" tag contradicts its digest; drop the tag and keep the digest: %v/%v@%v", [
		images.subject(img), images.ref(img), img.registry, img.repository, img.digest,
	])
}
