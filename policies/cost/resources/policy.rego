# At the risk levels listed in data.yaml (risk_levels, ["low"] by default)
# every container must set CPU and memory requests and limits, and none of
# the four values may exceed the caps in data.yaml (max_cpu, max_memory).
#
# Init containers are checked like containers: they run on the same node and
# count against it. Ephemeral containers are not: Kubernetes does not allow
# resources on them.
#
# A value that is not a valid Kubernetes quantity is denied, and so is every
# workload while the parameters in data.yaml are missing or invalid (fail
# closed).

# METADATA
# title: "Containers set bounded resources"
# description: "Every container sets CPU and memory requests and limits, within the platform's caps, at the risk levels that require it."
# custom:
#   remediation: "Set resources.requests and resources.limits for cpu and memory on every container, at or below the caps the message names."
package cost.resources

import data.lib.quantity
import data.lib.workload

_resources := ["cpu", "memory"]

_kinds := ["requests", "limits"]

# Dynamic refs into data.cost.resources would include this package's own
# rules, so each parameter is read by name.
_cap(resource) := data.cost.resources.max_cpu if resource == "cpu"

_cap(resource) := data.cost.resources.max_memory if resource == "memory"

_cap_parameter := {"cpu": "max_cpu", "memory": "max_memory"}

_example := {"cpu": "\"500m\" or \"1\"", "memory": "\"512Mi\" or \"1Gi\""}

_applies if {
	workload.is_workload
	input.risk_level in data.cost.resources.risk_levels
}

_containers contains c if {
	some c in workload.containers
	c.field in {"containers", "initContainers"}
}

_is_set(c, kind, resource) if c.container.resources[kind][resource] != null

_missing(c) := [sprintf("resources.%s.%s", [kind, resource]) |
	some kind in _kinds
	some resource in _resources
	not _is_set(c, kind, resource)
]

deny contains msg if {
	_applies
	not _misconfigured
	some c in _containers
	missing := _missing(c)
	count(missing) > 0
	msg := sprintf("%s does not set %s; at risk level \"%s\" every container must set CPU and memory requests and limits, at most cpu \"%v\" and memory \"%v\"", [
		c.label, concat(", ", missing), input.risk_level, data.cost.resources.max_cpu, data.cost.resources.max_memory,
	])
}

deny contains msg if {
	_applies
	not _misconfigured
	some c in _containers
	some kind in _kinds
	some resource in _resources
	value := c.container.resources[kind][resource]
	value != null
	not quantity.valid(value)
	msg := sprintf("%s sets resources.%s.%s to \"%v\", which is not a valid Kubernetes quantity; use a value like %s", [
		c.label, kind, resource, value, _example[resource],
	])
}

deny contains msg if {
	_applies
	not _misconfigured
	some c in _containers
	some kind in _kinds
	some resource in _resources
	value := c.container.resources[kind][resource]
	cap := _cap(resource)
	quantity.parse(value) > quantity.parse(cap)
	msg := sprintf("%s sets resources.%s.%s to \"%v\", above the maximum of \"%v\" at risk level \"%s\"; lower it to \"%v\" or less", [
		c.label, kind, resource, value, cap, input.risk_level, cap,
	])
}

# Parameters that are missing or invalid.
_problems contains "risk_levels is not a list" if not _has_risk_levels

_has_risk_levels if is_array(data.cost.resources.risk_levels)

_problems contains sprintf("%s is not a valid quantity", [_cap_parameter[resource]]) if {
	some resource in _resources
	not _valid_cap(resource)
}

_valid_cap(resource) if quantity.valid(_cap(resource))

_misconfigured if count(_problems) > 0

deny contains msg if {
	workload.is_workload
	_misconfigured
	msg := sprintf("%s cannot be checked: the policy cost.resources is misconfigured (data.cost.resources: %s); ask the platform team to fix the policy's data.yaml", [
		workload.display_name, concat(", ", sort(_problems)),
	])
}
