{{/* Names and labels of the optional extender and second scheduler (extender.yaml, scheduler.yaml). */}}
{{- define "energaizer.extenderName" -}}
{{- include "energaizer.suffixedName" (dict "root" . "suffix" "extender") }}
{{- end }}

{{- define "energaizer.schedulerFullname" -}}
{{- include "energaizer.suffixedName" (dict "root" . "suffix" "scheduler") }}
{{- end }}

{{- define "energaizer.componentSelectorLabels" -}}
app.kubernetes.io/name: {{ include "energaizer.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "energaizer.componentLabels" -}}
helm.sh/chart: {{ include "energaizer.chart" .root }}
{{ include "energaizer.componentSelectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/part-of: energaizer
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
{{- end }}

{{/* The extender's base URL as the scheduler calls it. */}}
{{- define "energaizer.extenderURL" -}}
http://{{ include "energaizer.extenderName" . }}.{{ .Release.Namespace }}.svc:{{ .Values.extender.port }}/scheduler
{{- end }}

{{/* The second scheduler's KubeSchedulerConfiguration. */}}
{{- define "energaizer.schedulerConfig" -}}
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
leaderElection:
  leaderElect: true
  resourceNamespace: {{ .Release.Namespace }}
  resourceName: {{ include "energaizer.schedulerFullname" . }}
# Score every feasible node: with fewer, the extender would not see some GPU types.
percentageOfNodesToScore: 100
profiles:
  - schedulerName: {{ .Values.scheduler.name }}
extenders:
  - urlPrefix: {{ include "energaizer.extenderURL" . }}
    prioritizeVerb: prioritize
    {{- if .Values.scheduler.filter }}
    filterVerb: filter
    {{- end }}
    weight: {{ .Values.scheduler.extenderWeight }}
    enableHTTPS: false
    httpTimeout: {{ .Values.scheduler.httpTimeout }}
    nodeCacheCapable: true
    # Only pods that request GPUs are sent to the extender.
    managedResources:
      - name: {{ .Values.gpu.resource }}
        ignoredByScheduler: false
    # The extender down, slow or failing: schedule as if it were not configured.
    ignorable: true
{{- end }}
