{{/*
The objects of one service, each called with
  (dict "root" $ "name" "hasher" "svc" $svc "fullname" "<release>-dedup-hasher")
from templates/services.yaml (the OpenTelemetry demo chart's pattern: one map of
components, one loop, one set of object templates).
*/}}

{{/* How a service scales: "keda", "hpa" or "" (fixed replicas). */}}
{{- define "dedup.scaler" -}}
{{- if .svc.autoscaling.enabled -}}
{{- if .root.Values.keda.enabled -}}keda
{{- else if gt (int .svc.autoscaling.targetCPUUtilizationPercentage) 0 -}}hpa
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "dedup.deployment" -}}
{{- $root := .root -}}
{{- $v := $root.Values -}}
{{- $svc := .svc -}}
{{- $ctx := dict "root" $root "component" .name -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .fullname }}
  labels:
    {{- include "dedup.componentLabels" $ctx | nindent 4 }}
spec:
  {{- if not (include "dedup.scaler" .) }}
  replicas: {{ $svc.replicas }}
  {{- end }}
  revisionHistoryLimit: 5
  strategy:
    {{- if eq ($svc.strategy | default "RollingUpdate") "Recreate" }}
    type: Recreate
    {{- else }}
    type: RollingUpdate
    rollingUpdate:
      maxSurge: 25%
      maxUnavailable: 0
    {{- end }}
  selector:
    matchLabels:
      {{- include "dedup.componentSelectorLabels" $ctx | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "dedup.componentLabels" $ctx | nindent 8 }}
        {{- if $v.workloadIdentity.enabled }}
        azure.workload.identity/use: "true"
        {{- end }}
        {{- with $v.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      annotations:
        prometheus.io/scrape: "true"
        prometheus.io/port: {{ $v.httpPort | quote }}
        prometheus.io/path: /metrics
        {{- with $v.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
        {{- with $svc.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      serviceAccountName: {{ include "dedup.serviceAccountName" $root }}
      # The services do not call the Kubernetes API; the workload identity webhook mounts
      # its own token.
      automountServiceAccountToken: false
      enableServiceLinks: false
      terminationGracePeriodSeconds: {{ default $v.terminationGracePeriodSeconds $svc.terminationGracePeriodSeconds }}
      {{- with $v.priorityClassName }}
      priorityClassName: {{ . }}
      {{- end }}
      {{- with $v.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      securityContext:
        {{- toYaml $v.podSecurityContext | nindent 8 }}
      containers:
        - name: {{ .name }}
          image: {{ include "dedup.image" . }}
          imagePullPolicy: {{ $v.image.pullPolicy }}
          env:
            {{- include "dedup.env" . | trim | nindent 12 }}
          ports:
            - name: http
              containerPort: {{ $v.httpPort }}
              protocol: TCP
          startupProbe:
            httpGet:
              path: /healthz
              port: http
            {{- toYaml $v.probes.startup | nindent 12 }}
          livenessProbe:
            httpGet:
              path: /healthz
              port: http
            {{- toYaml $v.probes.liveness | nindent 12 }}
          readinessProbe:
            httpGet:
              path: /readyz
              port: http
            {{- toYaml $v.probes.readiness | nindent 12 }}
          resources:
            {{- toYaml $svc.resources | nindent 12 }}
          securityContext:
            {{- toYaml $v.containerSecurityContext | nindent 12 }}
          volumeMounts:
            - name: tmp
              mountPath: /tmp
      volumes:
        - name: tmp
          emptyDir:
            sizeLimit: {{ default $v.tmpSizeLimit $svc.tmpSizeLimit }}
      {{- with (default $v.nodeSelector $svc.nodeSelector) }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with (default $v.tolerations $svc.tolerations) }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with (default $v.affinity $svc.affinity) }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- if $v.topologySpread }}
      topologySpreadConstraints:
        - maxSkew: 1
          topologyKey: kubernetes.io/hostname
          whenUnsatisfiable: ScheduleAnyway
          labelSelector:
            matchLabels:
              {{- include "dedup.componentSelectorLabels" $ctx | nindent 14 }}
      {{- end }}
{{- end -}}

{{- define "dedup.service" -}}
{{- $ctx := dict "root" .root "component" .name -}}
apiVersion: v1
kind: Service
metadata:
  name: {{ .fullname }}
  labels:
    {{- include "dedup.componentLabels" $ctx | nindent 4 }}
spec:
  type: ClusterIP
  selector:
    {{- include "dedup.componentSelectorLabels" $ctx | nindent 4 }}
  ports:
    - name: http
      port: {{ .root.Values.httpPort }}
      targetPort: http
      protocol: TCP
{{- end -}}

{{- define "dedup.pdb" -}}
{{- $ctx := dict "root" .root "component" .name -}}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ .fullname }}
  labels:
    {{- include "dedup.componentLabels" $ctx | nindent 4 }}
spec:
  {{- if hasKey .svc.pdb "minAvailable" }}
  minAvailable: {{ .svc.pdb.minAvailable }}
  {{- else }}
  maxUnavailable: {{ default 1 .svc.pdb.maxUnavailable }}
  {{- end }}
  selector:
    matchLabels:
      {{- include "dedup.componentSelectorLabels" $ctx | nindent 6 }}
{{- end -}}

{{- define "dedup.serviceMonitor" -}}
{{- $v := .root.Values -}}
{{- $ctx := dict "root" .root "component" .name -}}
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata:
  name: {{ .fullname }}
  labels:
    {{- include "dedup.componentLabels" $ctx | nindent 4 }}
    {{- with $v.serviceMonitor.labels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  selector:
    matchLabels:
      {{- include "dedup.componentSelectorLabels" $ctx | nindent 6 }}
  namespaceSelector:
    matchNames:
      - {{ .root.Release.Namespace }}
  endpoints:
    - port: http
      path: /metrics
      interval: {{ $v.serviceMonitor.interval }}
      scrapeTimeout: {{ $v.serviceMonitor.scrapeTimeout }}
      # The services label their metrics with `service` (the short name, e.g. hasher);
      # without honorLabels the operator's own `service` target label (the Kubernetes
      # Service name) would win and rename ours to exported_service.
      honorLabels: true
{{- end -}}

{{- define "dedup.hpa" -}}
{{- $ctx := dict "root" .root "component" .name -}}
{{- $as := .svc.autoscaling -}}
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ .fullname }}
  labels:
    {{- include "dedup.componentLabels" $ctx | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ .fullname }}
  minReplicas: {{ $as.minReplicas }}
  maxReplicas: {{ $as.maxReplicas }}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ $as.targetCPUUtilizationPercentage }}
  behavior:
    scaleDown:
      # A rebalance of the consumer group costs more than a few idle minutes.
      stabilizationWindowSeconds: 300
{{- end -}}

{{- define "dedup.scaledObject" -}}
{{- $v := .root.Values -}}
{{- $ctx := dict "root" .root "component" .name -}}
{{- $as := .svc.autoscaling -}}
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata:
  name: {{ .fullname }}
  labels:
    {{- include "dedup.componentLabels" $ctx | nindent 4 }}
spec:
  scaleTargetRef:
    name: {{ .fullname }}
  minReplicaCount: {{ $as.minReplicas }}
  maxReplicaCount: {{ $as.maxReplicas }}
  pollingInterval: {{ $v.keda.pollingInterval }}
  cooldownPeriod: {{ $v.keda.cooldownPeriod }}
  advanced:
    horizontalPodAutoscalerConfig:
      behavior:
        scaleDown:
          stabilizationWindowSeconds: 300
  triggers:
    {{- if .svc.topic }}
    # Lag of consumer group "{{ .name }}" on {{ .svc.topic }}: one replica per
    # lagThreshold messages, capped at the partition count unless allowIdleConsumers.
    - type: kafka
      metadata:
        bootstrapServers: {{ $v.kafka.bootstrapServers | quote }}
        consumerGroup: {{ .name | quote }}
        topic: {{ .svc.topic | quote }}
        lagThreshold: {{ $as.lagThreshold | quote }}
        activationLagThreshold: {{ $v.keda.activationLagThreshold | quote }}
        offsetResetPolicy: {{ $v.keda.offsetResetPolicy | quote }}
        allowIdleConsumers: {{ $v.keda.allowIdleConsumers | quote }}
        {{- if include "dedup.kafkaSasl" .root }}
        sasl: {{ get (dict "PLAIN" "plaintext" "SCRAM-SHA-256" "scram_sha256" "SCRAM-SHA-512" "scram_sha512") $v.kafka.security.sasl.mechanism | quote }}
        tls: "enable"
        {{- end }}
      {{- if include "dedup.kafkaSasl" .root }}
      authenticationRef:
        name: {{ include "dedup.fullname" .root }}-kafka
      {{- end }}
    {{- else }}
    # No Kafka input topic (the Event Hub consumer): scale on CPU.
    - type: cpu
      metricType: Utilization
      metadata:
        value: {{ $as.targetCPUUtilizationPercentage | quote }}
    {{- end }}
{{- end -}}
