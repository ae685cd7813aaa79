#!/usr/bin/env bash
# `make container-base`: a Debian bookworm base image made here, for machines that cannot pull
# python:3.11-slim-bookworm from a registry (ENVIRONMENT.md, Containers):
#
#   debootstrap --variant=minbase bookworm ROOTFS http://deb.debian.org/debian
#   tar -C ROOTFS -c . | podman import - localhost/debian:bookworm
#
# Needs root (debootstrap) and debootstrap itself (Debian: apt-get install -y debootstrap).
# Does nothing when the image already exists; FORCE=1 remakes it. The root filesystem is
# built under build/ (git-ignored) and removed once imported.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/container-engine.sh
detect_engine
began=$SECONDS

if image_exists "$CONTAINER_BASE" && [ "${FORCE:-0}" != 1 ]; then
    echo "base image $CONTAINER_BASE exists ($ENGINE_NAME); FORCE=1 make container-base remakes it"
    exit 0
fi
if ! command -v debootstrap >/dev/null 2>&1; then
    echo "error: debootstrap is not installed; on Debian/Ubuntu: apt-get install -y debootstrap" >&2
    exit 2
fi
if [ "$(id -u)" != 0 ]; then
    echo "error: debootstrap needs root; run: sudo make container-base" >&2
    exit 2
fi

rootfs="build/rootfs-bookworm"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
rm -rf "$rootfs"
mkdir -p build
echo "debootstrap --variant=minbase bookworm $rootfs $mirror"
debootstrap --variant=minbase bookworm "$rootfs" "$mirror" > build/debootstrap.log 2>&1 || {
    tail -20 build/debootstrap.log >&2
    echo "error: debootstrap failed (full log: build/debootstrap.log)" >&2
    exit 3
}
echo "importing $rootfs as $CONTAINER_BASE"
tar -C "$rootfs" -c . | "${ENGINE[@]}" import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["/bin/bash"]' - "$CONTAINER_BASE" >/dev/null
rm -rf "$rootfs"
"${ENGINE[@]}" run --rm "${RUN_FLAGS[@]}" "$CONTAINER_BASE" cat /etc/debian_version | sed 's/^/debian_version in the image: /'
echo "base image $CONTAINER_BASE made in $((SECONDS - began)) s"
