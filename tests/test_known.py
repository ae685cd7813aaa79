"""Training sets as known then (`--as-known-at publish`, issue 22): values as published at each instant.

The hostile user first (a mode that is not one, a row-level group, a bad definition: one
sentence, exit 2, nothing read); the known-at rule on plain values; then two oracles on real
Spark and Delta: late events restated between two spine instants (before the restatement's
publish time the pre-restatement value, after it the new one; event time the new one for
both; a pandas brute force agrees on every row, and a crashed run's archive is ignored), and
a group backfilled today (spine rows get the values known at D + lag, not NULL).
"""

from __future__ import annotations

import json
import re
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from featurebank.cli import main
from featurebank.compile.known import Publication, first_known, known_versions, target_date, value_at
from featurebank.definitions import load_project
from featurebank.training.api import FeatureStore
from featurebank.training.manifest import Manifest
from test_restate import FIRST, GROUP, LAST, SHORT, _late, _oracle, _project, _raw
from test_runner import _transactions, _write_sources

UTC = timezone.utc
FEATURES = [f"{GROUP}:*"]


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _lag(project_dir: Path, lag: str) -> None:
    sources = project_dir / "features" / "sources.yaml"
    text = re.sub(r"timestamp: event_ts\nlag: \w+\n", "timestamp: event_ts\n", sources.read_text(), count=1)
    sources.write_text(text.replace("timestamp: event_ts\n", f"timestamp: event_ts\nlag: {lag}\n", 1))


# --- the hostile user: one sentence, exit 2, nothing read ---------------------------------------

def test_an_unknown_mode_is_one_sentence_and_exit_2(example_project, tmp_path, capsys):
    _write_sources(example_project, _transactions())
    code = main(["training-set", "--features", "customer_card_spend:spend_sum_7d", "--spine", str(tmp_path / "s.parquet"),
                 "--out", str(tmp_path / "out"), "--as-known-at", "yesterday", "--project", str(example_project)])
    err = capsys.readouterr().err
    assert code == 2
    assert "--as-known-at 'yesterday' is not a mode; use --as-known-at publish" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_a_row_level_group_as_known_at_publish_is_refused_with_a_sentence(example_project, tmp_path, capsys):
    code = main(["training-set", "--features", "customer_profile:segment", "--spine", str(tmp_path / "s.parquet"),
                 "--out", str(tmp_path / "out"), "--as-known-at", "publish", "--project", str(example_project)])
    err = capsys.readouterr().err
    assert code == 2 and "supports aggregation groups only; customer_profile is a row-level group" in err


def test_a_training_set_declaring_an_unknown_mode_fails_validate(example_project, capsys):
    (example_project / "features" / "ts.yaml").write_text(
        "kind: training_set\nname: known_v1\nfeatures: ['customer_card_spend:*']\nas_known_at: tomorrow\n")
    assert main(["validate", "--project", str(example_project)]) == 2
    assert "as_known_at of training set 'known_v1' is 'tomorrow'; write as_known_at: publish" in capsys.readouterr().err


def test_from_manifest_with_a_mode_is_refused(tmp_path, capsys):
    code = main(["training-set", "--from-manifest", str(tmp_path / "m.json"), "--spine", "s", "--out",
                 str(tmp_path / "o"), "--as-known-at", "publish"])
    assert code == 2 and "drop --as-known-at" in capsys.readouterr().err


# --- the rule, on plain values -------------------------------------------------------------------

def test_a_first_publication_is_known_at_d_plus_lag_and_a_restatement_at_its_publish_time():
    day = date(2024, 3, 6)
    backfill = Publication("r1", 1, (day, day + timedelta(days=1)), _at("2026-11-27T01:00"))  # run long after
    restated = Publication("r2", 2, (day,), _at("2024-03-07T12:00"))
    early = Publication("r3", 3, (day + timedelta(days=1),), _at("2024-03-07T12:00"))  # before lag 1d made it known
    versions = known_versions([restated, backfill, early], 1, "Europe/Berlin")
    assert first_known(day, 1, "Europe/Berlin") == datetime(2024, 3, 7, tzinfo=ZoneInfo("Europe/Berlin"))
    [v1, v2, w1, w2] = versions
    assert (v1.run_id, v1.known_from, v1.known_until, v1.superseded_by) == ("r1", first_known(day, 1, "Europe/Berlin"),
                                                                            _at("2024-03-07T12:00"), "r2")
    assert (v2.run_id, v2.known_until, v2.superseded_by) == ("r2", None, None)
    # a restatement published before the date was even known counts from the date's first known-at
    assert w1.known_from == w2.known_from == first_known(day + timedelta(days=1), 1, "Europe/Berlin")
    assert value_at(versions, day + timedelta(days=1), w1.known_from).run_id == "r3"
    assert value_at(versions, day, _at("2024-03-06T22:59")) is None  # Berlin midnight is 23:00 UTC
    assert value_at(versions, day, _at("2024-03-06T23:00")).run_id == "r1"
    assert value_at(versions, day, _at("2024-03-07T12:00")).run_id == "r2"  # at the instant: the new one
    assert target_date(date(2024, 3, 8), 0) == date(2024, 3, 8) and target_date(date(2024, 3, 8), 1) == date(2024, 3, 7)


# --- the oracles: real Spark, real Delta ---------------------------------------------------------

def _spine(instants: list[str], customers=("c0", "c1", "c2", "c3")) -> pd.DataFrame:
    rows = [(c, pd.Timestamp(_at(t)), f"{c}@{t}") for t in instants for c in customers]
    rows.append((None, pd.Timestamp(_at(instants[0])), "no key"))
    frame = pd.DataFrame(rows, columns=["customer_id", "ts", "label"])
    frame["ts"] = frame["ts"].astype("datetime64[us, UTC]")
    return frame


def _expected(events_at, spine: pd.DataFrame, lag: int, published: set[date]) -> list[tuple]:
    """Brute force per spine row: the snapshot of date(ts) - lag over the events known at ts."""
    out = []
    for customer, ts, _ in spine.itertuples(index=False):
        day = ts.date() - timedelta(days=lag)
        if customer is None or day not in published:
            out.append((None, None, None))
            continue
        found = {c: (s1, s2, n) for c, s1, s2, n in _oracle(events_at(ts), day)}
        out.append(found.get(customer, (None, None, 0)))
    return out


def _got(store: FeatureStore, frame, spine: pd.DataFrame) -> list[tuple]:
    """The features per spine row, in spine order (a written training set's files come in any order)."""
    pdf = store.to_pandas(frame)
    values = pdf[["spend_sum_1d", "spend_sum_2d", "txn_count_2d"]].astype(object)
    by_label = dict(zip(pdf.label, (tuple(r) for r in values.where(values.notna(), None).itertuples(index=False))))
    assert len(by_label) == len(pdf) == len(spine)
    return [by_label[label] for label in spine.label]


def _same(got: list[tuple], want: list[tuple], spine: pd.DataFrame) -> None:
    assert len(got) == len(want)
    for (g1, g2, gn), (w1, w2, wn), label in zip(got, want, spine.label):
        assert (gn, g1 is None, g2 is None) == (wn, w1 is None, w2 is None), label
        assert (w1 is None or g1 == pytest.approx(w1)) and (w2 is None or g2 == pytest.approx(w2)), label


def test_as_known_at_publish_gives_the_value_before_a_restatement_until_its_publish_time(spark, example_project,
                                                                                         monkeypatch):
    from featurebank.io.history import archive_superseded, current_versions, expire, history_path
    from featurebank.io.runlog import read_runs_direct
    from featurebank.runner import run_group

    _lag(example_project, "0d")
    project = _project(example_project)
    original = _transactions()
    monkeypatch.setattr("featurebank.days.utc_now", lambda: _at("2024-03-10T02:00"))  # a backfill, after the fact
    run_group(project, GROUP, FIRST, LAST, spark=spark, chunk_days=5)
    final = _late(example_project)  # late events on Mar 5 (reach Mar 6, 7), a corrected Feb 28 (reaches Mar 1)

    # A run that archived the rows of Mar 6..7 and then died before its commit: readers must ignore it.
    current = current_versions(read_runs_direct(project.config.feature_root, GROUP), GROUP, 0, "UTC")
    assert archive_superseded(spark, project.table_path(GROUP), project.config.feature_root, GROUP, "crashed-run",
                              (date(2024, 3, 6), date(2024, 3, 7)), current, retention_days=3650,
                              now=_at("2024-03-07T11:00"), lake_formation=False) > 0

    restated_at = _at("2024-03-07T12:00")
    monkeypatch.setattr("featurebank.days.utc_now", lambda: restated_at)
    assert main(["run", GROUP, "--restate", "--project", str(example_project)]) == 0
    history = spark.read.format("delta").load(history_path(project.config.feature_root, GROUP)).toPandas()
    assert set(history._superseded_by) >= {"crashed-run"} and len(set(history._superseded_by)) == 3
    assert set(history.feature_date) == {date(2024, 3, 1), date(2024, 3, 6), date(2024, 3, 7)}

    instants = ["2024-03-01T00:00", "2024-03-05T10:00", "2024-03-06T06:00", "2024-03-06T18:00", "2024-03-07T00:00",
                "2024-03-07T11:59:59", "2024-03-07T12:00", "2024-03-07T18:00", "2024-03-08T09:00", "2024-03-12T09:00"]
    spine = _spine(instants)
    store = FeatureStore(project, spark=spark)
    known = store.build_training_set(features=FEATURES, spine=spine, as_known_at="publish")
    event = store.build_training_set(features=FEATURES, spine=spine, allow_missing=True)
    published = set(pd.date_range(FIRST, LAST).date)

    before = lambda ts: original if ts < pd.Timestamp(restated_at) else final  # noqa: E731
    _same(_got(store, known.frame, spine), _expected(before, spine, 0, published), spine)
    _same(_got(store, event.frame, spine), _expected(lambda ts: final, spine, 0, published), spine)
    got = dict(zip(spine.label, _got(store, known.frame, spine)))
    now = dict(zip(spine.label, _got(store, event.frame, spine)))
    # c1 had a late 77.0 on Mar 5: Mar 6's 1d sum changes; before the restatement the old value, after it the new one
    assert got["c1@2024-03-06T18:00"] != now["c1@2024-03-06T18:00"]
    assert got["c1@2024-03-07T18:00"] == now["c1@2024-03-07T18:00"]
    assert got["c1@2024-03-07T11:59:59"][1] != now["c1@2024-03-07T11:59:59"][1]

    assert known.manifest.as_known_at == "publish" and event.manifest.as_known_at == "event"
    statistics = known.statistics()
    assert statistics.status_share[GROUP]["not_known"] == pytest.approx(4 / len(spine))  # Mar 12: never published
    again = store.rebuild(Manifest.from_json(known.manifest.to_json()), spine=spine)  # the manifest is enough
    assert _got(store, again.frame, spine) == _got(store, known.frame, spine)

    # retention: rows superseded before the horizon are deleted (not left to Delta time travel)
    expire(spark, project.config.feature_root, GROUP, _at("2024-03-07T11:30"))
    kept = spark.read.format("delta").load(history_path(project.config.feature_root, GROUP)).toPandas()
    assert "crashed-run" not in set(kept._superseded_by) and len(kept) == len(history) - (
        history._superseded_by == "crashed-run").sum()


def test_a_group_backfilled_today_gets_the_values_known_at_d_plus_lag(spark, example_project, tmp_path, capsys):
    _lag(example_project, "0d")
    project = _project(example_project)
    assert main(["run", GROUP, "--start", "2024-03-01", "--end", "2024-03-09", "--project",
                 str(example_project)]) == 0  # today, with the real clock: years after the dates
    spine = _spine(["2024-03-01T00:00", "2024-03-04T13:30", "2024-03-09T23:59:59"])
    spine_path = tmp_path / "spine.parquet"
    spine.to_parquet(spine_path, index=False)
    published, events = set(pd.date_range(FIRST, LAST).date), _transactions()

    out = tmp_path / "known0"
    assert main(["training-set", "--features", f"{GROUP}:*", "--spine", str(spine_path), "--out", str(out),
                 "--as-known-at", "publish", "--project", str(example_project)]) == 0
    assert "as known at publish: customer_short_spend 0 row(s) not yet known" in capsys.readouterr().out
    store = FeatureStore(project, spark=spark)
    lag0 = _got(store, spark.read.parquet(str(out)), spine)
    _same(lag0, _expected(lambda ts: events, spine, 0, published), spine)  # lag 0d: the snapshot of date(ts)
    assert json.loads((out / "_manifest.json").read_text())["as_known_at"] == "publish"

    _lag(example_project, "1d")  # the same table, the source now declared a day late
    (example_project / "features" / "ts.yaml").write_text(
        f"kind: training_set\nname: known_v1\nfeatures: ['{GROUP}:*']\nas_known_at: publish\n")
    project = load_project(example_project, "local")
    store = FeatureStore(project, spark=spark)
    built = store.build_training_set("known_v1", spine=spine)  # the definition's mode
    assert built.manifest.as_known_at == "publish"
    _same(_got(store, built.frame, spine), _expected(lambda ts: events, spine, 1, published), spine)  # the previous date's
    # Mar 1 with lag 1d reads Feb 29, never published: NULL and counted, not an error
    assert built.statistics().status_share[GROUP]["not_known"] == pytest.approx(4 / len(spine))
    assert store.build_training_set("known_v1", spine=spine, as_known_at="event").manifest.as_known_at == "event"
