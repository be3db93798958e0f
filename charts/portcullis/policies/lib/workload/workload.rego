# Helpers for policies about the pod that a workload object runs.
#
# The object under review is input.request.object. For a controller the pod
# spec is its pod template's spec; for a CronJob it is one level deeper; for a
# PodTemplate it is template.spec; for a Pod (also when the request is the
# pods/ephemeralcontainers subresource) it is the object's own spec.
#
# Anything that is not one of the workload kinds below (a ConfigMap, a
# DELETE with a null object, a status or scale subresource) has no pod_spec
# and no containers, so every policy built on this package stays silent.
package lib.workload

_template_kinds := {"Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job", "ReplicationController"}

workload_kinds := _template_kinds | {"Pod", "PodTemplate", "CronJob"}

# Subresources whose object is a whole workload. Others (status, scale,
# binding, ...) are written by controllers and the kubelet, not by app owners.
_reviewed_subresources := {"", "ephemeralcontainers"}

resource := input.request.object if is_object(input.request.object)

_object_has_kind if is_string(resource.kind)

# The kind from the object itself (portcullis check and the apiserver both send
# it); the request's kind is the fallback.
kind := resource.kind if _object_has_kind

kind := input.request.kind.kind if {
	is_object(resource)
	not _object_has_kind
}

_sub_resource := input.request.subResource if is_string(input.request.subResource)

_sub_resource := "" if not _has_sub_resource

_has_sub_resource if is_string(input.request.subResource)

# True when the request is for a workload this library understands.
is_workload if {
	kind in workload_kinds
	_sub_resource in _reviewed_subresources
}

# True for the pods/ephemeralcontainers subresource (kubectl debug).
is_ephemeral_update if {
	is_workload
	_sub_resource == "ephemeralcontainers"
}

_spec := resource.spec if kind == "Pod"

_spec := resource.template.spec if kind == "PodTemplate"

_spec := resource.spec.template.spec if kind in _template_kinds

_spec := resource.spec.jobTemplate.spec.template.spec if kind == "CronJob"

# The pod spec of the workload; undefined for anything else.
pod_spec := _spec if {
	is_workload
	is_object(_spec)
}

# Where the pod spec sits in the object, for messages.
pod_spec_path := "spec" if kind == "Pod"

pod_spec_path := "template.spec" if kind == "PodTemplate"

pod_spec_path := "spec.template.spec" if kind in _template_kinds

pod_spec_path := "spec.jobTemplate.spec.template.spec" if kind == "CronJob"

_container_fields := {
	"initContainers": "init container",
	"containers": "container",
	"ephemeralContainers": "ephemeral container",
}

# Every container of the pod: initContainers, containers and
# ephemeralContainers. Each entry is
#   {"field": "containers", "index": 0, "name": "app", "image": "nginx",
#    "label": "container \"app\" (image \"nginx\")", "container": {...}}
# where "label" is ready to start a message with.
containers contains entry if {
	some field, word in _container_fields
	is_array(pod_spec[field])
	some i, c in pod_spec[field]
	is_object(c)
	name := object.get(c, "name", "")
	image := object.get(c, "image", "")
	entry := {
		"field": field,
		"index": i,
		"name": name,
		"image": image,
		"label": sprintf("%s \"%v\" (image \"%v\")", [word, name, image]),
		"container": c,
	}
}

# The pod's volumes (objects only).
volumes contains v if {
	is_array(pod_spec.volumes)
	some v in pod_spec.volumes
	is_object(v)
}

# The object's own labels (for a Pod, the pod's labels; for a controller, the
# controller's metadata labels, which come from app.yaml).
labels := resource.metadata.labels if {
	is_workload
	is_object(resource.metadata.labels)
}

labels := {} if {
	is_workload
	not _has_labels
}

_has_labels if is_object(resource.metadata.labels)

_template_labels := resource.spec.template.metadata.labels if kind in _template_kinds

_template_labels := resource.spec.jobTemplate.spec.template.metadata.labels if kind == "CronJob"

_template_labels := resource.template.metadata.labels if kind == "PodTemplate"

_template_labels := resource.metadata.labels if kind == "Pod"

# The labels of the pods the workload creates (a Pod's own labels).
template_labels := _template_labels if {
	is_workload
	is_object(_template_labels)
}

template_labels := {} if {
	is_workload
	not _has_template_labels
}

_has_template_labels if is_object(_template_labels)

# A name to show in messages: Deployment "where2eat".
display_name := sprintf("%s \"%v\"", [kind, _name]) if is_workload

_name := resource.metadata.name if _has_object_name

_name := input.request.name if {
	not _has_object_name
	_has_request_name
}

_name := concat("", [resource.metadata.generateName, "*"]) if {
	not _has_object_name
	not _has_request_name
	_has_generate_name
}

_name := "(unnamed)" if {
	not _has_object_name
	not _has_request_name
	not _has_generate_name
}

_has_object_name if {
	is_string(resource.metadata.name)
	resource.metadata.name != ""
}

_has_request_name if {
	is_string(input.request.name)
	input.request.name != ""
}

_has_generate_name if {
	is_string(resource.metadata.generateName)
	resource.metadata.generateName != ""
}
