# Every workload must carry the labels listed in data.yaml (by default
# app.kubernetes.io/name, app.kubernetes.io/version and portcullis.io/owner).
# A Pod is checked on its own labels, a controller (Deployment, CronJob, ...)
# and a PodTemplate on the object's metadata labels, which are written from
# the app's app.yaml. A label whose value is empty counts as missing.
#
# The pods/ephemeralcontainers subresource (kubectl debug) is not checked: it
# cannot change labels, and the Pod was checked when it was created.
#
# Without a label list in data.yaml every workload is denied (fail closed).

# METADATA
# title: "Workloads carry the app's labels"
# description: "Every workload carries the labels its app.yaml implies (name, version, owner by default)."
# custom:
#   remediation: "Add the missing labels from your app.yaml to the object's metadata.labels."
package metadata.required_labels

import data.lib.workload

_configured := data.metadata.required_labels.labels if is_array(data.metadata.required_labels.labels)

_configured := [] if not _has_configuration

_has_configuration if is_array(data.metadata.required_labels.labels)

# Entries are {"label": ..., "app_yaml": ...}; a plain string is a label that
# does not come from app.yaml.
_required := [r | some item in _configured; r := _normalise(item)]

_normalise(item) := {"label": item, "app_yaml": ""} if is_string(item)

_normalise(item) := {"label": item.label, "app_yaml": _app_yaml_field(item)} if {
	is_object(item)
	is_string(item.label)
}

_has_app_yaml(item) if is_string(item.app_yaml)

_app_yaml_field(item) := item.app_yaml if _has_app_yaml(item)

_app_yaml_field(item) := "" if not _has_app_yaml(item)

_present(label) if {
	is_string(workload.labels[label])
	workload.labels[label] != ""
}

_missing := [item.label |
	some item in _required
	not _present(item.label)
]

# app.yaml fields of all required labels, in data.yaml order: "name, version, owner".
_all_fields := [item.app_yaml | some item in _required; item.app_yaml != ""]

_missing_fields := [item.app_yaml |
	some item in _required
	not _present(item.label)
	item.app_yaml != ""
]

_missing_other := [item.label |
	some item in _required
	not _present(item.label)
	item.app_yaml == ""
]

_app_yaml_hint := "" if count(_missing_fields) == 0

_app_yaml_hint := sprintf(" They come from app.yaml (%s): fill in %s in app.yaml and deploy again.", [
	concat(", ", _all_fields), concat(", ", _missing_fields),
]) if count(_missing_fields) > 0

_labels_hint := "" if count(_missing_other) == 0

_labels_hint := sprintf(" Add %s under metadata.labels.", [concat(", ", _missing_other)]) if count(_missing_other) > 0

_checked if {
	workload.is_workload
	not workload.is_ephemeral_update
}

deny contains msg if {
	_checked
	count(_missing) > 0
	msg := sprintf("%s is missing required labels: %s.%s%s", [
		workload.display_name, concat(", ", _missing), _app_yaml_hint, _labels_hint,
	])
}

deny contains msg if {
	_checked
	count(_required) == 0
	msg := sprintf("%s cannot be checked: the policy metadata.required_labels has no list of labels (data.metadata.required_labels.labels); ask the platform team to fix the policy's data.yaml", [workload.display_name])
}
