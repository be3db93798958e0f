# Deny pods that share the node's network, process or IPC namespace
# (hostNetwork, hostPID, hostIPC set to true).

# METADATA
# title: "No host namespaces"
# description: "Pods do not share the node's network, process or IPC namespace."
# custom:
#   remediation: "Remove hostNetwork, hostPID and hostIPC (or set them to false)."
package pods.host_namespaces

import data.lib.workload

_namespaces := {
	"hostNetwork": "network",
	"hostPID": "processes",
	"hostIPC": "inter-process communication (IPC)",
}

deny contains msg if {
	some field, what in _namespaces
	workload.pod_spec[field] == true
	msg := sprintf("%s shares the node's %s (%s.%s: true), which is not allowed; remove %s or set it to false", [
		workload.display_name, what, workload.pod_spec_path, field, field,
	])
}
