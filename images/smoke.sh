#!/usr/bin/env bash
# make images-smoke: images/smoke.py on the images `make images` built (run it first).
#
#   images/smoke.sh [--grace S] [SERVICE...]
#
# Settings: images/lib.sh.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$IMAGES_ROOT"

list=()
for name in "${SERVICES[@]}"; do
  image="$(image_of "$name")"
  podman_ image exists "$image" || { echo "images-smoke: no $image (make images)" >&2; exit 1; }
  list+=("$name=$image")
done
PY="${PYTHON:-$IMAGES_ROOT/.venv/bin/python}"
[[ -x "$PY" ]] || PY="$(command -v python3)"
DEDUP_IMAGES_PODMAN="${PODMAN[*]}" DEDUP_IMAGES_RUN_FLAGS="${ULIMIT_FLAGS[*]}" \
  DEDUP_IMAGES_IMAGES="${list[*]}" exec "$PY" images/smoke.py "$@"
