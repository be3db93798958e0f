//! What `serve --dev` prints: where to reach the webhook and a configuration to register it.

use base64::Engine as _;

/// A ValidatingWebhookConfiguration in url mode for a webhook running outside the cluster.
pub fn webhook_configuration(url: &str, ca_pem: &str) -> String {
    let ca_bundle = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    format!(
        r#"apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata:
  name: portcullis-dev
webhooks:
  - name: validate.portcullis.io
    admissionReviewVersions: ["v1"]
    sideEffects: None
    failurePolicy: Fail
    matchPolicy: Equivalent
    timeoutSeconds: 10
    clientConfig:
      url: {url}
      caBundle: {ca_bundle}
    namespaceSelector:
      matchExpressions:
        - key: kubernetes.io/metadata.name
          operator: NotIn
          values: ["kube-system"]
    rules:
      - apiGroups: [""]
        apiVersions: ["v1"]
        operations: ["CREATE", "UPDATE"]
        resources: ["pods", "pods/ephemeralcontainers", "podtemplates", "replicationcontrollers"]
        scope: Namespaced
      - apiGroups: ["apps"]
        apiVersions: ["v1"]
        operations: ["CREATE", "UPDATE"]
        resources: ["deployments", "replicasets", "statefulsets", "daemonsets"]
        scope: Namespaced
      - apiGroups: ["batch"]
        apiVersions: ["v1"]
        operations: ["CREATE", "UPDATE"]
        resources: ["jobs", "cronjobs"]
        scope: Namespaced
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configuration_is_valid_yaml_with_the_ca() {
        let text = webhook_configuration("https://127.0.0.1:8443/validate", "PEM");
        let value: serde_json::Value = yaml_serde::from_str(&text).unwrap();
        let hook = &value["webhooks"][0];
        assert_eq!(hook["clientConfig"]["url"], "https://127.0.0.1:8443/validate");
        assert_eq!(hook["clientConfig"]["caBundle"], "UEVN");
        assert_eq!(hook["failurePolicy"], "Fail");
        assert_eq!(hook["sideEffects"], "None");
    }
}
