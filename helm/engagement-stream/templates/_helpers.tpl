{{/*
Standard helpers (as in prometheus-community charts): name, fullname, chart, labels,
selectorLabels, serviceAccountName, plus the few derived values the templates share.
*/}}

{{/* The chart name, or nameOverride. */}}
{{- define "engagement-stream.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The fully qualified app name: fullnameOverride, or <release>-<name> (just <release> when it
already contains the name). Truncated to 63 characters (DNS label limit).
*/}}
{{- define "engagement-stream.fullname" -}}
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

{{/* name-version, for the helm.sh/chart label. */}}
{{- define "engagement-stream.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Recommended labels for every object. */}}
{{- define "engagement-stream.labels" -}}
helm.sh/chart: {{ include "engagement-stream.chart" . }}
{{ include "engagement-stream.selectorLabels" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | trunc 63 | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: {{ include "engagement-stream.name" . }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Selector labels: immutable in a StatefulSet/Deployment, so no chart or app version. */}}
{{- define "engagement-stream.selectorLabels" -}}
app.kubernetes.io/name: {{ include "engagement-stream.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The ServiceAccount to use. */}}
{{- define "engagement-stream.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "engagement-stream.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The headless Service that gives each StatefulSet pod a stable DNS name. */}}
{{- define "engagement-stream.headlessName" -}}
{{- printf "%s-headless" (include "engagement-stream.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The image reference: repository:tag, or repository@digest when a digest is given. */}}
{{- define "engagement-stream.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{/* The worker's web port (ENGAGEMENT_WEB_PORT), as an integer. */}}
{{- define "engagement-stream.webPort" -}}
{{- .Values.config.ENGAGEMENT_WEB_PORT | default "6066" | atoi }}
{{- end }}

{{/* The partition count (ENGAGEMENT_PARTITIONS), as an integer: the most workers that can work. */}}
{{- define "engagement-stream.partitions" -}}
{{- .Values.config.ENGAGEMENT_PARTITIONS | default "8" | atoi }}
{{- end }}

{{/* Kafka bootstrap servers for non-Faust clients (KEDA): kafka://a:9092,kafka://b:9092 -> a:9092,b:9092. */}}
{{- define "engagement-stream.bootstrapServers" -}}
{{- $servers := list }}
{{- range (splitList "," .Values.config.ENGAGEMENT_BROKER) }}
{{- $servers = append $servers (. | trim | trimPrefix "kafka://") }}
{{- end }}
{{- join "," $servers }}
{{- end }}

{{/*
The ENGAGEMENT_ADVERTISED_URL when the chart derives it (config.ENGAGEMENT_ADVERTISED_URL
empty): the pod's stable DNS name under the headless Service (StatefulSet) or its IP
(Deployment). POD_NAME, POD_NAMESPACE and POD_IP come from the downward API.
*/}}
{{- define "engagement-stream.advertisedUrl" -}}
{{- $port := include "engagement-stream.webPort" . }}
{{- if eq .Values.workload.kind "StatefulSet" }}
{{- printf "http://$(POD_NAME).%s.$(POD_NAMESPACE).svc:%s" (include "engagement-stream.headlessName" .) $port }}
{{- else }}
{{- printf "http://$(POD_IP):%s" $port }}
{{- end }}
{{- end }}

{{/* True ("true") when broker credentials come from an existing Secret. */}}
{{- define "engagement-stream.saslEnabled" -}}
{{- if .Values.kafka.sasl.existingSecret }}true{{ end }}
{{- end }}

{{/*
Checks the schema cannot express (they compare values): rendering fails with a message that
names the values to change.
*/}}
{{- define "engagement-stream.checkValues" -}}
{{- $partitions := include "engagement-stream.partitions" . | int }}
{{- if and .Values.keda.enabled (gt (int .Values.keda.maxReplicas) $partitions) }}
{{- fail (printf "keda.maxReplicas (%d) exceeds config.ENGAGEMENT_PARTITIONS (%d): workers beyond the partition count would idle; lower keda.maxReplicas or raise the partitions" (int .Values.keda.maxReplicas) $partitions) }}
{{- end }}
{{- if and .Values.keda.enabled (gt (int .Values.keda.minReplicas) (int .Values.keda.maxReplicas)) }}
{{- fail (printf "keda.minReplicas (%d) exceeds keda.maxReplicas (%d)" (int .Values.keda.minReplicas) (int .Values.keda.maxReplicas)) }}
{{- end }}
{{- if and .Values.kafka.sasl.existingSecret (not (hasPrefix "SASL_" .Values.kafka.securityProtocol)) }}
{{- fail "kafka.sasl.existingSecret is set: kafka.securityProtocol must be SASL_PLAINTEXT or SASL_SSL" }}
{{- end }}
{{- if and .Values.kafka.sasl.existingSecret (not .Values.kafka.sasl.mechanism) }}
{{- fail "kafka.sasl.existingSecret is set: kafka.sasl.mechanism must be PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512" }}
{{- end }}
{{- end }}
