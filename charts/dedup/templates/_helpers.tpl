{{/* Names, labels and the values every object shares. */}}

{{- define "dedup.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "dedup.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "dedup.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels of every object; the component goes in "dedup.componentLabels". */}}
{{- define "dedup.labels" -}}
helm.sh/chart: {{ include "dedup.chart" . }}
app.kubernetes.io/name: {{ include "dedup.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: dedup
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "dedup.selectorLabels" -}}
app.kubernetes.io/name: {{ include "dedup.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Called with (dict "root" $ "component" "hasher"). */}}
{{- define "dedup.componentLabels" -}}
{{ include "dedup.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "dedup.componentSelectorLabels" -}}
{{ include "dedup.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "dedup.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "dedup.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The image of a service: (dict "root" $ "name" "hasher" "svc" $svc). */}}
{{- define "dedup.image" -}}
{{- $img := .root.Values.image -}}
{{- $own := default dict .svc.image -}}
{{- $repo := default (printf "%s/%s" $img.repository .name) $own.repository -}}
{{- $digest := default $img.digest $own.digest -}}
{{- if $digest -}}
{{- printf "%s@%s" $repo $digest -}}
{{- else -}}
{{- printf "%s:%s" $repo (default (default .root.Chart.AppVersion $img.tag) $own.tag) -}}
{{- end -}}
{{- end -}}

{{- define "dedup.tritonName" -}}
{{- printf "%s-triton" (include "dedup.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "dedup.tritonUrl" -}}
{{- if .Values.triton.url -}}
{{- .Values.triton.url -}}
{{- else if .Values.triton.enabled -}}
{{- printf "%s:8001" (include "dedup.tritonName" .) -}}
{{- end -}}
{{- end -}}

{{- define "dedup.milvusUri" -}}
{{- if .Values.milvus.uri -}}
{{- .Values.milvus.uri -}}
{{- else if .Values.milvus.enabled -}}
{{- printf "http://%s-milvus:19530" .Release.Name -}}
{{- end -}}
{{- end -}}

{{- define "dedup.kafkaSasl" -}}
{{- if eq .Values.kafka.security.protocol "SASL_SSL" -}}true{{- end -}}
{{- end -}}

{{/* Checks of combinations the schema cannot express well; fail with a clear message. */}}
{{- define "dedup.validate" -}}
{{- if include "dedup.kafkaSasl" . -}}
{{- $pw := .Values.kafka.security.sasl.passwordSecret -}}
{{- if not (and $pw.name $pw.key) -}}
{{- fail "kafka.security.protocol SASL_SSL needs kafka.security.sasl.passwordSecret.name and .key (an existing Secret; for Event Hubs the namespace connection string)" -}}
{{- end -}}
{{- end -}}
{{- if and .Values.workloadIdentity.enabled (not .Values.workloadIdentity.clientId) -}}
{{- fail "workloadIdentity.enabled needs workloadIdentity.clientId (the managed identity's client id)" -}}
{{- end -}}
{{- if and .Values.workloadIdentity.enabled (not .Values.serviceAccount.create) (not .Values.serviceAccount.name) -}}
{{- fail "workloadIdentity.enabled with serviceAccount.create=false needs serviceAccount.name (an annotated ServiceAccount)" -}}
{{- end -}}
{{- if and .Values.blob.accountUrl .Values.blob.connectionStringSecret.name -}}
{{- fail "set either blob.accountUrl (workload identity) or blob.connectionStringSecret, not both" -}}
{{- end -}}
{{- if and .Values.triton.enabled (eq .Values.triton.modelRepository.source "image") (not .Values.triton.modelRepository.image.repository) -}}
{{- fail "triton.modelRepository.source=image needs triton.modelRepository.image.repository" -}}
{{- end -}}
{{- if and .Values.triton.enabled (eq .Values.triton.modelRepository.source "pvc") (not .Values.triton.modelRepository.pvc.claimName) (not .Values.triton.modelRepository.pvc.create) -}}
{{- fail "triton.modelRepository.source=pvc needs triton.modelRepository.pvc.claimName or .create=true" -}}
{{- end -}}
{{- range $name, $svc := .Values.services -}}
{{- if $svc.enabled -}}
{{- $grace := int (default $.Values.terminationGracePeriodSeconds $svc.terminationGracePeriodSeconds) -}}
{{- $shutdown := int (default $.Values.shutdownTimeoutSeconds $svc.shutdownTimeoutSeconds) -}}
{{- if le $grace $shutdown -}}
{{- fail (printf "services.%s: terminationGracePeriodSeconds (%d) must be longer than shutdownTimeoutSeconds (%d), the longest batch" $name $grace $shutdown) -}}
{{- end -}}
{{- if and $svc.autoscaling.enabled (lt (int $svc.autoscaling.maxReplicas) (int $svc.autoscaling.minReplicas)) -}}
{{- fail (printf "services.%s.autoscaling: maxReplicas < minReplicas" $name) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* A setting as a string; whole numbers stay whole (YAML numbers arrive as float64). */}}
{{- define "dedup.settingValue" -}}
{{- if and (kindIs "float64" .) (eq . (floor .)) -}}
{{- int64 . -}}
{{- else -}}
{{- toString . -}}
{{- end -}}
{{- end -}}

{{/*
The environment of a service container: (dict "root" $ "name" "hasher" "svc" $svc).
Every setting is DEDUP_<SERVICE>_<KEY>. Plain settings are merged (shared ones first, the
service's own last); a key that also comes from a Secret is only taken from the Secret.
*/}}
{{- define "dedup.env" -}}
{{- $root := .root -}}
{{- $v := $root.Values -}}
{{- $prefix := printf "DEDUP_%s_" (upper .name) -}}
{{- $plain := dict -}}
{{- $_ := set $plain "HTTP_HOST" "0.0.0.0" -}}
{{- $_ := set $plain "HTTP_PORT" ($v.httpPort | toString) -}}
{{- $_ := set $plain "LOG_LEVEL" $v.logLevel -}}
{{- $_ := set $plain "SHUTDOWN_TIMEOUT_SECONDS" (default $v.shutdownTimeoutSeconds .svc.shutdownTimeoutSeconds | toString) -}}
{{- $_ := set $plain "KAFKA_BOOTSTRAP_SERVERS" $v.kafka.bootstrapServers -}}
{{- $_ := set $plain "KAFKA_SECURITY_PROTOCOL" $v.kafka.security.protocol -}}
{{- $_ := set $plain "KAFKA_CREATE_TOPICS" ($v.kafka.createTopics | toString) -}}
{{- with .svc.topic -}}
{{- $_ := set $plain "INPUT_TOPIC" . -}}
{{- end -}}
{{- $secret := dict -}}
{{- if include "dedup.kafkaSasl" $root -}}
{{- $_ := set $plain "KAFKA_SASL_MECHANISM" $v.kafka.security.sasl.mechanism -}}
{{- $_ := set $plain "KAFKA_SASL_USERNAME" $v.kafka.security.sasl.username -}}
{{- $_ := set $secret "KAFKA_SASL_PASSWORD" $v.kafka.security.sasl.passwordSecret -}}
{{- end -}}
{{- with include "dedup.milvusUri" $root -}}
{{- $_ := set $plain "MILVUS_URI" . -}}
{{- end -}}
{{- if $v.milvus.tokenSecret.name -}}
{{- $_ := set $secret "MILVUS_TOKEN" $v.milvus.tokenSecret -}}
{{- end -}}
{{- if $v.blob.accountUrl -}}
{{- $_ := set $plain "BLOB_ACCOUNT_URL" $v.blob.accountUrl -}}
{{- end -}}
{{- if $v.blob.connectionStringSecret.name -}}
{{- $_ := set $secret "BLOB_CONNECTION_STRING" $v.blob.connectionStringSecret -}}
{{- end -}}
{{- if eq .name "embedder" -}}
{{- with include "dedup.tritonUrl" $root -}}
{{- $_ := set $plain "TRITON_URL" . -}}
{{- end -}}
{{- with $v.triton.model -}}
{{- $_ := set $plain "TRITON_MODEL" . -}}
{{- end -}}
{{- end -}}
{{- range $key, $value := $v.commonSettings -}}
{{- $_ := set $plain $key (include "dedup.settingValue" $value) -}}
{{- end -}}
{{- range $key, $value := (default dict .svc.settings) -}}
{{- $_ := set $plain $key (include "dedup.settingValue" $value) -}}
{{- end -}}
{{- range $key, $ref := $v.commonSecretSettings -}}
{{- $_ := set $secret $key $ref -}}
{{- end -}}
{{- range $key, $ref := (default dict .svc.secretSettings) -}}
{{- $_ := set $secret $key $ref -}}
{{- end -}}
{{- range $key := keys $plain | sortAlpha -}}
{{- if not (hasKey $secret $key) }}
- name: {{ printf "%s%s" $prefix $key }}
  value: {{ get $plain $key | quote }}
{{- end -}}
{{- end -}}
{{- range $key := keys $secret | sortAlpha -}}
{{- $ref := get $secret $key }}
- name: {{ printf "%s%s" $prefix $key }}
  valueFrom:
    secretKeyRef:
      name: {{ $ref.name }}
      key: {{ $ref.key }}
{{- end -}}
{{- with $v.extraEnv }}
{{ toYaml . }}
{{- end -}}
{{- with .svc.extraEnv }}
{{ toYaml . }}
{{- end -}}
{{- end -}}
