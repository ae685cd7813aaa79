"""`featurebank run --missing`: exactly the dates not yet published, or published by another data_hash.

The decision itself (`compile.missing.missing_dates`) is pure and tested on plain values; the
rest runs the example project's `customer_card_spend` on the tiny sources of test_runner.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import pytest

from featurebank.cli import main
from featurebank.compile.group import compile_group
from featurebank.compile.missing import ForeignCommit, PublishedDate, missing_dates
from featurebank.definitions import load_project
from featurebank.io.published import PublishedState
from featurebank.io.tables import table_version
from featurebank.runner import decide_missing, run_group, run_missing
from test_runner import D1, GROUP, _transactions, _write_sources

D5 = D1 + timedelta(days=4)
SPEND_FILE = Path("features") / "cards" / "customer_card_spend.yaml"


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def _published(first: date, last: date, data_hash: str = "h1", version: int = 0, rows: int | None = 4) -> dict:
    return {d: PublishedDate(data_hash, f"run{version}", version, rows) for d in _days(first, last)}


# --- the decision, on plain values ------------------------------------------------------------

def test_nothing_published_runs_every_date_as_one_range():
    decision = missing_dates("g", "h1", D1, D5, {}, None)
    assert decision.ranges() == [(D1, D5)] and not decision.skipped
    assert [s.reason for s in decision.run] == ["not published"]


def test_dates_published_by_the_current_hash_and_still_held_are_skipped():
    rows = dict.fromkeys(_days(D1, D5), 4)
    decision = missing_dates("g", "h1", D1, D5, _published(D1, D5), rows)
    assert decision.ranges() == [] and [(s.start, s.end) for s in decision.skipped] == [(D1, D5)]
    assert decision.skipped[0].reason == "already published by data_hash h1"


def test_a_gap_and_a_date_whose_rows_changed_are_run_as_their_own_ranges():
    published = {**_published(D1, D1 + timedelta(days=1)), **_published(D1 + timedelta(days=3), D5)}
    rows = dict.fromkeys(_days(D1, D5), 4) | {D5: 1}  # D1+2 never published; D5 lost rows by hand
    decision = missing_dates("g", "h1", D1, D5, published, rows)
    assert decision.ranges() == [(D1 + timedelta(days=2), D1 + timedelta(days=2)), (D5, D5)]
    reasons = {s.start: s.reason for s in decision.run}
    assert reasons[D1 + timedelta(days=2)] == "not published"
    assert "recorded" not in reasons[D5] and "but the table holds 1 now" in reasons[D5]


def test_another_hash_a_missing_table_and_a_foreign_restore_stale_what_they_touch():
    published = {**_published(D1, D1 + timedelta(days=1), "old", 0), **_published(D1 + timedelta(days=2), D5, "h1", 1)}
    rows = dict.fromkeys(_days(D1, D5), 4)
    decision = missing_dates("g", "h1", D1, D5, published, rows)
    assert decision.ranges() == [(D1, D1 + timedelta(days=1))]
    assert decision.run[0].reason == "published by data_hash old, the definition now computes h1"
    gone = missing_dates("g", "h1", D1, D5, published, None)
    assert gone.ranges() == [(D1, D5)]
    restored = missing_dates("g", "h1", D1, D5, _published(D1, D5, version=3), rows,
                             [ForeignCommit(2, "UPDATE"), ForeignCommit(4, "OPTIMIZE"), ForeignCommit(5, "RESTORE")])
    assert restored.ranges() == [(D1, D5)] and "version 5 (RESTORE)" in restored.run[0].reason
    maintained = missing_dates("g", "h1", D1, D5, _published(D1, D5, version=3), rows,
                               [ForeignCommit(4, "OPTIMIZE"), ForeignCommit(5, "SET TBLPROPERTIES")])
    assert maintained.ranges() == []


def test_a_group_whose_upstream_is_recomputed_is_recomputed_for_the_dates_its_windows_read(example_project, monkeypatch):
    (example_project / "features" / "cards" / "trend.yaml").write_text(
        "kind: source\nname: spend_table\ngroup: customer_card_spend\ntimestamp: feature_ts\n---\n"
        "kind: feature_group\nname: spend_peak\nentity: customer\nsource: spend_table\n"
        "aggregations:\n  - {name: peak, expr: spend_sum_7d, function: max, windows: [2d]}\n")
    project = load_project(example_project, "local")
    hashes = {g: compile_group(project, g).data_hash for g in project.groups}
    end = D1 + timedelta(days=9)

    def state(feature_root, group, table_path, **_):  # every group fully published, but one upstream date
        published = _published(D1, end, hashes[group])
        if group == GROUP:
            published[D1 + timedelta(days=3)] = PublishedDate("other", "r", 0, 4)
        return PublishedState(published, dict.fromkeys(published, 4), ())

    monkeypatch.setattr("featurebank.io.published.published_state", state)
    decided = {d.group: d for d in decide_missing(project, None, D1, end)}
    assert decided[GROUP].ranges() == [(D1 + timedelta(days=3),) * 2]
    assert decided["spend_peak"].ranges() == [(D1 + timedelta(days=3), D1 + timedelta(days=5))]  # the day + 2d window
    assert "its upstream group customer_card_spend is recomputed" in decided["spend_peak"].run[0].reason
    assert all(not d.run for g, d in decided.items() if g not in (GROUP, "spend_peak"))


# --- end to end: the runner, the table, the run log -------------------------------------------

@pytest.fixture()
def project(example_project):
    _write_sources(example_project, _transactions())
    return load_project(example_project, "local")


def _missing(project, spark) -> list:
    return run_missing(project, decide_missing(project, GROUP, D1, D5), spark=spark)


def test_nothing_published_runs_all_then_all_published_runs_nothing_and_adds_no_version(spark, project):
    [first] = _missing(project, spark)
    assert (first.start, first.end, first.status) == (D1, D5, "published")
    version = table_version(spark, project.table_path(GROUP))
    [decision] = decide_missing(project, GROUP, D1, D5)
    assert decision.ranges() == [] and decision.skipped[0].reason == f"already published by data_hash {first_hash(project)}"
    assert _missing(project, spark) == []
    assert table_version(spark, project.table_path(GROUP)) == version


def first_hash(project) -> str:
    return compile_group(project, GROUP).data_hash


def test_only_a_date_never_published_or_deleted_from_the_table_is_run(spark, project):
    run_group(project, GROUP, D1, D1 + timedelta(days=1), spark=spark)
    run_group(project, GROUP, D1 + timedelta(days=3), D5, spark=spark)
    spark.sql(f"DELETE FROM delta.`{project.table_path(GROUP)}` WHERE feature_date = '{D5}'")
    [decision] = decide_missing(project, GROUP, D1, D5)
    gap = D1 + timedelta(days=2)
    assert decision.ranges() == [(gap, gap), (D5, D5)]
    assert [o.start for o in run_missing(project, [decision], spark=spark)] == [gap, D5]
    assert decide_missing(project, GROUP, D1, D5)[0].ranges() == []


def test_a_description_edit_runs_nothing_and_an_expression_edit_runs_everything(spark, example_project):
    _write_sources(example_project, _transactions())
    run_group(load_project(example_project, "local"), GROUP, D1, D5, spark=spark)
    definition = example_project / SPEND_FILE
    text = definition.read_text()
    definition.write_text(text.replace("Total settled card spend", "Total settled card spend (EUR)"))
    assert decide_missing(load_project(example_project, "local"), GROUP, D1, D5)[0].ranges() == []
    definition.write_text(text.replace("expr: amount, function: sum", "expr: amount * 2, function: sum"))
    [decision] = decide_missing(load_project(example_project, "local"), GROUP, D1, D5)
    assert decision.ranges() == [(D1, D5)] and "the definition now computes" in decision.run[0].reason


def test_a_chunk_published_by_another_data_hash_is_the_only_one_rerun(spark, example_project):
    _write_sources(example_project, _transactions())
    definition = example_project / SPEND_FILE
    text = definition.read_text()
    run_group(load_project(example_project, "local"), GROUP, D1, D5, spark=spark, chunk_days=2)
    definition.write_text(text.replace("expr: amount, function: sum", "expr: amount + 0, function: sum"))
    other = load_project(example_project, "local")  # a branch's definition published one chunk
    run_group(other, GROUP, D1 + timedelta(days=2), D1 + timedelta(days=3), spark=spark)
    definition.write_text(text)
    project = load_project(example_project, "local")
    [decision] = decide_missing(project, GROUP, D1, D5)
    assert decision.ranges() == [(D1 + timedelta(days=2), D1 + timedelta(days=3))]
    assert compile_group(other, GROUP).data_hash in decision.run[0].reason


def test_cli_run_missing_says_what_it_skips_and_run_json_is_the_only_stdout(spark, project, capsys):
    root = str(project.root)
    assert main(["run", GROUP, "--start", str(D1), "--end", str(D1 + timedelta(days=1)), "--project", root]) == 0
    capsys.readouterr()
    code = main(["run", GROUP, "--missing", "--start", str(D1), "--end", str(D1 + timedelta(days=2)), "--project", root])
    out = capsys.readouterr().out
    assert code == 0
    assert f"{GROUP}: {D1}..{D1 + timedelta(days=1)} already published by data_hash {first_hash(project)}, skipped" in out
    assert f"{GROUP}: {D1 + timedelta(days=2)} not published, running" in out

    code = main(["run", GROUP, "--missing", "--json", "--start", str(D1), "--end", str(D1 + timedelta(days=3)),
                 "--project", root])
    document = json.loads(capsys.readouterr().out)
    assert code == 0
    [run] = document["runs"]
    assert (run["start"], run["end"], run["status"]) == (str(D1 + timedelta(days=3)),) * 2 + ("published",)
    assert document["dates"] == 1 and document["rows"] == run["rows"] > 0
    assert document["versions"] == {GROUP: run["version"]}
    assert [(s["start"], s["end"]) for s in document["skipped"]] == [(str(D1), str(D1 + timedelta(days=2)))]
