{{/*
Names, labels and the shared pieces of the chart's objects. Every define is prefixed with
the chart's name, so a parent chart's helpers never collide with these.
*/}}

{{- define "avatar-video.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* <release>-<name>, or the release alone when it already holds the name. */}}
{{- define "avatar-video.fullname" -}}
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

{{- define "avatar-video.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "avatar-video.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: avatar-video
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* The operator's pods: what its Deployment, Service, PDB and the NetworkPolicy select. */}}
{{- define "avatar-video.operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "avatar-video.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{/*
The runtime pods of every pool the operator runs (operator/avatar_operator/pools/
deployments.py labels them): managed by the operator, and carrying the pool label.
*/}}
{{- define "avatar-video.runtime.selector" -}}
matchLabels:
  app.kubernetes.io/managed-by: avatar-operator
matchExpressions:
  - {key: avatar.dev/runtime-pool, operator: Exists}
{{- end }}

{{- define "avatar-video.operator.fullname" -}}
{{- printf "%s-operator" (include "avatar-video.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "avatar-video.operator.serviceAccountName" -}}
{{- if .Values.operator.serviceAccount.create }}
{{- default (include "avatar-video.operator.fullname" .) .Values.operator.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.operator.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "avatar-video.runtime.serviceAccountName" -}}
{{- if .Values.runtime.serviceAccount.create }}
{{- default (printf "%s-runtime" (include "avatar-video.fullname" .) | trunc 63 | trimSuffix "-") .Values.runtime.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.runtime.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The Secret holding the runtime API token: the chart's own, or one the user manages. */}}
{{- define "avatar-video.tokenSecretName" -}}
{{- default (printf "%s-runtime-token" (include "avatar-video.fullname" .) | trunc 63 | trimSuffix "-") .Values.runtime.token.existingSecret }}
{{- end }}

{{- define "avatar-video.tokenSecretKey" -}}
{{- if .Values.runtime.token.existingSecret }}{{ .Values.runtime.token.existingSecretKey }}{{ else }}token{{ end }}
{{- end }}

{{/* repository[:tag][@digest] of {repository, tag, digest}; the tag defaults to appVersion. */}}
{{- define "avatar-video.image" -}}
{{- $image := index . 0 }}{{- $root := index . 1 }}
{{- if $image.digest }}
{{- printf "%s@%s" $image.repository $image.digest }}
{{- else }}
{{- printf "%s:%s" $image.repository (default $root.Chart.AppVersion $image.tag) }}
{{- end }}
{{- end }}

{{/*
The namespaces the operator watches in namespaced mode: those listed, and always the
release namespace, where its runtime pods, pools and their Deployments live. Sorted, unique.
*/}}
{{- define "avatar-video.watchNamespaces" -}}
{{- $all := append .Values.operator.watchNamespaces .Release.Namespace | uniq | sortAlpha }}
{{- toJson $all }}
{{- end }}

{{/* Where the runtime token file appears in the operator's container. */}}
{{- define "avatar-video.tokenMountPath" -}}
/var/run/secrets/avatar.dev/runtime-token
{{- end }}

{{/*
Checks that fail `helm install` with a message, for what the schema cannot say simply.
*/}}
{{- define "avatar-video.validate" -}}
{{- $volume := .Values.modelVolume }}
{{- if and (eq $volume.type "gcsBucket") (not $volume.gcsBucket.bucket) }}
{{- fail "modelVolume.type is gcsBucket: set modelVolume.gcsBucket.bucket to the bucket holding the model directory" }}
{{- end }}
{{- if and .Values.pool.enabled (eq $volume.type "none") (or (ne .Values.pool.engines.tts "piper") (ne .Values.pool.engines.renderer "embedded")) }}
{{- fail "modelVolume.type none: xtts and ditto read their weights from a model volume (set modelVolume.type), only piper with the embedded renderer needs none" }}
{{- end }}
{{- if and .Values.pool.spot.enabled (gt (int .Values.pool.spot.onDemandFloor) (int .Values.pool.maxReplicas)) }}
{{- fail "pool.spot.onDemandFloor must not exceed pool.maxReplicas" }}
{{- end }}
{{- if and .Values.modelFetch.enabled (eq $volume.type "none") }}
{{- fail "modelFetch.enabled: the Job fills a model volume; set modelVolume.type to persistentVolumeClaim or gcsBucket" }}
{{- end }}
{{- if gt (int .Values.pool.minReplicas) (int .Values.pool.maxReplicas) }}
{{- fail "pool.minReplicas must not exceed pool.maxReplicas" }}
{{- end }}
{{- end }}

{{/* The claim the pods mount when the model volume is a PersistentVolumeClaim. */}}
{{- define "avatar-video.modelClaimName" -}}
{{- default (printf "%s-models" (include "avatar-video.fullname" .) | trunc 63 | trimSuffix "-") .Values.modelVolume.persistentVolumeClaim.existingClaim }}
{{- end }}

{{/*
An operator setting's value as an environment variable: strings as they are, anything else
as JSON (numbers, booleans, the lists and maps pydantic-settings reads as JSON).
*/}}
{{- define "avatar-video.settingValue" -}}
{{- if kindIs "string" . }}{{ . }}{{ else }}{{ toJson . }}{{ end }}
{{- end }}
