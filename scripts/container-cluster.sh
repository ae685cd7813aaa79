#!/usr/bin/env bash
# The compose.yaml cluster, by hand, in ONE container: a standalone master and two workers
# started with the same `spark-class` commands compose uses (on 127.0.0.1 instead of service
# names), then the driver's `featurebank run --all` submitted to spark://127.0.0.1:7077, with
# no network. Prints the application id the master registered; stops every process by its pid.
#
#   DEMO_PROJECT=build/container-demo   a project with data (make container-demo makes it)
#   START=D END=D                       the snapshot dates to run (default: the 7 ending today, UTC:
#                                       the demo's data ends yesterday)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/container-engine.sh
detect_engine
began=$SECONDS

project="${DEMO_PROJECT:-build/container-demo}"
if [ ! -d "$project/warehouse/raw" ]; then
    echo "error: $project has no warehouse/raw; run make container-demo first" >&2
    exit 2
fi
project_abs="$(cd "$project" && pwd)"
project_user_flags "$project_abs"

"${ENGINE[@]}" run --rm -i "${RUN_FLAGS[@]}" --network=none "${PROJECT_USER_FLAGS[@]}" \
    -v "$project_abs:/project" -e START="${START:-$(date -u -d '6 days ago' +%F)}" -e END="${END:-$(date -u +%F)}" \
    --entrypoint bash "$CONTAINER_IMAGE" -s <<'INSIDE'
set -euo pipefail
logs=/tmp/cluster-logs
mkdir -p "$logs"
pids=()
stop_all() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap stop_all EXIT

# compose service "master"
spark-class org.apache.spark.deploy.master.Master --host 127.0.0.1 --port 7077 --webui-port 8080 \
    > "$logs/master.log" 2>&1 &
pids+=($!)
# compose services "worker-1" and "worker-2"
for n in 1 2; do
    spark-class org.apache.spark.deploy.worker.Worker spark://127.0.0.1:7077 --host 127.0.0.1 --cores 1 \
        --memory 2g --work-dir "/tmp/spark-work-$n" --webui-port "808$n" > "$logs/worker-$n.log" 2>&1 &
    pids+=($!)
done
for _ in $(seq 120); do
    [ "$(grep -c 'Registering worker' "$logs/master.log" || true)" -ge 2 ] && break
    sleep 1
done
grep 'Registering worker' "$logs/master.log" | sed 's/^.*INFO Master: /master: /'
[ "$(grep -c 'Registering worker' "$logs/master.log")" -ge 2 ] || { cat "$logs"/*.log; exit 3; }

# compose service "driver"
echo "+ FEATUREBANK_SPARK_MASTER=spark://127.0.0.1:7077 featurebank run --all --project /project --start $START --end $END"
FEATUREBANK_SPARK_MASTER=spark://127.0.0.1:7077 featurebank run --all --project /project --start "$START" --end "$END"
grep -E 'Registered app|Launching executor' "$logs/master.log" | sed 's/^.*INFO Master: /master: /'
echo "executors' stderr lines mentioning python workers: $(cat /tmp/spark-work-*/app-*/*/stderr 2>/dev/null | grep -c -i python || true)"
INSIDE
echo "cluster run in one container finished in $((SECONDS - began)) s"
"${HOST_PYTHON:-.venv/bin/python}" scripts/container-read-tables.py "$project_abs/warehouse"
