package cost.resources_test

import data.cost.resources

_input(obj, risk) := {
	"request": {"kind": {"kind": obj.kind}, "subResource": "", "operation": "CREATE", "object": obj},
	"risk_level": risk,
	"namespace": {"name": "team-a", "labels": {"portcullis.io/risk-level": risk}},
	"images": [],
}

_deployment(spec) := {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "where2eat"}, "spec": {"template": {"spec": spec}}}

_container(name, res) := {"name": name, "image": "registry.example.com/where2eat:0.1.0", "resources": res}

_good := {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}}

test_within_caps_allowed_at_low if {
	inp := _input(_deployment({"containers": [_container("app", _good)]}), "low")
	count(resources.deny) == 0 with input as inp
}

test_missing_resources_denied_at_low if {
	inp := _input(_deployment({"containers": [{"name": "app", "image": "registry.example.com/where2eat:0.1.0"}]}), "low")
	resources.deny == {"container \"app\" (image \"registry.example.com/where2eat:0.1.0\") does not set resources.requests.cpu, resources.requests.memory, resources.limits.cpu, resources.limits.memory; at risk level \"low\" every container must set CPU and memory requests and limits, at most cpu \"1\" and memory \"1Gi\""} with input as inp
}

test_missing_resources_allowed_at_high if {
	inp := _input(_deployment({"containers": [{"name": "app", "image": "registry.example.com/where2eat:0.1.0"}]}), "high")
	count(resources.deny) == 0 with input as inp
}

test_over_cap_allowed_at_medium if {
	res := {"requests": {"cpu": "4", "memory": "8Gi"}, "limits": {"cpu": "4", "memory": "8Gi"}}
	inp := _input(_deployment({"containers": [_container("app", res)]}), "medium")
	count(resources.deny) == 0 with input as inp
}

test_partial_resources_denied if {
	res := {"requests": {"cpu": "100m"}, "limits": {"memory": "128Mi"}}
	inp := _input(_deployment({"containers": [_container("app", res)]}), "low")
	resources.deny == {"container \"app\" (image \"registry.example.com/where2eat:0.1.0\") does not set resources.requests.memory, resources.limits.cpu; at risk level \"low\" every container must set CPU and memory requests and limits, at most cpu \"1\" and memory \"1Gi\""} with input as inp
}

test_over_cap_denied_at_low if {
	res := {"requests": {"cpu": "500m", "memory": "512Mi"}, "limits": {"cpu": "1500m", "memory": "2Gi"}}
	inp := _input(_deployment({"containers": [_container("app", res)]}), "low")
	resources.deny == {
		"container \"app\" (image \"registry.example.com/where2eat:0.1.0\") sets resources.limits.cpu to \"1500m\", above the maximum of \"1\" at risk level \"low\"; lower it to \"1\" or less",
		"container \"app\" (image \"registry.example.com/where2eat:0.1.0\") sets resources.limits.memory to \"2Gi\", above the maximum of \"1Gi\" at risk level \"low\"; lower it to \"1Gi\" or less",
	} with input as inp
}

test_exactly_at_cap_in_other_units_allowed if {
	res := {"requests": {"cpu": "0.5", "memory": "1073741824"}, "limits": {"cpu": "1000m", "memory": "1024Mi"}}
	inp := _input(_deployment({"containers": [_container("app", res)]}), "low")
	count(resources.deny) == 0 with input as inp
}

test_decimal_gigabyte_below_gibibyte_allowed if {
	res := {"requests": {"cpu": "1", "memory": "1G"}, "limits": {"cpu": 1, "memory": "1e9"}}
	inp := _input(_deployment({"containers": [_container("app", res)]}), "low")
	count(resources.deny) == 0 with input as inp
}

test_init_container_checked if {
	spec := {
		"initContainers": [_container("migrate", {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": "2", "memory": "64Mi"}})],
		"containers": [_container("app", _good)],
	}
	inp := _input(_deployment(spec), "low")
	resources.deny == {"init container \"migrate\" (image \"registry.example.com/where2eat:0.1.0\") sets resources.limits.cpu to \"2\", above the maximum of \"1\" at risk level \"low\"; lower it to \"1\" or less"} with input as inp
}

test_ephemeral_container_not_checked if {
	pod := {
		"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "where2eat"},
		"spec": {
			"containers": [_container("app", _good)],
			"ephemeralContainers": [{"name": "debugger", "image": "busybox:1.36"}],
		},
	}
	inp := {"request": {"kind": {"kind": "Pod"}, "subResource": "ephemeralcontainers", "object": pod}, "risk_level": "low"}
	count(resources.deny) == 0 with input as inp
}

test_invalid_quantity_denied if {
	res := {"requests": {"cpu": "half", "memory": "256Mi"}, "limits": {"cpu": "1", "memory": "1 GB"}}
	inp := _input(_deployment({"containers": [_container("app", res)]}), "low")
	resources.deny == {
		"container \"app\" (image \"registry.example.com/where2eat:0.1.0\") sets resources.requests.cpu to \"half\", which is not a valid Kubernetes quantity; use a value like \"500m\" or \"1\"",
		"container \"app\" (image \"registry.example.com/where2eat:0.1.0\") sets resources.limits.memory to \"1 GB\", which is not a valid Kubernetes quantity; use a value like \"512Mi\" or \"1Gi\"",
	} with input as inp
}

test_levels_and_caps_come_from_data if {
	res := {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "2", "memory": "2Gi"}}
	inp := _input(_deployment({"containers": [_container("app", res)]}), "high")
	count(resources.deny) == 0 with input as inp
		with data.cost.resources.risk_levels as ["medium", "high"]
		with data.cost.resources.max_cpu as "2"
		with data.cost.resources.max_memory as "2Gi"
	count(resources.deny) == 2 with input as inp with data.cost.resources.risk_levels as ["high"]
}

test_invalid_parameters_deny if {
	inp := _input(_deployment({"containers": [_container("app", _good)]}), "high")
	resources.deny == {"Deployment \"where2eat\" cannot be checked: the policy cost.resources is misconfigured (data.cost.resources: max_memory is not a valid quantity); ask the platform team to fix the policy's data.yaml"} with input as inp with data.cost.resources.max_memory as "lots"
}

test_every_container_reported if {
	spec := {"containers": [
		{"name": "app", "image": "a:1"},
		{"name": "sidecar", "image": "b:1"},
	]}
	inp := _input(_deployment(spec), "low")
	count(resources.deny) == 2 with input as inp
}

test_configmap_yields_nothing if {
	inp := _input({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}, "data": {"cpu": "8"}}, "low")
	count(resources.deny) == 0 with input as inp
}

test_missing_risk_levels_deny if {
	inp := _input(_deployment({"containers": [_container("app", _good)]}), "high")
	resources.deny == {"Deployment \"where2eat\" cannot be checked: the policy cost.resources is misconfigured (data.cost.resources: risk_levels is not a list); ask the platform team to fix the policy's data.yaml"} with input as inp with data.cost.resources.risk_levels as null
}
