{{/* Names, labels and the values derived from the config, shared by every template. */}}

{{/* The chart name (app.kubernetes.io/name), as in the Kustomize base. */}}
{{- define "dli-batch-monitor.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The object name: the release name, or <release>-<chart> (63 characters at most). */}}
{{- define "dli-batch-monitor.fullname" -}}
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

{{/* Chart name and version for the helm.sh/chart label. */}}
{{- define "dli-batch-monitor.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Selector labels: the base's two labels (name, part-of) plus the release, so two releases in one
namespace never select each other's pods.
*/}}
{{- define "dli-batch-monitor.selectorLabels" -}}
app.kubernetes.io/name: {{ include "dli-batch-monitor.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/part-of: {{ .Chart.Name }}
{{- end }}

{{/* Labels of every object. */}}
{{- define "dli-batch-monitor.labels" -}}
helm.sh/chart: {{ include "dli-batch-monitor.chart" . }}
{{ include "dli-batch-monitor.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "dli-batch-monitor.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "dli-batch-monitor.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The Secret mounted under /var/run/secrets/dli-monitor/. */}}
{{- define "dli-batch-monitor.credentialsSecretName" -}}
{{- if .Values.secret.create }}
{{- printf "%s-credentials" (include "dli-batch-monitor.fullname" .) }}
{{- else }}
{{- required "secret.existingSecret: the name of the credentials Secret" .Values.secret.existingSecret }}
{{- end }}
{{- end }}

{{- define "dli-batch-monitor.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* Where the PostgreSQL password Secret is mounted (ha.enabled). */}}
{{- define "dli-batch-monitor.postgresMount" -}}
/var/run/secrets/dli-monitor-postgres
{{- end }}

{{/* The PostgreSQL port, from ha.postgres.url (5432 when the URL names none). */}}
{{- define "dli-batch-monitor.postgresPort" -}}
{{- $hostPort := regexReplaceAll "^[a-z]+://([^/?]*).*$" .Values.ha.postgres.url "${1}" }}
{{- $port := regexFind ":[0-9]+$" $hostPort | trimPrefix ":" }}
{{- default "5432" $port }}
{{- end }}

{{/* values.config parsed, as YAML text (it is a string or a mapping). */}}
{{- define "dli-batch-monitor.configData" -}}
{{- if kindIs "string" .Values.config }}
{{- $data := fromYaml .Values.config }}
{{- if hasKey $data "Error" }}
{{- fail (printf "config is not valid YAML: %s" $data.Error) }}
{{- end }}
{{- toYaml $data }}
{{- else }}
{{- toYaml .Values.config }}
{{- end }}
{{- end }}

{{/*
config.yaml as the pod reads it: values.config verbatim, or with ha.enabled its `state` moved to
PostgreSQL (url and password_file instead of path), as in deploy/overlays/ha-postgres.
*/}}
{{- define "dli-batch-monitor.configText" -}}
{{- if .Values.ha.enabled }}
{{- $data := include "dli-batch-monitor.configData" . | fromYaml }}
{{- $state := omit (get $data "state" | default dict) "path" }}
{{- $_ := set $state "url" .Values.ha.postgres.url }}
{{- $_ = set $state "password_file" (printf "%s/password" (include "dli-batch-monitor.postgresMount" .)) }}
{{- $_ = set $data "state" $state }}
{{- toYaml $data }}
{{- else if kindIs "string" .Values.config }}
{{- .Values.config }}
{{- else }}
{{- toYaml .Values.config }}
{{- end }}
{{- end }}

{{/* The metrics port: the port of the config's server.listen (the daemon's default 9108). */}}
{{- define "dli-batch-monitor.metricsPort" -}}
{{- $data := include "dli-batch-monitor.configData" . | fromYaml }}
{{- $listen := dig "server" "listen" "0.0.0.0:9108" $data | toString }}
{{- regexFind "[0-9]+$" $listen | default "9108" }}
{{- end }}

{{/* The claim spec of the state volume: the PVC's, or each shard's volumeClaimTemplate's. */}}
{{- define "dli-batch-monitor.claimSpec" -}}
accessModes:
  {{- toYaml .Values.persistence.accessModes | nindent 2 }}
{{- with .Values.persistence.storageClass }}
storageClassName: {{ ternary "" . (eq . "-") | quote }}
{{- end }}
resources:
  requests:
    storage: {{ .Values.persistence.size }}
{{- end }}

{{/* Combinations the chart refuses, with the reason (values.schema.json checks each value). */}}
{{- define "dli-batch-monitor.validate" -}}
{{- if and .Values.ha.enabled .Values.sharding.enabled }}
{{- fail "ha.enabled and sharding.enabled cannot be combined: choose PostgreSQL replicas or shards" }}
{{- end }}
{{- if and .Values.sharding.enabled .Values.persistence.existingClaim }}
{{- fail "persistence.existingClaim cannot be used with sharding: each shard needs its own claim" }}
{{- end }}
{{- if and .Values.secret.create (not .Values.secret.stringData) }}
{{- fail "secret.create needs secret.stringData" }}
{{- end }}
{{- end }}
