#!/usr/bin/env bash
# `make demo`: start the local stack, then run `dedup demo` on it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash stack/up.sh
.venv/bin/dedup demo "$@"
echo
echo "The stack is still running: 'make status' shows it, 'make down' stops it."
