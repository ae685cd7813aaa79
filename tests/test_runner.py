"""The runner end to end on the example project: compute → gate → publish → run log, and the CLI."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest

from featurebank.cli import main
from featurebank.definitions import load_project
from featurebank.errors import GateFailed
from featurebank.compile.run import compile_plan
from featurebank.io.tables import table_version
from featurebank.io.runlog import RunRecord, append_run, published_dates, read_runs
from featurebank.runner import date_chunks, new_run_id, run_all, run_group

D1 = date(2024, 3, 1)
GROUP = "customer_card_spend"


def _ts(day: date, hour: int) -> pd.Timestamp:
    return pd.Timestamp(datetime(day.year, day.month, day.day, hour, tzinfo=timezone.utc))


def _transactions(bad_amount_on: date | None = None, null_amounts_for: str | None = None) -> pd.DataFrame:
    """Four customers with one or two events a day from Feb 20 to Mar 8 (tiny, deterministic)."""
    rows = []
    day = date(2024, 2, 20)
    n = 0
    while day <= date(2024, 3, 8):
        for i in range(4):
            if (day.toordinal() + i) % 3 == 0:
                continue  # some customer-days without events
            n += 1
            status = "DECLINED" if n % 5 == 0 else ("CHARGEBACK" if n % 17 == 0 else "SETTLED")
            amount = float(10 + i * 3 + day.day % 7)
            if null_amounts_for == f"c{i}":
                amount = None
            rows.append((f"t{n}", f"c{i}", f"a{i}", f"m{n % 3}", f"mcc{n % 4}", amount, "EUR",
                         "web" if n % 2 else "pos", status, _ts(day, 1 + (n % 20))))
        day += timedelta(days=1)
    if bad_amount_on is not None:
        rows.append(("tbad", "c1", "a1", "m0", "mcc0", -100000.0, "EUR", "pos", "SETTLED", _ts(bad_amount_on, 12)))
    frame = pd.DataFrame(rows, columns=["txn_id", "customer_id", "account_id", "merchant_id", "mcc", "amount",
                                       "currency", "channel", "status", "event_ts"])
    frame["event_ts"] = frame["event_ts"].astype("datetime64[us, UTC]")
    return frame


def _write_sources(project: Path, transactions: pd.DataFrame) -> None:
    raw = project / "warehouse" / "raw"
    for name in ("card_transactions", "customers", "accounts"):
        (raw / name).mkdir(parents=True, exist_ok=True)
    transactions.to_parquet(raw / "card_transactions" / "part-0.parquet", index=False)
    stamp = lambda d: pd.Timestamp(d, tz="UTC")  # noqa: E731
    customers = pd.DataFrame({
        "customer_id": ["c0", "c1", "c2", "c3"], "segment": ["mass", "affluent", "mass", "private"],
        "income": [2500.0, 6000.0, 9000.0, None], "birth_year": pd.array([1980, 1990, 1975, 2000], dtype="int32"),
        "region": ["north", "south", "east", "west"],
        "opened_at": [stamp("2020-01-01")] * 4,
        "updated_at": [stamp("2024-03-01 08:00"), stamp("2024-03-02 09:00"), stamp("2024-03-02 10:00"),
                       stamp("2024-03-03 11:00")],
    })
    customers.to_parquet(raw / "customers" / "part-0.parquet", index=False)
    accounts = pd.DataFrame({
        "account_id": ["a0", "a1", "a2", "a3"], "customer_id": ["c0", "c1", "c2", "c3"],
        "product": ["classic", "gold", "classic", "platinum"], "credit_limit": [1000.0, 5000.0, 1500.0, 20000.0],
        "opened_at": [stamp("2021-01-01")] * 4,
        "updated_at": [stamp("2024-03-01 08:00"), stamp("2024-03-01 09:00"), stamp("2024-03-02 10:00"),
                       stamp("2024-03-03 11:00")],
    })
    accounts.to_parquet(raw / "accounts" / "part-0.parquet", index=False)


def _spend_oracle(transactions: pd.DataFrame, start: date, end: date) -> pd.DataFrame:
    """Brute force: per customer and snapshot date D, settled spend in [D-7, D) and count in [D-30, D)."""
    settled = transactions[transactions.status == "SETTLED"]
    out = []
    day = start
    while day <= end:
        lo90, hi = _ts(day, 0) - pd.Timedelta(days=90), _ts(day, 0)
        for customer in sorted(settled.customer_id.unique()):
            mine = settled[settled.customer_id == customer]
            if not ((mine.event_ts >= lo90) & (mine.event_ts < hi)).any():
                continue
            w7 = mine[(mine.event_ts >= hi - pd.Timedelta(days=7)) & (mine.event_ts < hi)]
            w30 = mine[(mine.event_ts >= hi - pd.Timedelta(days=30)) & (mine.event_ts < hi)]
            out.append((customer, day, w7.amount.sum() if len(w7) else None, len(w30)))
        day += timedelta(days=1)
    return pd.DataFrame(out, columns=["customer_id", "feature_date", "spend_sum_7d", "txn_count_30d"])


def _table(spark, project, group: str = GROUP) -> pd.DataFrame:
    path = project.table_path(group)
    frame = spark.read.format("delta").load(path).toPandas()
    return frame.sort_values(["feature_date", *project.entities[project.groups[group].entity].keys]).reset_index(drop=True)


@pytest.fixture()
def project(example_project):
    """The example project with tiny, well-behaved sources."""
    _write_sources(example_project, _transactions())
    return load_project(example_project, "local")


def test_run_publishes_one_commit_logs_the_run_and_matches_brute_force(spark, project):
    start, end = D1, D1 + timedelta(days=2)
    [outcome] = run_group(project, GROUP, start, end, spark=spark)
    assert outcome.status == "published" and outcome.delta_version == 0

    table = _table(spark, project)
    expected = _spend_oracle(_transactions(), start, end)
    assert len(table) == len(expected) == outcome.rows_written
    got = table[["customer_id", "feature_date", "spend_sum_7d", "txn_count_30d"]].copy()
    pd.testing.assert_frame_equal(got.reset_index(drop=True), expected, check_dtype=False)

    [record] = read_runs(spark, project.config.feature_root, GROUP)
    plan = compile_plan(project, GROUP, start, end)
    assert (record.run_id, record.status, record.delta_version, record.rows_written) == (
        outcome.run_id, "published", 0, len(expected))
    assert (record.start_date, record.end_date, record.definition_hash, record.env) == (start, end, plan.data_hash, "local")
    assert record.user and record.started_at <= record.finished_at and record.error is None
    assert json.loads(record.checks_summary)["passed"] is True
    assert published_dates(spark, project.config.feature_root, GROUP) == {start, start + timedelta(days=1), end}
    assert (Path(project.config.feature_root) / "_reports" / GROUP / outcome.run_id / "report.html").exists()


def test_rerunning_the_same_range_is_idempotent(spark, project):
    run_group(project, GROUP, D1, D1 + timedelta(days=1), spark=spark)
    first = _table(spark, project)
    [again] = run_group(project, GROUP, D1, D1 + timedelta(days=1), spark=spark)
    assert again.delta_version == 1
    pd.testing.assert_frame_equal(first, _table(spark, project))
    assert [r.status for r in read_runs(spark, project.config.feature_root, GROUP)] == ["published", "published"]


def test_gate_failure_exits_1_names_expectation_and_observed_value_and_changes_nothing(spark, example_project, capsys):
    _write_sources(example_project, _transactions())
    project = load_project(example_project, "local")
    run_group(project, GROUP, D1, D1, spark=spark)
    before = _table(spark, project)

    _write_sources(example_project, _transactions(bad_amount_on=D1 - timedelta(days=1)))
    code = main(["run", GROUP, "--project", str(example_project), "--date", str(D1)])
    err = capsys.readouterr().err

    assert code == 1
    assert "expect_column_values_to_be_between" in err and "spend_sum_90d" in err
    assert "1 of 4 rows unexpected" in err and "-9" in err  # observed: the offending (negative) value
    assert table_version(spark, project.table_path(GROUP)) == 0
    pd.testing.assert_frame_equal(before, _table(spark, project))
    latest = read_runs(spark, project.config.feature_root, GROUP)[0]
    assert latest.status == "gate_failed" and latest.delta_version is None and "GateFailed" in (latest.error or "")
    assert json.loads(latest.checks_summary)["failed"] == 1
    root = Path(project.config.feature_root)
    assert (root / "_quarantine" / GROUP / latest.run_id).is_dir()
    assert {p.name for p in (root / "_reports" / GROUP / latest.run_id).iterdir()} == {"result.json", "report.html"}
    assert published_dates(spark, project.config.feature_root, GROUP) == {D1}
    assert main(["history", GROUP, "--project", str(example_project)]) == 0
    out = capsys.readouterr().out
    assert "gate_failed" in out and "expect_column_values_to_be_between[spend_sum_90d]" in out


def test_warn_check_publishes_and_records_the_warning_in_the_run_log(spark, example_project):
    _write_sources(example_project, _transactions(null_amounts_for="c2"))
    project = load_project(example_project, "local")
    [outcome] = run_group(project, GROUP, D1, D1, spark=spark)
    assert outcome.status == "published"
    [record] = read_runs(spark, project.config.feature_root, GROUP)
    summary = json.loads(record.checks_summary)
    warned = [c for c in summary["checks"] if not c["success"]]
    assert [(c["expectation"], c["column"], c["severity"]) for c in warned] == [
        ("expect_column_values_to_not_be_null", "spend_avg_90d", "warn")]
    assert warned[0]["unexpected_count"] == 1


def test_chunked_backfill_commits_each_chunk_and_keeps_earlier_chunks_when_a_later_one_fails(spark, example_project):
    from delta.tables import DeltaTable

    # A huge negative spend on Mar 4 only reaches snapshots from Mar 5 on: chunk 3 (Mar 5-6).
    transactions = _transactions(bad_amount_on=D1 + timedelta(days=3))
    _write_sources(example_project, transactions)
    project = load_project(example_project, "local")
    assert date_chunks(D1, D1 + timedelta(days=5), 2) == [
        (D1, D1 + timedelta(days=1)), (D1 + timedelta(days=2), D1 + timedelta(days=3)),
        (D1 + timedelta(days=4), D1 + timedelta(days=5))]

    with pytest.raises(GateFailed):
        run_group(project, GROUP, D1, D1 + timedelta(days=5), spark=spark, chunk_days=2)

    runs = list(reversed(read_runs(spark, project.config.feature_root, GROUP)))
    assert [(r.status, r.start_date, r.delta_version) for r in runs] == [
        ("published", D1, 0), ("published", D1 + timedelta(days=2), 1), ("gate_failed", D1 + timedelta(days=4), None)]
    history = DeltaTable.forPath(spark, project.table_path(GROUP)).history().orderBy("version").collect()
    assert [json.loads(h.userMetadata)["run_id"] for h in history] == [runs[0].run_id, runs[1].run_id]
    table = _table(spark, project)
    assert sorted(set(table.feature_date)) == [D1 + timedelta(days=i) for i in range(4)]
    expected = _spend_oracle(transactions, D1, D1 + timedelta(days=3))
    assert len(table) == len(expected)


def test_runtime_failure_is_logged_as_failed_and_reraised(spark, example_project):
    _write_sources(example_project, _transactions())
    (example_project / "warehouse/raw/card_transactions/part-0.parquet").unlink()
    (example_project / "warehouse/raw/card_transactions").rmdir()
    project = load_project(example_project, "local")
    with pytest.raises(Exception):
        run_group(project, GROUP, D1, D1, spark=spark)
    [record] = read_runs(spark, project.config.feature_root, GROUP)
    assert record.status == "failed" and record.error and record.delta_version is None
    assert table_version(spark, project.table_path(GROUP)) is None


def test_dry_run_gates_but_writes_nothing(spark, project):
    [outcome] = run_group(project, GROUP, D1, D1, spark=spark, dry_run=True)
    assert outcome.status == "dry_run" and outcome.delta_version is None and outcome.rows_written > 0
    assert table_version(spark, project.table_path(GROUP)) is None
    assert published_dates(spark, project.config.feature_root, GROUP) == set()


def test_run_all_publishes_every_group_in_run_order_and_history_prints_them(spark, project, capsys):
    outcomes = run_all(project, D1 + timedelta(days=2), D1 + timedelta(days=2), spark=spark)
    assert sorted(o.group for o in outcomes) == sorted(project.groups)
    assert all(o.status == "published" for o in outcomes)
    customers = _table(spark, project, "customer_profile")
    assert list(customers.customer_id) == ["c3"] and list(customers.segment) == ["PRIVATE"]  # updated Mar 3

    code = main(["history", GROUP, "--project", str(project.root)])
    out = capsys.readouterr().out
    assert code == 0 and "published" in out and outcomes[0].run_id[:8] in out and "checks" in out


def test_cli_run_prints_progress_per_stage(spark, project, capsys):
    code = main(["run", GROUP, "--project", str(project.root), "--start", str(D1), "--end", str(D1 + timedelta(days=1)),
                 "--chunk-days", "1"])
    captured = capsys.readouterr()
    out, err = captured.out, captured.err
    assert code == 0
    for text in ("[1/2]", "[2/2]", "computing", "gating", "checks", "publishing", "published", "version 1"):
        assert text in err  # progress: one line per phase on stderr (not a terminal)
    assert "gate passed" in err and "computing" not in out and "gating" not in out
    results = [line for line in out.splitlines() if line.startswith(GROUP)]
    assert len(results) == 2 and all(": published " in line for line in results) and "version 1" in out


def test_run_and_history_print_the_same_duration_for_a_run(spark, project, capsys):
    assert main(["run", GROUP, "--project", str(project.root), "--date", str(D1)]) == 0
    printed = capsys.readouterr().out
    [latest, *_] = read_runs(spark, project.config.feature_root, GROUP)
    assert f"{latest.duration_seconds:.1f}s, run {latest.run_id}" in printed
    assert main(["history", GROUP, "--project", str(project.root)]) == 0
    assert f"{latest.duration_seconds:.1f}s" in capsys.readouterr().out


def test_run_ids_sort_by_start_time():
    early = new_run_id(datetime(2024, 3, 1, 10, 0, 0, 1000, tzinfo=timezone.utc))
    late = new_run_id(datetime(2024, 3, 1, 10, 0, 0, 2000, tzinfo=timezone.utc))
    assert early < late and early.startswith("20240301T100000001Z-")


def test_published_dates_come_from_the_run_log_not_from_rows(spark, tmp_path):
    root = str(tmp_path)
    now = datetime.now(timezone.utc)

    def record(run_id: str, status: str, start: date, end: date) -> RunRecord:
        return RunRecord(run_id, "g", "local", start, end, status, now, now, 0, None, "h", "", "me")  # type: ignore[arg-type]

    append_run(spark, root, record("1", "published", D1, D1 + timedelta(days=1)))
    append_run(spark, root, record("2", "gate_failed", D1 + timedelta(days=5), D1 + timedelta(days=5)))
    append_run(spark, root, record("3", "dry_run", D1 + timedelta(days=6), D1 + timedelta(days=6)))
    append_run(spark, root, record("4", "published", D1 + timedelta(days=9), D1 + timedelta(days=9)))
    assert published_dates(spark, root, "g") == {D1, D1 + timedelta(days=1), D1 + timedelta(days=9)}
    assert published_dates(spark, root, "other") == set()
    assert [r.run_id for r in read_runs(spark, root)] in (["4", "3", "2", "1"], ["1", "2", "3", "4"][::-1])


def test_a_committed_run_whose_log_row_cannot_be_written_stays_published(spark, project):
    from featurebank.errors import RunLogUnwritten, exit_code_for

    root = Path(project.config.feature_root)
    blocker = root / "_runs" / "_delta_log" / f"{1:020d}.json"

    def break_the_log(event) -> None:  # after the started row (version 0), before the commit
        if event.stage == "publishing":
            blocker.mkdir()  # the log's next commit file cannot be written

    with pytest.raises(RunLogUnwritten) as caught:
        run_group(project, GROUP, D1, D1 + timedelta(days=1), spark=spark, progress=break_the_log)
    assert exit_code_for(caught.value) == 3
    message = str(caught.value)
    assert "as Delta version 0" in message and "could not be written" in message and "_runs" in message

    blocker.rmdir()
    [record] = read_runs(spark, project.config.feature_root, GROUP)
    assert (record.status, record.delta_version, record.repaired) == ("published", 0, True)
    assert record.rows_written == len(_table(spark, project)) and record.error is None
    assert json.loads(record.rows_by_date) == {
        str(d): n for d, n in _table(spark, project).groupby("feature_date").size().items()}
    assert published_dates(spark, project.config.feature_root, GROUP) == {D1, D1 + timedelta(days=1)}


def test_published_run_records_rows_per_date_and_a_started_row(spark, project):
    from featurebank.io.runlog import runs_path

    [outcome] = run_group(project, GROUP, D1, D1 + timedelta(days=1), spark=spark)
    [record] = read_runs(spark, project.config.feature_root, GROUP)
    per_date = _table(spark, project).groupby("feature_date").size()
    assert json.loads(record.rows_by_date) == {str(d): int(n) for d, n in per_date.items()}
    source_rows = json.loads(record.source_rows_by_day)  # the guard's rows per event day it read
    assert max(source_rows) == str(D1) and sum(source_rows.values()) > 0, source_rows  # last day before D1 + 1
    assert not record.repaired
    stored = spark.read.format("delta").load(runs_path(project.config.feature_root)).toPandas()
    assert sorted(stored[stored.run_id == outcome.run_id].status) == ["published", "started"]


def _record(run_id: str, group: str, status: str, start: date, end: date, version=None) -> RunRecord:
    now = datetime.now(timezone.utc)
    return RunRecord(run_id, group, "local", start, end, status, now, now, 0, version, "h", "", "me")  # type: ignore[arg-type]


def test_history_reconciles_the_log_with_the_table(spark, tmp_path):
    from publish_fixtures import batch_rows, make_batch, make_plan

    from featurebank.io.tables import publish

    root = str(tmp_path / "features")
    plan = make_plan(f"{root}/spend", D1, D1 + timedelta(days=1))
    append_run(spark, root, _record("r1-killed-after-commit", "spend", "started", plan.start, plan.end))
    publish(spark, make_batch(spark, batch_rows(plan.start, plan.end)), plan, "r1-killed-after-commit", rows=6)
    append_run(spark, root, _record("r2-killed-before-commit", "spend", "started", D1 + timedelta(days=5), D1 + timedelta(days=5)))
    runs = {r.run_id: r for r in read_runs(spark, root, "spend")}
    assert (runs["r1-killed-after-commit"].status, runs["r1-killed-after-commit"].delta_version,
            runs["r1-killed-after-commit"].rows_written, runs["r1-killed-after-commit"].repaired) == ("published", 0, 6, True)
    assert runs["r2-killed-before-commit"].status == "incomplete"
    assert published_dates(spark, root, "spend") == {D1, D1 + timedelta(days=1)}


def test_an_older_run_log_without_new_columns_stays_readable_and_writable(spark, tmp_path):
    from featurebank.io.runlog import runs_path

    root = str(tmp_path)
    now = datetime.now(timezone.utc)
    old_ddl = ("run_id STRING NOT NULL, group STRING NOT NULL, env STRING, start_date DATE, end_date DATE, "
               "status STRING NOT NULL, started_at TIMESTAMP, finished_at TIMESTAMP, rows_written BIGINT, "
               "delta_version BIGINT, definition_hash STRING, checks_summary STRING, user STRING, error STRING")
    spark.createDataFrame([("old", "g", "local", D1, D1, "published", now, now, 3, 0, "h", "", "me", None)],
                          old_ddl).write.format("delta").save(runs_path(root))
    assert [(r.run_id, r.rows_by_date) for r in read_runs(spark, root)] == [("old", "")]
    append_run(spark, root, _record("new", "g", "published", D1 + timedelta(days=1), D1 + timedelta(days=1), 1))
    assert sorted(r.run_id for r in read_runs(spark, root)) == ["new", "old"]
    assert published_dates(spark, root, "g") == {D1, D1 + timedelta(days=1)}


def test_gate_report_and_errors_never_show_values_of_pii_columns(spark, example_project, capsys):
    _write_sources(example_project, _transactions())
    profile = example_project / "features/customers/profile.yaml"
    text = profile.read_text().replace("else 'high' end", "else 'zq-secret-band' end")
    profile.write_text(text.replace("value_set: [low, mid, high], mostly: 0.9", "value_set: [low, mid, high]"))
    project = load_project(example_project, "local")

    code = main(["run", "customer_profile", "--project", str(example_project), "--date", str(D1 + timedelta(days=1))])
    captured = capsys.readouterr()
    assert code == 1 and "expect_column_values_to_be_in_set" in captured.err and "***" in captured.err
    assert main(["history", "customer_profile", "--project", str(example_project)]) == 0
    captured_history = capsys.readouterr()
    root = Path(project.config.feature_root)
    texts = [captured.out, captured.err, captured_history.out, captured_history.err]
    texts += [p.read_text() for p in (root / "_reports").rglob("*") if p.is_file()]
    texts += [r.checks_summary + (r.error or "") for r in read_runs(spark, project.config.feature_root)]
    assert not [t for t in texts if "zq-secret-band" in t]


def test_two_first_ever_runs_of_one_group_on_disjoint_dates_at_once_both_land_and_are_logged(spark, project):
    import threading

    outcomes, errors = [], []

    def run(day: date) -> None:
        try:
            outcomes.extend(run_group(project, GROUP, day, day, spark=spark))
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=run, args=(day,)) for day in (D1, D1 + timedelta(days=3))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    assert not errors, errors
    assert sorted(o.delta_version for o in outcomes) == [0, 1]
    assert sorted(set(_table(spark, project).feature_date)) == [D1, D1 + timedelta(days=3)]
    runs = read_runs(spark, project.config.feature_root, GROUP)
    assert sorted((r.start_date, r.status, r.repaired) for r in runs) == [
        (D1, "published", False), (D1 + timedelta(days=3), "published", False)]


def test_coverage_never_refuses_dates_whose_rows_the_table_holds(spark, project):
    import shutil

    from featurebank.errors import MissingCoverage
    from featurebank.io.runlog import runs_path
    from featurebank.training.api import FeatureStore

    run_group(project, GROUP, D1, D1, spark=spark)
    shutil.rmtree(runs_path(project.config.feature_root))  # a run log that lost the run (or predates it)
    store = FeatureStore(project, spark=spark)
    spine = pd.DataFrame({"customer_id": ["c0", "c1"], "ts": [_ts(D1, 12), _ts(D1 + timedelta(days=1), 12)]})
    with pytest.raises(MissingCoverage) as caught:  # Mar 2 has no rows and no run: still refused
        store.training_set(features=[f"{GROUP}:spend_sum_7d"], spine=spine)
    assert str(D1 + timedelta(days=1)) in str(caught.value) and f"{D1}," not in str(caught.value)
    frame = store.training_set(features=[f"{GROUP}:spend_sum_7d"], spine=spine.iloc[:1]).toPandas()
    assert len(frame) == 1 and frame.spend_sum_7d.notna().all()


def test_profiles_are_stored_with_the_commits_version_and_a_failing_profile_only_warns(spark, project, monkeypatch,
                                                                                     caplog):
    """The profiles are computed beside the publish (a thread of their own) and stamped with the
    version the run committed; if profiling fails, the run is still published (a warning) and no
    profile is stored."""
    from featurebank.engine import profile as profile_module
    from featurebank.engine.profile import profile_from_json
    from featurebank.gate import profile_location

    root = project.config.feature_root
    [outcome] = run_group(project, GROUP, D1, D1 + timedelta(days=1), spark=spark)
    for day in (D1, D1 + timedelta(days=1)):
        stored = profile_from_json(Path(profile_location(root, GROUP, day)).read_text())
        assert (stored.version, stored.run_id, stored.feature_date) == (outcome.delta_version, outcome.run_id, day)
        assert stored.rows == int((_table(spark, project).feature_date == day).sum())

    def broken(*args, **kwargs):
        raise RuntimeError("profile store unreachable")

    monkeypatch.setattr(profile_module, "profile_batch", broken)
    later = D1 + timedelta(days=2)
    with caplog.at_level("WARNING"):
        [failed_profile] = run_group(project, GROUP, later, later, spark=spark)
    assert failed_profile.status == "published" and failed_profile.delta_version == outcome.delta_version + 1
    assert "could not store its profiles" in caplog.text and "profile store unreachable" in caplog.text
    assert not Path(profile_location(root, GROUP, later)).exists()


def test_a_publish_that_fails_cancels_the_profiles_instead_of_waiting_for_them(spark, project, monkeypatch):
    """A run that fails before storing its profiles never needs them: their Spark jobs are
    cancelled (at scale they take minutes), the run fails with the publish's error, nothing is
    stored and the table is as it was."""
    import threading
    import time

    from featurebank.engine import profile as profile_module
    from featurebank.gate import profile_location
    from featurebank.io import tables

    root = project.config.feature_root
    [outcome] = run_group(project, GROUP, D1, D1, spark=spark)
    before = _table(spark, project)
    started = threading.Event()

    def endless(batch, *args, **kwargs):  # a profile whose job would run for hours
        started.set()
        return batch.sparkSession.range(0, 10**13, numPartitions=2).where("id % 7 = 9").count()

    def unwritable(*args, **kwargs):
        assert started.wait(60)
        time.sleep(1)  # its job is running
        raise RuntimeError("the feature root is unwritable")

    monkeypatch.setattr(profile_module, "profile_batch", endless)
    monkeypatch.setattr(tables, "publish", unwritable)
    later = D1 + timedelta(days=1)
    began = time.monotonic()
    with pytest.raises(RuntimeError, match="unwritable"):
        run_group(project, GROUP, later, later, spark=spark)
    assert time.monotonic() - began < 120  # the profile job alone would take hours
    assert not [t for t in threading.enumerate() if t.name.startswith("featurebank-profile")]
    assert not Path(profile_location(root, GROUP, later)).exists()
    assert outcome.status == "published"
    pd.testing.assert_frame_equal(_table(spark, project), before)
    assert spark.range(3).count() == 3  # the session still runs jobs
