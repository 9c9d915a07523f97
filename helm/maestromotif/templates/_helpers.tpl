{{/* Chart name (nameOverride). */}}
{{- define "maestromotif.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: <release>-<chart> unless the release name holds the chart name. Kept to 40
characters so that "<fullname>-<component>-<suffix>" fits the 63 of a label value. */}}
{{- define "maestromotif.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "maestromotif.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object. Call with the root context. */}}
{{- define "maestromotif.labels" -}}
helm.sh/chart: {{ include "maestromotif.chart" . }}
app.kubernetes.io/name: {{ include "maestromotif.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: maestromotif
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Selector labels of one component: (dict "root" $ "component" "learner"). */}}
{{- define "maestromotif.selectorLabels" -}}
app.kubernetes.io/name: {{ include "maestromotif.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* All labels of one component's objects. */}}
{{- define "maestromotif.componentLabels" -}}
{{ include "maestromotif.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "maestromotif.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "maestromotif.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* gRPC and metrics ports of each service (fixed: the same as `maestromotif up`). */}}
{{- define "maestromotif.ports" -}}
{"learner": {"grpc": 50051, "metrics": 9091}, "actors": {"grpc": 50052, "metrics": 9092},
 "reward": {"grpc": 50053, "metrics": 9093}, "annotator": {"grpc": 50054, "metrics": 9094},
 "codegen": {"grpc": 50055, "metrics": 9095}, "agent": {"grpc": 50056, "metrics": 9096}}
{{- end }}

{{/* The image a service runs: (dict "root" $ "component" "learner" "values" .Values.learner
"gpu" true). The agent runs from the actors image; GPU variants carry the "-cuda" suffix. */}}
{{- define "maestromotif.image" -}}
{{- $g := .root.Values.image }}
{{- $c := .values.image | default dict }}
{{- $service := ternary "actors" .component (eq .component "agent") }}
{{- if has .component (list "annotation" "rewardTraining") }}
{{- $service = ternary "annotator" "reward" (eq .component "annotation") }}
{{- end }}
{{- $registry := $c.registry | default $g.registry }}
{{- $repository := $c.repository | default (printf "%s/%s" $g.repositoryPrefix $service) }}
{{- $tag := $c.tag | default $g.tag | default .root.Chart.AppVersion | toString }}
{{- if and .gpu (not $c.tag) }}
{{- $tag = printf "%s-cuda" $tag }}
{{- end }}
{{- if $registry }}
{{- printf "%s/%s:%s" $registry $repository $tag }}
{{- else }}
{{- printf "%s:%s" $repository $tag }}
{{- end }}
{{- end }}

{{- define "maestromotif.pullPolicy" -}}
{{- (.values.image | default dict).pullPolicy | default .root.Values.image.pullPolicy }}
{{- end }}

{{/* host:port of a service inside the cluster. (dict "root" $ "service" "reward") */}}
{{- define "maestromotif.address" -}}
{{- $ports := include "maestromotif.ports" .root | fromJson }}
{{- printf "%s-%s:%v" (include "maestromotif.fullname" .root) .service (index $ports .service "grpc") }}
{{- end }}

{{- define "maestromotif.claimName" -}}
{{- .Values.persistence.existingClaim | default (printf "%s-data" (include "maestromotif.fullname" .)) }}
{{- end }}

{{- define "maestromotif.authSecretName" -}}
{{- .Values.auth.existingSecret | default (printf "%s-auth" (include "maestromotif.fullname" .)) }}
{{- end }}

{{- define "maestromotif.authSecretKey" -}}
{{- ternary .Values.auth.existingSecretKey "token" (ne .Values.auth.existingSecret "") }}
{{- end }}

{{/* Secret holding the LLM API key (external) or the Hugging Face token (tgi). */}}
{{- define "maestromotif.llmSecretName" -}}
{{- $l := .Values.llm }}
{{- if and (eq $l.provider "external") $l.external.existingSecret }}
{{- $l.external.existingSecret }}
{{- else if and (eq $l.provider "tgi") $l.tgi.existingSecret }}
{{- $l.tgi.existingSecret }}
{{- else }}
{{- printf "%s-llm" (include "maestromotif.fullname" .) }}
{{- end }}
{{- end }}

{{/* True ("true") when the external LLM has an API key to send. */}}
{{- define "maestromotif.llmHasKey" -}}
{{- $e := .Values.llm.external }}
{{- if and (eq .Values.llm.provider "external") (or $e.apiKey $e.existingSecret) }}true{{ end }}
{{- end }}

{{/* The LLM backend settings that the annotator and codegen share: backend, url, model,
template. Returns JSON. */}}
{{- define "maestromotif.llm" -}}
{{- $l := .Values.llm }}
{{- if eq $l.provider "tgi" }}
{{- dict "backend" "tgi" "url" (printf "http://%s-tgi:%v" (include "maestromotif.fullname" .) $l.tgi.port) "model" $l.tgi.model "template" $l.tgi.template | toJson }}
{{- else if eq $l.provider "external" }}
{{- dict "backend" $l.external.api "url" $l.external.url "model" $l.external.model "template" $l.tgi.template | toJson }}
{{- else }}
{{- dict "backend" "embedded" "url" "" "model" $l.embedded.model "template" $l.tgi.template | toJson }}
{{- end }}
{{- end }}

{{/* Settings file of one service: the fields the chart owns (ports, peers, paths, token
file) over the user's `config`, over chart defaults. JSON (a YAML subset): Helm holds
numbers as floats, and toYaml would write 1000000 as 1e+06, which YAML reads as a string. */}}
{{- define "maestromotif.serviceConfig" -}}
{{- $root := .root }}
{{- $svc := .component }}
{{- $ports := include "maestromotif.ports" $root | fromJson }}
{{- $managed := dict "host" "0.0.0.0" "port" (index $ports $svc "grpc") "metrics_enabled" true "metrics_host" "0.0.0.0" "metrics_port" (index $ports $svc "metrics") }}
{{- if $root.Values.auth.enabled }}
{{- $_ := set $managed "auth_token_file" "/etc/maestromotif/auth/token" }}
{{- end }}
{{- if $root.Values.tls.enabled }}
{{- $_ := set $managed "tls_cert_file" "/etc/maestromotif/tls/tls.crt" }}
{{- $_ := set $managed "tls_key_file" "/etc/maestromotif/tls/tls.key" }}
{{- $_ := set $managed "peer_tls_ca_file" "/etc/maestromotif/tls/ca.crt" }}
{{- with $root.Values.tls.serverName }}
{{- $_ := set $managed "peer_tls_server_name" . }}
{{- end }}
{{- if $root.Values.tls.mutual }}
{{- $_ := set $managed "tls_client_ca_file" "/etc/maestromotif/tls/ca.crt" }}
{{- $_ := set $managed "peer_tls_cert_file" "/etc/maestromotif/tls/tls.crt" }}
{{- $_ := set $managed "peer_tls_key_file" "/etc/maestromotif/tls/tls.key" }}
{{- end }}
{{- end }}
{{- if eq $svc "learner" }}
{{- $_ := set $managed "reward_address" (include "maestromotif.address" (dict "root" $root "service" "reward")) }}
{{- $_ := set $managed "train_dir" "/data/runs" }}
{{- else if eq $svc "actors" }}
{{- $_ := set $managed "learner_address" (include "maestromotif.address" (dict "root" $root "service" "learner")) }}
{{- else if eq $svc "reward" }}
{{- $_ := set $managed "bundle_dir" "/data/reward_bundles" }}
{{- else if eq $svc "codegen" }}
{{- $llm := include "maestromotif.llm" $root | fromJson }}
{{- $_ := set $managed "backend" $llm.backend }}
{{- $_ := set $managed "llm_url" $llm.url }}
{{- $_ := set $managed "model" $llm.model }}
{{- $_ := set $managed "model_dir" "/data/models" }}
{{- $_ := set $managed "tgi_template" $llm.template }}
{{- $_ := set $managed "store_dir" "/data/artifacts" }}
{{- else if eq $svc "agent" }}
{{- $_ := set $managed "learner_address" (include "maestromotif.address" (dict "root" $root "service" "learner")) }}
{{- $_ := set $managed "codegen_address" (include "maestromotif.address" (dict "root" $root "service" "codegen")) }}
{{- /* local inference from the learner's latest checkpoint on the data volume */}}
{{- $experiment := ($root.Values.learner.config | default dict).experiment | default "policy" }}
{{- $_ := set $managed "checkpoint" (printf "/data/runs/%s" $experiment) }}
{{- end }}
{{- $defaults := dict "log_format" "json" }}
{{- $user := deepCopy ((index $root.Values $svc).config | default dict) }}
{{- merge (dict) $managed $user $defaults | toPrettyJson }}
{{- end }}

{{/* Pod-level pieces shared by every pod: service account, pull secrets, security context,
scheduling. (dict "root" $ "values" <component values>) */}}
{{- define "maestromotif.podCommon" -}}
serviceAccountName: {{ include "maestromotif.serviceAccountName" .root }}
automountServiceAccountToken: {{ .root.Values.serviceAccount.automountServiceAccountToken }}
{{- with .root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .root.Values.podSecurityContext | nindent 2 }}
{{- with .values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with .values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* Container resources, plus the GPU limit when the component asks for one. */}}
{{- define "maestromotif.resources" -}}
{{- $res := deepCopy (.values.resources | default dict) }}
{{- $gpu := .values.gpu | default dict }}
{{- if $gpu.enabled }}
{{- $limits := $res.limits | default dict }}
{{- $_ := set $limits $gpu.resourceName ($gpu.count | int) }}
{{- $_ := set $res "limits" $limits }}
{{- end }}
{{- toYaml $res }}
{{- end }}

{{/* The data volume: the claim, or an emptyDir without persistence. */}}
{{- define "maestromotif.dataVolume" -}}
- name: data
{{- if .Values.persistence.enabled }}
  persistentVolumeClaim:
    claimName: {{ include "maestromotif.claimName" . }}
{{- else }}
  emptyDir: {}
{{- end }}
{{- end }}

{{/* Environment of the LLM callers (annotation Job, codegen). */}}
{{- define "maestromotif.llmEnv" -}}
- name: MAESTROMOTIF_MODEL_DIR
  value: /data/models
{{- if include "maestromotif.llmHasKey" . }}
- name: MAESTROMOTIF_LLM_API_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "maestromotif.llmSecretName" . }}
      key: {{ ternary .Values.llm.external.existingSecretKey "api-key" (ne .Values.llm.external.existingSecret "") }}
{{- end }}
{{- end }}
