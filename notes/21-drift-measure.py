"""Time the gate on notes/20-gate-measure.py's 1 M x 15 batch with and without a drift check on 5 features.

PYTHONPATH=lib:tools .venv/bin/python notes/21-drift-measure.py [rows]

Per round (each on a freshly persisted, materialised batch; the same data every time):
- `none`: the batch's 5 checks alone (`judge.judge_with`, the gate's pass without drift);
- `inside`: the same plus 5 drift checks whose bucket counts ride in the one pass
  (`judge_with(..., per_date=drift_sums(...))` then `judge_drift(..., measured)`: what `judge_batch` does now);
- `separate`: the 5 checks, then the drift checks in a pass of their own (the code before issue 21's move).
References: the stored-profile rule (`engine.drift.reference_of`) over `engine.profile.profile_batch`
of the batch's first 7 dates, so the drift is measured against a real reference (and passes).
Round 0 warms up (not counted); rounds 1-3 run the variants in rotated order. Prints each
timing and the median of 3.
"""

from __future__ import annotations

import importlib.util
import os
import statistics
import sys
import time
from pathlib import Path

from featurebank.compile.group import CheckSpec
from featurebank.engine.drift import reference_of
from featurebank.engine.profile import profile_batch
from featurebank.gate.drift import drift_sums, judge_drift
from featurebank.gate.judge import judge_with
from featurebank.io.spark import get_spark

_spec = importlib.util.spec_from_file_location("gate_measure", Path(__file__).with_name("20-gate-measure.py"))
assert _spec is not None and _spec.loader is not None
base = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(base)

DRIFTED = ("spend_sum_7d", "txn_count_30d", "spend_avg_90d", "spend_max_30d", "merchants_90d")
DRIFT = tuple(CheckSpec("expect_column_drift_to_be_below", (("column", c), ("min_rows", 500)), "error", f"d:{i}")
              for i, c in enumerate(DRIFTED))


def main() -> None:
    os.environ["FEATUREBANK_SPARK_MASTER"] = "local[2]"
    spark = get_spark(None, app_name="drift-measure", platform="local")
    spark.conf.set("spark.sql.session.timeZone", "UTC")
    print(f"rows {base.ROWS}; load average before: {os.getloadavg()}", flush=True)
    first = base.batch(spark)
    dates = sorted(r[0] for r in first.select("feature_date").distinct().collect())[:7]
    sample = first.where(first.feature_date.isin(dates))
    profiles = profile_batch(sample, "bench", DRIFTED)
    references = {c: reference_of(profiles, c) for c in DRIFTED}
    assert all(r is not None for r in references.values()), references
    times: dict[str, list[float]] = {"none": [], "inside": [], "separate": []}

    def none(df):
        judge_with(df, base.CHECKS, "none")

    def inside(df):
        projected, sums = drift_sums(DRIFT, references)
        _, measured = judge_with(df, base.CHECKS, "inside", per_date=sums, projected=projected)
        results = judge_drift(df, DRIFT, references, (), measured)
        assert all(r.success for r in results), [r.observed_value for r in results]

    def separate(df):
        judge_with(df, base.CHECKS, "separate")
        judge_drift(df, DRIFT, references)

    variants = [("none", none), ("inside", inside), ("separate", separate)]
    for round_ in (0, 1, 2, 3):  # round 0 warms the JVM's code up and is not counted
        for name, fn in variants[round_ % 3:] + variants[:round_ % 3]:  # a different order each round
            df = base.batch(spark).persist()
            df.count()
            started = time.perf_counter()
            fn(df)
            seconds = time.perf_counter() - started
            if round_:
                times[name].append(seconds)
            print(f"[{round_}] {name:9s} {seconds:7.2f} s  (load {os.getloadavg()[0]:.1f})", flush=True)
            df.unpersist()
    for name, values in times.items():
        print(f"median {name:9s} {statistics.median(values):7.2f} s  ({', '.join(f'{v:.2f}' for v in values)})")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    sys.exit(main())
