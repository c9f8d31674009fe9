#!/usr/bin/env bash
# Stops the local stack started by up.sh (from the PID files under $DEDUP_RUN_DIR): TERM,
# up to 20s for a clean shutdown, then KILL of whatever is left of each part's session.
# Idempotent: nothing running is fine. Data is kept unless --purge is given (which then
# removes the whole run dir).
# Usage: down.sh [--purge] [PART...]: only the named parts (kafka azurite milvus triton prometheus).
set -euo pipefail
# shellcheck source=stack/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

purge=
if [[ ${1:-} == --purge ]]; then
  purge=1
  shift
  (($# == 0)) || die "--purge removes the whole run dir: it stops every part, name none"
fi
select_components "$@"

t_total=$(now_ms)
# Reverse start order: the consumers of Kafka and Milvus go first.
for ((i = ${#SELECTED[@]} - 1; i >= 0; i--)); do
  stop "${SELECTED[i]}"
done
if [[ -n $purge ]]; then
  rm -rf "$RUN_DIR"
  printf 'stack: removed %s\n' "$RUN_DIR"
fi
printf 'stack: down in %s\n' "$(since "$t_total")"
