{{/* Names, labels, and the command-line pieces the components share. */}}

{{- define "podwire.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's object name prefix; component suffixes keep names under 63 characters. */}}
{{- define "podwire.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "podwire.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "podwire.selectorLabels" -}}
app.kubernetes.io/name: {{ include "podwire.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Usage: include "podwire.labels" (dict "root" $ "component" "agent") */}}
{{- define "podwire.labels" -}}
helm.sh/chart: {{ include "podwire.chart" .root }}
{{ include "podwire.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: podwire
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "podwire.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{/* The agent's image: agent.image where set, else the common one. */}}
{{- define "podwire.agentImage" -}}
{{- $i := .Values.agent.image | default dict }}
{{- printf "%s:%s" ($i.repository | default .Values.image.repository) ($i.tag | default .Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{/* Usage: include "podwire.serviceAccountName" (dict "root" $ "component" "ingest") */}}
{{- define "podwire.serviceAccountName" -}}
{{- $sa := (index .root.Values .component).serviceAccount }}
{{- if $sa.create }}
{{- default (printf "%s-%s" (include "podwire.fullname" .root) .component) $sa.name }}
{{- else }}
{{- default "default" $sa.name }}
{{- end }}
{{- end }}

{{/* Whether the chart runs its own broker: kafka.brokers overrides kafka.deploy. */}}
{{- define "podwire.kafka.deployed" -}}
{{- if and .Values.kafka.deploy (not .Values.kafka.brokers) }}true{{ end }}
{{- end }}

{{- define "podwire.kafka.brokers" -}}
{{- if include "podwire.kafka.deployed" . }}
{{- printf "%s-kafka.%s.svc:9092" (include "podwire.fullname" .) .Release.Namespace }}
{{- else }}
{{- required "kafka.brokers is required when kafka.deploy is false: the bootstrap servers of your Kafka cluster, host:port[,host:port]" .Values.kafka.brokers }}
{{- end }}
{{- end }}

{{/*
The Kafka flags of `capture` and `ingest`, one YAML list item per line. Credentials are files
from Secrets (ssl.*.location); the SASL user and password, which librdkafka cannot read from a
file, come from environment variables set from a Secret and expanded by the kubelet ($(VAR)).
*/}}
{{- define "podwire.kafka.args" -}}
{{- $k := .Values.kafka }}
- {{ printf "--kafka=%s" (include "podwire.kafka.brokers" .) | quote }}
- {{ printf "--topic-prefix=%s" $k.topicPrefix | quote }}
- --topic-partitions={{ $k.topicPartitions }}
- --topic-replication={{ $k.topicReplication }}
{{- if or $k.tls.enabled $k.sasl.enabled }}
{{- if include "podwire.kafka.deployed" . }}
{{- fail "kafka.tls and kafka.sasl are for an external cluster (kafka.brokers); the bundled broker is plaintext" }}
{{- end }}
{{- $protocol := ternary (ternary "SASL_SSL" "SSL" $k.sasl.enabled) "SASL_PLAINTEXT" $k.tls.enabled }}
- --kafka-option=security.protocol={{ $protocol }}
{{- end }}
{{- if and $k.tls.enabled (not $k.tls.existingSecret) }}
{{- if or $k.tls.certKey $k.tls.keyKey }}
{{- fail "kafka.tls.existingSecret is required with kafka.tls.certKey/keyKey: the Secret that holds the client certificate and key" }}
{{- end }}
{{- /* A broker certificate from a public CA (MSK, Confluent Cloud): the image's CA bundle. */}}
- --kafka-option=ssl.ca.location=probe
{{- else if $k.tls.enabled }}
- {{ printf "--kafka-option=ssl.ca.location=/etc/podwire/kafka-tls/%s" $k.tls.caKey | quote }}
{{- if or $k.tls.certKey $k.tls.keyKey }}
{{- $_ := required "kafka.tls.certKey and kafka.tls.keyKey go together (mutual TLS)" (and $k.tls.certKey $k.tls.keyKey) }}
- {{ printf "--kafka-option=ssl.certificate.location=/etc/podwire/kafka-tls/%s" $k.tls.certKey | quote }}
- {{ printf "--kafka-option=ssl.key.location=/etc/podwire/kafka-tls/%s" $k.tls.keyKey | quote }}
{{- end }}
{{- end }}
{{- if $k.sasl.enabled }}
{{- $_ := required "kafka.sasl.existingSecret is required when kafka.sasl.enabled: a Secret with the user name and password (keys kafka.sasl.usernameKey, kafka.sasl.passwordKey)" $k.sasl.existingSecret }}
- {{ printf "--kafka-option=sasl.mechanisms=%s" $k.sasl.mechanism | quote }}
- --kafka-option=sasl.username=$(KAFKA_SASL_USERNAME)
- --kafka-option=sasl.password=$(KAFKA_SASL_PASSWORD)
{{- end }}
{{- range $key, $value := $k.options }}
- {{ printf "--kafka-option=%s=%v" $key $value | quote }}
{{- end }}
{{- end }}

{{- define "podwire.kafka.env" -}}
{{- with .Values.kafka.sasl }}
{{- if .enabled }}
- name: KAFKA_SASL_USERNAME
  valueFrom:
    secretKeyRef:
      name: {{ .existingSecret }}
      key: {{ .usernameKey }}
- name: KAFKA_SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .existingSecret }}
      key: {{ .passwordKey }}
{{- end }}
{{- end }}
{{- end }}

{{- define "podwire.kafka.volumeMounts" -}}
{{- if and .Values.kafka.tls.enabled .Values.kafka.tls.existingSecret }}
- name: kafka-tls
  mountPath: /etc/podwire/kafka-tls
  readOnly: true
{{- end }}
{{- end }}

{{- define "podwire.kafka.volumes" -}}
{{- if and .Values.kafka.tls.enabled .Values.kafka.tls.existingSecret }}
- name: kafka-tls
  secret:
    secretName: {{ .Values.kafka.tls.existingSecret }}
    defaultMode: 0440
{{- end }}
{{- end }}

{{/* The store: a folder on the claim, or s3://bucket/prefix. */}}
{{- define "podwire.store" -}}
{{- if eq .Values.storage.type "s3" }}
{{- $bucket := required "storage.s3.bucket is required when storage.type is s3" .Values.storage.s3.bucket }}
{{- printf "s3://%s/%s" $bucket (.Values.storage.s3.prefix | trimAll "/") | trimSuffix "/" }}
{{- else }}/var/lib/podwire/store
{{- end }}
{{- end }}

{{- define "podwire.store.claimName" -}}
{{- default (printf "%s-store" (include "podwire.fullname" .)) .Values.storage.folder.existingClaim }}
{{- end }}

{{/* Environment for the store: the AWS_* variables podwire reads; keys only from a Secret. */}}
{{- define "podwire.store.env" -}}
{{- if eq .Values.storage.type "s3" }}
{{- with .Values.storage.s3 }}
{{- with .region }}
- name: AWS_REGION
  value: {{ . | quote }}
{{- end }}
{{- with .endpoint }}
- name: AWS_ENDPOINT
  value: {{ . | quote }}
{{- end }}
{{- if .allowHttp }}
- name: AWS_ALLOW_HTTP
  value: "true"
{{- end }}
{{- with .existingSecret }}
- name: AWS_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $.Values.storage.s3.accessKeyIdKey }}
- name: AWS_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $.Values.storage.s3.secretAccessKeyKey }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{- define "podwire.store.volumeMounts" -}}
{{- if eq .root.Values.storage.type "folder" }}
- name: store
  mountPath: /var/lib/podwire
  readOnly: {{ .readOnly }}
{{- end }}
{{- end }}

{{- define "podwire.store.volumes" -}}
{{- if eq .Values.storage.type "folder" }}
- name: store
  persistentVolumeClaim:
    claimName: {{ include "podwire.store.claimName" . }}
{{- end }}
{{- end }}

{{/*
A folder store on a ReadWriteOnce claim can be mounted on one node only: ingest and the query
service follow the ingest pods there. (A pod may match its own affinity term, so the first
ingest pod schedules freely.)
*/}}
{{- define "podwire.store.affinity" -}}
{{- $own := .affinity | default dict }}
{{- if and (eq .root.Values.storage.type "folder") (not (has "ReadWriteMany" .root.Values.storage.folder.accessModes)) }}
{{- $term := dict "topologyKey" "kubernetes.io/hostname" "labelSelector" (dict "matchLabels" (fromYaml (include "podwire.selectorLabels" (dict "root" .root "component" "ingest")))) }}
{{- $podAffinity := dict "requiredDuringSchedulingIgnoredDuringExecution" (list $term) }}
{{- toYaml (merge (dict "podAffinity" $podAffinity) (deepCopy $own)) }}
{{- else if $own }}
{{- toYaml $own }}
{{- end }}
{{- end }}

{{/* The container security settings of ingest, the query service and the broker. */}}
{{- define "podwire.restrictedContainer" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
{{- end }}

{{- define "podwire.restrictedPod" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end }}
