{{- /*
The policy libraries as ConfigMaps, one file per key, all at the root of the mounted folder:
ConfigMap keys cannot hold "/", so "cost/resources/policy.rego" becomes the key
"cost.resources.policy.rego" (Rego packages and Gatekeeper documents do not depend on file
paths), and every data.yaml
is merged, at its folder's path, into one data.yaml at the root (where portcullis puts a
folder's data anyway). Adding, changing or removing a policy therefore changes only the
ConfigMap, never the pod spec: kubelet swaps the files in and portcullis reloads the library
(policies.reloadInterval) without a restart.
*/}}
{{- define "portcullis.policyData" -}}
{{- $data := dict -}}
{{- $keys := dict -}}
{{- range $relative := keys .files | sortAlpha -}}
{{- $text := get $.files $relative -}}
{{- $folder := dir $relative -}}
{{- if eq (base $relative) "data.yaml" -}}
{{- $value := fromYaml $text -}}
{{- if hasKey $value "Error" -}}
{{- fail (printf "policy data %s is not valid YAML: %s" $relative (get $value "Error")) -}}
{{- end -}}
{{- if and $.parameters (hasKey $.parameters $folder) -}}
{{- $value = mustMergeOverwrite $value (get $.parameters $folder) -}}
{{- end -}}
{{- $node := $data -}}
{{- if ne $folder "." -}}
{{- range $part := splitList "/" $folder -}}
{{- if not (hasKey $node $part) -}}{{- $_ := set $node $part dict -}}{{- end -}}
{{- $node = get $node $part -}}
{{- if not (kindIs "map" $node) -}}{{- fail (printf "policy data %s conflicts with another data.yaml at %s" $relative $part) -}}{{- end -}}
{{- end -}}
{{- end -}}
{{- range $k, $v := $value -}}
{{- if hasKey $node $k -}}{{- fail (printf "policy data %s conflicts with another data.yaml at %s" $relative $k) -}}{{- end -}}
{{- $_ := set $node $k $v -}}
{{- end -}}
{{- else if or (hasSuffix ".rego" $relative) (hasSuffix ".yaml" $relative) (hasSuffix ".yml" $relative) -}}
{{- if hasSuffix "_test.rego" $relative -}}
{{- /* Unit tests are for `portcullis test`, not for the server. */ -}}
{{- else -}}
{{- $key := include "portcullis.policyKey" $relative -}}
{{- if hasKey $keys $key -}}
{{- fail (printf "policy files %s and %s map to the same ConfigMap key %s" (get $keys $key) $relative $key) -}}
{{- end -}}
{{- $_ := set $keys $key $text -}}
{{- end -}}
{{- else -}}
{{- fail (printf "policy file %s: only *.rego, data.yaml and Gatekeeper *.yaml files are shipped" $relative) -}}
{{- end -}}
{{- end -}}
{{- range $key := keys $keys | sortAlpha }}
{{ $key }}: |
  {{- get $keys $key | nindent 2 }}
{{- end }}
{{- if $data }}
data.yaml: |
  {{- toYaml $data | nindent 2 }}
{{- end }}
{{- end -}}
