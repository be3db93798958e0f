package metadata.required_labels_test

import data.metadata.required_labels

_all_labels := {
	"app.kubernetes.io/name": "where2eat",
	"app.kubernetes.io/version": "0.1.0",
	"portcullis.io/owner": "team-a",
}

_input(obj, sub_resource) := {
	"request": {"kind": {"kind": obj.kind}, "subResource": sub_resource, "operation": "CREATE", "object": obj},
	"risk_level": "medium",
	"namespace": {"name": "team-a", "labels": {}},
	"images": [],
}

_spec := {"containers": [{"name": "app", "image": "nginx:1.25"}]}

_deployment(labels, template_labels) := {
	"apiVersion": "apps/v1", "kind": "Deployment",
	"metadata": {"name": "where2eat", "labels": labels},
	"spec": {"template": {"metadata": {"labels": template_labels}, "spec": _spec}},
}

test_deployment_with_all_labels_allowed if {
	inp := _input(_deployment(_all_labels, {}), "")
	count(required_labels.deny) == 0 with input as inp
}

test_deployment_missing_labels_denied if {
	inp := _input(_deployment({"app.kubernetes.io/name": "where2eat"}, _all_labels), "")
	required_labels.deny == {"Deployment \"where2eat\" is missing required labels: app.kubernetes.io/version, portcullis.io/owner. They come from app.yaml (name, version, owner): fill in version, owner in app.yaml and deploy again."} with input as inp
}

test_empty_value_counts_as_missing if {
	labels := object.union(_all_labels, {"portcullis.io/owner": ""})
	inp := _input(_deployment(labels, {}), "")
	required_labels.deny == {"Deployment \"where2eat\" is missing required labels: portcullis.io/owner. They come from app.yaml (name, version, owner): fill in owner in app.yaml and deploy again."} with input as inp
}

test_pod_uses_its_own_labels if {
	pod := {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "where2eat-abc", "labels": _all_labels}, "spec": _spec}
	inp := _input(pod, "")
	count(required_labels.deny) == 0 with input as inp
}

test_pod_without_labels_denied if {
	pod := {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "where2eat-abc"}, "spec": _spec}
	inp := _input(pod, "")
	required_labels.deny == {"Pod \"where2eat-abc\" is missing required labels: app.kubernetes.io/name, app.kubernetes.io/version, portcullis.io/owner. They come from app.yaml (name, version, owner): fill in name, version, owner in app.yaml and deploy again."} with input as inp
}

test_cronjob_denied if {
	cronjob := {
		"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "report"},
		"spec": {"schedule": "@daily", "jobTemplate": {"spec": {"template": {"metadata": {"labels": _all_labels}, "spec": _spec}}}},
	}
	inp := _input(cronjob, "")
	count(required_labels.deny) == 1 with input as inp
}

test_ephemeral_containers_subresource_skipped if {
	pod := {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "where2eat-abc"}, "spec": _spec}
	inp := _input(pod, "ephemeralcontainers")
	count(required_labels.deny) == 0 with input as inp
}

test_configmap_yields_nothing if {
	inp := _input({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}, "data": {}}, "")
	count(required_labels.deny) == 0 with input as inp
}

test_label_not_from_app_yaml if {
	required := [
		{"label": "app.kubernetes.io/name", "app_yaml": "name"},
		"cost-center",
	]
	inp := _input(_deployment({}, {}), "")
	required_labels.deny == {"Deployment \"where2eat\" is missing required labels: app.kubernetes.io/name, cost-center. They come from app.yaml (name): fill in name in app.yaml and deploy again. Add cost-center under metadata.labels."} with input as inp with data.metadata.required_labels.labels as required
}

test_missing_label_list_denies if {
	inp := _input(_deployment(_all_labels, {}), "")
	required_labels.deny == {"Deployment \"where2eat\" cannot be checked: the policy metadata.required_labels has no list of labels (data.metadata.required_labels.labels); ask the platform team to fix the policy's data.yaml"} with input as inp with data.metadata.required_labels.labels as null
}
