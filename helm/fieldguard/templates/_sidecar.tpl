{{/*
The sidecar, as named templates a Deployment includes: its own (the example
release, templates/example/deployment.yaml) or yours. From your chart, with
fieldguard as a dependency:

  {{- $fg := dict "Values" .Values.fieldguard "Release" .Release "Capabilities" .Capabilities }}
  spec:
    template:
      metadata:
        annotations:
          {{- include "fieldguard.podAnnotations" $fg | nindent 10 }}
      spec:
        automountServiceAccountToken: false
        terminationGracePeriodSeconds: {{ include "fieldguard.terminationGracePeriodSeconds" $fg }}
        {{- with include "fieldguard.initContainers" $fg }}
        initContainers:
          {{- . | nindent 10 }}
        {{- end }}
        containers:
          {{- include "fieldguard.containers" $fg | nindent 10 }}
          - name: my-api   # listening on 127.0.0.1:<app.port> only
        volumes:
          {{- include "fieldguard.volumes" $fg | nindent 10 }}

The README ("Add fieldguard to your Deployment") explains each line.
*/}}

{{/* Where the chart mounts things inside the fieldguard container. */}}
{{- define "fieldguard.configDir" -}}/etc/fieldguard/config{{- end -}}
{{- define "fieldguard.configPath" -}}{{ include "fieldguard.configDir" . }}/fieldguard.yaml{{- end -}}
{{- define "fieldguard.policiesDir" -}}
{{- if .Values.policies.existingConfigMap -}}/etc/fieldguard/policies{{- else -}}{{ include "fieldguard.configDir" . }}{{- end -}}
{{- end -}}

{{/*
native or container: how the sidecar is added. auto picks a native sidecar
(an init container with restartPolicy: Always, which starts before the app
and stops after it) where the cluster has them (>= 1.29).
*/}}
{{- define "fieldguard.sidecarMode" -}}
{{- $version := "" -}}
{{- with .Capabilities -}}{{- $version = .KubeVersion.Version -}}{{- end -}}
{{- if not $version -}}
{{- fail "fieldguard templates need .Capabilities: include them with (dict \"Values\" .Values.fieldguard \"Release\" .Release \"Capabilities\" .Capabilities)" -}}
{{- end -}}
{{- $native := semverCompare ">=1.29.0-0" $version -}}
{{- $mode := .Values.sidecar.mode -}}
{{- if eq $mode "auto" -}}
{{- ternary "native" "container" $native -}}
{{- else if and (eq $mode "native") (not $native) -}}
{{- fail (printf "sidecar.mode native needs Kubernetes >= 1.29 (native sidecars); this cluster is %s: use sidecar.mode auto or container" $version) -}}
{{- else -}}
{{- $mode -}}
{{- end -}}
{{- end -}}

{{/* Name of the container port clients reach: your Service's targetPort. */}}
{{- define "fieldguard.proxyPortName" -}}{{ .Values.proxy.portName }}{{- end -}}

{{/*
Termination grace: the preStop sleep, then limits.shutdown_grace_ms for
requests in flight, then audit.shutdown_timeout_ms to drain the audit queue
(fieldguard's defaults 20 s and 10 s when the config does not set them).
*/}}
{{- define "fieldguard.terminationGracePeriodSeconds" -}}
{{- if not (kindIs "invalid" .Values.terminationGracePeriodSeconds) -}}
{{- .Values.terminationGracePeriodSeconds -}}
{{- else -}}
{{- $cfg := dict -}}
{{- if .Values.config.file -}}{{- $cfg = fromYaml .Values.config.file -}}{{- end -}}
{{- $grace := 20000 -}}
{{- $drain := 10000 -}}
{{- with $cfg.limits -}}{{- with .shutdown_grace_ms -}}{{- $grace = . -}}{{- end -}}{{- end -}}
{{- with $cfg.audit -}}{{- with .shutdown_timeout_ms -}}{{- $drain = . -}}{{- end -}}{{- end -}}
{{- add .Values.lifecycle.preStopSleepSeconds (div (add $grace 999) 1000) (div (add $drain 999) 1000) -}}
{{- end -}}
{{- end -}}

{{/*
Pod template annotations: Prometheus scrape annotations, and the optional
checksum of the config and policy values (config.rolloutOnChange).
*/}}
{{- define "fieldguard.podAnnotations" -}}
{{- $annotations := dict -}}
{{- if .Values.metrics.podAnnotations -}}
{{- $_ := set $annotations "prometheus.io/scrape" "true" -}}
{{- $_ := set $annotations "prometheus.io/port" (toString .Values.admin.port) -}}
{{- $_ := set $annotations "prometheus.io/path" "/metrics" -}}
{{- end -}}
{{- if .Values.config.rolloutOnChange -}}
{{- $inputs := dict "config" .Values.config "policies" .Values.policies "proxy" .Values.proxy "admin" .Values.admin "app" .Values.app "audit" .Values.audit "budgets" .Values.budgets -}}
{{- $_ := set $annotations "checksum/config" (toJson $inputs | sha256sum) -}}
{{- end -}}
{{- if $annotations -}}
{{- toYaml $annotations -}}
{{- end -}}
{{- end -}}

{{/* The fieldguard container, as one list item. */}}
{{- define "fieldguard.container" -}}
{{- $mode := include "fieldguard.sidecarMode" . -}}
- name: {{ .Values.sidecar.containerName }}
  image: {{ include "fieldguard.image" . | quote }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  {{- if eq $mode "native" }}
  # A native sidecar: started before the app containers (once its startup
  # probe passes), kept running beside them, stopped after them.
  restartPolicy: Always
  {{- end }}
  args:
    - run
    - --config
    - {{ include "fieldguard.configPath" . }}
    {{- with .Values.extraArgs }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  env:
    - name: FIELDGUARD_LOG_FORMAT
      value: {{ .Values.logging.format | quote }}
    - name: FIELDGUARD_LOG
      value: {{ .Values.logging.level | quote }}
    {{- if not (kindIs "invalid" .Values.workerThreads) }}
    - name: FIELDGUARD_WORKER_THREADS
      value: {{ .Values.workerThreads | quote }}
    {{- end }}
    # The pod's name and uid (downward API): the audit log's chain id, so
    # every replica's hash chain is told apart.
    - name: FIELDGUARD_POD_NAME
      valueFrom:
        fieldRef:
          fieldPath: metadata.name
    - name: FIELDGUARD_POD_UID
      valueFrom:
        fieldRef:
          fieldPath: metadata.uid
    {{- with .Values.extraEnv }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  ports:
    - name: {{ .Values.proxy.portName }}
      containerPort: {{ .Values.proxy.port }}
      protocol: TCP
    - name: {{ .Values.admin.portName }}
      containerPort: {{ .Values.admin.port }}
      protocol: TCP
  startupProbe:
    httpGet:
      path: /readyz
      port: {{ .Values.admin.portName }}
    periodSeconds: {{ .Values.probes.startup.periodSeconds }}
    timeoutSeconds: {{ .Values.probes.startup.timeoutSeconds }}
    failureThreshold: {{ .Values.probes.startup.failureThreshold }}
  livenessProbe:
    httpGet:
      path: /healthz
      port: {{ .Values.admin.portName }}
    periodSeconds: {{ .Values.probes.liveness.periodSeconds }}
    timeoutSeconds: {{ .Values.probes.liveness.timeoutSeconds }}
    failureThreshold: {{ .Values.probes.liveness.failureThreshold }}
  readinessProbe:
    httpGet:
      path: /readyz
      port: {{ .Values.admin.portName }}
    periodSeconds: {{ .Values.probes.readiness.periodSeconds }}
    timeoutSeconds: {{ .Values.probes.readiness.timeoutSeconds }}
    failureThreshold: {{ .Values.probes.readiness.failureThreshold }}
  {{- if and (eq $mode "container") (gt (int .Values.lifecycle.preStopSleepSeconds) 0) (semverCompare ">=1.30.0-0" .Capabilities.KubeVersion.Version) }}
  lifecycle:
    # Keep serving while the pod's Endpoints are withdrawn, then SIGTERM:
    # fieldguard stops accepting and finishes requests in flight.
    preStop:
      sleep:
        seconds: {{ .Values.lifecycle.preStopSleepSeconds }}
  {{- end }}
  {{- with .Values.resources }}
  resources:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    {{- toYaml .Values.securityContext | nindent 4 }}
  volumeMounts:
    # A whole ConfigMap volume, never subPath: the kubelet updates it by
    # swapping the ..data symlink, which fieldguard's hot reload watches.
    - name: fieldguard-config
      mountPath: {{ include "fieldguard.configDir" . }}
      readOnly: true
    {{- if .Values.policies.existingConfigMap }}
    - name: fieldguard-policies
      mountPath: {{ include "fieldguard.policiesDir" . }}
      readOnly: true
    {{- end }}
    {{- if .Values.secrets.existingSecret }}
    - name: fieldguard-secrets
      mountPath: {{ .Values.secrets.mountPath }}
      readOnly: true
    {{- end }}
    {{- if .Values.tls.existingSecret }}
    - name: fieldguard-tls
      mountPath: {{ .Values.tls.mountPath }}
      readOnly: true
    {{- end }}
    {{- if .Values.verifyKeys.existingSecret }}
    - name: fieldguard-verify-keys
      mountPath: {{ .Values.verifyKeys.mountPath }}
      readOnly: true
    {{- end }}
    {{- if eq .Values.audit.sink "file" }}
    - name: fieldguard-audit
      mountPath: {{ .Values.audit.mountPath }}
    {{- end }}
    {{- if include "fieldguard.budgetStorePasswordSecret" . }}
    - name: fieldguard-budget-store
      mountPath: {{ include "fieldguard.budgetStorePasswordDir" . }}
      readOnly: true
    {{- end }}
    {{- if include "fieldguard.budgetStoreCaKind" . }}
    - name: fieldguard-budget-store-ca
      mountPath: {{ include "fieldguard.budgetStoreCaDir" . }}
      readOnly: true
    {{- end }}
    {{- with .Values.extraVolumeMounts }}
    {{- include "fieldguard.checkExtraMounts" . }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
{{- end -}}

{{/*
Refuses extraVolumeMounts that mount the config or policy volume with
subPath or subPathExpr, naming each: such a mount is a copy taken at pod
start and never receives ConfigMap updates, so hot reload would silently
stop (a schema can only say "'not' failed").
*/}}
{{- define "fieldguard.checkExtraMounts" -}}
{{- $bad := list -}}
{{- range $i, $m := . -}}
  {{- if and (kindIs "map" $m) (has $m.name (list "fieldguard-config" "fieldguard-policies")) -}}
    {{- range $key := list "subPath" "subPathExpr" -}}
      {{- if hasKey $m $key -}}
        {{- $bad = append $bad (printf "extraVolumeMounts[%d] mounts %s with %s" $i $m.name $key) -}}
      {{- end -}}
    {{- end -}}
  {{- end -}}
{{- end -}}
{{- if $bad -}}
  {{- fail (printf "%s: a subPath mount is a copy made at pod start that never receives ConfigMap updates, so fieldguard's hot reload would silently stop. Remove it: the chart already mounts the whole volume (config at %s)" (join "; " $bad) (include "fieldguard.configDir" .)) -}}
{{- end -}}
{{- end -}}

{{/* The container under initContainers in native mode; nothing otherwise. */}}
{{- define "fieldguard.initContainers" -}}
{{- if eq (include "fieldguard.sidecarMode" .) "native" -}}
{{ include "fieldguard.container" . }}
{{- end -}}
{{- end -}}

{{/* The container under containers in container mode; nothing otherwise. */}}
{{- define "fieldguard.containers" -}}
{{- if eq (include "fieldguard.sidecarMode" .) "container" -}}
{{ include "fieldguard.container" . }}
{{- end -}}
{{- end -}}

{{/* The pod volumes the container mounts, as list items. */}}
{{- define "fieldguard.volumes" -}}
- name: fieldguard-config
  configMap:
    name: {{ include "fieldguard.configMapName" . }}
    defaultMode: 0444
{{- if .Values.policies.existingConfigMap }}
- name: fieldguard-policies
  configMap:
    name: {{ .Values.policies.existingConfigMap }}
    defaultMode: 0444
{{- end }}
{{- if .Values.secrets.existingSecret }}
- name: fieldguard-secrets
  secret:
    secretName: {{ .Values.secrets.existingSecret }}
    # Readable by the container's non-root user whatever its uid; only the
    # fieldguard container mounts this volume.
    defaultMode: 0444
{{- end }}
{{- if .Values.tls.existingSecret }}
- name: fieldguard-tls
  secret:
    secretName: {{ .Values.tls.existingSecret }}
    defaultMode: 0444
{{- end }}
{{- if .Values.verifyKeys.existingSecret }}
- name: fieldguard-verify-keys
  secret:
    secretName: {{ .Values.verifyKeys.existingSecret }}
    defaultMode: 0444
{{- end }}
{{- if eq .Values.audit.sink "file" }}
{{- $sources := dict -}}
{{- range $kind, $source := .Values.audit.volume -}}
{{- if not (kindIs "invalid" $source) -}}{{- $_ := set $sources $kind $source -}}{{- end -}}
{{- end -}}
{{- if ne (len $sources) 1 -}}
{{- fail (printf "audit.volume needs exactly one volume source, got %v (Helm merges maps: set emptyDir: null to replace the default emptyDir)" (keys $sources | sortAlpha)) -}}
{{- end }}
- name: fieldguard-audit
  {{- toYaml $sources | nindent 2 }}
{{- end }}
{{- with include "fieldguard.budgetStorePasswordSecret" . }}
- name: fieldguard-budget-store
  secret:
    secretName: {{ . }}
    # Only the password, as the file budgets.store.redis.password_file names.
    items:
      - key: {{ $.Values.budgets.store.redis.passwordKey }}
        path: password
    defaultMode: 0444
{{- end }}
{{- with include "fieldguard.budgetStoreCaKind" . }}
{{- $tls := $.Values.budgets.store.redis.tls }}
- name: fieldguard-budget-store-ca
  {{- if eq . "secret" }}
  secret:
    secretName: {{ $tls.caSecret }}
  {{- else }}
  configMap:
    name: {{ $tls.caConfigMap }}
  {{- end }}
    items:
      - key: {{ $tls.caKey }}
        path: ca.crt
    defaultMode: 0444
{{- end }}
{{- with .Values.extraVolumes }}
{{ toYaml . }}
{{- end }}
{{- end -}}
