{{/*
The shared budget store (budgets.*): what goes into the config's budgets
section, and the Secret and CA the fieldguard container mounts for it. Like
_sidecar.tpl, these take the root context or a parent chart's dict with
"Values" (no .Chart, no .Files).
*/}}

{{/* Where the store's password and CA are mounted. */}}
{{- define "fieldguard.budgetStorePasswordDir" -}}/etc/fieldguard/budget-store{{- end -}}
{{- define "fieldguard.budgetStoreCaDir" -}}/etc/fieldguard/budget-store-ca{{- end -}}

{{/* "true" when the budgets are shared in Redis/Valkey, else empty. */}}
{{- define "fieldguard.budgetStoreRedis" -}}
{{- if eq .Values.budgets.store.type "redis" -}}true{{- end -}}
{{- end -}}

{{/* The Secret with the store's password, when one is mounted. */}}
{{- define "fieldguard.budgetStorePasswordSecret" -}}
{{- if include "fieldguard.budgetStoreRedis" . -}}{{- .Values.budgets.store.redis.existingSecret -}}{{- end -}}
{{- end -}}

{{/* "secret" or "configMap" when a CA is mounted, else empty. */}}
{{- define "fieldguard.budgetStoreCaKind" -}}
{{- if include "fieldguard.budgetStoreRedis" . -}}
{{- $tls := .Values.budgets.store.redis.tls -}}
{{- if $tls.caSecret -}}secret{{- else if $tls.caConfigMap -}}configMap{{- end -}}
{{- end -}}
{{- end -}}

{{/*
The keys the chart adds to the config's budgets section, as JSON (an empty
object: none). With store.type memory (the default) nothing is added unless
a value asks for it (replicas set, onStoreError not local), so the default
config is one every fieldguard version reads. With redis:

  budgets:
    replicas: N
    on_store_error: local | refuse | allow
    store:
      type: redis
      redis:
        mode: standalone | sentinel | cluster
        url: redis://...                 # standalone
        nodes: [redis://...]             # sentinel, cluster
        master_name: ...                 # sentinel
        username: ...                    # when set
        password_file: /etc/fieldguard/budget-store/password        # existingSecret
        tls: {ca_file: /etc/fieldguard/budget-store-ca/ca.crt}      # tls.caSecret or caConfigMap
        timeout_ms: 50
        connect_timeout_ms: 1000
        key_prefix: fieldguard
        required_at_start: false         # only when requiredAtStart is false
*/}}
{{- define "fieldguard.budgetsConfig" -}}
{{- $b := .Values.budgets -}}
{{- $out := dict -}}
{{- $redis := include "fieldguard.budgetStoreRedis" . -}}
{{- $replicas := $b.replicas -}}
{{- if kindIs "invalid" $replicas -}}
  {{- if .Values.example.enabled -}}
    {{- $replicas = max 1 (int .Values.example.replicas) -}}
  {{- else if $redis -}}
    {{- fail "budgets.replicas is required with budgets.store.type redis when example.enabled is false: set it to your Deployment's replicas (an HPA's maxReplicas), by which onStoreError local divides each limit" -}}
  {{- end -}}
{{- end -}}
{{- if or $redis (not (kindIs "invalid" $b.replicas)) -}}
  {{- $_ := set $out "replicas" (int $replicas) -}}
{{- end -}}
{{- if or $redis (ne $b.onStoreError "local") -}}
  {{- $_ := set $out "on_store_error" $b.onStoreError -}}
{{- end -}}
{{- if $redis -}}
  {{- $r := $b.store.redis -}}
  {{- $conf := dict "mode" $r.mode -}}
  {{- $addresses := list -}}
  {{- if eq $r.mode "standalone" -}}
    {{- if not $r.url -}}
      {{- fail "budgets.store.redis.url is required with mode standalone (e.g. redis://valkey:6379/0)" -}}
    {{- end -}}
    {{- if $r.nodes -}}
      {{- fail "budgets.store.redis.nodes is for modes sentinel and cluster: with mode standalone set url only" -}}
    {{- end -}}
    {{- $_ := set $conf "url" $r.url -}}
    {{- $addresses = list $r.url -}}
  {{- else -}}
    {{- if not $r.nodes -}}
      {{- fail (printf "budgets.store.redis.nodes is required with mode %s (%s)" $r.mode (ternary "the sentinels, e.g. redis://sentinel-0:26379" "seed nodes, e.g. redis://redis-cluster-0:6379" (eq $r.mode "sentinel"))) -}}
    {{- end -}}
    {{- if $r.url -}}
      {{- fail (printf "budgets.store.redis.url is for mode standalone: with mode %s set nodes only" $r.mode) -}}
    {{- end -}}
    {{- $_ := set $conf "nodes" $r.nodes -}}
    {{- $addresses = $r.nodes -}}
  {{- end -}}
  {{- if eq $r.mode "sentinel" -}}
    {{- if not $r.masterName -}}
      {{- fail "budgets.store.redis.masterName is required with mode sentinel (the master the sentinels monitor, e.g. mymaster)" -}}
    {{- end -}}
    {{- $_ := set $conf "master_name" $r.masterName -}}
  {{- else if $r.masterName -}}
    {{- fail (printf "budgets.store.redis.masterName is for mode sentinel, not %s" $r.mode) -}}
  {{- end -}}
  {{- $scheme := ternary "rediss://" "redis://" $r.tls.enabled -}}
  {{- range $addresses -}}
    {{- if not (hasPrefix $scheme .) -}}
      {{- fail (printf "budgets.store.redis: %s does not start with %s (tls.enabled is %v: rediss:// is TLS, redis:// is not)" . $scheme $r.tls.enabled) -}}
    {{- end -}}
  {{- end -}}
  {{- with $r.username -}}
    {{- $_ := set $conf "username" . -}}
  {{- end -}}
  {{- if $r.existingSecret -}}
    {{- $_ := set $conf "password_file" (printf "%s/password" (include "fieldguard.budgetStorePasswordDir" .)) -}}
  {{- end -}}
  {{- if and $r.tls.caSecret $r.tls.caConfigMap -}}
    {{- fail "budgets.store.redis.tls: set caSecret or caConfigMap, not both" -}}
  {{- end -}}
  {{- if or $r.tls.caSecret $r.tls.caConfigMap -}}
    {{- if not $r.tls.enabled -}}
      {{- fail "budgets.store.redis.tls.caSecret/caConfigMap need tls.enabled (and rediss:// addresses)" -}}
    {{- end -}}
    {{- $_ := set $conf "tls" (dict "ca_file" (printf "%s/ca.crt" (include "fieldguard.budgetStoreCaDir" .))) -}}
  {{- end -}}
  {{- $_ := set $conf "timeout_ms" (int $r.timeoutMs) -}}
  {{- $_ := set $conf "connect_timeout_ms" (int $r.connectTimeoutMs) -}}
  {{- $_ := set $conf "key_prefix" $r.keyPrefix -}}
  {{- if not $r.requiredAtStart -}}
    {{- $_ := set $conf "required_at_start" false -}}
  {{- end -}}
  {{- $_ := set $out "store" (dict "type" "redis" "redis" $conf) -}}
{{- end -}}
{{- toJson $out -}}
{{- end -}}
