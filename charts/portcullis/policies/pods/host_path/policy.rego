# Deny hostPath volumes: they give the pod the node's files.

# METADATA
# title: "No hostPath volumes"
# description: "Pods do not mount files from the node."
# custom:
#   remediation: "Use an emptyDir, configMap, secret or persistentVolumeClaim volume instead of hostPath."
package pods.host_path

import data.lib.workload

_has_path(volume) if is_string(volume.hostPath.path)

_path(volume) := volume.hostPath.path if _has_path(volume)

_path(volume) := "" if not _has_path(volume)

deny contains msg if {
	some volume in workload.volumes
	volume.hostPath != null
	msg := sprintf("%s: volume \"%v\" mounts the path \"%v\" from the node (hostPath), which is not allowed; remove the volume or use an emptyDir, configMap, secret or persistentVolumeClaim volume instead", [
		workload.display_name, object.get(volume, "name", ""), _path(volume),
	])
}
