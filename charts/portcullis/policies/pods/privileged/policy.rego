# Deny privileged containers (securityContext.privileged: true), including
# init and ephemeral containers: a privileged container has full access to
# the node.

# METADATA
# title: "No privileged containers"
# description: "Containers do not run privileged, with full access to the node."
# custom:
#   remediation: "Remove securityContext.privileged (or set it to false)."
package pods.privileged

import data.lib.workload

deny contains msg if {
	some c in workload.containers
	c.container.securityContext.privileged == true
	msg := sprintf("%s runs privileged (securityContext.privileged: true), which is not allowed; remove privileged or set it to false", [c.label])
}
