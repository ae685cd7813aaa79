#!/usr/bin/env bash
# `make container-demo`: the example project's demo inside the image, with no network, then
# every Delta table it wrote opened from outside the container with deltalake (delta-rs).
#
#   DEMO_PROJECT=build/container-demo   the project directory mounted at /project (features/
#                                       and conf/ are copied from this repository each time;
#                                       its warehouse/ is kept, so a rerun reuses the data)
#   DEMO_ARGS="--customers 500 ..."     the demo's scale (python -m featurebank_demo.demo --help)
#   HOST_PYTHON=.venv/bin/python        a Python with deltalake, for the check outside
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/container-engine.sh
detect_engine
began=$SECONDS

project="${DEMO_PROJECT:-build/container-demo}"
demo_args="${DEMO_ARGS:---customers 500 --merchants 60 --days 90 --run-days 14}"
host_python="${HOST_PYTHON:-.venv/bin/python}"

if ! image_exists "$CONTAINER_IMAGE"; then
    echo "error: image $CONTAINER_IMAGE not found; build it first: make container" >&2
    exit 2
fi
mkdir -p "$project"
rm -rf "$project/features" "$project/conf"
cp -r features conf "$project/"
project_abs="$(cd "$project" && pwd)"
project_user_flags "$project_abs"

run=("${ENGINE[@]}" run --rm "${RUN_FLAGS[@]}" --network=none "${PROJECT_USER_FLAGS[@]}" -v "$project_abs:/project")
echo "+ ${run[*]} $CONTAINER_IMAGE validate"
"${run[@]}" "$CONTAINER_IMAGE" validate
echo "+ ${run[*]} --entrypoint python $CONTAINER_IMAGE -m featurebank_demo.demo --project /project $demo_args"
# shellcheck disable=SC2086  # demo_args is a list of flags
"${run[@]}" --entrypoint python "$CONTAINER_IMAGE" -m featurebank_demo.demo --project /project $demo_args
echo "container demo finished in $((SECONDS - began)) s (no network inside the container)"

echo "reading the tables it wrote from outside the container (deltalake):"
"$host_python" scripts/container-read-tables.py "$project_abs/warehouse"
