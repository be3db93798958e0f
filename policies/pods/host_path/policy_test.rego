package pods.host_path_test

import data.pods.host_path

_spec := {
	"containers": [{"name": "app", "image": "nginx:1.25"}],
	"volumes": [
		{"name": "cache", "emptyDir": {}},
		{"name": "docker-sock", "hostPath": {"path": "/var/run/docker.sock", "type": "Socket"}},
	],
}

_safe_spec := {
	"containers": [{"name": "app", "image": "nginx:1.25"}],
	"volumes": [{"name": "cache", "emptyDir": {}}, {"name": "config", "configMap": {"name": "app"}}],
}

_template(spec) := {"metadata": {"labels": {"app": "where2eat"}}, "spec": spec}

_input(obj) := {
	"request": {"kind": {"kind": obj.kind}, "subResource": "", "operation": "CREATE", "object": obj},
	"risk_level": "high",
	"namespace": {"name": "team-a", "labels": {}},
	"images": [],
}

_meta := {"name": "where2eat", "namespace": "team-a"}

_pod(spec) := {"apiVersion": "v1", "kind": "Pod", "metadata": _meta, "spec": spec}

_deployment(spec) := {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": _meta, "spec": {"template": _template(spec)}}

_cronjob(spec) := {
	"apiVersion": "batch/v1", "kind": "CronJob", "metadata": _meta,
	"spec": {"schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": _template(spec)}}},
}

_replication_controller(spec) := {"apiVersion": "v1", "kind": "ReplicationController", "metadata": _meta, "spec": {"template": _template(spec)}}

_pod_template(spec) := {"apiVersion": "v1", "kind": "PodTemplate", "metadata": _meta, "template": _template(spec)}

_message(kind) := sprintf("%s \"where2eat\": volume \"docker-sock\" mounts the path \"/var/run/docker.sock\" from the node (hostPath), which is not allowed; remove the volume or use an emptyDir, configMap, secret or persistentVolumeClaim volume instead", [kind])

test_pod_denied if {
	inp := _input(_pod(_spec))
	host_path.deny == {_message("Pod")} with input as inp
}

test_deployment_denied if {
	inp := _input(_deployment(_spec))
	host_path.deny == {_message("Deployment")} with input as inp
}

test_cronjob_denied if {
	inp := _input(_cronjob(_spec))
	host_path.deny == {_message("CronJob")} with input as inp
}

test_replication_controller_denied if {
	inp := _input(_replication_controller(_spec))
	host_path.deny == {_message("ReplicationController")} with input as inp
}

test_pod_template_denied if {
	inp := _input(_pod_template(_spec))
	host_path.deny == {_message("PodTemplate")} with input as inp
}

test_other_controllers_denied if {
	kinds := ["ReplicaSet", "StatefulSet", "DaemonSet", "Job"]
	denied := [kind |
		some kind in kinds
		obj := object.union(_deployment(_spec), {"kind": kind})
		inp := _input(obj)
		host_path.deny == {_message(kind)} with input as inp
	]
	denied == kinds
}

test_every_kind_allowed_without_host_path if {
	objects := [_pod(_safe_spec), _deployment(_safe_spec), _cronjob(_safe_spec), _replication_controller(_safe_spec), _pod_template(_safe_spec)]
	allowed := [obj.kind |
		some obj in objects
		inp := _input(obj)
		count(host_path.deny) == 0 with input as inp
	]
	count(allowed) == 5
}

test_two_host_paths_two_denials if {
	spec := {"containers": [], "volumes": [{"name": "a", "hostPath": {"path": "/etc"}}, {"name": "b", "hostPath": {"path": "/var/log"}}]}
	inp := _input(_pod(spec))
	count(host_path.deny) == 2 with input as inp
}

test_configmap_yields_nothing if {
	obj := {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta, "data": {"volumes": "hostPath: /etc"}, "spec": _spec}
	inp := _input(obj)
	count(host_path.deny) == 0 with input as inp
}
