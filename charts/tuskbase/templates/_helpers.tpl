{{/* Names and labels. */}}
{{- define "tuskbase.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "tuskbase.fullname" -}}
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

{{- define "tuskbase.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "tuskbase.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tuskbase.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "tuskbase.labels" -}}
helm.sh/chart: {{ include "tuskbase.chart" . }}
{{ include "tuskbase.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: tuskbase
{{- end }}

{{- define "tuskbase.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* The Secret holding the secret settings: the user's own, or the one this chart makes. */}}
{{- define "tuskbase.secretName" -}}
{{- default (include "tuskbase.fullname" .) .Values.existingSecret }}
{{- end }}

{{/*
A setting's value as the string the process reads. Helm reads every number of the values as a float, and
prints 2097152 as "2.097152e+06", which no whole-number setting accepts: whole numbers are printed as such.
*/}}
{{- define "tuskbase.settingValue" -}}
{{- if and (kindIs "float64" .) (eq (float64 .) (floor .)) }}
{{- . | int64 | toString }}
{{- else }}
{{- toString . }}
{{- end }}
{{- end }}

{{/* ConfigMap data: every non-secret setting, as strings. */}}
{{- define "tuskbase.configData" -}}
{{- range $key, $value := .Values.config }}
{{ $key }}: {{ include "tuskbase.settingValue" $value | quote }}
{{- end }}
{{- end }}

{{/* Secret data: the secret settings, base64. The three the processes cannot do without are required. */}}
{{- define "tuskbase.secretData" -}}
{{- $secrets := .Values.secrets | default dict }}
{{- range $key := list "TUSKBASE_DATABASE_URL" "TUSKBASE_JWT_SECRET" "TUSKBASE_AUTHENTICATOR_PASSWORD" }}
{{- $_ := required (printf "secrets.%s is required (or set existingSecret): see values.yaml" $key) (get $secrets $key) }}
{{- end }}
{{- range $key, $value := $secrets }}
{{ $key }}: {{ include "tuskbase.settingValue" $value | b64enc | quote }}
{{- end }}
{{- end }}

{{/* Annotations that roll the pods when a setting changes. */}}
{{- define "tuskbase.checksums" -}}
checksum/config: {{ include "tuskbase.configData" . | sha256sum }}
{{- if not .Values.existingSecret }}
checksum/secret: {{ include "tuskbase.secretData" . | sha256sum }}
{{- end }}
{{- end }}

{{/*
The secrets each component needs, and no other: a container sees only the keys of the Secret it references
(kubelet resolves them), so the API never holds the superuser's password and only the API holds the JWT
secret. The same split as docker-compose.yml. Keys marked optional may be absent from the Secret.
*/}}
{{- define "tuskbase.neededSecrets" -}}
{{- $needed := dict
  "migrate" (list "TUSKBASE_DATABASE_URL" "TUSKBASE_AUTHENTICATOR_PASSWORD")
  "api" (list "TUSKBASE_AUTHENTICATOR_PASSWORD" "TUSKBASE_JWT_SECRET" "TUSKBASE_BROKER_URL?")
  "worker" (list "TUSKBASE_DATABASE_URL" "TUSKBASE_BROKER_URL?")
  "feed" (list "TUSKBASE_DATABASE_URL") }}
{{- $keys := get $needed .component }}
{{- /* Further secret settings (SMTP, OIDC providers, a private signing key) are the API's. */ -}}
{{- if eq .component "api" }}
{{- range $key, $_ := (.root.Values.secrets | default dict) }}
{{- if not (has $key (list "TUSKBASE_DATABASE_URL" "TUSKBASE_AUTHENTICATOR_PASSWORD" "TUSKBASE_JWT_SECRET" "TUSKBASE_BROKER_URL")) }}
{{- $keys = append $keys (printf "%s?" $key) }}
{{- end }}
{{- end }}
{{- end }}
{{- range (get (.root.Values.extraSecretKeys | default dict) .component | default list) }}
{{- $keys = append $keys (printf "%s?" .) }}
{{- end }}
{{- $keys | uniq | toJson }}
{{- end }}

{{/* The API's database URL: the superuser's without its password (the API logs in as `authenticator`, whose
password it gets on its own). */}}
{{- define "tuskbase.apiDatabaseUrl" -}}
{{- if .Values.api.databaseUrl }}
{{- .Values.api.databaseUrl }}
{{- else }}
{{- $url := required "api.databaseUrl is required with existingSecret: the database URL without a password" (get (.Values.secrets | default dict) "TUSKBASE_DATABASE_URL") }}
{{- $parts := urlParse $url }}
{{- urlJoin (dict "scheme" $parts.scheme "host" $parts.host "path" $parts.path "query" $parts.query "userinfo" (splitList ":" $parts.userinfo | first)) }}
{{- end }}
{{- end }}

{{- define "tuskbase.secretEnv" -}}
{{- $secretName := .secretName }}
{{- range $entry := include "tuskbase.neededSecrets" . | fromJsonArray }}
- name: {{ trimSuffix "?" $entry }}
  valueFrom:
    secretKeyRef:
      name: {{ $secretName }}
      key: {{ trimSuffix "?" $entry }}
      {{- if hasSuffix "?" $entry }}
      optional: true
      {{- end }}
{{- end }}
{{- if eq .component "api" }}
- name: TUSKBASE_DATABASE_URL
  value: {{ include "tuskbase.apiDatabaseUrl" .root | quote }}
{{- end }}
{{- end }}

{{/*
Environment of every Tuskbase container. Arguments: (dict "root" $ "component" "api" "configName" NAME
"secretName" NAME). Values set by the chart come after envFrom, so they win over the same key in `config`.
*/}}
{{- define "tuskbase.env" -}}
{{- $root := .root }}
envFrom:
  - configMapRef:
      name: {{ .configName }}
env:
  {{- include "tuskbase.secretEnv" . | nindent 2 }}
  - name: TUSKBASE_DATA_DIR
    value: /var/lib/tuskbase
  {{- with $root.Values.app.dir }}
  - name: TUSKBASE_APP_DIR
    value: {{ . | quote }}
  {{- end }}
  {{- if eq .component "api" }}
  - name: TUSKBASE_HOST
    value: "0.0.0.0"
  - name: TUSKBASE_PORT
    value: {{ include "tuskbase.settingValue" $root.Values.api.port | quote }}
  - name: TUSKBASE_WORKERS
    value: {{ include "tuskbase.settingValue" $root.Values.api.workers | quote }}
  {{- end }}
  {{- if eq .component "worker" }}
  - name: TUSKBASE_WORKER_PROCESSES
    value: {{ include "tuskbase.settingValue" $root.Values.worker.processes | quote }}
  - name: TUSKBASE_WORKER_THREADS
    value: {{ include "tuskbase.settingValue" $root.Values.worker.threads | quote }}
  {{- end }}
  {{- with $root.Values.extraEnv }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end }}

{{/* Writable folders of a container whose root filesystem is read-only. */}}
{{- define "tuskbase.volumeMounts" -}}
volumeMounts:
  - name: tmp
    mountPath: /tmp
  - name: data
    mountPath: /var/lib/tuskbase
  {{- with .Values.extraVolumeMounts }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end }}

{{- define "tuskbase.volumes" -}}
volumes:
  - name: tmp
    emptyDir: {}
  - name: data
    emptyDir: {}
  {{- with .Values.extraVolumes }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end }}

{{/* Pod-level fields every pod shares. */}}
{{- define "tuskbase.podCommon" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- range . }}
  - name: {{ . }}
  {{- end }}
{{- end }}
{{- with .Values.serviceAccountName }}
serviceAccountName: {{ . }}
{{- end }}
automountServiceAccountToken: false
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* Name of one component's objects: <fullname>-<component>, within the 63 characters of a name. */}}
{{- define "tuskbase.componentName" -}}
{{- printf "%s-%s" (include "tuskbase.fullname" .root | trunc 55 | trimSuffix "-") .component }}
{{- end }}
