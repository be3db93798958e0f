//! Every image a review would run: containers, init and ephemeral containers and image volumes,
//! wherever the pod spec sits in the workload kinds we admit.

use serde_json::Value;

use crate::images::ImageLocation;
use crate::workload::workload_kind;

/// The `imagePullSecrets` names of the reviewed object's pod spec, in order.
pub fn pull_secret_names(request: &Value) -> Vec<String> {
    let kind = match request.get("subResource").and_then(Value::as_str) {
        Some("ephemeralcontainers") => "Pod",
        _ => object_kind(request),
    };
    let spec = pod_spec_location(kind).and_then(|(pointer, _)| request.get("object")?.pointer(pointer));
    spec.and_then(|spec| spec.get("imagePullSecrets"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|secret| secret.get("name").and_then(Value::as_str))
        .filter(|name| !name.is_empty())
        .map(str::to_string)
        .collect()
}

/// Where the pod spec lives in each kind, as a JSON pointer and the matching field path.
fn pod_spec_location(kind: &str) -> Option<(&'static str, &'static str)> {
    workload_kind(kind).map(|workload| (workload.pod_spec_pointer, workload.pod_spec_path))
}

/// The kind of the reviewed object: the request's kind, else the object's own.
pub fn object_kind(request: &Value) -> &str {
    request
        .pointer("/kind/kind")
        .and_then(Value::as_str)
        .or_else(|| request.pointer("/object/kind").and_then(Value::as_str))
        .unwrap_or("")
}

/// All image fields of the reviewed object, in document order: containers, initContainers,
/// ephemeralContainers, then image volumes.
pub fn images(request: &Value) -> Vec<ImageLocation> {
    let Some(object) = request.get("object").filter(|o| o.is_object()) else {
        return Vec::new();
    };
    // The ephemeralcontainers subresource carries a whole Pod (kind Pod, or the older
    // EphemeralContainers kind whose list sits at the top level).
    let kind = match (object_kind(request), request.get("subResource").and_then(Value::as_str)) {
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
    let Some(spec) = object.pointer(pointer) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for list in ["containers", "initContainers", "ephemeralContainers"] {
        containers(spec, path, list, &mut found);
    }
    if let Some(volumes) = spec.get("volumes").and_then(Value::as_array) {
        for (index, volume) in volumes.iter().enumerate() {
            if let Some(image) = volume.get("image") {
                found.push(ImageLocation {
                    path: format!("{path}.volumes[{index}].image.reference"),
                    container: name_of(volume),
                    image: image
                        .get("reference")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                });
            }
        }
    }
    found
}

fn containers(spec: &Value, path: &str, list: &str, found: &mut Vec<ImageLocation>) {
    let Some(items) = spec.get(list).and_then(Value::as_array) else {
        return;
    };
    let prefix = if path.is_empty() {
        String::new()
    } else {
        format!("{path}.")
    };
    for (index, container) in items.iter().enumerate() {
        found.push(ImageLocation {
            path: format!("{prefix}{list}[{index}].image"),
            container: name_of(container),
            image: container
                .get("image")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
        });
    }
}

fn name_of(item: &Value) -> String {
    item.get("name").and_then(Value::as_str).unwrap_or_default().to_string()
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
