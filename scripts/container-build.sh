#!/usr/bin/env bash
# `make container`: build the featurebank image from ./Containerfile with podman or docker.
#
#   BASE_IMAGE=...      the FROM image; default: the locally made $CONTAINER_BASE
#                       (`make container-base`) when it exists, else the Containerfile's
#                       default, the public python:3.11-slim-bookworm
#   CONTAINER_IMAGE=... the tag to build (default localhost/featurebank:latest)
#   EXTRA_CA_CERTS=...  PEM files of extra CAs that apt, pip and Maven inside the build must
#                       trust (a TLS-inspecting proxy); default: this host's locally added CAs,
#                       /usr/local/share/ca-certificates/*.crt, when there are any
#   CONTAINER_BUILD_OPTS="--no-cache"   more options for the engine's build command
#
# Layers are ordered so that a second build with only library changes reuses Java, the
# pinned dependencies and the resolved jars (seconds instead of minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/container-engine.sh
detect_engine
began=$SECONDS

build_args=()
base="${BASE_IMAGE:-}"
if [ -z "$base" ] && image_exists "$CONTAINER_BASE"; then
    base="$CONTAINER_BASE"
fi
if [ -n "$base" ]; then
    build_args+=(--build-arg "BASE_IMAGE=$base")
    echo "building $CONTAINER_IMAGE FROM $base with $ENGINE_NAME"
else
    echo "building $CONTAINER_IMAGE FROM the Containerfile's default base with $ENGINE_NAME"
fi
shopt -s nullglob
ca_files=(${EXTRA_CA_CERTS:-/usr/local/share/ca-certificates/*.crt})
shopt -u nullglob
if [ "${#ca_files[@]}" -gt 0 ]; then
    echo "trusting ${#ca_files[@]} extra CA file(s) in the build: ${ca_files[*]}"
    build_args+=(--build-arg "EXTRA_CA_CERTS=$(awk 1 "${ca_files[@]}")")
fi
# shellcheck disable=SC2086  # a list of options
"${ENGINE[@]}" build "${BUILD_FLAGS[@]}" ${CONTAINER_BUILD_OPTS:-} "${build_args[@]}" -t "$CONTAINER_IMAGE" -f Containerfile .
echo "image $CONTAINER_IMAGE built in $((SECONDS - began)) s"
"${ENGINE[@]}" image inspect --format '{{.Size}}' "$CONTAINER_IMAGE" \
    | awk '{ printf "image size: %.0f MB\n", $1 / 1e6 }'
