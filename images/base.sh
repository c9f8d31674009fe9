#!/usr/bin/env bash
# The services' base image without any image registry: a minimal Debian bookworm made
# with debootstrap from Debian's mirror, imported into podman as $BASE_IMAGE
# (localhost/dedup-base:bookworm-<version>). It carries python3 (3.11, what the project
# requires) with venv, tini (PID 1: forwards SIGTERM and reaps) and the CA certificates
# (HTTPS to Azure); no compilers, no apt lists, no docs.
#
#   images/base.sh            build it unless it exists
#   images/base.sh --force    build it again
#
# Settings: images/lib.sh; DEBIAN_MIRROR (http://deb.debian.org/debian).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
PACKAGES=python3,python3-venv,python-is-python3,ca-certificates,tini

if [[ "${1:-}" != --force ]] && podman_ image exists "$BASE_IMAGE"; then
  log "$BASE_IMAGE exists ($(podman_ image inspect --format '{{.Size}}' "$BASE_IMAGE" | numfmt --to=si)B)"
  exit 0
fi

ROOTFS="$(mktemp -d "${TMPDIR:-/tmp}/dedup-base.XXXXXX")"
trap 'rm -rf "$ROOTFS"' EXIT
log "debootstrap --variant=minbase bookworm ($PACKAGES)"
start=$SECONDS
debootstrap --variant=minbase --include="$PACKAGES" bookworm "$ROOTFS" "$MIRROR" \
  >"$ROOTFS.log" 2>&1 || { tail -n 30 "$ROOTFS.log" >&2; exit 1; }
rm -f "$ROOTFS.log"
# What a runtime never reads: package caches and lists, docs, man pages, locales.
chroot "$ROOTFS" apt-get clean
rm -rf "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/cache/apt/*.bin \
  "$ROOTFS"/usr/share/doc/* "$ROOTFS"/usr/share/man/* "$ROOTFS"/usr/share/info/* \
  "$ROOTFS"/var/log/*.log "$ROOTFS"/var/cache/debconf/*-old "$ROOTFS"/var/lib/dpkg/*-old
find "$ROOTFS"/usr/share/locale -mindepth 1 -maxdepth 1 ! -name 'locale.alias' -exec rm -rf {} +
find "$ROOTFS"/usr/lib/python3* -name __pycache__ -prune -exec rm -rf {} +
log "podman import -> $BASE_IMAGE"
tar -C "$ROOTFS" --numeric-owner -c . | podman_ import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["/bin/bash"]' \
  --message "debootstrap --variant=minbase bookworm + $PACKAGES" \
  - "$BASE_IMAGE" >/dev/null
log "$BASE_IMAGE: $(podman_ image inspect --format '{{.Size}}' "$BASE_IMAGE" | numfmt --to=si)B in $((SECONDS - start)) s"
