#!/usr/bin/env bash
# make images: the base image (images/base.sh) and every service's image from ./Dockerfile,
# built with podman, tagged <repository>/<service>:<version> (localhost/dedup/hasher:0.1.0).
#
#   images/build.sh [SERVICE...]     all six unless named
#
# The builder stage is the same for the six (SERVICE is used in the runtime stage only),
# so it is built once and cached; a change of the sources reinstalls only the project.
# Settings: images/lib.sh.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$IMAGES_ROOT"

bash images/install_tools.sh
bash images/base.sh

names=("$@")
((${#names[@]})) || names=("${SERVICES[@]}")
mkdir -p "$LOGS"
summary=()
total=$SECONDS
for name in "${names[@]}"; do
  port="${SERVICE_PORTS[$name]:-}"
  [[ -n "$port" ]] || { echo "images: no service $name (${SERVICES[*]})" >&2; exit 2; }
  image="$(image_of "$name")"
  log "podman build $image"
  start=$SECONDS
  # --format docker keeps HEALTHCHECK (OCI image configs have no field for it); host
  # network: the builds reach the package index the way the machine does.
  podman_ build --format docker --network host --layers \
    "${ULIMIT_FLAGS[@]}" "${CA_FLAGS[@]}" \
    --build-arg "PYTHON_IMAGE=$BASE_IMAGE" \
    --build-arg "SERVICE=$name" --build-arg "PORT=$port" \
    --label "org.opencontainers.image.version=$VERSION" \
    --tag "$image" --file Dockerfile . >"$LOGS/build-$name.log" 2>&1 \
    || { tail -n 40 "$LOGS/build-$name.log" >&2; echo "images: $image failed (log: $LOGS/build-$name.log)" >&2; exit 1; }
  size="$(podman_ image inspect --format '{{.Size}}' "$image")"
  summary+=("$(printf '%-36s %6s MB %4d s' "$image" "$((size / 1000000))" "$((SECONDS - start))")")
done
# (No `podman image prune` here: the builder stage's intermediate images are the cache.)
log "built in $((SECONDS - total)) s:"
printf '  %s\n' "${summary[@]}"
