//! Every image a review would run: containers, init and ephemeral containers and image volumes,
//! wherever the pod spec sits in the workload kinds we admit.

use crate::document::Document;
use crate::images::ImageLocation;
use crate::workload::workload_kind;

/// The `imagePullSecrets` names of the reviewed object's pod spec, in order.
pub fn pull_secret_names(request: &impl Document) -> Vec<String> {
    pod_spec(request)
        .and_then(|spec| spec.field("imagePullSecrets"))
        .and_then(|secrets| secrets.items())
        .into_iter()
        .flatten()
        .filter_map(|secret| secret.text_of("name"))
        .filter(|name| !name.is_empty())
        .map(str::to_string)
        .collect()
}

/// The ServiceAccount the pod spec runs as: `serviceAccountName` (or the deprecated
/// `serviceAccount`), else `default`, as the apiserver fills it in; empty for a kind without
/// a pod spec.
pub fn service_account_name(request: &impl Document) -> String {
    let Some(spec) = pod_spec(request) else {
        return String::new();
    };
    let named = spec
        .text_of("serviceAccountName")
        .or_else(|| spec.text_of("serviceAccount"));
    named.filter(|name| !name.is_empty()).unwrap_or("default").to_string()
}

/// The reviewed object's pod spec (the Pod's, for an `ephemeralcontainers` request).
fn pod_spec<D: Document>(request: &D) -> Option<&D> {
    let kind = match request.text_of("subResource") {
        Some("ephemeralcontainers") => "Pod",
        _ => object_kind(request),
    };
    pod_spec_location(kind).and_then(|(pointer, _)| request.field("object")?.at(pointer))
}

/// Where the pod spec lives in each kind, as a JSON pointer and the matching field path.
fn pod_spec_location(kind: &str) -> Option<(&'static str, &'static str)> {
    workload_kind(kind).map(|workload| (workload.pod_spec_pointer, workload.pod_spec_path))
}

/// The kind of the reviewed object: the request's kind, else the object's own.
pub fn object_kind(request: &impl Document) -> &str {
    request
        .text_at("/kind/kind")
        .or_else(|| request.text_at("/object/kind"))
        .unwrap_or("")
}

/// All image fields of the reviewed object, in document order: containers, initContainers,
/// ephemeralContainers, then image volumes.
pub fn images(request: &impl Document) -> Vec<ImageLocation> {
    let Some(object) = request.field("object").filter(|o| o.is_object()) else {
        return Vec::new();
    };
    // The ephemeralcontainers subresource carries a whole Pod (kind Pod, or the older
    // EphemeralContainers kind whose list sits at the top level).
    let kind = match (object_kind(request), request.text_of("subResource")) {
        ("EphemeralContainers", _) => {
            let mut found = Vec::new();
            containers(object, "", "ephemeralContainers", &mut found);
            return found;
        }
        (_, Some("ephemeralcontainers")) => "Pod",
        (kind, _) => kind,
    };
    let Some((pointer, path)) = pod_spec_location(kind) else {
        return Vec::new();
    };
    let Some(spec) = object.at(pointer) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for list in ["containers", "initContainers", "ephemeralContainers"] {
        containers(spec, path, list, &mut found);
    }
    if let Some(volumes) = spec.field("volumes").and_then(|volumes| volumes.items()) {
        for (index, volume) in volumes.enumerate() {
            if let Some(image) = volume.field("image") {
                found.push(ImageLocation {
                    path: format!("{path}.volumes[{index}].image.reference"),
                    container: name_of(volume),
                    image: image.text_of("reference").unwrap_or_default().to_string(),
                });
            }
        }
    }
    found
}

fn containers(spec: &impl Document, path: &str, list: &str, found: &mut Vec<ImageLocation>) {
    let Some(items) = spec.field(list).and_then(|items| items.items()) else {
        return;
    };
    let prefix = if path.is_empty() {
        String::new()
    } else {
        format!("{path}.")
    };
    for (index, container) in items.enumerate() {
        found.push(ImageLocation {
            path: format!("{prefix}{list}[{index}].image"),
            container: name_of(container),
            image: container.text_of("image").unwrap_or_default().to_string(),
        });
    }
}

fn name_of(item: &impl Document) -> String {
    item.text_of("name").unwrap_or_default().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_secrets_come_from_the_pod_spec_of_every_kind() {
        let secrets = serde_json::json!([{"name": "registry-a"}, {"name": ""}, {"name": "registry-b"}]);
        let pod = serde_json::json!({"kind": {"kind": "Pod"}, "object": {"spec": {"imagePullSecrets": secrets}}});
        assert_eq!(pull_secret_names(&pod), ["registry-a", "registry-b"]);
        let cron = serde_json::json!({"kind": {"kind": "CronJob"}, "object": {"spec": {"jobTemplate": {"spec": {"template": {"spec": {"imagePullSecrets": [{"name": "c"}]}}}}}}});
        assert_eq!(pull_secret_names(&cron), ["c"]);
        let other =
            serde_json::json!({"kind": {"kind": "ConfigMap"}, "object": {"spec": {"imagePullSecrets": secrets}}});
        assert!(pull_secret_names(&other).is_empty());
    }

    #[test]
    fn the_service_account_a_pod_spec_runs_as() {
        let deployment = serde_json::json!({"kind": {"kind": "Deployment"}, "object": {"spec": {"template": {"spec": {"serviceAccountName": "builder"}}}}});
        assert_eq!(service_account_name(&deployment), "builder");
        let pod = serde_json::json!({"kind": {"kind": "Pod"}, "object": {"spec": {"containers": []}}});
        assert_eq!(service_account_name(&pod), "default");
        let config_map = serde_json::json!({"kind": {"kind": "ConfigMap"}, "object": {}});
        assert_eq!(service_account_name(&config_map), "");
    }
    use serde_json::json;

    #[test]
    fn pod_images_in_document_order() {
        let request = json!({"kind": {"kind": "Pod"}, "object": {"spec": {
            "containers": [{"name": "app", "image": "a"}, {"name": "side", "image": "b"}],
            "initContainers": [{"name": "init", "image": "c"}],
            "ephemeralContainers": [{"name": "debug", "image": "d"}],
            "volumes": [{"name": "cache", "emptyDir": {}}, {"name": "models", "image": {"reference": "e"}}]
        }}});
        let found = images(&request);
        let got: Vec<_> = found
            .iter()
            .map(|l| (l.path.as_str(), l.container.as_str(), l.image.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("spec.containers[0].image", "app", "a"),
                ("spec.containers[1].image", "side", "b"),
                ("spec.initContainers[0].image", "init", "c"),
                ("spec.ephemeralContainers[0].image", "debug", "d"),
                ("spec.volumes[1].image.reference", "models", "e"),
            ]
        );
    }

    #[test]
    fn cronjob_and_podtemplate_paths() {
        let cron = json!({"kind": {"kind": "CronJob"}, "object": {"spec": {"jobTemplate": {"spec": {"template": {"spec": {
            "containers": [{"name": "job", "image": "x"}]}}}}}}});
        assert_eq!(
            images(&cron)[0].path,
            "spec.jobTemplate.spec.template.spec.containers[0].image"
        );
        let template = json!({"kind": {"kind": "PodTemplate"}, "object": {"template": {"spec": {
            "containers": [{"name": "t", "image": "y"}]}}}});
        assert_eq!(images(&template)[0].path, "template.spec.containers[0].image");
    }

    #[test]
    fn missing_image_is_kept_as_empty_so_it_is_rejected() {
        let request = json!({"kind": {"kind": "Pod"}, "object": {"spec": {"containers": [{"name": "app"}]}}});
        assert_eq!(images(&request)[0].image, "");
    }

    #[test]
    fn other_kinds_and_missing_objects_have_no_images() {
        assert!(images(&json!({"kind": {"kind": "ConfigMap"}, "object": {"data": {}}})).is_empty());
        assert!(images(&json!({"kind": {"kind": "Pod"}, "object": null})).is_empty());
        assert!(images(&json!({"kind": {"kind": "Pod"}, "object": {"spec": "odd"}})).is_empty());
    }

    #[test]
    fn legacy_ephemeral_containers_kind() {
        let request = json!({"kind": {"kind": "EphemeralContainers"}, "subResource": "ephemeralcontainers",
            "object": {"ephemeralContainers": [{"name": "dbg", "image": "busybox"}]}});
        assert_eq!(images(&request)[0].path, "ephemeralContainers[0].image");
    }
}
