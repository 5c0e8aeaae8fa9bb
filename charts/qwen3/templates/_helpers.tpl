{{/* Names ----------------------------------------------------------------------------------- */}}

{{- define "qwen3.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "qwen3.fullname" -}}
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

{{- define "qwen3.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "qwen3.selectorLabels" -}}
app.kubernetes.io/name: {{ include "qwen3.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: server
{{- end }}

{{/* Labels of every object but the chart test's pod (which must not match the Service). */}}
{{- define "qwen3.labels" -}}
{{ include "qwen3.selectorLabels" . }}
{{ include "qwen3.commonLabels" . }}
{{- end }}

{{- define "qwen3.commonLabels" -}}
helm.sh/chart: {{ include "qwen3.chart" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: qwen3-ops
qwen3-ops.io/backend: {{ .Values.backend }}
qwen3-ops.io/model: {{ include "qwen3.modelDir" . | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "qwen3.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "qwen3.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The model ------------------------------------------------------------------------------- */}}

{{/* <profile>-<quant>[-synthetic]: the default served name and volume directory. */}}
{{- define "qwen3.modelId" -}}
{{- printf "%s-%s%s" .Values.model.profile .Values.model.quant (ternary "-synthetic" "" .Values.model.synthetic) }}
{{- end }}

{{- define "qwen3.modelName" -}}
{{- default (include "qwen3.modelId" .) .Values.model.name }}
{{- end }}

{{- define "qwen3.modelDir" -}}
{{- default (include "qwen3.modelId" .) .Values.model.dir }}
{{- end }}

{{/* Where the server container sees the model's directory. */}}
{{- define "qwen3.modelPath" -}}
{{- if eq .Values.model.storage.type "image" }}
{{- .Values.model.storage.image.path }}
{{- else }}
{{- printf "/models/%s" (include "qwen3.modelDir" .) }}
{{- end }}
{{- end }}

{{/* What the server loads: the GGUF file (llamacpp) or the model directory (ortserver). */}}
{{- define "qwen3.modelTarget" -}}
{{- if eq .Values.backend "llamacpp" }}
{{- printf "%s/%s" (include "qwen3.modelPath" .) .Values.model.file }}
{{- else }}
{{- include "qwen3.modelPath" . }}
{{- end }}
{{- end }}

{{- define "qwen3.claimName" -}}
{{- default (printf "%s-model" (include "qwen3.fullname" .)) .Values.model.storage.persistentVolumeClaim.existingClaim }}
{{- end }}

{{/* Images --------------------------------------------------------------------------------- */}}

{{/* repository:tag or repository@digest, from a dict with repository, tag, digest. */}}
{{- define "qwen3.imageRef" -}}
{{- $image := .image }}
{{- if $image.digest }}
{{- printf "%s@%s" $image.repository $image.digest }}
{{- else }}
{{- printf "%s:%s" $image.repository (default .appVersion $image.tag | toString) }}
{{- end }}
{{- end }}

{{/* The model image of model.init.method copy: defaults from the server image and the model. */}}
{{- define "qwen3.modelImage" -}}
{{- $c := .Values.model.init.copy.image }}
{{- $server := index .Values.image .Values.backend }}
{{- $image := dict "repository" (default $server.repository $c.repository) "tag" (default (printf "%s-%s" .Chart.AppVersion (include "qwen3.modelDir" .)) $c.tag) "digest" $c.digest }}
{{- include "qwen3.imageRef" (dict "image" $image "appVersion" .Chart.AppVersion) }}
{{- end }}

{{- define "qwen3.image" -}}
{{- include "qwen3.imageRef" (dict "image" (index .Values.image .Values.backend) "appVersion" .Chart.AppVersion) }}
{{- end }}

{{/* Resources, threads ---------------------------------------------------------------------- */}}

{{/* The server's resources: .Values.resources, else the sizing table's row for this model. */}}
{{- define "qwen3.resources" -}}
{{- if .Values.resources }}
{{- toYaml .Values.resources }}
{{- else }}
{{- $key := printf "%s/%s/%s" .Values.backend .Values.model.profile .Values.model.quant }}
{{- $row := index .Values.sizing $key }}
{{- if not $row }}
{{- fail (printf "no sizing for %s in values.sizing: set resources (requests and limits) for this model, e.g. from the tuning play's measured memory" $key) }}
{{- end }}
requests:
  cpu: {{ $row.cpu | quote }}
  memory: {{ $row.memory | quote }}
limits:
  memory: {{ $row.memory | quote }}
{{- end }}
{{- end }}

{{/* Whole cores from a CPU quantity ("2", 2, "1500m" -> 2), at least 1. */}}
{{- define "qwen3.cores" -}}
{{- $q := toString . }}
{{- if hasSuffix "m" $q }}
{{- max 1 (div (add (trimSuffix "m" $q | atoi) 999) 1000) }}
{{- else }}
{{- max 1 (ceil (float64 $q) | int) }}
{{- end }}
{{- end }}

{{/* engine.threads, else the CPU limit, else the CPU request, else 1. */}}
{{- define "qwen3.threads" -}}
{{- if gt (int .Values.engine.threads) 0 }}
{{- .Values.engine.threads }}
{{- else }}
{{- $res := include "qwen3.resources" . | fromYaml }}
{{- $cpu := "" }}
{{- if and $res.limits $res.limits.cpu }}
{{- $cpu = $res.limits.cpu }}
{{- else if and $res.requests $res.requests.cpu }}
{{- $cpu = $res.requests.cpu }}
{{- end }}
{{- if $cpu }}
{{- include "qwen3.cores" $cpu }}
{{- else }}
{{- 1 }}
{{- end }}
{{- end }}
{{- end }}

{{/* Shutdown -------------------------------------------------------------------------------- */}}

{{- define "qwen3.terminationGracePeriod" -}}
{{- $min := add .Values.lifecycle.drainDelaySeconds .Values.lifecycle.requestTimeoutSeconds }}
{{- $set := int .Values.lifecycle.terminationGracePeriodSeconds }}
{{- if eq $set 0 }}
{{- add $min 30 }}
{{- else if le $set (int $min) }}
{{- fail (printf "lifecycle.terminationGracePeriodSeconds (%d) must exceed drainDelaySeconds + requestTimeoutSeconds (%d): a pod would be killed in the middle of its longest request" $set (int $min)) }}
{{- else }}
{{- $set }}
{{- end }}
{{- end }}

{{/* API key --------------------------------------------------------------------------------- */}}

{{- define "qwen3.apiKeySecretName" -}}
{{- default (printf "%s-api-key" (include "qwen3.fullname" .)) .Values.apiKey.existingSecret }}
{{- end }}

{{- define "qwen3.apiKeySecretKey" -}}
{{- if .Values.apiKey.existingSecret }}{{ .Values.apiKey.existingSecretKey }}{{ else }}api-key{{ end }}
{{- end }}

{{/* Per-backend endpoints ------------------------------------------------------------------- */}}

{{- define "qwen3.readinessPath" -}}
{{- if eq .Values.backend "ortserver" }}/ready{{ else }}/health{{ end }}
{{- end }}

{{- define "qwen3.queueMetric" -}}
{{- if .Values.autoscaling.queueDepth.metricName }}
{{- .Values.autoscaling.queueDepth.metricName }}
{{- else if eq .Values.backend "ortserver" }}ortserver_requests_waiting
{{- else }}llamacpp_requests_deferred
{{- end }}
{{- end }}
