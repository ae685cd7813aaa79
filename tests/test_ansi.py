"""ANSI SQL mode (issue 24): on for every session; a failure names the feature, the expression and a row.

Each test writes a tiny project (one parquet source, one group) whose definition fails only
because of ANSI semantics: a cast of 'abc' to int, a BIGINT overflow, a division by zero.
Without ANSI mode these gave NULL or a wrapped number and the run published it.
"""

from __future__ import annotations

from datetime import date, datetime, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from featurebank.cli import main
from featurebank.definitions import load_project
from featurebank.engine.ansi import failing_predicate
from featurebank.errors import RuntimeFailure, exit_code_for
from featurebank.io.runlog import read_runs
from featurebank.io.spark import session_conf
from featurebank.runner import run_group
from featurebank.spark_errors import ansi_failure

D1 = date(2024, 3, 2)
CONF = "feature_root: ./warehouse/features\nvariables: {raw_root: ./raw}\ntimezone: UTC\ncatalog: {type: none}\n"
DEFINITIONS = """\
kind: entity
name: customer
keys: [customer_id]
---
kind: source
name: events
format: parquet
path: ${{raw_root}}/events
timestamp: ts
columns: {{customer_id: string, code: string, big: bigint, ts: timestamp}}
---
kind: feature_group
name: probe
entity: customer
source: events
{body}
"""
ROWS = [("c1", "12", 5, datetime(2024, 3, 1, 9, tzinfo=timezone.utc)),
        ("c2", "abc", 2**62, datetime(2024, 3, 1, 10, tzinfo=timezone.utc))]


def _project(root: Path, body: str):
    (root / "conf").mkdir(parents=True, exist_ok=True)
    (root / "conf" / "local.yaml").write_text(CONF)
    (root / "features").mkdir(exist_ok=True)
    (root / "features" / "all.yaml").write_text(DEFINITIONS.format(body=body))
    target = root / "raw" / "events"
    target.mkdir(parents=True, exist_ok=True)
    schema = pa.schema([("customer_id", pa.string()), ("code", pa.string()), ("big", pa.int64()),
                        ("ts", pa.timestamp("us", tz="UTC"))])
    table = pa.Table.from_pylist([dict(zip(schema.names, r)) for r in ROWS], schema=schema)
    pq.write_table(table, target / "part-0.parquet")
    return load_project(root, "local")


def test_every_session_runs_in_ansi_mode_whatever_conf_says():
    assert session_conf(None, "local")["spark.sql.ansi.enabled"] == "true"
    assert session_conf(None, "glue")["spark.sql.ansi.enabled"] == "true"


def test_the_failing_predicate_is_true_where_ansi_fails():
    assert failing_predicate("a / nullif(b, 0)") == "(NULLIF(b, 0)) = 0"
    assert "try_cast(code AS INT) IS NULL" in (failing_predicate("cast(code as int)") or "")
    assert "try_multiply(big, 4) IS NULL" in (failing_predicate("big * 4") or "")
    assert failing_predicate("upper(code)") is None


def test_an_invalid_cast_fails_the_run_naming_feature_expression_and_keys(spark, tmp_path):
    project = _project(tmp_path, "features:\n  - {name: code_number, expr: \"cast(code as int)\"}")
    with pytest.raises(RuntimeFailure) as failed:
        run_group(project, "probe", date(2024, 3, 1), date(2024, 3, 1), spark=spark)
    message = str(failed.value)
    assert "feature 'code_number' of group 'probe' (`cast(code as int)`)" in message
    assert "customer_id=c2" in message and "CAST_INVALID_INPUT" in message and "'abc'" in message
    assert "try_cast" in message and exit_code_for(failed.value) == 3
    assert not Path(project.table_path("probe")).exists()  # nothing published
    assert read_runs(spark, project.config.feature_root, "probe")[0].status == "failed"


def test_an_overflow_in_a_derived_feature_exits_3_with_the_row(spark, tmp_path, capsys):
    body = ("aggregations:\n  - {name: big, expr: big, function: max, windows: [7d]}\n"
            "derived:\n  - {name: big_x4, expr: \"big_7d * 4\"}")
    project = _project(tmp_path, body)
    code = main(["run", "probe", "--project", str(project.root), "--date", str(D1)])
    err = capsys.readouterr().err
    assert code == 3, err
    assert "feature 'big_x4' of group 'probe' (`big_7d * 4`)" in err
    assert "customer_id=c2" in err and "feature_date=2024-03-02" in err and "ARITHMETIC_OVERFLOW" in err


def test_a_division_by_zero_in_a_derived_feature_is_named(spark, tmp_path):
    body = ("aggregations:\n  - {name: n, function: count, windows: [7d]}\n"
            "  - {name: big, expr: big, function: sum, windows: [7d]}\n"
            "derived:\n  - {name: per, expr: \"n_7d / (n_7d - 1)\"}")
    project = _project(tmp_path, body)
    with pytest.raises(RuntimeFailure, match=r"feature 'per' .*customer_id=c\d.*DIVIDE_BY_ZERO.*nullif"):
        run_group(project, "probe", D1, D1, spark=spark)


def test_ansi_failure_reads_the_class_and_fragment_of_a_message():
    error = RuntimeError("[DIVIDE_BY_ZERO] Division by zero. SQLSTATE: 22012\n== SQL (line 1, position 1) ==\n"
                         "a / b\n^^^^^\n")
    assert ansi_failure(error) == ("DIVIDE_BY_ZERO", "a / b")
    assert ansi_failure(RuntimeError("[PATH_NOT_FOUND] no such path")) is None


def test_validate_warns_about_a_division_that_can_divide_by_zero(tmp_path, capsys):
    body = ("aggregations:\n  - {name: n, function: count, windows: [7d]}\n"
            "  - {name: big, expr: big, function: sum, windows: [7d]}\n"
            "derived:\n  - {name: safe, expr: \"big_7d / nullif(n_7d, 0)\"}\n"
            "  - {name: weekly, expr: \"(big_7d / 7) / nullif(n_7d / 7.0, 0)\"}\n"
            "  - {name: risky, expr: \"big_7d / n_7d\"}")
    project = _project(tmp_path, body)
    assert main(["validate", "--project", str(project.root)]) == 0  # a warning, not an error
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("features/all.yaml:") and "derived feature 'probe.risky' divides by `n_7d`" in err[0]
    assert "nullif(n_7d, 0)" in err[0] and "try_divide" in err[0]
