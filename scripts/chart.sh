#!/usr/bin/env bash
# make chart: check the Helm chart, its alerts and dashboard, and the services' Dockerfile,
# offline. Every step runs; the script exits non-zero when any step failed.
#
#   1. helm lint --strict with every charts/dedup/ci/*-values.yaml
#   2. helm template with every ci values file -> out/chart/rendered/<name>.yaml
#   3. kubeconform -strict on each rendered file, against the Kubernetes schemas (PyPI
#      kubernetes-validate) and the CRD schemas (ServiceMonitor, PrometheusRule,
#      ScaledObject, TriggerAuthentication) in .tools/schemas, for each $KUBE_VERSIONS
#   4. every service's rendered DEDUP_* values pass its settings class (dedup.settings);
#      values that must be refused (schema typos, a secret in settings, SASL without a Secret)
#   5. promtool check rules on every rendered PrometheusRule; promtool test rules with
#      tests/chart/rules_test.yaml
#   6. the Grafana dashboard parses and every query reads dedup_ metrics
#   7. hadolint and our own checks on ./Dockerfile (the one for every service, ARG SERVICE);
#      hadolint on the GPU model repository's Dockerfile (services/embedder/models-gpu-example)
#
# Tools come from scripts/install_chart_tools.sh (run first; quick when all is in place).
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TOOLS="$ROOT/.tools"
HELM="$TOOLS/bin/helm"
KUBECONFORM="$TOOLS/bin/kubeconform"
HADOLINT="$TOOLS/bin/hadolint"
PY="${PYTHON:-$ROOT/.venv/bin/python}"
[[ -x "$PY" ]] || PY="$(command -v python3.11 || command -v python3)"
CHART="$ROOT/charts/dedup"
OUT="$ROOT/out/chart"
KUBE_VERSIONS="${KUBE_VERSIONS:-1.33.0 1.35.0}"
SERVICES=(hasher verifier embedder matcher ranker ingest)

if [[ -t 1 ]]; then GREEN=$'\e[32m'; RED=$'\e[31m'; BOLD=$'\e[1m'; RESET=$'\e[0m'
else GREEN=""; RED=""; BOLD=""; RESET=""; fi

failures=()
passed=0
section() { printf '\n%s== %s%s\n' "$BOLD" "$*" "$RESET"; }
# run NAME CMD...: run a check quietly, show its output only when it fails (or VERBOSE=1).
run() {
  local name="$1"; shift
  local log
  log="$(mktemp)"
  if "$@" >"$log" 2>&1; then
    printf '  %sok%s    %s\n' "$GREEN" "$RESET" "$name"
    [[ "${VERBOSE:-0}" == 1 ]] && sed 's/^/        /' "$log"
    passed=$((passed + 1))
  else
    printf '  %sFAIL%s  %s\n' "$RED" "$RESET" "$name"
    sed 's/^/        /' "$log" | tail -n 40
    failures+=("$name")
  fi
  rm -f "$log"
}
# refuse NAME PATTERN CMD...: the command must fail, with PATTERN in its output.
refuse() {
  local name="$1" pattern="$2"; shift 2
  local log
  log="$(mktemp)"
  if "$@" >"$log" 2>&1; then
    printf '  %sFAIL%s  %s (was accepted)\n' "$RED" "$RESET" "$name"
    failures+=("$name")
  elif grep -qE -- "$pattern" "$log"; then
    printf '  %sok%s    %s\n' "$GREEN" "$RESET" "$name"
    passed=$((passed + 1))
  else
    printf '  %sFAIL%s  %s (failed, but without /%s/)\n' "$RED" "$RESET" "$name" "$pattern"
    sed 's/^/        /' "$log" | tail -n 20
    failures+=("$name")
  fi
  rm -f "$log"
}

section "tools"
mkdir -p "$ROOT/out"
if ! bash "$ROOT/scripts/install_chart_tools.sh" >"$ROOT/out/chart-tools.log" 2>&1; then
  cat "$ROOT/out/chart-tools.log"
  echo "${RED}cannot install the chart tools${RESET}" >&2
  exit 1
fi
echo "  $("$HELM" version --short), kubeconform $("$KUBECONFORM" -v), $("$HADOLINT" --version)," \
  "$(promtool --version 2>&1 | head -n1 | cut -d' ' -f1-3)"

rm -rf "$OUT"
mkdir -p "$OUT/rendered" "$OUT/rules"

# helm refuses a chart whose optional dependency (milvus) is not in charts/ even when its
# condition is false; check a copy without it unless `helm dependency build` fetched it.
section "stage the chart"
STAGED="$OUT/stage/dedup"
if env PYTHONPATH="$ROOT" "$PY" scripts/chart_checks.py stage "$CHART" "$STAGED" | sed 's/^/  /' \
  && [[ -f "$STAGED/Chart.yaml" ]]; then
  echo "  staged in ${STAGED#"$ROOT"/}"
else
  echo "${RED}cannot stage the chart${RESET}"
  exit 1
fi

shopt -s nullglob
VALUES=("$CHART"/ci/*-values.yaml)
shopt -u nullglob
((${#VALUES[@]})) || { echo "${RED}no charts/dedup/ci/*-values.yaml${RESET}"; exit 1; }

section "helm lint --strict"
for values in "${VALUES[@]}"; do
  run "lint ci/$(basename "$values")" "$HELM" lint --strict "$STAGED" --values "$values"
done

section "helm template"
for values in "${VALUES[@]}"; do
  name="$(basename "$values" -values.yaml)"
  run "template ci/$(basename "$values") -> out/chart/rendered/$name.yaml" \
    bash -c '"$1" template dedup "$2" --namespace dedup --values "$3" >"$4"' _ \
    "$HELM" "$STAGED" "$values" "$OUT/rendered/$name.yaml"
done

section "kubeconform (offline schemas)"
for kube in $KUBE_VERSIONS; do
  for rendered in "$OUT"/rendered/*.yaml; do
    run "kubeconform -strict k8s $kube: $(basename "$rendered")" \
      "$KUBECONFORM" -strict -summary -kubernetes-version "$kube" \
      -schema-location "$TOOLS/schemas/k8s/{{ .NormalizedKubernetesVersion }}-local{{ .StrictSuffix }}/{{ .ResourceKind }}{{ .KindSuffix }}.json" \
      -schema-location "$TOOLS/schemas/crd/{{ .Group }}/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json" \
      "$rendered"
  done
done

section "rendered settings pass the services' validation, and chain the stages"
for rendered in "$OUT"/rendered/*.yaml; do
  run "settings of $(basename "$rendered")" env PYTHONPATH="$ROOT:$ROOT/libs:$TOOLS/py" \
    "$PY" scripts/chart_checks.py settings "$rendered"
  run "topics of $(basename "$rendered")" env PYTHONPATH="$ROOT:$ROOT/libs:$TOOLS/py" \
    "$PY" scripts/chart_checks.py wiring "$rendered"
done

section "values that must be refused"
tpl() { "$HELM" template dedup "$STAGED" "$@"; }
refuse "a typo in a service key (replica)" "additional properties|additionalProperties|replica" \
  tpl --set services.hasher.replica=3
refuse "an unknown service (hashr)" "hashr" \
  tpl --set services.hashr.enabled=true
refuse "two rankers (the single writer of clusters)" "replicas|maximum" \
  tpl --set services.ranker.replicas=2
refuse "an autoscaled ranker" "autoscaling|enabled|const" \
  tpl --set services.ranker.autoscaling.enabled=true
refuse "a secret value in settings" "PASSWORD|pattern|propertyNames|does not match" \
  tpl --set services.hasher.settings.KAFKA_SASL_PASSWORD=hunter2
refuse "a Kafka protocol the services do not speak" "protocol|enum|SASL_PLAINTEXT" \
  tpl --set kafka.security.protocol=SASL_PLAINTEXT
refuse "SASL_SSL without a password Secret" "passwordSecret" \
  tpl --set kafka.security.protocol=SASL_SSL
refuse "workload identity without a client id" "clientId" \
  tpl --set workloadIdentity.enabled=true
refuse "a grace period shorter than the shutdown timeout" "terminationGracePeriodSeconds" \
  tpl --set services.ranker.terminationGracePeriodSeconds=30
refuse "Triton models from an image without an image" "modelRepository.image.repository" \
  tpl --set triton.modelRepository.source=image
settings_of() {
  local out="$OUT/refused-settings.yaml"
  tpl "$@" >"$out" && env PYTHONPATH="$ROOT:$ROOT/libs:$TOOLS/py" "$PY" scripts/chart_checks.py settings "$out"
}
wiring_of() {
  local out="$OUT/refused-wiring.yaml"
  tpl "$@" >"$out" && env PYTHONPATH="$ROOT:$ROOT/libs:$TOOLS/py" "$PY" scripts/chart_checks.py wiring "$out"
}
refuse "a stage reading a topic that nobody writes" "matcher reads 'dedup.embeded.v1'" \
  wiring_of --set services.matcher.topic=dedup.embeded.v1
refuse "a Milvus collection name with a dash (fails at start-up, once)" \
  "DEDUP_EMBEDDER_COLLECTION: 'dedup-embeddings' is not a Milvus collection name" \
  settings_of --set services.embedder.settings.COLLECTION=dedup-embeddings

section "alert rules (promtool)"
for rendered in "$OUT"/rendered/*.yaml; do
  name="$(basename "$rendered" .yaml)"
  grep -q '^kind: PrometheusRule' "$rendered" || continue
  run "extract rules from $name.yaml" env PYTHONPATH="$ROOT:$TOOLS/py" \
    "$PY" scripts/chart_checks.py rules "$rendered" "$OUT/rules/$name-rules.yaml"
  run "promtool check rules $name-rules.yaml" promtool check rules "$OUT/rules/$name-rules.yaml"
done
# The unit tests use the default thresholds.
mkdir -p "$OUT/rules-test"
"$HELM" template dedup "$STAGED" --set prometheusRule.enabled=true \
  --show-only templates/prometheusrule.yaml >"$OUT/rules-test/rendered.yaml" 2>"$OUT/rules-test/helm.log" \
  || cat "$OUT/rules-test/helm.log"
run "extract rules with default thresholds" env PYTHONPATH="$ROOT:$TOOLS/py" \
  "$PY" scripts/chart_checks.py rules "$OUT/rules-test/rendered.yaml" "$OUT/rules-test/dedup-rules.yaml"
cp tests/chart/rules_test.yaml "$OUT/rules-test/"
run "promtool test rules tests/chart/rules_test.yaml" \
  bash -c 'cd "$1" && promtool test rules rules_test.yaml' _ "$OUT/rules-test"

section "Grafana dashboard"
run "dashboards/*.json parse; panels query dedup_ metrics through \${datasource}" \
  env PYTHONPATH="$ROOT" "$PY" scripts/chart_checks.py dashboard "$CHART"/dashboards/*.json
for rendered in "$OUT"/rendered/*.yaml; do
  if grep -q 'grafana_dashboard: "1"' "$rendered"; then
    run "the dashboard ConfigMap is in $(basename "$rendered")" grep -q 'dedup.json: |-' "$rendered"
    break
  fi
done

section "Dockerfiles"
run "hadolint Dockerfile" "$HADOLINT" --failure-threshold warning Dockerfile
# The GPU Triton's model repository image (SSCD's file installed from PyPI, never copied).
run "hadolint services/embedder/models-gpu-example/Dockerfile" \
  "$HADOLINT" --failure-threshold warning services/embedder/models-gpu-example/Dockerfile
run "pinned base, multi-stage, USER 10001, ARG SERVICE/PORT, tini; ports agree" \
  env PYTHONPATH="$ROOT" "$PY" scripts/chart_checks.py dockerfiles "$ROOT" "${SERVICES[@]}"

section "summary"
if ((${#failures[@]})); then
  printf '%s%d checks failed%s (%d passed):\n' "$RED" "${#failures[@]}" "$RESET" "$passed"
  printf '  - %s\n' "${failures[@]}"
  exit 1
fi
printf '%sall %d checks passed%s; rendered manifests in out/chart/rendered/\n' "$GREEN" "$passed" "$RESET"
