package pods.host_namespaces_test

import data.pods.host_namespaces

_input(obj) := {
	"request": {"kind": {"kind": obj.kind}, "subResource": "", "operation": "CREATE", "object": obj},
	"risk_level": "high",
	"namespace": {"name": "team-a", "labels": {}},
	"images": [],
}

_containers := [{"name": "agent", "image": "agent:2.0"}]

_daemonset(extra) := {
	"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "node-agent"},
	"spec": {"template": {"spec": object.union({"containers": _containers}, extra)}},
}

test_host_network_denied if {
	inp := _input(_daemonset({"hostNetwork": true}))
	host_namespaces.deny == {"DaemonSet \"node-agent\" shares the node's network (spec.template.spec.hostNetwork: true), which is not allowed; remove hostNetwork or set it to false"} with input as inp
}

test_all_three_denied if {
	inp := _input(_daemonset({"hostNetwork": true, "hostPID": true, "hostIPC": true}))
	host_namespaces.deny == {
		"DaemonSet \"node-agent\" shares the node's network (spec.template.spec.hostNetwork: true), which is not allowed; remove hostNetwork or set it to false",
		"DaemonSet \"node-agent\" shares the node's processes (spec.template.spec.hostPID: true), which is not allowed; remove hostPID or set it to false",
		"DaemonSet \"node-agent\" shares the node's inter-process communication (IPC) (spec.template.spec.hostIPC: true), which is not allowed; remove hostIPC or set it to false",
	} with input as inp
}

test_pod_host_pid_denied if {
	pod := {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "debug"}, "spec": {"containers": _containers, "hostPID": true}}
	inp := _input(pod)
	host_namespaces.deny == {"Pod \"debug\" shares the node's processes (spec.hostPID: true), which is not allowed; remove hostPID or set it to false"} with input as inp
}

test_false_allowed if {
	inp := _input(_daemonset({"hostNetwork": false, "hostPID": false, "hostIPC": false}))
	count(host_namespaces.deny) == 0 with input as inp
}

test_unset_allowed if {
	inp := _input(_daemonset({}))
	count(host_namespaces.deny) == 0 with input as inp
}

test_configmap_yields_nothing if {
	inp := _input({"kind": "ConfigMap", "metadata": {"name": "x"}, "spec": {"hostNetwork": true}})
	count(host_namespaces.deny) == 0 with input as inp
}
