"""scripts/compare-lanes.py's row matching (issue 24): rows are matched on keys then every other
column, so repeated keys cannot pair the wrong rows; floats compare by their bytes."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pandas as pd

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "compare-lanes.py"
spec = importlib.util.spec_from_file_location("compare_lanes", SCRIPT)
compare_lanes = importlib.util.module_from_spec(spec)
spec.loader.exec_module(compare_lanes)


def _frame(rows):
    return pd.DataFrame(rows, columns=["customer_id", "ts", "label", "amount"])


def test_rows_with_repeated_keys_match_whatever_order_each_lane_wrote_them():
    rows = [("c1", pd.Timestamp("2024-03-01 00:00:00"), 1, 2.5), ("c1", pd.Timestamp("2024-03-01 00:00:00"), 0, None),
            ("c1", pd.Timestamp("2024-03-01 00:00:00"), 0, -0.0), ("c2", pd.Timestamp("2024-03-02"), None, math.nan)]
    left, right = _frame(rows), _frame(list(reversed(rows)))
    count, problems = compare_lanes.compare("t", left, right, ["customer_id", "ts"])
    assert (count, problems) == (16, [])
    assert compare_lanes.duplicate_keys(left, ["customer_id", "ts"]) == 2


def test_a_changed_value_or_sign_of_zero_is_a_difference_and_the_count_is_every_cell():
    left = _frame([("c1", pd.Timestamp("2024-03-01"), 1, 0.0), ("c2", pd.Timestamp("2024-03-01"), 1, 0.1 + 0.2)])
    right = _frame([("c1", pd.Timestamp("2024-03-01"), 1, -0.0), ("c2", pd.Timestamp("2024-03-01"), 1, 0.3)])
    count, problems = compare_lanes.compare("t", left, right, ["customer_id", "ts"])
    assert count == 8 and len(problems) == 2
    assert problems[0] == "t.amount at customer_id='c1', ts=Timestamp('2024-03-01 00:00:00'): 0.0 (3.5) != -0.0 (4.1)"
    assert problems[1].endswith(": 0.30000000000000004 (3.5) != 0.3 (4.1)")
    count, problems = compare_lanes.compare("t", left, left.iloc[:1], ["customer_id", "ts"])
    assert problems[0] == "t: 2 rows on Spark 3.5, 1 on Spark 4.1"
