#!/usr/bin/env bash
# Generate Python code (and mypy stubs) for protos/dedup/v1 into libs/dedup/v1.
# With --check, generate into a scratch folder and fail if the checked-in code differs.
set -euo pipefail
cd "$(dirname "$0")/.."
venv_bin=.venv/bin
out=libs
if [[ "${1:-}" == "--check" ]]; then
  out=$(mktemp -d)
  trap 'rm -rf "$out"' EXIT
fi
mkdir -p "$out/dedup/v1"
"$venv_bin/python" -m grpc_tools.protoc -I protos \
  --python_out="$out" --mypy_out="$out" --plugin=protoc-gen-mypy="$venv_bin/protoc-gen-mypy" \
  protos/dedup/v1/*.proto 2> >(grep -v "^Writing mypy" >&2)
if [[ "${1:-}" == "--check" ]]; then
  if ! diff -r -q -x '__init__.py' -x '__pycache__' "$out/dedup/v1" libs/dedup/v1; then
    echo "protos: libs/dedup/v1 is stale; run 'make proto' and commit the result" >&2
    exit 1
  fi
  echo "protos: generated code is current"
fi
