{{/*
Names, labels, and the pieces every pod shares: the config.yml, the environment that fills its
${VAR}s from Secrets, the volumes.
*/}}

{{- define "tessera.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The prefix of every resource name, at most 63 characters. */}}
{{- define "tessera.fullname" -}}
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

{{- define "tessera.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "tessera.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tessera.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "tessera.labels" -}}
helm.sh/chart: {{ include "tessera.chart" . }}
{{ include "tessera.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: tessera
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Labels of one component: (dict "ctx" $ "component" "api"). */}}
{{- define "tessera.componentLabels" -}}
{{ include "tessera.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "tessera.componentSelectorLabels" -}}
{{ include "tessera.selectorLabels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "tessera.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "tessera.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "tessera.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{/* The Secret the chart keeps the values given in plain text in. */}}
{{- define "tessera.secretName" -}}
{{- printf "%s-secrets" (include "tessera.fullname" .) }}
{{- end }}

{{/* Whether login providers are configured (multi-user), as "true" or "". */}}
{{- define "tessera.multiUser" -}}
{{- if (.Values.config.authentication | default dict).providers }}true{{ end }}
{{- end }}

{{/* The seconds tessera takes to stop: shutdown_delay + shutdown_timeout. */}}
{{- define "tessera.apiGracePeriod" -}}
{{- if kindIs "invalid" .Values.api.terminationGracePeriodSeconds }}
{{- $t := .Values.config.tessera | default dict }}
{{- add (ceil (default 0 $t.shutdown_delay)) (ceil (default 30 $t.shutdown_timeout)) 10 }}
{{- else }}
{{- .Values.api.terminationGracePeriodSeconds }}
{{- end }}
{{- end }}

{{- define "tessera.shutdownTimeout" -}}
{{- $t := .Values.config.tessera | default dict }}
{{- ceil (default 30 $t.shutdown_timeout) }}
{{- end }}

{{- define "tessera.workerGracePeriod" -}}
{{- if kindIs "invalid" .Values.worker.terminationGracePeriodSeconds }}
{{- add (include "tessera.shutdownTimeout" . | atoi) 10 }}
{{- else }}
{{- .Values.worker.terminationGracePeriodSeconds }}
{{- end }}
{{- end }}

{{/*
The config.yml every pod reads. Secrets are not in it: they are ${VAR}s that tessera expands at
load from the environment "tessera.secretEnv" gives.
*/}}
{{- define "tessera.config" -}}
{{- $c := .Values.config }}
{{- $auth := deepCopy ($c.authentication | default dict) }}
{{- if not (include "tessera.multiUser" .) }}
{{- $_ := set $auth "single_user_api_key" "${SINGLE_USER_API_KEY}" }}
{{- end }}
{{- $keys := list }}
{{- range $i, $_ := .Values.auth.secretKeys.keys }}
{{- $keys = append $keys (printf "${TOKEN_SIGNING_KEY_%d}" $i) }}
{{- end }}
{{- $_ := set $auth "secret_keys" $keys }}
{{- $args := dict "uri" "${CATALOG_DATABASE_URI}" "init_if_not_exists" true }}
{{- with .Values.storage.writable }}
{{- $_ := set $args "writable_storage" . }}
{{- end }}
{{- with .Values.storage.readable }}
{{- $_ := set $args "readable_storage" . }}
{{- end }}
{{- $tessera := dict }}
{{- range $k, $v := ($c.tessera | default dict) }}
{{- if not (and (kindIs "string" $v) (eq $v "")) }}
{{- $_ := set $tessera $k $v }}
{{- end }}
{{- end }}
{{- $_ := set $tessera "redis_url" "${REDIS_URL}" }}
{{- $_ := set $tessera "nats_url" .Values.nats.url }}
{{- $file := dict "trees" (list (dict "path" "/" "tree" "catalog" "args" $args)) }}
{{- $_ := set $file "authentication" $auth }}
{{- if include "tessera.multiUser" . }}
{{- $_ := set $file "database" (dict "uri" "${AUTH_DATABASE_URI}" "init_if_not_exists" true) }}
{{- end }}
{{- with $c.access_control }}
{{- $_ := set $file "access_control" . }}
{{- end }}
{{- with $c.allow_origins }}
{{- $_ := set $file "allow_origins" . }}
{{- end }}
{{- if not (kindIs "invalid" $c.response_bytesize_limit) }}
{{- $_ := set $file "response_bytesize_limit" $c.response_bytesize_limit }}
{{- end }}
{{- $_ := set $file "uvicorn" (dict "host" "0.0.0.0" "port" .Values.api.containerPort) }}
{{- $_ := set $file "metrics" (dict "prometheus" true) }}
{{- $_ := set $file "tessera" $tessera }}
{{- toYaml $file }}
{{- end }}

{{/*
The chart's Secret, as a YAML mapping of base64 values: what the operator gave in plain text
(catalog URI, Redis URL) and the keys the chart makes (API key, token signing keys) where no
existingSecret names them. Made keys are read back from the live Secret, so they stay the same
for the life of the release (`helm template` cannot look, and makes new ones each time).
*/}}
{{- define "tessera.secretData" -}}
{{- $live := (lookup "v1" "Secret" .Release.Namespace (include "tessera.secretName" .)).data | default dict }}
{{- $data := dict }}
{{- if not .Values.postgresql.existingSecret }}
{{- $_ := set $data "database-uri" (.Values.postgresql.uri | b64enc) }}
{{- end }}
{{- if not .Values.redis.existingSecret }}
{{- $_ := set $data "redis-url" (.Values.redis.url | b64enc) }}
{{- end }}
{{- if and (not (include "tessera.multiUser" .)) (not .Values.auth.apiKey.existingSecret) }}
{{- $_ := set $data "api-key" (get $live "api-key" | default (randAlphaNum 40 | b64enc)) }}
{{- end }}
{{- if not .Values.auth.secretKeys.existingSecret }}
{{- range .Values.auth.secretKeys.keys }}
{{- $_ := set $data . (get $live . | default (randAlphaNum 64 | b64enc)) }}
{{- end }}
{{- end }}
{{- toYaml $data }}
{{- end }}

{{/*
The environment that fills config.yml's ${VAR}s, as a list of EnvVar. Every value comes from a
Secret: the operator's (existingSecret), or the one the chart keeps what was given in plain text
and the keys it made in. Called with (dict "ctx" $ "secret" NAME): NAME is the chart's Secret, or
the migration hook's copy of it.
*/}}
{{- define "tessera.secretEnv" -}}
{{- $v := .ctx.Values -}}
- name: CATALOG_DATABASE_URI
  valueFrom:
    secretKeyRef:
      {{- include "tessera.catalogUriRef" . | nindent 6 }}
{{- if include "tessera.multiUser" .ctx }}
- name: AUTH_DATABASE_URI
  valueFrom:
    secretKeyRef:
      {{- if $v.postgresql.authDatabase.existingSecret }}
      name: {{ $v.postgresql.authDatabase.existingSecret }}
      key: {{ $v.postgresql.authDatabase.existingSecretKey }}
      {{- else }}
      {{- include "tessera.catalogUriRef" . | nindent 6 }}
      {{- end }}
{{- end }}
{{ include "tessera.redisEnv" . }}
{{- include "tessera.apiKeyEnv" . }}
{{- range $i, $key := $v.auth.secretKeys.keys }}
- name: {{ printf "TOKEN_SIGNING_KEY_%d" $i }}
  valueFrom:
    secretKeyRef:
      name: {{ $v.auth.secretKeys.existingSecret | default $.secret }}
      key: {{ $key }}
{{- end }}
{{- end }}

{{/* The catalog URI's Secret and key: (dict "ctx" $ "secret" NAME). */}}
{{- define "tessera.catalogUriRef" -}}
{{- $pg := .ctx.Values.postgresql -}}
name: {{ $pg.existingSecret | default .secret }}
key: {{ ternary $pg.existingSecretKey "database-uri" (ne $pg.existingSecret "") }}
{{- end }}

{{- define "tessera.redisEnv" -}}
{{- $redis := .ctx.Values.redis -}}
- name: REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ $redis.existingSecret | default .secret }}
      key: {{ ternary $redis.existingSecretKey "redis-url" (ne $redis.existingSecret "") }}
{{- end }}

{{/* The single-user API key, when there are no login providers. */}}
{{- define "tessera.apiKeyEnv" -}}
{{- $key := .ctx.Values.auth.apiKey -}}
{{- if not (include "tessera.multiUser" .ctx) }}
- name: SINGLE_USER_API_KEY
  valueFrom:
    secretKeyRef:
      name: {{ $key.existingSecret | default .secret }}
      key: {{ ternary $key.existingSecretKey "api-key" (ne $key.existingSecret "") }}
{{- end }}
{{- end }}

{{/*
Workers use only the Redis URL (and bucket credentials, given in worker.extraEnv); they get the
API key too because tessera refuses a config whose single_user_api_key is left unexpanded.
*/}}
{{- define "tessera.workerEnv" -}}
{{ include "tessera.redisEnv" . }}
{{- include "tessera.apiKeyEnv" . }}
{{- end }}

{{/*
Volumes of the API nodes, workers and the migration Job: config, /tmp, shared storage, extras.
Called with (dict "ctx" $ "component" VALUES "config" CONFIGMAP).
*/}}
{{- define "tessera.volumes" -}}
- name: config
  configMap:
    name: {{ .config }}
- name: tmp
  emptyDir:
    sizeLimit: {{ .component.tmpSizeLimit | default "1Gi" }}
{{- range .ctx.Values.storage.volumes }}
- name: {{ .name }}
  {{- if .existingClaim }}
  persistentVolumeClaim:
    claimName: {{ .existingClaim }}
    readOnly: {{ .readOnly | default false }}
  {{- else }}
  {{- toYaml .volume | nindent 2 }}
  {{- end }}
{{- end }}
{{- with .component.extraVolumes }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "tessera.volumeMounts" -}}
- name: config
  mountPath: /etc/tessera
  readOnly: true
- name: tmp
  mountPath: /tmp
{{- range .ctx.Values.storage.volumes }}
- name: {{ .name }}
  mountPath: {{ .mountPath }}
  readOnly: {{ .readOnly | default false }}
{{- end }}
{{- with .component.extraVolumeMounts }}
{{ toYaml . }}
{{- end }}
{{- end }}
