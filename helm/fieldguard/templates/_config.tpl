{{/*
fieldguard.yaml as the pod sees it (root context only: it reads .Files).

config.file (yours) or the reference deployment (files/demo/fieldguard.yaml,
a copy of examples/demo/fieldguard.yaml), plus what the chart decides
because it follows from the pod's layout: the listeners, the admin address,
the upstream on loopback, where the policies are mounted, the audit sink and
the shared budget store (budgets.store, budgets.replicas,
budgets.on_store_error: from the budgets.* values, see _budgets.tpl).
A config of yours that sets one of those is refused, so nothing is
overridden silently.

Rendered as JSON (which is YAML): Helm's YAML round trip would write large
integers such as 8388608 as 8.388608e+06, which fieldguard rightly refuses.
*/}}
{{- define "fieldguard.configObject" -}}
{{- $ports := list (int .Values.proxy.port) (int .Values.admin.port) (int .Values.app.port) -}}
{{- if ne (len (uniq $ports)) 3 -}}
  {{- fail (printf "proxy.port, admin.port and app.port must differ (got %v): the containers of a pod share one network namespace" $ports) -}}
{{- end -}}
{{- $cfg := dict -}}
{{- if .Values.config.file -}}
  {{- $cfg = fromYaml .Values.config.file -}}
  {{- if hasKey $cfg "Error" -}}
    {{- fail (printf "config.file is not valid YAML: %s" (get $cfg "Error")) -}}
  {{- end -}}
  {{- /* Every problem of the file in one message: an operator fixes them
         all in one go rather than one per render. */ -}}
  {{- $errors := list -}}
  {{- range $key, $why := dict "listeners" "proxy.port" "admin" "admin.port" -}}
    {{- if hasKey $cfg $key -}}
      {{- $errors = append $errors (printf "config.file sets `%s`, which the chart sets from %s: remove it from the file" $key $why) -}}
    {{- end -}}
  {{- end -}}
  {{- if and (hasKey $cfg "upstream") (hasKey (get $cfg "upstream" | default dict) "url") -}}
    {{- $errors = append $errors "config.file sets `upstream.url`, which the chart sets to http://127.0.0.1:<app.port> (the app listens on loopback only): remove it and set app.port" -}}
  {{- end -}}
  {{- with $cfg.policies -}}
    {{- range $key := list "verify_keys" "signature_file" -}}
      {{- if hasKey $cfg.policies $key -}}
        {{- $errors = append $errors (printf "config.file sets `policies.%s`, which the chart sets from verifyKeys.* (the keys are mounted from verifyKeys.existingSecret; the signature lies beside the policies): remove it" $key) -}}
      {{- end -}}
    {{- end -}}
    {{- range $key := list "directory" "schema" -}}
      {{- if hasKey $cfg.policies $key -}}
        {{- $errors = append $errors (printf "config.file sets `policies.%s`, which the chart sets to where it mounts the policies: remove it (policies.files or policies.existingConfigMap say which policies)" $key) -}}
      {{- end -}}
    {{- end -}}
  {{- end -}}
  {{- with $cfg.audit -}}
    {{- range $key := list "file" "stdout" -}}
      {{- if hasKey $cfg.audit $key -}}
        {{- $errors = append $errors (printf "config.file sets `audit.%s`, which the chart sets from audit.sink: remove it (other audit keys are yours)" $key) -}}
      {{- end -}}
    {{- end -}}
  {{- end -}}
  {{- $budgets := get $cfg "budgets" | default dict -}}
  {{- range $key, $value := dict "store" "budgets.store" "replicas" "budgets.replicas" "on_store_error" "budgets.onStoreError" -}}
    {{- if hasKey $budgets $key -}}
      {{- $errors = append $errors (printf "config.file sets `budgets.%s`, which the chart sets from the %s value: remove it (roles and limits, and a limit's own on_store_error, are yours)" $key $value) -}}
    {{- end -}}
  {{- end -}}
  {{- /* A relative path is read beside the config file, which in the pod is
         the ConfigMap's mount: no key or certificate is ever there. */ -}}
  {{- $relative := list -}}
  {{- range $line := include "fieldguard.relativePaths" (dict "v" $cfg "at" "") | splitList "\n" -}}
    {{- /* audit.file is refused above whatever its value. */ -}}
    {{- if and $line (not (hasPrefix "`audit.file:" $line)) -}}
      {{- $relative = append $relative $line -}}
    {{- end -}}
  {{- end -}}
  {{- if $relative -}}
    {{- $errors = append $errors (printf "config.file names relative paths (%s): in the pod they would be read beside the config, in the ConfigMap's mount %s, where no key or certificate is; give the absolute paths where they are mounted (secrets.mountPath %s, tls.mountPath %s)" (join ", " $relative) (include "fieldguard.configDir" $) $.Values.secrets.mountPath $.Values.tls.mountPath) -}}
  {{- end -}}
  {{- if $errors -}}
    {{- fail (printf "config.file cannot be used as it is (%d problem(s), all listed):\n- %s" (len $errors) (join "\n- " $errors)) -}}
  {{- end -}}
{{- else if not .Values.example.enabled -}}
  {{- fail "config.file is empty and example.enabled is false: the chart would put the demo shop's reference configuration (its routes, roles and demo keys) in front of your app. Set config.file to your service's configuration (helm install ... --set-file config.file=fieldguard.yaml; see the chart's README), or set example.enabled=true to install the demo" -}}
{{- else -}}
  {{- $cfg = fromYaml (.Files.Get "files/demo/fieldguard.yaml") -}}
  {{- /* The reference config names its keys relative to examples/demo/ and
         its policies relative to the repository: point them at the mounts. */ -}}
  {{- $_ := set $cfg.identity.jwt "hs256_secret_file" (printf "%s/jwt-hs256.key" .Values.secrets.mountPath) -}}
  {{- $_ := set $cfg.redaction "hash_key_file" (printf "%s/hash.key" .Values.secrets.mountPath) -}}
  {{- $_ := unset $cfg.upstream "url" -}}
  {{- $_ := unset $cfg "listeners" -}}
  {{- $_ := unset $cfg.policies "directory" -}}
  {{- $_ := unset $cfg.policies "schema" -}}
{{- end -}}
{{- $_ := set $cfg "listeners" (list (dict "address" (printf "0.0.0.0:%d" (int .Values.proxy.port)))) -}}
{{- /* Not fieldguard's loopback default: the kubelet's probes and Prometheus
       come from outside the container. */ -}}
{{- $_ := set $cfg "admin" (dict "address" (printf "0.0.0.0:%d" (int .Values.admin.port))) -}}
{{- $upstream := get $cfg "upstream" | default dict -}}
{{- $_ := set $upstream "url" (printf "http://127.0.0.1:%d" (int .Values.app.port)) -}}
{{- $_ := set $cfg "upstream" $upstream -}}
{{- $policies := get $cfg "policies" | default dict -}}
{{- $dir := include "fieldguard.policiesDir" . -}}
{{- $_ := set $policies "directory" $dir -}}
{{- $_ := set $policies "schema" (printf "%s/%s" $dir .Values.policies.schemaFile) -}}
{{- if .Values.verifyKeys.existingSecret -}}
  {{- if not .Values.verifyKeys.files -}}
    {{- fail "verifyKeys.existingSecret is set but verifyKeys.files is empty: name the public key files in the Secret" -}}
  {{- end -}}
  {{- /* The pods would refuse to start: say so at install time. */ -}}
  {{- if and (not .Values.policies.signature) (not .Values.policies.existingConfigMap) -}}
    {{- fail "verifyKeys.existingSecret is set but policies.signature is empty: fieldguard would refuse the unsigned policy set (sign it with `fieldguard sign` and pass --set-file policies.signature=policies/fieldguard.sig)" -}}
  {{- end -}}
  {{- $keys := list -}}
  {{- range .Values.verifyKeys.files -}}
    {{- $keys = append $keys (printf "%s/%s" $.Values.verifyKeys.mountPath .) -}}
  {{- end -}}
  {{- $_ := set $policies "verify_keys" $keys -}}
{{- end -}}
{{- $_ := set $cfg "policies" $policies -}}
{{- $audit := get $cfg "audit" | default dict -}}
{{- if eq .Values.audit.sink "file" -}}
  {{- $_ := set $audit "file" (printf "%s/audit.log" .Values.audit.mountPath) -}}
  {{- $_ := set $audit "stdout" false -}}
  {{- /* Retention sized to the volume (a config's own audit.retention wins):
         when it is full, fieldguard refuses requests rather than delete
         evidence, unless whenFull says delete_oldest. */ -}}
  {{- $retention := get $audit "retention" | default dict -}}
  {{- if not (hasKey $retention "max_total_bytes") -}}
    {{- $_ := set $retention "max_total_bytes" (int64 .Values.audit.retention.maxTotalBytes) -}}
  {{- end -}}
  {{- if not (hasKey $retention "when_full") -}}
    {{- $_ := set $retention "when_full" .Values.audit.retention.whenFull -}}
  {{- end -}}
  {{- $_ := set $audit "retention" $retention -}}
{{- else -}}
  {{- $_ := set $audit "stdout" true -}}
{{- end -}}
{{- $_ := set $cfg "audit" $audit -}}
{{- /* The shared budget store (_budgets.tpl): added only when asked for. */ -}}
{{- $budgetKeys := include "fieldguard.budgetsConfig" . | fromJson -}}
{{- if $budgetKeys -}}
  {{- $budgets := get $cfg "budgets" | default dict -}}
  {{- range $key, $value := $budgetKeys -}}
    {{- $_ := set $budgets $key $value -}}
  {{- end -}}
  {{- $_ := set $cfg "budgets" $budgets -}}
{{- end -}}
{{- toPrettyJson $cfg -}}
{{- end -}}

{{/* The policy files in the chart's ConfigMap: name -> text. */}}
{{- define "fieldguard.policyFiles" -}}
{{- if .Values.policies.existingConfigMap -}}
{{- toJson dict -}}
{{- else if .Values.policies.files -}}
{{- if not (hasKey .Values.policies.files .Values.policies.schemaFile) -}}
{{- fail (printf "policies.files has no %s (policies.schemaFile): the Cedar schema goes beside the policies" .Values.policies.schemaFile) -}}
{{- end -}}
{{- toJson .Values.policies.files -}}
{{- else -}}
{{- $files := dict -}}
{{- range $path, $_ := .Files.Glob "files/policies/*" -}}
{{- $_ := set $files (base $path) ($.Files.Get $path) -}}
{{- end -}}
{{- toJson $files -}}
{{- end -}}
{{- end -}}

{{/*
The relative file paths in a config object, one "key.path: value" per line:
every `file` or `*_file` key (key files, certificates, JWKS) whose value
does not start with "/", in maps and lists at any depth. Takes a dict with
"v" (the value) and "at" (its path).
*/}}
{{- define "fieldguard.relativePaths" -}}
{{- $at := .at -}}
{{- if kindIs "map" .v -}}
  {{- range $key, $value := .v -}}
    {{- $path := ternary $key (printf "%s.%s" $at $key) (eq $at "") -}}
    {{- if and (or (eq $key "file") (hasSuffix "_file" $key)) (kindIs "string" $value) (not (hasPrefix "/" $value)) -}}
{{ printf "`%s: %s`" $path $value }}
{{ else -}}
{{ include "fieldguard.relativePaths" (dict "v" $value "at" $path) }}
    {{- end -}}
  {{- end -}}
{{- else if kindIs "slice" .v -}}
  {{- range $i, $value := .v -}}
{{ include "fieldguard.relativePaths" (dict "v" $value "at" (printf "%s[%d]" $at $i)) }}
  {{- end -}}
{{- end -}}
{{- end -}}
