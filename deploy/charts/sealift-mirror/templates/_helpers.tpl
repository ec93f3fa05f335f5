{{- define "sealift-mirror.fullname" -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "sealift-mirror.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "sealift-mirror.configMapName" -}}
{{- .Values.imagelist.existingConfigMap | default (printf "%s-imagelist" (include "sealift-mirror.fullname" .)) -}}
{{- end -}}

{{/* The Indexed Job's spec, the same for a Job and a CronJob's jobTemplate. */}}
{{- define "sealift-mirror.jobSpec" -}}
{{- $shards := int .Values.shards -}}
{{- if lt $shards 1 }}{{ fail "shards must be at least 1" }}{{ end -}}
{{- if not .Values.mirror.to }}{{ fail "mirror.to (the target registry HOST:PORT) is required" }}{{ end -}}
completionMode: Indexed
completions: {{ $shards }}
parallelism: {{ $shards }}
backoffLimitPerIndex: {{ int .Values.backoffLimitPerIndex }}
{{- with .Values.maxFailedIndexes }}
maxFailedIndexes: {{ int . }}
{{- end }}
{{- with .Values.activeDeadlineSeconds }}
activeDeadlineSeconds: {{ int . }}
{{- end }}
{{- with .Values.ttlSecondsAfterFinished }}
ttlSecondsAfterFinished: {{ int . }}
{{- end }}
template:
  metadata:
    labels:
      {{- include "sealift-mirror.labels" . | nindent 6 }}
    {{- with .Values.podAnnotations }}
    annotations:
      {{- toYaml . | nindent 6 }}
    {{- end }}
  spec:
    restartPolicy: Never
    automountServiceAccountToken: false
    {{- with .Values.imagePullSecrets }}
    imagePullSecrets:
      {{- toYaml . | nindent 6 }}
    {{- end }}
    # the sealift image's user (src/container-image IMAGE_USER)
    securityContext:
      runAsNonRoot: true
      runAsUser: 65532
      runAsGroup: 65532
      fsGroup: 65532
      seccompProfile:
        type: RuntimeDefault
    containers:
      - name: mirror
        image: "{{ .Values.image.registry }}/{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}"
        imagePullPolicy: {{ .Values.image.pullPolicy }}
        command: [{{ .Values.image.command | quote }}]
        # the shard index comes from JOB_COMPLETION_INDEX, which the Indexed Job sets
        args:
          - mirror
          - --imagelist
          - /config/{{ .Values.imagelist.fileName }}
          - --to
          - {{ .Values.mirror.to | quote }}
          - --shards
          - {{ $shards | quote }}
          - --scheme
          - {{ .Values.mirror.scheme | quote }}
          - --concurrency
          - {{ .Values.mirror.concurrency | quote }}
          {{- if .Values.mirror.plainHttp }}
          - --plain-http
          - {{ .Values.mirror.to | quote }}
          {{- end }}
          {{- range .Values.mirror.sourcePlainHttp }}
          - --plain-http
          - {{ . | quote }}
          {{- end }}
          {{- range .Values.mirror.extraArgs }}
          - {{ . | quote }}
          {{- end }}
          - --json
        env:
          - name: DOCKER_CONFIG
            value: /docker
          - name: SEALIFT_CACHE_DIR
            value: /tmp/sealift-cache
          - name: HOME
            value: /tmp
        securityContext:
          allowPrivilegeEscalation: false
          readOnlyRootFilesystem: true
          runAsNonRoot: true
          capabilities:
            drop: [ALL]
        resources:
          {{- toYaml .Values.resources | nindent 10 }}
        volumeMounts:
          - name: imagelist
            mountPath: /config
            readOnly: true
          - name: tmp
            mountPath: /tmp
          {{- if .Values.credentials.secretName }}
          - name: docker-config
            mountPath: /docker
            readOnly: true
          {{- end }}
    volumes:
      - name: imagelist
        configMap:
          name: {{ include "sealift-mirror.configMapName" . }}
      - name: tmp
        emptyDir: {}
      {{- if .Values.credentials.secretName }}
      - name: docker-config
        secret:
          secretName: {{ .Values.credentials.secretName }}
          items:
            - key: {{ .Values.credentials.key }}
              path: config.json
      {{- end }}
    {{- with .Values.nodeSelector }}
    nodeSelector:
      {{- toYaml . | nindent 6 }}
    {{- end }}
    {{- with .Values.tolerations }}
    tolerations:
      {{- toYaml . | nindent 6 }}
    {{- end }}
    {{- with .Values.affinity }}
    affinity:
      {{- toYaml . | nindent 6 }}
    {{- end }}
{{- end -}}
