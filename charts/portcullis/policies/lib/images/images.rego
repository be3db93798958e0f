# Helpers for policies about images. The images are the facts that portcullis
# extracted in Rust (input.images): every container kind and image volume of
# the workload, already parsed and normalised (docker.io/library/nginx for
# "nginx").
package lib.images

# Every image entry of the input (objects only).
all contains img if {
	is_array(input.images)
	some img in input.images
	is_object(img)
}

_has_container(img) if {
	is_string(img.container)
	img.container != ""
}

# Who uses the image, to start a message with: container "app", or the place
# in the manifest (an image volume has no container).
subject(img) := sprintf("container \"%s\"", [img.container]) if _has_container(img)

subject(img) := sprintf("the image at %v", [object.get(img, "path", "(unknown path)")]) if {
	not _has_container(img)
}

# The image as written in the manifest.
ref(img) := sprintf("%v", [object.get(img, "ref", "")])

_has_tag(img) if {
	is_string(img.tag)
	img.tag != ""
}

_has_digest(img) if {
	is_string(img.digest)
	img.digest != ""
}

# Neither a tag nor a digest: the runtime pulls ":latest".
untagged(img) if {
	not _has_tag(img)
	not _has_digest(img)
}

# Pinned to a digest (the tag, if any, is then ignored by the runtime).
pinned(img) if img.pinned == true

pinned(img) if _has_digest(img)

_has_resolved_digest(img) if {
	is_string(img.resolved_digest)
	img.resolved_digest != ""
}

# The digest to suggest: the one the registry reported, or a placeholder.
suggested_digest(img) := img.resolved_digest if _has_resolved_digest(img)

suggested_digest(img) := "sha256:<digest>" if not _has_resolved_digest(img)

# The full reference to write instead: registry/repository@sha256:...
pinned_suggestion(img) := sprintf("%v/%v@%s", [img.registry, img.repository, suggested_digest(img)])
