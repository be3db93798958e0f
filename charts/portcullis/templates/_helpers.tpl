{{/* Names and labels. */}}
{{- define "portcullis.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "portcullis.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "portcullis.selectorLabels" -}}
app.kubernetes.io/name: {{ include "portcullis.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "portcullis.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "portcullis.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* The continuous audit's pods: a name of their own, so that the webhook's selector (its
Service, its PodDisruptionBudget) never picks them. */}}
{{- define "portcullis.auditSelectorLabels" -}}
app.kubernetes.io/name: {{ include "portcullis.name" . }}-audit
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: audit
{{- end -}}

{{- define "portcullis.auditLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "portcullis.auditSelectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "portcullis.auditName" -}}
{{- printf "%s-audit" (include "portcullis.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "portcullis.serviceAccountName" -}}
{{- default (include "portcullis.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{- define "portcullis.tlsSecretName" -}}
{{- if eq .Values.certificates.mode "existingSecret" -}}
{{- required "certificates.existingSecret.name is required with certificates.mode existingSecret" .Values.certificates.existingSecret.name -}}
{{- else -}}
{{- printf "%s-tls" (include "portcullis.fullname" .) -}}
{{- end -}}
{{- end -}}

{{- define "portcullis.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* The webhook runs outside the cluster (webhook.url): no Deployment, Service or certificates. */}}
{{- define "portcullis.inCluster" -}}
{{- if not .Values.webhook.url -}}true{{- end -}}
{{- end -}}

{{/* The pod talks to the API: namespace watch, imagePullSecrets reading or inventory sync. */}}
{{- define "portcullis.needsApi" -}}
{{- if or (eq (toString .Values.config.risk.namespaceSource) "kubernetes") .Values.registryCredentials.imagePullSecrets.enabled .Values.policies.inventory (include "portcullis.keySecrets" .) -}}true{{- end -}}
{{- end -}}

{{/* The Secrets that trust authorities take their keys from (key.secretRef), comma-separated. */}}
{{- define "portcullis.keySecrets" -}}
{{- $names := list -}}
{{- range (default dict .Values.config.images).trust -}}
{{- range .authorities -}}
{{- if and .key .key.secretRef -}}
{{- $names = append $names .key.secretRef.name -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- $names | uniq | sortAlpha | join "," -}}
{{- end -}}

{{/* Mount points in the pod (and paths in the rendered config). */}}
{{- define "portcullis.path" -}}
{{- $root := trimSuffix "/" .root.Values.paths.root -}}
{{- printf "%s/%s" $root .sub -}}
{{- end -}}

{{/*
ConfigMap key for a policy file path: "/" becomes "." (ConfigMap keys cannot hold "/"); the
item's path puts the file back in its folder.
*/}}
{{- define "portcullis.policyKey" -}}
{{- . | replace "/" "." -}}
{{- end -}}

{{/* The service's DNS names, for the serving certificate. */}}
{{- define "portcullis.dnsNames" -}}
{{- $svc := include "portcullis.fullname" . -}}
{{- $ns := .Release.Namespace -}}
{{- list $svc (printf "%s.%s" $svc $ns) (printf "%s.%s.svc" $svc $ns) (printf "%s.%s.svc.%s" $svc $ns .Values.clusterDomain) | toJson -}}
{{- end -}}

{{/* The selector of this release's series in Prometheus (alerts). */}}
{{- define "portcullis.metricSelector" -}}
{{- if .Values.prometheusRule.metricSelector -}}
{{- .Values.prometheusRule.metricSelector -}}
{{- else -}}
{{- printf "job=%q, namespace=%q" (include "portcullis.fullname" .) .Release.Namespace -}}
{{- end -}}
{{- end -}}

{{/* The series of this release's continuous audit (`portcullis audit --interval`). */}}
{{- define "portcullis.auditMetricSelector" -}}
{{- if .Values.prometheusRule.auditMetricSelector -}}
{{- .Values.prometheusRule.auditMetricSelector -}}
{{- else -}}
{{- printf "job=%q, namespace=%q" (include "portcullis.auditName" .) .Release.Namespace -}}
{{- end -}}
{{- end -}}

{{/* The portcullis config file: the values' config with the chart-owned fields set. */}}
{{- define "portcullis.config" -}}
{{- $config := deepCopy .Values.config -}}
{{- $owned := dict
  "server" (dict
    "listen" (printf "%s:%d" .Values.listen.address (int .Values.listen.webhookPort))
    "metricsListen" (printf "%s:%d" .Values.listen.address (int .Values.listen.metricsPort))
    "tls" (dict
      "certFile" (include "portcullis.path" (dict "root" . "sub" "tls/tls.crt"))
      "keyFile" (include "portcullis.path" (dict "root" . "sub" "tls/tls.key"))))
  "policies" (dict
    "dirs" (include "portcullis.policyDirs" . | fromJsonArray)
    "reloadInterval" .Values.policies.reloadInterval) -}}
{{- if .Values.exceptions.enabled -}}
{{- $_ := set $owned "exceptions" (dict "source" "kubernetes" "maxDays" (int .Values.exceptions.maxDays)) -}}
{{- end -}}
{{- if .Values.policies.inventory -}}
{{- $kinds := list -}}
{{- range .Values.policies.inventory -}}
{{- $kinds = append $kinds (dict "group" (default "" .group) "version" .version "kind" .kind) -}}
{{- end -}}
{{- $_ := set $owned.policies "inventory" $kinds -}}
{{- end -}}
{{- if .Values.trust.trustedRoot -}}
{{- $_ := set $owned "images" (dict "trustedRoot" (include "portcullis.path" (dict "root" . "sub" "trust/trusted_root.json"))) -}}
{{- end -}}
{{- if .Values.trust.registryCAs -}}
{{- $files := dict -}}
{{- range $host, $_ := .Values.trust.registryCAs -}}
{{- $_ := set $files $host (include "portcullis.path" (dict "root" $ "sub" (printf "trust/registry-ca/%s" (include "portcullis.registryCAFile" $host)))) -}}
{{- end -}}
{{- $images := default dict $owned.images -}}
{{- $_ := set $images "registries" (dict "caFiles" $files) -}}
{{- $_ := set $owned "images" $images -}}
{{- end -}}
{{- $verification := dict -}}
{{- if .Values.registryCredentials.dockerConfigSecret -}}
{{- $_ := set $verification "dockerConfig" (include "portcullis.path" (dict "root" . "sub" "registry/config.json")) -}}
{{- end -}}
{{- if .Values.registryCredentials.imagePullSecrets.enabled -}}
{{- $_ := set $verification "imagePullSecrets" true -}}
{{- end -}}
{{- if $verification -}}
{{- $images := default dict $owned.images -}}
{{- $_ := set $images "verification" $verification -}}
{{- $_ := set $owned "images" $images -}}
{{- end -}}
{{- mustMergeOverwrite $config $owned | toYaml -}}
{{- end -}}

{{/* policies.dirs as a JSON list: the library and the extra policies, each when shipped. */}}
{{- define "portcullis.policyDirs" -}}
{{- $dirs := list -}}
{{- if .Values.policies.library -}}
{{- $dirs = append $dirs (include "portcullis.path" (dict "root" . "sub" "policies/library")) -}}
{{- end -}}
{{- if .Values.policies.extra -}}
{{- $dirs = append $dirs (include "portcullis.path" (dict "root" . "sub" "policies/extra")) -}}
{{- end -}}
{{- toJson $dirs -}}
{{- end -}}

{{/* The files the webhook and the audit both read (beside the config): the policy libraries,
the trust files, the registry credentials. */}}
{{- define "portcullis.sharedVolumeMounts" -}}
{{- if .Values.policies.library }}
- name: policies-library
  mountPath: {{ include "portcullis.path" (dict "root" . "sub" "policies/library") }}
  readOnly: true
{{- end }}
{{- if .Values.policies.extra }}
- name: policies-extra
  mountPath: {{ include "portcullis.path" (dict "root" . "sub" "policies/extra") }}
  readOnly: true
{{- end }}
{{- if or .Values.trust.keys .Values.trust.trustedRoot .Values.trust.registryCAs }}
- name: trust
  mountPath: {{ include "portcullis.path" (dict "root" . "sub" "trust") }}
  readOnly: true
{{- end }}
{{- if .Values.registryCredentials.dockerConfigSecret }}
- name: registry
  mountPath: {{ include "portcullis.path" (dict "root" . "sub" "registry") }}
  readOnly: true
{{- end }}
{{- end -}}

{{- define "portcullis.sharedVolumes" -}}
{{- $fullname := include "portcullis.fullname" . }}
{{- if .Values.policies.library }}
- name: policies-library
  configMap:
    name: {{ $fullname }}-policies
{{- end }}
{{- if .Values.policies.extra }}
- name: policies-extra
  configMap:
    name: {{ $fullname }}-policies-extra
{{- end }}
{{- if or .Values.trust.keys .Values.trust.trustedRoot .Values.trust.registryCAs }}
- name: trust
  configMap:
    name: {{ $fullname }}-trust
    items:
      {{- range $name, $_ := .Values.trust.keys }}
      - { key: {{ printf "key.%s" $name | quote }}, path: {{ printf "keys/%s" $name | quote }} }
      {{- end }}
      {{- if .Values.trust.trustedRoot }}
      - { key: trusted_root.json, path: trusted_root.json }
      {{- end }}
      {{- range $host, $_ := .Values.trust.registryCAs }}
      {{- $file := include "portcullis.registryCAFile" $host }}
      - { key: {{ printf "ca.%s" $file | quote }}, path: {{ printf "registry-ca/%s" $file | quote }} }
      {{- end }}
{{- end }}
{{- with .Values.registryCredentials.dockerConfigSecret }}
- name: registry
  secret:
    secretName: {{ . }}
    defaultMode: 0440
    items:
      - { key: .dockerconfigjson, path: config.json }
{{- end }}
{{- end -}}

{{/* A registry host (`host:port`) as a file and ConfigMap key name: `:` is not allowed there. */}}
{{- define "portcullis.registryCAFile" -}}
{{- printf "%s.pem" (replace ":" "_" .) -}}
{{- end -}}
