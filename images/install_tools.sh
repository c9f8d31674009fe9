#!/usr/bin/env bash
# Install what `make images` and `make images-smoke` need from Debian's own packages:
# podman (builds and runs the images), debootstrap (the registry-free base image), runc
# (crun cannot run containers on a host with hybrid cgroups), uidmap and fuse-overlayfs
# (podman's storage), catatonit (the pause process of `podman kube play`'s pods). Idempotent: installs only what is missing; needs root (or sudo).
set -euo pipefail

# package:command that proves it is installed
WANT=(podman:podman debootstrap:debootstrap runc:runc uidmap:newuidmap fuse-overlayfs:fuse-overlayfs
  catatonit:catatonit)

missing=()
for entry in "${WANT[@]}"; do
  command -v "${entry#*:}" >/dev/null 2>&1 || missing+=("${entry%%:*}")
done
if ((${#missing[@]} == 0)); then
  echo "images: podman $(podman --version | awk '{print $3}'), debootstrap, runc: installed"
  exit 0
fi

SUDO=()
if ((EUID != 0)); then
  command -v sudo >/dev/null || { echo "images: need root or sudo to install ${missing[*]}" >&2; exit 1; }
  SUDO=(sudo)
fi
command -v apt-get >/dev/null || { echo "images: no apt-get; install ${missing[*]} by hand" >&2; exit 1; }
echo "images: installing ${missing[*]} (apt-get)"
"${SUDO[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq --no-install-recommends \
  "${missing[@]}" >/dev/null
echo "images: podman $(podman --version | awk '{print $3}') installed"
