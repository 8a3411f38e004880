{{/*
Names and labels. These helpers, like the ones in _sidecar.tpl, take either
the chart's root context or, from a parent chart, a dict with "Values" (this
chart's values, i.e. the parent's .Values.fieldguard), "Release" and
"Capabilities". So they must not use .Chart or .Files.
*/}}

{{- define "fieldguard.name" -}}
{{- default "fieldguard" .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "fieldguard.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "fieldguard.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The ConfigMap holding fieldguard.yaml (and the chart-managed policies). */}}
{{- define "fieldguard.configMapName" -}}
{{- printf "%s-config" (include "fieldguard.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels of every resource the chart renders itself (root context only). */}}
{{- define "fieldguard.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "fieldguard.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "fieldguard.selectorLabels" -}}
app.kubernetes.io/name: {{ include "fieldguard.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/*
Labels selecting the pods fieldguard runs in: the example release's own, or
podSelector for a Deployment of yours.
*/}}
{{- define "fieldguard.podSelectorLabels" -}}
{{- if .Values.example.enabled -}}
{{ include "fieldguard.selectorLabels" . }}
{{- else if .Values.podSelector -}}
{{ toYaml .Values.podSelector }}
{{- else -}}
{{- fail "podSelector is required when example.enabled is false and the chart selects pods (networkPolicy.enabled or metrics.serviceMonitor.enabled): set it to your pods' labels, e.g. {app: my-api}" -}}
{{- end -}}
{{- end -}}

{{/*
The image. The tag is a value (not .Chart.AppVersion) so the sidecar renders
the same from a parent chart, where .Chart is the parent's.
*/}}
{{- define "fieldguard.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository .Values.image.tag -}}
{{- end -}}
{{- end -}}
