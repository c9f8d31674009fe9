#!/usr/bin/env bash
# Starts the local stack on 127.0.0.1 (Kafka 9092/9093, Azurite 10000, Milvus 19530,
# Triton 8000/8001/8002, Prometheus 9090), each as a background process with its data, log
# and PID file under $DEDUP_RUN_DIR (default .run/), and waits until every part is healthy.
# Idempotent: a part that already runs from this run dir is left alone. Exit status 1 when a
# port is held by something else or a part does not become healthy.
# Usage: up.sh [PART...]: only the named parts (kafka azurite milvus triton prometheus).
set -euo pipefail
# shellcheck source=stack/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

select_components "$@"
t_total=$(now_ms)
mkdir -p "$RUN_DIR"

# 1. Check every part before starting any, so a port conflict leaves nothing half started.
to_start=() already=()
for c in "${SELECTED[@]}"; do
  if pid=$(running_pid "$c"); then
    printf '%s: already running (pid %s)\n' "$c" "$pid"
    already+=("$c")
    continue
  fi
  for port in $("${c}_ports"); do
    if port_in_use "$port"; then
      holder=$(port_holder "$port")
      die "$c: port $port is already in use by ${holder:-another process (run ss -ltnp as root to see which)}; stop it or set DEDUP_STACK_*_PORT"
    fi
  done
  to_start+=("$c")
done

# 2. Launch them all at once (their start-ups overlap), then wait until each is healthy.
declare -A t0
for c in "${to_start[@]}"; do
  t0[$c]=$(now_ms)
  "${c}_prepare"
  launch "$c"
done

# Poll them all round-robin so that each one's time is its own. One that was running already
# may still be starting too (an earlier `up` that gave up, say).
for c in "${already[@]}"; do t0[$c]=$(now_ms); done
pending=("${already[@]}" "${to_start[@]}") failed=()
while ((${#pending[@]})); do
  still=()
  for c in "${pending[@]}"; do
    rc=0
    start_state "$c" "${t0[$c]}" "$("${c}_timeout")" || rc=$?
    case $rc in
      0) [[ " ${already[*]} " == *" $c "* ]] ||
        printf '%s: ready (pid %s) in %s, ports %s, log %s\n' "$c" "$(running_pid "$c")" \
          "$(since "${t0[$c]}")" "$("${c}_ports" | tr ' ' ,)" "$(log_file "$c")" ;;
      1) failed+=("$c") ;;
      *) still+=("$c") ;;
    esac
  done
  pending=("${still[@]}")
  ((${#pending[@]} == 0)) || sleep 0.25
done

if ((${#failed[@]})); then
  # shellcheck disable=SC2016  # backquotes are literal
  printf 'stack: %s failed to start (see above); `make down` stops the rest\n' "${failed[*]}" >&2
  exit 1
fi
printf 'stack: up in %s (run dir %s)\n' "$(since "$t_total")" "$RUN_DIR"
