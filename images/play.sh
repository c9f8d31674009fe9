#!/usr/bin/env bash
# The chart's Deployments with `podman kube play` (images/play.py): render charts/dedup with
# ci/podman-values.yaml, play them on the host network, check every pod, take them down.
#
#   images/play.sh                 the local stack down: every pod starts, is healthy, not ready
#   images/play.sh --ready-timeout 300 --keep   with the private stack up (ports: podman-values.yaml)
#
# Needs `make images` and the chart tools (scripts/install_chart_tools.sh: helm, PyYAML).
# Settings: images/lib.sh.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$IMAGES_ROOT"

for name in "${SERVICES[@]}"; do
  podman_ image exists "$(image_of "$name")" || { echo "play: no $(image_of "$name") (make images)" >&2; exit 1; }
done
[[ -x .tools/bin/helm ]] || bash scripts/install_chart_tools.sh >/dev/null
# helm needs the chart without its optional, unvendored dependency (scripts/chart.sh does the same).
stage="out/play/stage/dedup"
rm -rf "$stage"
PYTHONPATH="$IMAGES_ROOT" python3 scripts/chart_checks.py stage charts/dedup "$stage" >/dev/null
# `podman kube play` has no --ulimit: the same limits as containers.conf defaults.
mkdir -p "$LOGS"
conf="$LOGS/containers.conf"
limits=()
for limit in "${ULIMITS[@]}"; do limits+=("\"$limit\""); done
printf '[containers]\ndefault_ulimits = [%s]\n' "$(IFS=,; echo "${limits[*]}")" >"$conf"
export CONTAINERS_CONF="$conf"
PY="${PYTHON:-$IMAGES_ROOT/.venv/bin/python}"
[[ -x "$PY" ]] || PY="$(command -v python3)"
DEDUP_IMAGES_PODMAN="${PODMAN[*]}" DEDUP_PLAY_CHART="$stage" PYTHONPATH="$IMAGES_ROOT/.tools/py" \
  exec "$PY" images/play.py "$@"
