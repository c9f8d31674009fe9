#!/usr/bin/env bash
# make images-play: the chart's pods for real, end to end, on a private stack.
#
#   1. a fresh private stack (Kafka, Azurite, Milvus, Triton; run dir .run/images/stack,
#      the ports of charts/dedup/ci/podman-values.yaml);
#   2. images/play.sh: the chart's Deployments with `podman kube play`, every pod ready;
#   3. the demo's photos (a fixed seed) through the pods: every image decided;
#   4. every pod stopped by SIGTERM: exit 0 within the grace period;
#   5. the stack fresh again, the same photos through the five stages run as processes,
#      which is what `make demo` does; the two sets of decisions must be the same.
#
# Needs `make setup` (the stack's tools) and `make images`. Settings: images/lib.sh.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$IMAGES_ROOT"

export DEDUP_RUN_DIR="${DEDUP_PLAY_RUN_DIR:-$IMAGES_ROOT/.run/images/stack}"
export DEDUP_STACK_KAFKA_PORT=29092 DEDUP_STACK_KAFKA_CONTROLLER_PORT=29093
export DEDUP_STACK_AZURITE_PORT=29010 DEDUP_STACK_MILVUS_PORT=29530
export DEDUP_STACK_TRITON_HTTP_PORT=29000 DEDUP_STACK_TRITON_GRPC_PORT=29001
export DEDUP_STACK_TRITON_METRICS_PORT=29002 DEDUP_STACK_TRITON_MODEL=sscd_distilled
# Azurite's well-known development account (public).
AZURITE="DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;BlobEndpoint=http://127.0.0.1:29010/devstoreaccount1"
export DEDUP_DEMO_KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:29092 DEDUP_DEMO_BLOB_CONNECTION_STRING="$AZURITE"
PY="${PYTHON:-$IMAGES_ROOT/.venv/bin/python}"
export PYTHONPATH="$IMAGES_ROOT/libs:$IMAGES_ROOT"
OUTDIR="$IMAGES_ROOT/out/play"
mkdir -p "$OUTDIR"

fresh_stack() {
  bash stack/down.sh >/dev/null 2>&1 || true
  rm -rf "$DEDUP_RUN_DIR"
  bash stack/up.sh kafka azurite milvus triton | tail -n 1
}
cleanup() {
  bash images/play.sh --down >/dev/null 2>&1 || true
  bash stack/down.sh >/dev/null 2>&1 || true
}
trap cleanup EXIT

start=$SECONDS
log "1. a fresh private stack ($DEDUP_RUN_DIR)"
fresh_stack
log "2. the chart's Deployments with podman kube play"
bash images/play.sh --ready-timeout 180 --keep 2>&1 | grep -v 'level=error'
log "3. the demo's photos through the pods"
"$PY" images/play_demo.py "$OUTDIR/demo-pods.json" | grep -v 'images decided$'
log "4. SIGTERM to every pod"
bash images/play.sh --down 2>&1 | grep -v 'level=error'
log "5. the same photos through the stages as processes (make demo's way), on a fresh stack"
fresh_stack
port=29080
for name in hasher verifier embedder matcher ranker; do
  upper="${name^^}"
  port=$((port + 1))
  export "DEDUP_${upper}_KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:29092" \
    "DEDUP_${upper}_BLOB_CONNECTION_STRING=$AZURITE" \
    "DEDUP_${upper}_MILVUS_URI=http://127.0.0.1:29530" "DEDUP_${upper}_HTTP_PORT=$port"
done
export DEDUP_EMBEDDER_TRITON_URL=127.0.0.1:29001 DEDUP_EMBEDDER_TRITON_MODEL=sscd_distilled
"$PY" images/play_demo.py "$OUTDIR/demo-processes.json" --stages | grep -v 'images decided$'
"$PY" images/play_demo.py --compare "$OUTDIR/demo-processes.json" "$OUTDIR/demo-pods.json"
log "images-play: done in $((SECONDS - start)) s"
