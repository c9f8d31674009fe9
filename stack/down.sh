#!/usr/bin/env bash
# Stops the local stack started by up.sh (from the PID files under $DEDUP_RUN_DIR): TERM,
# up to 20s for a clean shutdown, then KILL of whatever is left of each part's session.
# Idempotent: nothing running is fine. Data is kept unless --purge is given (which then
# removes the whole run dir).
set -euo pipefail
# shellcheck source=stack/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

purge=
case ${1:-} in
  --purge) purge=1 ;;
  "") ;;
  *) die "usage: $0 [--purge]" ;;
esac

t_total=$(now_ms)
# Reverse start order: the consumers of Kafka and Milvus go first.
for ((i = ${#COMPONENTS[@]} - 1; i >= 0; i--)); do
  stop "${COMPONENTS[i]}"
done
if [[ -n $purge ]]; then
  rm -rf "$RUN_DIR"
  printf 'stack: removed %s\n' "$RUN_DIR"
fi
printf 'stack: down in %s\n' "$(since "$t_total")"
