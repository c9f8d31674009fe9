# Shared by images/*.sh: the project's version, the services, and podman with the flags this
# kind of machine needs. Every setting is an environment variable with a default:
#
#   DEDUP_IMAGES_REPOSITORY   localhost/dedup         images are <repository>/<service>:<version>
#   DEDUP_IMAGES_BASE         localhost/dedup-base:bookworm-<version>   the base (images/base.sh)
#   DEDUP_IMAGES_STORAGE      ~/.local/share/dedup-images   podman's --root: outside the
#                             checkout, so that a clean checkout (CI) builds from the cache
#                             and `make clean` keeps the images; given as flags (through
#                             CONTAINERS_STORAGE_CONF every `run --rm` took 20 s here);
#                             "system" uses podman's own storage
#   DEDUP_IMAGES_RUNROOT      $XDG_RUNTIME_DIR or /run, + /dedup-images   podman's --runroot
#                             (a tmpfs: its state must not outlive a reboot)
#   DEDUP_IMAGES_RUNTIME      runc                    crun fails on hosts with hybrid cgroups
#   DEDUP_IMAGES_ULIMITS      "nofile=16384:16384 nproc=8192:8192"   containers get these
#                             limits instead of the host's (without CAP_SYS_RESOURCE podman
#                             cannot raise them)
#   DEDUP_IMAGES_CA_BUNDLE    $PIP_CERT, else empty   a CA bundle mounted read-only over the
#                             builds' /etc/ssl/certs/ca-certificates.crt, so that pip
#                             reaches the package index behind a TLS-inspecting proxy (a
#                             machine whose own pip is given PIP_CERT needs it); a user's
#                             machine does not: leave it empty (DEDUP_IMAGES_CA_BUNDLE=)
# shellcheck shell=bash

IMAGES_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VERSION="$(sed -n 's/^version = "\([^"]*\)".*/\1/p' "$IMAGES_ROOT/pyproject.toml" | head -n 1)"
[[ -n "$VERSION" ]] || { echo "images: no version in pyproject.toml" >&2; exit 1; }

# service name -> its HTTP port (/metrics, /healthz, /readyz): DEDUP_<SERVICE>_HTTP_PORT's
# default; scripts/chart_checks.py checks the two agree.
declare -A SERVICE_PORTS=(
  [hasher]=9101 [verifier]=9102 [embedder]=9103 [matcher]=9104 [ranker]=9105 [ingest]=9106
)
SERVICES=(hasher verifier embedder matcher ranker ingest)

REPOSITORY="${DEDUP_IMAGES_REPOSITORY:-localhost/dedup}"
BASE_IMAGE="${DEDUP_IMAGES_BASE:-localhost/dedup-base:bookworm-$VERSION}"
STORAGE="${DEDUP_IMAGES_STORAGE:-${XDG_DATA_HOME:-$HOME/.local/share}/dedup-images}"
RUNROOT="${DEDUP_IMAGES_RUNROOT:-${XDG_RUNTIME_DIR:-/run}/dedup-images}"
RUNTIME="${DEDUP_IMAGES_RUNTIME:-runc}"
read -r -a ULIMITS <<<"${DEDUP_IMAGES_ULIMITS-nofile=16384:16384 nproc=8192:8192}"
CA_BUNDLE="${DEDUP_IMAGES_CA_BUNDLE-${PIP_CERT:-}}"

image_of() { echo "$REPOSITORY/$1:$VERSION"; }

PODMAN=(podman)
[[ "$STORAGE" == system ]] || PODMAN+=(--root "$STORAGE" --runroot "$RUNROOT")
# Build logs (images/build.sh).
LOGS="${DEDUP_IMAGES_LOGS:-$IMAGES_ROOT/.run/images}"
[[ -z "$RUNTIME" ]] || PODMAN+=(--runtime "$RUNTIME")
# Without systemd (a container, a CI runner) podman's defaults (systemd cgroups, journald
# events) only warn and fall back; say so up front.
if [[ ! -d /run/systemd/system ]]; then
  PODMAN+=(--cgroup-manager cgroupfs --events-backend file)
fi
podman_() { "${PODMAN[@]}" "$@"; }

ULIMIT_FLAGS=()
for limit in "${ULIMITS[@]}"; do ULIMIT_FLAGS+=(--ulimit "$limit"); done
CA_FLAGS=()
[[ -z "$CA_BUNDLE" ]] || CA_FLAGS+=(-v "$CA_BUNDLE:/etc/ssl/certs/ca-certificates.crt:ro")

log() { printf '==> %s\n' "$*"; }
