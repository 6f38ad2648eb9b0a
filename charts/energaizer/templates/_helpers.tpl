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

{{/*
A workload's pod placement and security knobs, resolved: the operator's are the top-level values; the
extender's and the scheduler's are under their own key, where an empty nodeSelector, tolerations or
priorityClassName falls back to the top-level one (every pod took those before the components had their
own), and podSecurityContext and securityContext are merged over the top-level ones (a component that sets
runAsUser keeps the read-only root, dropped capabilities and seccomp profile). affinity,
topologySpreadConstraints, podLabels and podAnnotations name or describe one workload's pods and are never
inherited.
Call with (dict "root" . "component" "extender"); (dict "root" .) for the operator. Returns YAML (fromYaml).
*/}}
{{- define "energaizer.podKnobs" -}}
{{- $top := .root.Values }}
{{- $own := $top }}
{{- if .component }}
{{- $own = index $top .component }}
{{- end }}
priorityClassName: {{ default $top.priorityClassName $own.priorityClassName | quote }}
nodeSelector: {{ default $top.nodeSelector $own.nodeSelector | default dict | toJson }}
tolerations: {{ default $top.tolerations $own.tolerations | default list | toJson }}
podSecurityContext: {{ merge (deepCopy ($own.podSecurityContext | default dict)) ($top.podSecurityContext | default dict) | toJson }}
securityContext: {{ merge (deepCopy ($own.securityContext | default dict)) ($top.securityContext | default dict) | toJson }}
affinity: {{ $own.affinity | default dict | toJson }}
topologySpreadConstraints: {{ $own.topologySpreadConstraints | default list | toJson }}
podLabels: {{ $own.podLabels | default dict | toJson }}
podAnnotations: {{ $own.podAnnotations | default dict | toJson }}
{{- end }}

{{/*
The scheduling part of a pod spec (at the indent of its fields): nodeSelector, affinity (empty: replicas on
different nodes when possible), tolerations and topologySpreadConstraints (an entry without a labelSelector
selects the workload's own pods). Call with (dict "knobs" <energaizer.podKnobs> "selector" <selector labels
YAML> "why" <comment on the default anti-affinity>).
*/}}
{{- define "energaizer.podScheduling" -}}
{{- $selector := .selector | fromYaml }}
{{- with .knobs.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
affinity:
  {{- if .knobs.affinity }}
  {{- toYaml .knobs.affinity | nindent 2 }}
  {{- else }}
  # {{ .why }}
  podAntiAffinity:
    preferredDuringSchedulingIgnoredDuringExecution:
      - weight: 100
        podAffinityTerm:
          topologyKey: kubernetes.io/hostname
          labelSelector:
            matchLabels:
              {{- .selector | nindent 14 }}
  {{- end }}
{{- with .knobs.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .knobs.topologySpreadConstraints }}
topologySpreadConstraints:
  {{- range . }}
  {{- $constraint := deepCopy . }}
  {{- if not (hasKey $constraint "labelSelector") }}
  {{- $_ := set $constraint "labelSelector" (dict "matchLabels" $selector) }}
  {{- end }}
  - {{ toYaml $constraint | nindent 4 | trim }}
  {{- end }}
{{- end }}
{{- end }}

{{/*
A PodDisruptionBudget keeping minAvailable of a workload's replicas through voluntary disruptions; rendered
only with more than one replica (one replica and minAvailable 1 would block every node drain). Call with
(dict "root" . "name" <object name> "labels" <labels YAML> "selector" <selector labels YAML> "replicas" <int>
"budget" <podDisruptionBudget values> "why" <list of comment lines>).
*/}}
{{- define "energaizer.podDisruptionBudget" -}}
{{- if and .budget.enabled (gt (int .replicas) 1) }}
{{- range .why }}
# {{ . }}
{{- end }}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ .name }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- .labels | nindent 4 }}
spec:
  minAvailable: {{ .budget.minAvailable }}
  selector:
    matchLabels:
      {{- .selector | nindent 6 }}
{{- end }}
{{- end }}
