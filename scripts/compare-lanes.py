"""Run the demo on both Spark lanes and compare what they published, value by value (issue 24).

    python scripts/compare-lanes.py --python35 .venv/bin/python --python41 .venv-spark4/bin/python [--keep DIR]

Each lane runs `featurebank_demo.demo` (a small fixed bank: same seed, same dates) in its own
copy of the example project; then every feature group's Delta table (read with deltalake, no
Spark) and the `card_fraud_v1` training set (Parquet) are compared cell by cell, rows matched
on their keys and time columns. Floating-point values must be bit-identical (their IEEE-754
bytes), everything else equal; NULL equals only NULL. Prints one line per table with the
number of compared values and exits 1 naming the first differences if any.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DEMO_ARGS = ["--customers", "300", "--days", "120", "--run-days", "14", "--end-date", "2024-03-31", "--seed", "7"]
TRAINING_SET = "card_fraud_v1"
TIME_COLUMNS = ("feature_date", "feature_ts", "ts")


def run_demo(python: str, root: Path) -> float:
    """Run the demo with `python` in a fresh copy of the example project at `root`; seconds taken."""
    shutil.copytree(REPO / "features", root / "features")
    shutil.copytree(REPO / "conf", root / "conf")
    env = {k: v for k, v in os.environ.items() if k not in ("PYSPARK_PYTHON", "PYSPARK_DRIVER_PYTHON", "VIRTUAL_ENV")}
    env["PYTHONPATH"] = f"{REPO / 'lib'}:{REPO / 'tools'}"
    started = time.perf_counter()
    done = subprocess.run([python, "-m", "featurebank_demo.demo", "--project", str(root), *DEMO_ARGS],
                          capture_output=True, text=True, env=env, cwd=root)
    if done.returncode != 0:
        sys.exit(f"the demo failed on {python} (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return time.perf_counter() - started


def _cell(value: Any) -> Any:
    """A cell as a comparable token: floats by their bytes, NULL/NaT/None as None."""
    if value is None:
        return None
    try:
        import pandas as pd

        if value is pd.NaT or (not isinstance(value, (str, bytes, list, dict)) and pd.isna(value)):
            return ("nan", struct.pack(">d", float("nan"))) if isinstance(value, float) and math.isnan(value) else None
    except (TypeError, ValueError):
        pass
    if isinstance(value, float):
        return ("f", struct.pack(">d", value))
    return ("v", value if not hasattr(value, "tolist") else value.tolist())


def _order(token: Any) -> tuple[int, str]:
    """A sort key for a cell token: NULL first, then by repr (deterministic, equal on both lanes
    for equal values; not numeric order, which matching rows does not need)."""
    return (0, "") if token is None else (1, repr(token))


def _show(token: Any) -> str:
    """A cell token as the value it stands for: `NULL`, `'c1'`, `0.30000000000000004`."""
    if token is None:
        return "NULL"
    kind, value = token
    return repr(struct.unpack(">d", value)[0]) if kind in ("f", "nan") else repr(value)


def _rows(frame: Any, keys: list[str]) -> list[tuple[Any, ...]]:
    """The frame's rows as tuples of cell tokens, sorted on `keys` then on every other column, so
    rows whose keys repeat (a training set's label rows can) still line up one to one."""
    columns = list(frame.columns)
    rows = [tuple(_cell(v) for v in row) for row in zip(*(frame[c].tolist() for c in columns))]
    order = [columns.index(k) for k in keys] + [i for i, c in enumerate(columns) if c not in keys]
    return sorted(rows, key=lambda row: tuple(_order(row[i]) for i in order))


def compare(name: str, left: Any, right: Any, keys: list[str]) -> tuple[int, list[str]]:
    """Compare two pandas frames cell by cell after matching rows on `keys` (ties broken on every
    other column); (values compared, differences)."""
    problems: list[str] = []
    if list(left.columns) != list(right.columns):
        return 0, [f"{name}: columns differ: {list(left.columns)} vs {list(right.columns)}"]
    if len(left) != len(right):
        problems.append(f"{name}: {len(left)} rows on Spark 3.5, {len(right)} on Spark 4.1")
    columns = list(left.columns)
    compared = 0
    for a_row, b_row in zip(_rows(left, keys), _rows(right, keys)):
        for column, a, b in zip(columns, a_row, b_row):
            compared += 1
            if a != b and len(problems) < 20:
                row = ", ".join(f"{k}={_show(a_row[columns.index(k)])}" for k in keys)
                problems.append(f"{name}.{column} at {row}: {_show(a)} (3.5) != {_show(b)} (4.1)")
    return compared, problems


def duplicate_keys(frame: Any, keys: list[str]) -> int:
    """How many rows share their keys with an earlier row (matched by the tie-break, not the keys)."""
    return int(frame.duplicated(subset=keys).sum()) if keys else 0


def tables(root: Path) -> dict[str, Path]:
    features = root / "warehouse" / "features"
    return {p.name: p for p in sorted(features.iterdir()) if (p / "_delta_log").is_dir() and not p.name.startswith("_")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python35", default=str(REPO / ".venv" / "bin" / "python"))
    parser.add_argument("--python41", default=str(REPO / ".venv-spark4" / "bin" / "python"))
    parser.add_argument("--keep", type=Path, help="run in this directory and keep it (default: a temporary one)")
    parser.add_argument("--reuse", action="store_true",
                        help="with --keep: a lane whose demo finished there (its training set exists) is not run again")
    args = parser.parse_args(argv)
    import pandas as pd
    from deltalake import DeltaTable

    base = args.keep or Path(tempfile.mkdtemp(prefix="featurebank-lanes-"))
    roots = {"3.5": base / "spark35", "4.1": base / "spark41"}
    for lane, python in (("3.5", args.python35), ("4.1", args.python41)):
        if args.keep and args.reuse and (roots[lane] / "warehouse" / "training" / TRAINING_SET).exists():
            print(f"demo on Spark {lane}: reused from {roots[lane]}")
            continue
        shutil.rmtree(roots[lane], ignore_errors=True)  # a demo that did not finish starts again
        seconds = run_demo(python, roots[lane])
        print(f"demo on Spark {lane}: {seconds:.0f} s")
    total, problems = 0, []
    names = tables(roots["3.5"])
    if set(names) != set(tables(roots["4.1"])):
        problems.append(f"tables differ: {sorted(names)} vs {sorted(tables(roots['4.1']))}")
    for name, path in names.items():
        left = DeltaTable(str(path)).to_pandas()
        right = DeltaTable(str(roots["4.1"] / "warehouse" / "features" / name)).to_pandas()
        keys = [c for c in left.columns if c.endswith("_id")] + [c for c in TIME_COLUMNS if c in left.columns]
        count, found = compare(name, left, right, keys)
        print(f"{name}: {len(left)} rows ({duplicate_keys(left, keys)} with repeated keys), {count} values compared, "
              f"{len(found)} differences")
        total, problems = total + count, problems + found
    training = [roots[lane] / "warehouse" / "training" / TRAINING_SET for lane in ("3.5", "4.1")]
    left, right = (pd.read_parquet(p) for p in training)
    keys = [c for c in left.columns if c.endswith("_id")] + [c for c in TIME_COLUMNS if c in left.columns]
    count, found = compare(TRAINING_SET, left, right, keys)
    print(f"{TRAINING_SET}: {len(left)} rows ({duplicate_keys(left, keys)} with repeated keys), {count} values "
          f"compared, {len(found)} differences")
    total, problems = total + count, problems + found
    print(f"compared {total} values between Spark 3.5 and Spark 4.1: {len(problems)} differences")
    for line in problems:
        print(f"  {line}")
    if args.keep is None:
        shutil.rmtree(base, ignore_errors=True)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
