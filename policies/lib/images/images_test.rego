package lib.images_test

import data.lib.images

_digest := "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

_nginx := {
	"path": "spec.containers[0].image", "container": "web", "ref": "nginx",
	"registry": "docker.io", "repository": "library/nginx",
	"tag": null, "digest": null, "pinned": false, "resolved_digest": null,
}

test_subject_names_the_container if {
	images.subject(_nginx) == "container \"web\""
}

test_subject_of_image_volume_is_its_path if {
	img := object.union(_nginx, {"container": null, "path": "spec.volumes[0].image.reference"})
	images.subject(img) == "the image at spec.volumes[0].image.reference"
}

test_untagged if {
	images.untagged(_nginx)
	not images.untagged(object.union(_nginx, {"tag": "1.25"}))
	not images.untagged(object.union(_nginx, {"digest": _digest, "pinned": true}))
}

test_pinned if {
	images.pinned(object.union(_nginx, {"digest": _digest, "pinned": true}))
	not images.pinned(object.union(_nginx, {"tag": "1.25"}))
}

test_pinned_suggestion if {
	images.pinned_suggestion(_nginx) == "docker.io/library/nginx@sha256:<digest>"
	images.pinned_suggestion(object.union(_nginx, {"resolved_digest": _digest})) == sprintf("docker.io/library/nginx@%s", [_digest])
}

test_all_skips_non_objects if {
	inp := {"images": [_nginx, "nginx", 3]}
	images.all == {_nginx} with input as inp
}

test_all_without_images_is_empty if {
	inp := {"images": null}
	count(images.all) == 0 with input as inp
}
