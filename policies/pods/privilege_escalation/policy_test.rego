package pods.privilege_escalation_test

import data.pods.privilege_escalation

_input(obj) := {
	"request": {"kind": {"kind": obj.kind}, "subResource": "", "operation": "CREATE", "object": obj},
	"risk_level": "high",
	"namespace": {"name": "team-a", "labels": {}},
	"images": [],
}

_statefulset(spec) := {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db"}, "spec": {"template": {"spec": spec}}}

test_explicit_true_denied if {
	spec := {"containers": [{"name": "db", "image": "postgres:16", "securityContext": {"allowPrivilegeEscalation": true}}]}
	inp := _input(_statefulset(spec))
	privilege_escalation.deny == {"container \"db\" (image \"postgres:16\") allows privilege escalation (securityContext.allowPrivilegeEscalation: true), which is not allowed; set allowPrivilegeEscalation to false"} with input as inp
	count(privilege_escalation.warn) == 0 with input as inp
}

test_explicit_true_in_init_container_denied if {
	spec := {
		"initContainers": [{"name": "migrate", "image": "flyway:10", "securityContext": {"allowPrivilegeEscalation": true}}],
		"containers": [{"name": "db", "image": "postgres:16", "securityContext": {"allowPrivilegeEscalation": false}}],
	}
	inp := _input(_statefulset(spec))
	privilege_escalation.deny == {"init container \"migrate\" (image \"flyway:10\") allows privilege escalation (securityContext.allowPrivilegeEscalation: true), which is not allowed; set allowPrivilegeEscalation to false"} with input as inp
}

test_explicit_false_allowed_silently if {
	spec := {"containers": [{"name": "db", "image": "postgres:16", "securityContext": {"allowPrivilegeEscalation": false}}]}
	inp := _input(_statefulset(spec))
	count(privilege_escalation.deny) == 0 with input as inp
	count(privilege_escalation.warn) == 0 with input as inp
}

test_unset_only_warns if {
	spec := {"containers": [
		{"name": "db", "image": "postgres:16"},
		{"name": "exporter", "image": "postgres-exporter:0.15", "securityContext": {"runAsNonRoot": true}},
	]}
	inp := _input(_statefulset(spec))
	count(privilege_escalation.deny) == 0 with input as inp
	privilege_escalation.warn == {
		"container \"db\" (image \"postgres:16\") does not set securityContext.allowPrivilegeEscalation; add allowPrivilegeEscalation: false to its securityContext",
		"container \"exporter\" (image \"postgres-exporter:0.15\") does not set securityContext.allowPrivilegeEscalation; add allowPrivilegeEscalation: false to its securityContext",
	} with input as inp
}

test_configmap_yields_nothing if {
	inp := _input({"kind": "ConfigMap", "metadata": {"name": "x"}, "data": {}})
	count(privilege_escalation.deny) == 0 with input as inp
	count(privilege_escalation.warn) == 0 with input as inp
}
