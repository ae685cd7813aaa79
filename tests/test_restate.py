"""`featurebank run --restate`: exactly the published dates whose source changed since, and why.

The decision (`compile.restate`) is tested on plain values; the fingerprints (`io.fingerprints`)
on small files without Spark; then the oracle: a range published, late events appended for past
days and an old file corrected, `plan` names exactly the affected dates, `run --restate` changes
exactly those (every other date's rows identical) and the values equal a brute-force
recomputation over the final source.
"""

from __future__ import annotations

import json
import os
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from featurebank.cli import main
from featurebank.compile.missing import DateSpan, MissingDates, PublishedDate
from featurebank.compile.restate import (DayChange, FileEntry, Fingerprint, affected_dates, changed_days,
                                         restate_dates, union, upstream_forced)
from featurebank.definitions import load_project
from featurebank.io.fingerprints import list_source, local_days, read_fingerprint, read_listing, take_fingerprint
from featurebank.review import review_group
from featurebank.runner import decide_restate, run_group, run_missing
from test_runner import _transactions, _write_sources

GROUP = "customer_short_spend"
FIRST, LAST = date(2024, 3, 1), date(2024, 3, 9)
SHORT = """kind: feature_group
name: customer_short_spend
entity: customer
source: card_transactions
filter: "status = 'SETTLED'"
description: Settled spend over the last one and two days (short windows, so a changed day reaches few dates).
owner: cards-analytics
aggregations:
  - {name: spend_sum, expr: amount, function: sum, windows: [1d, 2d]}
  - {name: txn_count, function: count, windows: [2d]}
"""


def _d(text: str) -> date:
    return date.fromisoformat(text)


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def _entry(path: str, days: list[str] | None, size: int = 10, mtime: float = 1.0) -> FileEntry:
    return FileEntry(path, size, mtime, None if days is None else tuple(_d(d) for d in days))


def _print(files: list[FileEntry], version: int | None = None) -> Fingerprint:
    return Fingerprint("tx", "/raw/tx", {f.path: f for f in files}, version)


# --- the decision, on plain values ------------------------------------------------------------

def test_added_modified_and_removed_files_change_the_days_they_hold_then_and_now():
    then = _print([_entry("a", ["2024-03-01"]), _entry("b", ["2024-03-02", "2024-03-03"]), _entry("c", ["2024-03-05"])])
    now = _print([_entry("a", ["2024-03-01"]), _entry("b", ["2024-03-03", "2024-03-04"], size=11),
                  _entry("d", ["2024-03-07"])])
    changes = changed_days(then, now)
    assert sorted(d for d in changes if d) == [_d(x) for x in ("2024-03-02", "2024-03-03", "2024-03-04", "2024-03-05",
                                                               "2024-03-07")]
    assert changes[_d("2024-03-05")].sentence() == "event day 2024-03-05 changed: tx/c removed"
    assert changes[_d("2024-03-02")].files == ("tx/b modified",) and changes[_d("2024-03-07")].files == ("tx/d added",)
    assert changed_days(then, then) == {}


def test_per_day_digests_narrow_a_modified_file_to_the_days_whose_rows_changed_and_see_through_compaction():
    day1, day2 = _d("2024-03-01"), _d("2024-03-02")
    then = _print([FileEntry("a", 10, 1.0, (day1, day2), ((day1, 2, 11), (day2, 3, 22))),
                   FileEntry("b", 10, 1.0, (day2,), ((day2, 1, 5),))])
    corrected = _print([FileEntry("a", 10, 2.0, (day1, day2), ((day1, 2, 11), (day2, 3, 23))), then.files["b"]])
    assert list(changed_days(then, corrected)) == [day2]
    compacted = _print([FileEntry("ab", 20, 3.0, (day1, day2), ((day1, 2, 11), (day2, 4, 27)))])
    assert changed_days(then, compacted) == {}
    undigested = _print([FileEntry("a", 10, 2.0, (day1, day2)), then.files["b"]])
    assert sorted(changed_days(then, undigested)) == [day1, day2]  # no digest: the file's every day


def test_an_event_day_reaches_the_next_max_window_dates_of_an_aggregation_and_its_own_date_of_a_row_group():
    change = {_d("2024-03-04"): DayChange(_d("2024-03-04"), ("tx/late.parquet added",))}
    published = _days(FIRST, LAST)
    assert sorted(affected_dates(change, "aggregation", 2, published)) == [_d("2024-03-05"), _d("2024-03-06")]
    assert sorted(affected_dates(change, "row", 0, published)) == [_d("2024-03-04")]
    reason = affected_dates(change, "aggregation", 2, published)[_d("2024-03-05")]
    assert reason == "event day 2024-03-04 changed: tx/late.parquet added"
    unknown = {None: DayChange(None, ("tx/x.parquet modified",))}
    assert sorted(affected_dates(unknown, "aggregation", 2, published)) == published


def test_only_published_dates_are_restated_and_untracked_runs_are_said_not_guessed():
    published = {d: PublishedDate("h", "r1" if d < _d("2024-03-05") else "r2", 1, 4) for d in _days(FIRST, LAST)}
    stale = {"r1": {_d("2024-03-02"): "event day 2024-03-01 changed: tx/a modified"}}
    decision = restate_dates("g", FIRST, LAST, published, stale, unknown={"r2"})
    assert decision.ranges() == [(_d("2024-03-02"), _d("2024-03-02"))]
    reasons = {s.dates: s.reason for s in decision.skipped}
    assert reasons["2024-03-01"] == "source unchanged since run r1 read it"
    assert "recorded no fingerprint" in reasons["2024-03-05..2024-03-09"]
    missing = MissingDates("g", restate_dates("g", FIRST, LAST, {}, {}).run)
    assert missing.ranges() == []
    both = union(MissingDates("g", (DateSpan("g", LAST, LAST, "not published"),)), decision)
    assert both.ranges() == [(_d("2024-03-02"), _d("2024-03-02")), (LAST, LAST)]


def test_an_upstream_group_restated_for_d_reaches_the_downstream_dates_reading_d():
    forced = upstream_forced([_d("2024-03-04")], "up", "aggregation", 2, _days(FIRST, LAST))
    assert sorted(forced) == [_d("2024-03-05"), _d("2024-03-06")]
    assert forced[_d("2024-03-05")] == "its upstream group up is restated for 2024-03-04"


# --- fingerprints of files, no Spark ---------------------------------------------------------------

def test_local_days_cut_at_midnight_in_the_project_zone_for_instants_naive_values_and_iso_text():
    instants = pa.array([datetime(2024, 3, 1, 23, 30, tzinfo=timezone.utc)], pa.timestamp("us", tz="UTC"))
    assert local_days(instants, "Europe/Berlin") == (_d("2024-03-02"),)
    assert local_days(instants, "UTC") == (_d("2024-03-01"),)
    naive = pa.array([datetime(2024, 3, 1, 23, 30)], pa.timestamp("ns"))
    assert local_days(naive, "Europe/Berlin") == (_d("2024-03-01"),)
    text = pa.array(["2024-03-01T23:30:00Z", "2024-03-03 10:00:00", None])
    assert local_days(text, "Europe/Berlin") == (_d("2024-03-02"), _d("2024-03-03"))
    assert local_days(pa.array([1, 2]), "UTC") is None


def test_an_unchanged_file_is_not_read_again(tmp_path, example_project):
    project = _project(example_project)
    source = _compiled_source(project)
    first = take_fingerprint(source, "UTC")
    assert set(first.files) == {"part-feb.parquet", "part-mar-a.parquet", "part-mar-b.parquet"}
    assert first.files["part-feb.parquet"].days == tuple(_days(_d("2024-02-20"), _d("2024-02-29")))
    poisoned = {p: FileEntry(p, e.size, e.mtime, (date(2000, 1, 1),)) for p, e in first.files.items()}
    again = take_fingerprint(source, "UTC", known=poisoned)
    assert {e.days for e in again.files.values()} == {(date(2000, 1, 1),)}  # taken from `known`, not read


def test_a_file_rewritten_between_the_listing_and_its_read_records_no_days_so_any_change_reaches_every_date(
        tmp_path, example_project):
    """A run lists its source before it reads it and reads the listed files beside its compute
    (`record_inputs`): a file rewritten in between holds rows the listing never saw, so its
    entry must not vouch for them (no days, no digests), and the next fingerprint reads it again."""
    project = _project(example_project)
    source = _compiled_source(project)
    listing = list_source(source)
    _late(example_project)  # part-feb.parquet rewritten (one corrected day), part-late.parquet added after the listing
    taken = read_listing(source, "UTC", listing)
    assert "part-late.parquet" not in taken.files  # not listed: shows as added next time
    assert taken.files["part-feb.parquet"].days is None and taken.files["part-feb.parquet"].digests is None
    assert taken.files["part-mar-a.parquet"].days is not None  # unchanged files are read as usual

    now = take_fingerprint(source, "UTC", known=taken.files)
    assert now.files["part-feb.parquet"].days is not None  # read again: its listed entry knew no days
    changes = changed_days(taken, now)
    assert None in changes  # the rewritten file's days are unknown: every published date is reached
    assert affected_dates(changes, "aggregation", 2, [_d("2024-03-01"), _d("2024-03-09")]).keys() == {
        _d("2024-03-01"), _d("2024-03-09")}


# --- the oracle: real Spark, real Delta --------------------------------------------------------

def _split(frame: pd.DataFrame) -> dict[str, pd.DataFrame]:
    day = frame.event_ts.dt.date
    return {"part-feb.parquet": frame[day < _d("2024-03-01")], "part-mar-a.parquet": frame[
        (day >= _d("2024-03-01")) & (day < _d("2024-03-05"))], "part-mar-b.parquet": frame[day >= _d("2024-03-05")]}


def _raw(project_dir: Path) -> Path:
    return project_dir / "warehouse" / "raw" / "card_transactions"


def _project(example_project: Path):
    _write_sources(example_project, _transactions())
    (_raw(example_project) / "part-0.parquet").unlink()
    for name, part in _split(_transactions()).items():
        part.to_parquet(_raw(example_project) / name, index=False)
    (example_project / "features" / "cards" / "short.yaml").write_text(SHORT)
    return load_project(example_project, "local")


def _compiled_source(project):
    from featurebank.compile.group import compile_group

    return compile_group(project, GROUP).source


def _rows(spark, project) -> dict[date, list[tuple]]:
    """The table's rows per snapshot date, in key order (NULLs as None, so equal rows compare equal)."""
    frame = spark.read.format("delta").load(project.table_path(GROUP)).toPandas()
    frame = frame.sort_values(["feature_date", "customer_id"])
    columns = ["customer_id", "feature_ts", "spend_sum_1d", "spend_sum_2d", "txn_count_2d"]
    values = frame[columns].astype(object).where(frame[columns].notna(), None)
    return {d: [tuple(r) for r in values[frame.feature_date == d].itertuples(index=False)]
            for d in sorted(frame.feature_date.unique())}


def _oracle(events: pd.DataFrame, day: date) -> list[tuple]:
    """Brute force: per customer with a settled event in [D-2, D), its sums and counts."""
    settled = events[events.status == "SETTLED"]
    midnight = pd.Timestamp(datetime(day.year, day.month, day.day, tzinfo=timezone.utc))
    out = []
    for customer in sorted(settled.customer_id.unique()):
        mine = settled[settled.customer_id == customer]
        w2 = mine[(mine.event_ts >= midnight - pd.Timedelta(days=2)) & (mine.event_ts < midnight)]
        if w2.empty:
            continue
        w1 = w2[w2.event_ts >= midnight - pd.Timedelta(days=1)]
        out.append((customer, w1.amount.sum() if len(w1) else None, w2.amount.sum(), len(w2)))
    return out


def _late(project_dir: Path) -> pd.DataFrame:
    """Late events for 2024-03-05 (a new file) and a corrected amount on 2024-02-28 (part-feb rewritten)."""
    stamp = lambda h: pd.Timestamp(datetime(2024, 3, 5, h, tzinfo=timezone.utc))  # noqa: E731
    late = pd.DataFrame([("late1", "c1", "a1", "m0", "mcc0", 77.0, "EUR", "pos", "SETTLED", stamp(9)),
                         ("late2", "c3", "a3", "m1", "mcc1", 5.5, "EUR", "web", "SETTLED", stamp(23))],
                        columns=_transactions().columns)
    late["event_ts"] = late["event_ts"].astype("datetime64[us, UTC]")
    late.to_parquet(_raw(project_dir) / "part-late.parquet", index=False)
    feb = _split(_transactions())["part-feb.parquet"].copy()
    corrected = (feb.event_ts.dt.date == _d("2024-02-28")) & (feb.status == "SETTLED")
    feb.loc[corrected, "amount"] = feb.loc[corrected, "amount"] + 1000.0
    path = _raw(project_dir) / "part-feb.parquet"
    before = path.stat().st_mtime
    feb.to_parquet(path, index=False)
    os.utime(path, (before + 10, before + 10))  # a rewrite within the clock's resolution still shows
    final = pd.concat([feb, *(p for n, p in _split(_transactions()).items() if n != "part-feb.parquet"), late])
    return final.reset_index(drop=True)


def test_restate_recomputes_exactly_the_dates_late_and_corrected_events_reach(spark, example_project, capsys):
    project = _project(example_project)
    run_group(project, GROUP, FIRST, LAST, spark=spark, chunk_days=5)
    assert [d.ranges() for d in decide_restate(project, GROUP)] == [[]]  # nothing changed yet
    before = _rows(spark, project)
    final = _late(example_project)

    # part-feb rewritten, but only Feb 28's rows differ (its digest): Feb 28 reaches Feb 29, Mar 1 (2d windows), of
    # which Mar 1 is published; Mar 5's late events reach Mar 6, 7.
    expected = [_d("2024-03-01"), _d("2024-03-06"), _d("2024-03-07")]
    [decision] = decide_restate(project, GROUP)
    assert sorted(decision.dates) == expected
    reasons = {s.dates: s.reason for s in decision.run}
    assert reasons["2024-03-06..2024-03-07"] == "event day 2024-03-05 changed: card_transactions/part-late.parquet added"
    assert reasons["2024-03-01"] == "event day 2024-02-28 changed: card_transactions/part-feb.parquet modified"

    review = review_group(project, GROUP)  # what `plan` shows, no Spark
    assert review.inputs is not None and sorted(
        d for s in review.inputs.restate for d in _days(s.start, s.end)) == expected
    assert main(["run", GROUP, "--restate", "--project", str(example_project)]) == 0
    printed = capsys.readouterr().out
    assert ("customer_short_spend: 2024-03-06..2024-03-07 event day 2024-03-05 changed: "
            "card_transactions/part-late.parquet added, running") in printed

    after = _rows(spark, project)
    for day in _days(FIRST, LAST):
        if day not in expected:
            assert after[day] == before[day], day  # byte-identical: not recomputed
        got = [(c, s1, s2, n) for c, _, s1, s2, n in after[day]]
        want = _oracle(final, day)
        assert [(c, n) for c, *_, n in got] == [(c, n) for c, *_, n in want], day
        for (_, s1, s2, _), (_, o1, o2, _) in zip(got, want):
            assert (s1 is None) == (o1 is None) and (o1 is None or s1 == pytest.approx(o1))
            assert s2 == pytest.approx(o2)
    assert any(after[d] != before[d] for d in expected)
    assert [d.ranges() for d in decide_restate(project, GROUP)] == [[]]  # restated: now current

    inputs = sorted((Path(project.config.feature_root) / "_reports" / GROUP / "inputs").glob("*.json"))
    assert len(inputs) == 2 + 2  # two chunks published, then two restating runs: Mar 1, Mar 6..7
    newest = inputs[-1]  # the run of Mar 6..7 (run ids sort by start time)
    recorded = read_fingerprint(project.config.feature_root, GROUP, newest.stem)
    assert recorded is not None and "part-late.parquet" in recorded.files
    assert "part-late.parquet added" in " ".join(json.loads(newest.read_text())["restated"].values())


def test_restate_and_missing_together_run_the_union_of_their_dates(spark, example_project):
    project = _project(example_project)
    run_group(project, GROUP, FIRST, _d("2024-03-07"), spark=spark)
    _late(example_project)
    from featurebank.runner import decide_missing
    from featurebank.compile.restate import union as merge

    [missing] = decide_missing(project, GROUP, FIRST, LAST)
    [restated] = decide_restate(project, GROUP, FIRST, LAST)
    both = merge(missing, restated)
    assert both.ranges() == [(_d("2024-03-01"), _d("2024-03-01")), (_d("2024-03-06"), LAST)]
    outcomes = run_missing(project, [both], spark=spark)
    assert [(o.start, o.end) for o in outcomes] == both.ranges()


DELTA_SOURCE = """kind: source
name: card_ledger
description: The card transactions as a Delta table partitioned by event day (corrections are UPDATEs and DELETEs).
format: delta
path: ${raw_root}/card_ledger
timestamp: event_ts
---
kind: feature_group
name: ledger_short_spend
entity: customer
source: card_ledger
filter: "status = 'SETTLED'"
description: Settled spend over the last one and two days, from the Delta ledger.
owner: cards-analytics
aggregations:
  - {name: spend_sum, expr: amount, function: sum, windows: [1d, 2d]}
  - {name: txn_count, function: count, windows: [2d]}
"""


def test_a_delta_source_updated_and_deleted_restates_exactly_the_dates_those_days_reach(spark, example_project):
    from pyspark.sql import functions as F

    project = _project(example_project)
    (example_project / "features" / "cards" / "ledger.yaml").write_text(DELTA_SOURCE)
    project = load_project(example_project, "local")
    ledger = str(example_project / "warehouse" / "raw" / "card_ledger")
    events = spark.createDataFrame(_transactions()).withColumn("event_day", F.to_date("event_ts"))
    events.write.format("delta").partitionBy("event_day").save(ledger)
    group = "ledger_short_spend"
    run_group(project, group, FIRST, LAST, spark=spark)
    assert [d.ranges() for d in decide_restate(project, group)] == [[]]
    table = f"delta.`{ledger}`"
    spark.sql(f"UPDATE {table} SET amount = amount + 500 WHERE event_day = '2024-03-03' AND customer_id = 'c1'")
    spark.sql(f"DELETE FROM {table} WHERE event_day = '2024-03-06' AND customer_id = 'c2'")

    [decision] = decide_restate(project, group)  # 03-03 reaches 03-04, 03-05; 03-06 reaches 03-07, 03-08
    assert decision.ranges() == [(_d("2024-03-04"), _d("2024-03-05")), (_d("2024-03-07"), _d("2024-03-08"))]
    assert all("card_ledger/event_day=2024-03-0" in s.reason and "modified" not in s.reason for s in decision.run)
    before = spark.read.format("delta").load(project.table_path(group)).toPandas()
    run_missing(project, [decision], spark=spark)
    after = spark.read.format("delta").load(project.table_path(group)).toPandas()
    final = spark.read.format("delta").load(ledger).drop("event_day").toPandas()
    final["event_ts"] = pd.to_datetime(final["event_ts"]).dt.tz_localize("UTC")
    for day in _days(FIRST, LAST):
        got = after[after.feature_date == day].sort_values("customer_id")
        rows = [(r.customer_id, None if pd.isna(r.spend_sum_1d) else r.spend_sum_1d, r.spend_sum_2d, r.txn_count_2d)
                for r in got.itertuples()]
        want = _oracle(final, day)
        assert [(c, n) for c, *_, n in rows] == [(c, n) for c, *_, n in want], day
        for (_, s1, s2, _), (_, o1, o2, _) in zip(rows, want):
            assert (s1 is None) == (o1 is None) and (o1 is None or s1 == pytest.approx(o1)) and s2 == pytest.approx(o2)
        if day not in decision.dates:
            old = before[before.feature_date == day].sort_values("customer_id").reset_index(drop=True)
            pd.testing.assert_frame_equal(got.reset_index(drop=True), old)
    assert [d.ranges() for d in decide_restate(project, group)] == [[]]


def test_a_row_level_group_restates_the_changed_day_itself(spark, example_project):
    project = _project(example_project)
    group = "customer_profile"
    run_group(project, group, FIRST, _d("2024-03-03"), spark=spark)
    before = spark.read.format("delta").load(project.table_path(group)).toPandas()
    late = pd.DataFrame({"customer_id": ["c9"], "segment": ["mass"], "income": [4000.0],
                         "birth_year": pd.array([1985], dtype="int32"), "region": ["north"],
                         "opened_at": [pd.Timestamp("2020-01-01", tz="UTC")],
                         "updated_at": [pd.Timestamp("2024-03-02 15:00", tz="UTC")]})
    late.to_parquet(example_project / "warehouse" / "raw" / "customers" / "part-late.parquet", index=False)
    [decision] = decide_restate(project, group)
    assert decision.ranges() == [(_d("2024-03-02"), _d("2024-03-02"))]  # a row-level date holds its own day's events
    assert decision.run[0].reason == "event day 2024-03-02 changed: customers/part-late.parquet added"
    run_missing(project, [decision], spark=spark)
    after = spark.read.format("delta").load(project.table_path(group)).toPandas()
    assert sorted(after[after.feature_date == _d("2024-03-02")].customer_id) == ["c1", "c2", "c9"]
    for day in (_d("2024-03-01"), _d("2024-03-03")):
        pd.testing.assert_frame_equal(after[after.feature_date == day].reset_index(drop=True),
                                      before[before.feature_date == day].reset_index(drop=True))


def test_a_group_reading_a_restated_group_is_restated_for_the_dates_reading_it(spark, example_project):
    project = _project(example_project)
    (example_project / "features" / "cards" / "peak.yaml").write_text(
        "kind: source\nname: short_table\ngroup: customer_short_spend\ntimestamp: feature_ts\n---\n"
        "kind: feature_group\nname: short_peak\nentity: customer\nsource: short_table\n"
        "aggregations:\n  - {name: peak, expr: spend_sum_2d, function: max, windows: [1d]}\n")
    project = load_project(example_project, "local")
    run_group(project, GROUP, FIRST, LAST, spark=spark)
    run_group(project, "short_peak", _d("2024-03-02"), LAST, spark=spark)
    _late(example_project)
    decided = {d.group: d for d in decide_restate(project, None) if d.run}
    assert sorted(decided) == [GROUP, "short_peak"]
    # upstream dates 03-01, 03-06, 03-07 are the downstream's event days; a 1d window reads the day before
    assert decided["short_peak"].ranges() == [(_d("2024-03-02"), _d("2024-03-02")), (_d("2024-03-07"), _d("2024-03-08"))]
    reasons = {s.dates: s.reason for s in decided["short_peak"].run}
    assert reasons["2024-03-07"] == "its upstream group customer_short_spend is restated for 2024-03-06"
    run_missing(project, list(decided.values()), spark=spark)
    assert [d.ranges() for d in decide_restate(project, None) if d.run] == []  # both current, the cascade seen
