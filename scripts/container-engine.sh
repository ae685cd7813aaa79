# Sourced by the container-*.sh scripts: pick a container engine that works, and its flags.
#
#   CONTAINER_ENGINE=podman|docker   force one (default: the first of podman, docker that answers `info`)
#   CONTAINER_IMAGE                  the featurebank image (default localhost/featurebank:latest)
#   CONTAINER_BASE                   the locally made base image (default localhost/debian:bookworm)
#
# Sets ENGINE (a command array, e.g. `podman --runtime runc`), ENGINE_NAME, BUILD_FLAGS and
# RUN_FLAGS. A `docker` binary without a daemon does not count: `docker info` fails there.
# podman gets `--runtime runc` when runc is installed, host networking for builds and raised
# ulimits, which machines like our CI need (see /work/shared/ENVIRONMENT.md, Containers).

CONTAINER_IMAGE="${CONTAINER_IMAGE:-localhost/featurebank:latest}"
CONTAINER_BASE="${CONTAINER_BASE:-localhost/debian:bookworm}"

detect_engine() {
    local candidates="${CONTAINER_ENGINE:-podman docker}" name
    local tried=""
    for name in $candidates; do
        if ! command -v "$name" >/dev/null 2>&1; then
            tried="$tried $name (not installed);"
            continue
        fi
        if [ "$name" = podman ]; then
            ENGINE=(podman)
            if command -v runc >/dev/null 2>&1; then ENGINE+=(--runtime runc); fi
            BUILD_FLAGS=(--network=host --ulimit nofile=20000:20000 --ulimit nproc=4096:4096)
            RUN_FLAGS=(--ulimit nofile=20000:20000 --ulimit nproc=4096:4096)
        else
            ENGINE=("$name")
            BUILD_FLAGS=(--network=host)
            RUN_FLAGS=()
        fi
        if "${ENGINE[@]}" info >/dev/null 2>&1; then
            ENGINE_NAME="$name"
            return 0
        fi
        tried="$tried $name (installed, but '$name info' fails: no daemon or no permission);"
    done
    echo "error: no working container engine:$tried install podman (Debian: apt-get install -y podman runc) or start a Docker daemon, or set CONTAINER_ENGINE" >&2
    return 2
}

image_exists() {
    "${ENGINE[@]}" image inspect "$1" >/dev/null 2>&1
}

# Options that let the image's non-root user write the mounted project directory $1.
#  - rootless podman: --userns=keep-id (your uid inside is your uid outside);
#  - a non-root host user (docker, rootful podman via sudo): --user uid:gid;
#  - root on the host (CI): the project directory is handed to the image's user (uid 1000).
project_user_flags() {
    local dir="$1"
    PROJECT_USER_FLAGS=()
    if [ "$ENGINE_NAME" = podman ] && [ "$("${ENGINE[@]}" info --format '{{.Host.Security.Rootless}}' 2>/dev/null)" = true ]; then
        PROJECT_USER_FLAGS=(--userns=keep-id)
    elif [ "$(id -u)" != 0 ]; then
        PROJECT_USER_FLAGS=(--user "$(id -u):$(id -g)")
    else
        chown -R 1000:1000 "$dir"
    fi
}
