# Deny allowPrivilegeEscalation: true on any container (init and ephemeral
# included).
#
# A container that does not set allowPrivilegeEscalation at all may still
# escalate (Kubernetes defaults it to true), so that gets a warning asking for
# an explicit false, never a denial: most images work unchanged with it, but
# denying every manifest that omits it would block apps that are otherwise
# fine. An explicit false is silent.

# METADATA
# title: "No privilege escalation"
# description: "Containers set allowPrivilegeEscalation: false."
# custom:
#   remediation: "Set securityContext.allowPrivilegeEscalation: false on every container."
package pods.privilege_escalation

import data.lib.workload

deny contains msg if {
	some c in workload.containers
	c.container.securityContext.allowPrivilegeEscalation == true
	msg := sprintf("%s allows privilege escalation (securityContext.allowPrivilegeEscalation: true), which is not allowed; set allowPrivilegeEscalation to false", [c.label])
}

_sets_escalation(c) if is_boolean(c.container.securityContext.allowPrivilegeEscalation)

warn contains msg if {
	some c in workload.containers
	not _sets_escalation(c)
	msg := sprintf("%s does not set securityContext.allowPrivilegeEscalation; add allowPrivilegeEscalation: false to its securityContext", [c.label])
}
