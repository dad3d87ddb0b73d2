{{/*
The pod template of the Deployment and of the sharded StatefulSet: the base's pod
(deploy/base/deployment.yaml), plus POD_NAME with ha or sharding, the PostgreSQL password
with ha, and `--total-shards` with sharding.
*/}}
{{- define "dli-batch-monitor.podTemplate" -}}
metadata:
  labels:
    {{- include "dli-batch-monitor.selectorLabels" . | nindent 4 }}
    {{- with .Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    # A config change rolls the pod (the base's ConfigMap name carries a content hash instead).
    checksum/config: {{ include "dli-batch-monitor.configText" . | sha256sum }}
    {{- with .Values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "dli-batch-monitor.serviceAccountName" . }}
  automountServiceAccountToken: false
  # Above the config's shutdown_timeout: SIGTERM drains the running cycle and the deliveries
  # first, and the kubelet must not SIGKILL before that is done.
  terminationGracePeriodSeconds: {{ .Values.terminationGracePeriodSeconds }}
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  securityContext:
    {{- toYaml .Values.podSecurityContext | nindent 4 }}
  {{- if .Values.affinity }}
  affinity:
    {{- toYaml .Values.affinity | nindent 4 }}
  {{- else if .Values.ha.enabled }}
  affinity:
    podAntiAffinity:
      # Spread the leader and the standby over nodes when the cluster can; never block
      # scheduling on a one-node cluster.
      preferredDuringSchedulingIgnoredDuringExecution:
        - weight: 100
          podAffinityTerm:
            topologyKey: kubernetes.io/hostname
            labelSelector:
              matchLabels:
                {{- include "dli-batch-monitor.selectorLabels" . | nindent 16 }}
  {{- end }}
  {{- with .Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  containers:
    - name: monitor
      image: {{ include "dli-batch-monitor.image" . }}
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      # Exec form through the image's ENTRYPOINT ["dli-monitor"]: Python is PID 1 and gets SIGTERM.
      args:
        - --log-format
        - {{ .Values.logFormat }}
        - run
        - --config
        - /etc/dli-monitor/config.yaml
        {{- if .Values.sharding.enabled }}
        # The shard is the ordinal in POD_NAME (<fullname>-0 owns shard 0).
        - --total-shards
        - {{ .Values.sharding.shards | quote }}
        {{- end }}
        {{- range .Values.extraArgs }}
        - {{ . | quote }}
        {{- end }}
      {{- if or .Values.ha.enabled .Values.sharding.enabled .Values.extraEnv }}
      env:
        {{- if or .Values.ha.enabled .Values.sharding.enabled }}
        # The lease holder id (ha) or the shard ordinal (sharding).
        - name: POD_NAME
          valueFrom:
            fieldRef:
              fieldPath: metadata.name
        {{- end }}
        {{- with .Values.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- end }}
      ports:
        - name: metrics
          containerPort: {{ include "dli-batch-monitor.metricsPort" . }}
          protocol: TCP
      livenessProbe:
        {{- toYaml .Values.livenessProbe | nindent 8 }}
      readinessProbe:
        {{- toYaml .Values.readinessProbe | nindent 8 }}
      resources:
        {{- toYaml .Values.resources | nindent 8 }}
      securityContext:
        {{- toYaml .Values.securityContext | nindent 8 }}
      volumeMounts:
        - name: config
          mountPath: /etc/dli-monitor
          readOnly: true
        - name: credentials
          mountPath: /var/run/secrets/dli-monitor
          readOnly: true
        {{- if not .Values.ha.enabled }}
        - name: state
          mountPath: /var/lib/dli-monitor
        {{- end }}
        - name: tmp
          mountPath: /tmp
        {{- if .Values.ha.enabled }}
        - name: postgres
          mountPath: {{ include "dli-batch-monitor.postgresMount" . }}
          readOnly: true
        {{- end }}
        {{- with .Values.extraVolumeMounts }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
  volumes:
    - name: config
      configMap:
        name: {{ include "dli-batch-monitor.fullname" . }}-config
    - name: credentials
      secret:
        secretName: {{ include "dli-batch-monitor.credentialsSecretName" . }}
        defaultMode: 0440
    {{- if .Values.ha.enabled }}
    {{- /* State lives in PostgreSQL: no state volume. */}}
    {{- else if not .Values.persistence.enabled }}
    # No claim: every restart begins with a silent baseline.
    - name: state
      emptyDir: {}
    {{- else if .Values.sharding.enabled }}
    # `state` is a claim per pod: see volumeClaimTemplates.
    {{- else }}
    - name: state
      persistentVolumeClaim:
        claimName: {{ .Values.persistence.existingClaim | default (printf "%s-state" (include "dli-batch-monitor.fullname" .)) }}
    {{- end }}
    - name: tmp
      emptyDir:
        sizeLimit: {{ .Values.tmpSizeLimit }}
    {{- if .Values.ha.enabled }}
    - name: postgres
      secret:
        secretName: {{ .Values.ha.postgres.existingSecret }}
        defaultMode: 0440
    {{- end }}
    {{- with .Values.extraVolumes }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
{{- end }}
