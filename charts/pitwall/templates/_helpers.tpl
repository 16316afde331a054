{{/* Names and labels, in the shape `helm create` uses so tools recognise them. */}}
{{- define "pitwall.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "pitwall.fullname" -}}
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

{{- define "pitwall.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "pitwall.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: pitwall
{{- end }}

{{- define "pitwall.selectorLabels" -}}
app.kubernetes.io/name: {{ include "pitwall.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "pitwall.operatorServiceAccount" -}}
{{- default (printf "%s-operator" (include "pitwall.fullname" .)) .Values.serviceAccount.name }}
{{- end }}

{{/* Where trainer pods run: explicit list, else the watched namespaces, else the release's. */}}
{{- define "pitwall.trainerNamespaces" -}}
{{- $ns := .Values.trainer.namespaces | default .Values.watchNamespaces | default (list .Release.Namespace) }}
{{- toJson $ns }}
{{- end }}

{{- define "pitwall.image" -}}
{{- printf "%s:%s" .image.repository (.image.tag | default .chart.AppVersion) }}
{{- end }}

{{- define "pitwall.mlflowName" -}}
{{- printf "%s-mlflow" (include "pitwall.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The tracking URI handed to runs by default: explicit, else the bundled server, else none. */}}
{{- define "pitwall.mlflowTrackingUri" -}}
{{- if .Values.defaults.mlflowTrackingUri }}
{{- .Values.defaults.mlflowTrackingUri }}
{{- else if .Values.mlflow.enabled }}
{{- printf "http://%s.%s.svc:%d" (include "pitwall.mlflowName" .) .Release.Namespace (int .Values.mlflow.port) }}
{{- end }}
{{- end }}

{{/* The restricted Pod Security Standard, for every container the chart runs. */}}
{{- define "pitwall.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.runAsUser }}
runAsGroup: {{ .Values.runAsUser }}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "pitwall.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.runAsUser }}
runAsGroup: {{ .Values.runAsUser }}
fsGroup: {{ .Values.runAsUser }}
seccompProfile:
  type: RuntimeDefault
{{- end }}
