{{/* Chart name, truncated to the 63 characters a label value allows. */}}
{{- define "energaizer.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name of every object: the release name, prefixed to the chart name unless it contains it. */}}
{{- define "energaizer.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
"<fullname>-<suffix>" in at most 63 characters (a Service name is a DNS label): the full name is shortened,
never the suffix, so the metrics Service, the extender and the scheduler keep names distinct from the
operator's objects. Call with (dict "root" . "suffix" "metrics").
*/}}
{{- define "energaizer.suffixedName" -}}
{{- $base := include "energaizer.fullname" .root | trunc (int (sub 62 (len .suffix))) | trimSuffix "-" }}
{{- printf "%s-%s" $base .suffix }}
{{- end }}

{{/* A duration of the schema's form ("1m30s", "500ms") in milliseconds. */}}
{{- define "energaizer.durationMs" -}}
{{- $units := dict "ms" 1 "s" 1000 "m" 60000 "h" 3600000 }}
{{- $total := 0 }}
{{- range regexFindAll "[0-9]+(ms|s|m|h)" . -1 }}
{{- $total = add $total (mul (atoi (regexFind "^[0-9]+" .)) (get $units (regexReplaceAll "^[0-9]+" . ""))) }}
{{- end }}
{{- $total }}
{{- end }}

{{- define "energaizer.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "energaizer.selectorLabels" -}}
app.kubernetes.io/name: {{ include "energaizer.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "energaizer.labels" -}}
helm.sh/chart: {{ include "energaizer.chart" . }}
{{ include "energaizer.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: energaizer
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "energaizer.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "energaizer.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "energaizer.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* Path where the product-map ConfigMap is mounted; ENERGAIZER_PRODUCT_MAP reads it as @file. */}}
{{- define "energaizer.productMapDir" -}}/etc/energaizer/product-map{{- end }}
{{- define "energaizer.profileDir" -}}/etc/energaizer/profile{{- end }}

{{/*
RBAC rules on namespaced resources: in the ClusterRole when the operator watches every namespace,
in a Role per namespace when operator.namespaces is set.
*/}}
{{- define "energaizer.namespacedRules" -}}
- apiGroups: [energaizer.io]
  resources: [aijobs]
  verbs: [get, list, watch, patch]
- apiGroups: [energaizer.io]
  resources: [aijobs/status]
  verbs: [get, patch]
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list, watch]
- apiGroups: [batch]
  resources: [jobs]
  verbs: [get, list, watch, create, patch]
- apiGroups: [""]
  resources: [events]
  verbs: [create]
{{- end }}
