package lib.workload_test

import data.lib.workload

_pod_spec := {
	"initContainers": [{"name": "init", "image": "busybox:1.36"}],
	"containers": [{"name": "app", "image": "nginx:1.25"}, {"name": "sidecar", "image": "envoy:1.30"}],
	"ephemeralContainers": [{"name": "debugger", "image": "busybox:1.36"}],
	"volumes": [{"name": "data", "emptyDir": {}}],
}

_template := {"metadata": {"labels": {"app": "where2eat"}}, "spec": _pod_spec}

_metadata := {"name": "where2eat", "labels": {"app.kubernetes.io/name": "where2eat"}}

_request(obj) := {"request": {
	"kind": {"group": "", "version": "v1", "kind": obj.kind},
	"subResource": "",
	"name": "where2eat",
	"operation": "CREATE",
	"object": obj,
}}

_controller(kind) := {"apiVersion": "apps/v1", "kind": kind, "metadata": _metadata, "spec": {"template": _template}}

_container_names := {c.name | some c in workload.containers}

_all_names := {"init", "app", "sidecar", "debugger"}

test_pod if {
	obj := {"apiVersion": "v1", "kind": "Pod", "metadata": _metadata, "spec": _pod_spec}
	inp := _request(obj)
	workload.pod_spec == _pod_spec with input as inp
	_container_names == _all_names with input as inp
	workload.template_labels == _metadata.labels with input as inp
	workload.pod_spec_path == "spec" with input as inp
}

test_pod_template if {
	obj := {"apiVersion": "v1", "kind": "PodTemplate", "metadata": _metadata, "template": _template}
	inp := _request(obj)
	workload.pod_spec == _pod_spec with input as inp
	workload.template_labels == {"app": "where2eat"} with input as inp
	workload.pod_spec_path == "template.spec" with input as inp
}

test_deployment if {
	inp := _request(_controller("Deployment"))
	workload.pod_spec == _pod_spec with input as inp
	_container_names == _all_names with input as inp
	workload.pod_spec_path == "spec.template.spec" with input as inp
}

test_replicaset if {
	inp := _request(_controller("ReplicaSet"))
	workload.pod_spec == _pod_spec with input as inp
}

test_statefulset if {
	inp := _request(_controller("StatefulSet"))
	workload.pod_spec == _pod_spec with input as inp
}

test_daemonset if {
	inp := _request(_controller("DaemonSet"))
	workload.pod_spec == _pod_spec with input as inp
}

test_job if {
	inp := _request(_controller("Job"))
	workload.pod_spec == _pod_spec with input as inp
}

test_replication_controller if {
	obj := {"apiVersion": "v1", "kind": "ReplicationController", "metadata": _metadata, "spec": {"replicas": 1, "template": _template}}
	inp := _request(obj)
	workload.pod_spec == _pod_spec with input as inp
	workload.template_labels == {"app": "where2eat"} with input as inp
}

test_cronjob if {
	obj := {
		"apiVersion": "batch/v1", "kind": "CronJob", "metadata": _metadata,
		"spec": {"schedule": "0 * * * *", "jobTemplate": {"spec": {"template": _template}}},
	}
	inp := _request(obj)
	workload.pod_spec == _pod_spec with input as inp
	_container_names == _all_names with input as inp
	workload.template_labels == {"app": "where2eat"} with input as inp
	workload.pod_spec_path == "spec.jobTemplate.spec.template.spec" with input as inp
}

test_container_entry if {
	inp := _request(_controller("Deployment"))
	entries := workload.containers with input as inp
	some entry in entries
	entry.name == "debugger"
	entry.field == "ephemeralContainers"
	entry.index == 0
	entry.label == "ephemeral container \"debugger\" (image \"busybox:1.36\")"
	count(entries) == 4
}

test_volumes if {
	inp := _request(_controller("StatefulSet"))
	workload.volumes == {{"name": "data", "emptyDir": {}}} with input as inp
}

test_labels_of_controller_are_its_own if {
	inp := _request(_controller("Deployment"))
	workload.labels == _metadata.labels with input as inp
}

test_labels_default_to_empty if {
	obj := {"kind": "Pod", "metadata": {"name": "p"}, "spec": _pod_spec}
	inp := _request(obj)
	workload.labels == {} with input as inp
}

test_display_name if {
	inp := _request(_controller("Deployment"))
	workload.display_name == "Deployment \"where2eat\"" with input as inp
}

test_display_name_generate_name if {
	obj := {"kind": "Pod", "metadata": {"generateName": "where2eat-"}, "spec": _pod_spec}
	inp := {"request": {"subResource": "", "object": obj}}
	workload.display_name == "Pod \"where2eat-*\"" with input as inp
}

test_kind_falls_back_to_request_kind if {
	obj := {"metadata": _metadata, "spec": {"template": _template}}
	inp := {"request": {"kind": {"group": "apps", "version": "v1", "kind": "Deployment"}, "subResource": "", "object": obj}}
	workload.pod_spec == _pod_spec with input as inp
}

test_ephemeral_containers_subresource if {
	obj := {"apiVersion": "v1", "kind": "Pod", "metadata": _metadata, "spec": _pod_spec}
	inp := {"request": {"kind": {"kind": "Pod"}, "subResource": "ephemeralcontainers", "object": obj}}
	workload.is_ephemeral_update with input as inp
	_container_names == _all_names with input as inp
}

test_status_subresource_is_not_reviewed if {
	obj := {"apiVersion": "v1", "kind": "Pod", "metadata": _metadata, "spec": _pod_spec}
	inp := {"request": {"kind": {"kind": "Pod"}, "subResource": "status", "object": obj}}
	not workload.is_workload with input as inp
	count(workload.containers) == 0 with input as inp
}

test_configmap_is_not_a_workload if {
	obj := {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _metadata, "data": {"spec": "x"}}
	inp := _request(obj)
	not workload.is_workload with input as inp
	not workload.pod_spec with input as inp
	count(workload.containers) == 0 with input as inp
	count(workload.volumes) == 0 with input as inp
}

test_delete_has_no_object if {
	inp := {"request": {"kind": {"kind": "Pod"}, "operation": "DELETE", "object": null, "subResource": ""}}
	not workload.is_workload with input as inp
	count(workload.containers) == 0 with input as inp
}

test_malformed_containers_are_skipped if {
	obj := {"kind": "Pod", "metadata": _metadata, "spec": {"containers": "nginx", "initContainers": [3, {"name": "ok", "image": "x"}]}}
	inp := _request(obj)
	_container_names == {"ok"} with input as inp
}
