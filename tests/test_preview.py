"""`featurebank preview`: the run's own compute on a few entities and dates, bit-identical to what a
run publishes for them, optionally judged by the gate, and writing nothing."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import pytest

from featurebank.cli import main
from featurebank.definitions import load_project
from featurebank.errors import UsageError
from featurebank.preview import parse_keys, preview
from featurebank.runner import run_group
from test_runner import D1, GROUP, _transactions, _write_sources

LAST_EVENT_DAY = date(2024, 3, 8)  # the tiny sources' last day (test_runner._transactions)


@pytest.fixture()
def project(example_project):
    _write_sources(example_project, _transactions())
    return load_project(example_project, "local")


def _tree(root: Path) -> dict[str, tuple[int, int]]:
    """Every file and directory under `root` with its size and modification time."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(root.rglob("*"))}


def _cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_preview_rows_are_the_published_rows_of_the_same_entities_bit_for_bit(spark, project):
    end = D1 + timedelta(days=2)
    run_group(project, GROUP, D1, end, spark=spark)
    table = spark.read.format("delta").load(project.table_path(GROUP))

    shown = preview(project, GROUP, start=D1, end=end, keys=["c1", "c3"], spark=spark)
    published = table.where(table.customer_id.isin("c1", "c3")).orderBy("customer_id", "feature_date")
    assert shown.rows and shown.columns == tuple(table.columns)
    assert shown.rows == tuple(tuple(r) for r in published.collect())  # Python float ==: the same bits
    assert shown.entities == (("c1",), ("c3",))

    sampled = preview(project, GROUP, start=D1, end=end, limit=2, spark=spark)
    assert sampled.entities == (("c0",), ("c1",))  # the first entities in key order, every time
    first_two = table.where(table.customer_id.isin("c0", "c1")).orderBy("customer_id", "feature_date")
    assert sampled.rows == tuple(tuple(r) for r in first_two.collect())


def test_preview_with_the_gate_writes_nothing_under_the_project(spark, example_project, capsys):
    _write_sources(example_project, _transactions(bad_amount_on=D1 - timedelta(days=2)))
    before = _tree(example_project)

    code, out, err = _cli(capsys, "preview", GROUP, "--date", str(D1), "--gate", "--project", str(example_project))
    assert code == 0, err
    assert "would refuse to publish" in out and "expect_column_values_to_be_between [spend_sum_90d]" in out
    assert _tree(example_project) == before  # no table, no run log, no report, no quarantine
    assert not (example_project / "warehouse" / "features").exists()


def test_preview_json_defaults_to_the_three_latest_publishable_dates(spark, example_project, capsys):
    _write_sources(example_project, _transactions())
    code, out, err = _cli(capsys, "preview", GROUP, "--limit", "3", "--json", "--gate",
                          "--project", str(example_project))
    assert code == 0, err
    document = json.loads(out)  # stdout is the JSON document and nothing else
    latest = LAST_EVENT_DAY + timedelta(days=2)  # latest event day + 1 + the default lag of 1 day
    assert (document["start"], document["end"]) == (str(latest - timedelta(days=2)), str(latest))
    assert document["entities"] == [["c0"], ["c1"], ["c2"]]
    assert {r["customer_id"] for r in document["rows"]} <= {"c0", "c1", "c2"}
    assert {r["feature_date"] for r in document["rows"]} <= {str(latest - timedelta(days=i)) for i in range(3)}
    assert document["gate"]["passed"] is True and document["gate"]["row_count"] == len(document["rows"])


def test_unknown_group_and_keys_of_the_wrong_arity_exit_2_before_spark(example_project, capsys):
    code, out, err = _cli(capsys, "preview", "customer_card_spnd", "--project", str(example_project))
    assert (code, out) == (2, "") and "did you mean 'customer_card_spend'" in err
    code, out, err = _cli(capsys, "preview", GROUP, "--keys", "c1,c2", "--project", str(example_project))
    assert (code, out) == (2, "") and "key is (customer_id)" in err and "--keys <customer_id> <customer_id>" in err


def test_keys_give_one_value_per_key_column():
    assert parse_keys(["a1,c1", "a2, c2"], ("account_id", "customer_id")) == [("a1", "c1"), ("a2", "c2")]
    with pytest.raises(UsageError, match=r"give 2 value\(s\) per entity"):
        parse_keys(["a1"], ("account_id", "customer_id"))
    with pytest.raises(UsageError):
        parse_keys(["c1,"], ("customer_id",))
