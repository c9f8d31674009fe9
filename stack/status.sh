#!/usr/bin/env bash
# One line per part of the local stack: state (running / unhealthy / stopped), PID, ports
# and log. Exit status 0 when every part is running and healthy, 3 otherwise (as systemctl).
set -euo pipefail
# shellcheck source=stack/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

rc=0
fmt='%-11s %-10s %-8s %-18s %s\n'
# shellcheck disable=SC2059
printf "$fmt" COMPONENT STATE PID PORTS LOG
for c in "${COMPONENTS[@]}"; do
  if ! pid=$(running_pid "$c"); then
    state=stopped pid=- rc=3
  elif "${c}_healthy"; then
    state=running
  else
    state=unhealthy rc=3
  fi
  log=$(log_file "$c")
  # shellcheck disable=SC2059
  printf "$fmt" "$c" "$state" "$pid" "$("${c}_ports" | tr ' ' ,)" "${log#"$REPO_ROOT"/}"
done
exit "$rc"
