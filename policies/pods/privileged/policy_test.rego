package pods.privileged_test

import data.pods.privileged

_input(obj) := {
	"request": {"kind": {"kind": obj.kind}, "subResource": "", "operation": "CREATE", "object": obj},
	"risk_level": "low",
	"namespace": {"name": "team-a", "labels": {}},
	"images": [],
}

_deployment(spec) := {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "where2eat"}, "spec": {"template": {"spec": spec}}}

_privileged := {"privileged": true}

test_privileged_container_denied if {
	inp := _input(_deployment({"containers": [{"name": "app", "image": "nginx:1.25", "securityContext": _privileged}]}))
	privileged.deny == {"container \"app\" (image \"nginx:1.25\") runs privileged (securityContext.privileged: true), which is not allowed; remove privileged or set it to false"} with input as inp
}

test_privileged_init_container_denied if {
	spec := {
		"initContainers": [{"name": "setup", "image": "busybox:1.36", "securityContext": _privileged}],
		"containers": [{"name": "app", "image": "nginx:1.25"}],
	}
	inp := _input(_deployment(spec))
	privileged.deny == {"init container \"setup\" (image \"busybox:1.36\") runs privileged (securityContext.privileged: true), which is not allowed; remove privileged or set it to false"} with input as inp
}

test_privileged_ephemeral_container_denied if {
	pod := {
		"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "where2eat"},
		"spec": {
			"containers": [{"name": "app", "image": "nginx:1.25"}],
			"ephemeralContainers": [{"name": "debugger", "image": "busybox:1.36", "securityContext": _privileged}],
		},
	}
	inp := {"request": {"kind": {"kind": "Pod"}, "subResource": "ephemeralcontainers", "operation": "UPDATE", "object": pod}, "risk_level": "low"}
	privileged.deny == {"ephemeral container \"debugger\" (image \"busybox:1.36\") runs privileged (securityContext.privileged: true), which is not allowed; remove privileged or set it to false"} with input as inp
}

test_unprivileged_allowed if {
	spec := {"containers": [
		{"name": "app", "image": "nginx:1.25", "securityContext": {"privileged": false}},
		{"name": "sidecar", "image": "envoy:1.30"},
	]}
	inp := _input(_deployment(spec))
	count(privileged.deny) == 0 with input as inp
}

test_string_true_is_not_privileged if {
	# The apiserver rejects a string here; the policy only reacts to the boolean.
	inp := _input(_deployment({"containers": [{"name": "app", "image": "nginx:1.25", "securityContext": {"privileged": "true"}}]}))
	count(privileged.deny) == 0 with input as inp
}

test_configmap_yields_nothing if {
	inp := _input({"kind": "ConfigMap", "metadata": {"name": "x"}, "spec": {"containers": [{"name": "app", "securityContext": _privileged}]}})
	count(privileged.deny) == 0 with input as inp
}
