"""Retention that keeps promises (issue 16): conf's `retention` reaches every Delta table's
properties, `featurebank vacuum` spares what registered manifests need, and a manifest still
rebuilds after Delta's log cleanup has passed its 30-day default.

Commits are aged by rewriting their times (commit file and data file mtimes, and the times
inside the commit JSON), which is what Delta's log cleanup and VACUUM read.
"""

from __future__ import annotations

import json
import os
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from publish_fixtures import batch_rows, make_batch, make_plan

from featurebank.errors import ConfigError

GROUP = "customer_card_spend"  # the example project's group whose table these tests publish into
D1, D3 = date(2024, 1, 1), date(2024, 1, 3)
MS_PER_DAY = 86_400_000


def _load(project_root: Path, retention: str):
    from featurebank.definitions import load_project

    conf = project_root / "conf" / "local.yaml"
    conf.write_text(conf.read_text().replace("retention: 30d", f"retention: {retention}"))
    return load_project(project_root, "local")


@pytest.fixture()
def session(spark):
    """The shared session, its retention defaults restored after the test."""
    from featurebank.io.spark import RETENTION_DEFAULTS

    saved = {k: spark.conf.get(k, None) for k in RETENTION_DEFAULTS}
    yield spark
    for key, value in saved.items():
        if value is None:
            spark.conf.unset(key)
        else:
            spark.conf.set(key, value)


def _publish(spark, project, day_from: date, day_to: date, spend: float) -> int:
    from featurebank.io.tables import publish

    plan = make_plan(project.table_path(GROUP), day_from, day_to, group=GROUP)
    return publish(spark, make_batch(spark, batch_rows(day_from, day_to, spend=spend)), plan,
                   f"run-{time.time_ns()}")


def _manifest(project, version: int):
    from featurebank.training.manifest import GroupRead, Manifest, PinnedGroup

    read = GroupRead(GROUP, "aggregation", ("customer_id",), None, project.table_path(GROUP),
                     (("spend_sum_7d", "spend_sum_7d"), ("txn_count_7d", "txn_count_7d")), ("txn_count_7d",))
    published = tuple(D1 + timedelta(days=i) for i in range(3))
    return Manifest.new(training_set="audit_v1", requested=("x",), features=(f"{GROUP}:spend_sum_7d",),
                        timestamp_column="ts", full_names=False, allow_missing=False, timezone="UTC", env="local",
                        groups=(PinnedGroup(read, version, "hash-1", published),))


def _spine() -> pd.DataFrame:
    stamps = [datetime(2024, 1, d, h, tzinfo=timezone.utc) for d in (1, 2, 3) for h in (6, 18)]
    return pd.DataFrame({"customer_id": [f"c{i % 3}" for i in range(6)], "ts": stamps, "label": range(6)})


def _build(spark, project, manifest_file: Path, out: Path) -> pd.DataFrame:
    from featurebank.training.api import FeatureStore

    FeatureStore(project, spark=spark).write_training_set(spine=_spine(), out=out, from_manifest=manifest_file)
    return pq.read_table(out).to_pandas().sort_values(["label"]).reset_index(drop=True)


def _age(spark, table: str, version: int, days: float) -> None:
    """Make commit `version` (its log entry and the files it added) look `days` older."""
    shift = int(days * MS_PER_DAY)
    log = Path(table) / "_delta_log" / f"{version:020d}.json"
    actions = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    for action in actions:
        for kind, field in (("commitInfo", "timestamp"), ("add", "modificationTime"), ("remove", "deletionTimestamp")):
            if kind in action and field in action[kind]:
                action[kind][field] -= shift
    log.write_text("".join(json.dumps(a) + "\n" for a in actions))
    for action in actions:
        if "add" in action:
            data = Path(table) / action["add"]["path"]
            os.utime(data, ns=(data.stat().st_mtime_ns - shift * 1_000_000,) * 2)
    os.utime(log, ns=(log.stat().st_mtime_ns - shift * 1_000_000,) * 2)
    log.with_suffix(".crc").unlink(missing_ok=True)  # Delta's checksum of the version
    (log.parent / f".{log.name}.crc").unlink(missing_ok=True)  # Hadoop's checksum of the file, now stale
    for checkpoint in log.parent.glob(f"{version:020d}.checkpoint*.parquet"):
        os.utime(checkpoint, ns=(checkpoint.stat().st_mtime_ns - shift * 1_000_000,) * 2)
    spark._jvm.org.apache.spark.sql.delta.DeltaLog.clearCache()


def _files_of_version(table: str, version: int) -> set[str]:
    """The data files of `version`, from the Delta log (delta-rs): Spark's time travel would do,
    but Delta 4 refuses it past `delta.deletedFileRetentionDuration`, which these tests age past."""
    from deltalake import DeltaTable

    return set(DeltaTable(table, version=version).get_add_actions(flatten=True).column("path").to_pylist())


# --- conf -------------------------------------------------------------------------------------

def test_retention_is_read_from_conf_in_days_and_defaults_to_ten_years(example_project):
    from featurebank.definitions import load_project

    assert _load(example_project, "90d").config.retention_days == 90
    assert load_project(Path(__file__).resolve().parent.parent, "prod").config.retention_days == 3650
    conf = example_project / "conf" / "local.yaml"
    conf.write_text("\n".join(line for line in conf.read_text().splitlines() if not line.startswith("retention")))
    assert load_project(example_project, "local").config.retention_days == 3650
    conf.write_text(conf.read_text() + "\nretention: 3 months\n")
    with pytest.raises(ConfigError, match=r"conf/local.yaml:\d+: 'retention' must be a number of days like 3650d"):
        load_project(example_project, "local")


# --- table properties -------------------------------------------------------------------------

def test_every_table_a_run_writes_gets_the_retention_and_existing_tables_are_raised_never_lowered(session, example_project):
    from featurebank.io.spark import get_spark
    from featurebank.io.retention import ensure_retention, table_properties
    from featurebank.io.runlog import RunRecord, append_run, runs_path

    project = _load(example_project, "400d")
    spark = get_spark(project.config)  # the shared session, given conf's retention
    _publish(spark, project, D1, D3, 10.0)
    now = datetime.now(timezone.utc)
    append_run(spark, project.config.feature_root, RunRecord("r1", GROUP, "local", D1, D3, "published", now, now, 9, 0,
                                                             "hash-1", "{}", "test"))
    for table in (project.table_path(GROUP), runs_path(project.config.feature_root)):
        properties = table_properties(spark, table)
        assert properties["delta.logRetentionDuration"] == "interval 400 days", table
        assert properties["delta.deletedFileRetentionDuration"] == "interval 400 days", table

    table = project.table_path(GROUP)
    for governed in (False, True):  # properties read from the log by delta-rs, or through Spark (Lake Formation)
        spark.sql(f"ALTER TABLE delta.`{table}` UNSET TBLPROPERTIES ('delta.logRetentionDuration')")
        assert ensure_retention(spark, table, 400, lake_formation=governed) == {
            "delta.logRetentionDuration": "interval 400 days"}
        assert ensure_retention(spark, table, 30, lake_formation=governed) == {}  # never lowered
    assert table_properties(spark, table)["delta.logRetentionDuration"] == "interval 400 days"
    version = _publish(spark, project, D1, D1, 11.0)  # publish keeps them, with no extra commit
    assert version == int(spark.sql(f"DESCRIBE HISTORY delta.`{table}` LIMIT 1").first()["version"])


# --- vacuum -----------------------------------------------------------------------------------

def test_vacuum_keeps_what_a_registered_manifest_needs_and_removes_what_only_older_versions_did(
        session, example_project, tmp_path, capsys):
    from featurebank.cli import main
    from featurebank.io.spark import get_spark
    from featurebank.training.manifest import write_manifest

    project = _load(example_project, "7d")
    spark = get_spark(project.config)
    table = project.table_path(GROUP)
    assert _publish(spark, project, D1, D3, 10.0) == 0
    assert _publish(spark, project, D1, D1, 20.0) == 1  # rerun D1
    assert _publish(spark, project, D1 + timedelta(days=1), D1 + timedelta(days=1), 30.0) == 2  # rerun D2
    recipe = Path(write_manifest(_manifest(project, 2), str(tmp_path / "recipe.json")))
    built = _build(spark, project, recipe, tmp_path / "audit")  # pins version 2 and registers it
    assert _publish(spark, project, D3, D3, 40.0) == 3  # rerun D3: version 2's D3 file is now a tombstone
    for version, days in ((0, 30), (1, 20), (2, 15), (3, 10)):
        _age(spark, table, version, days)
    only_v0 = _files_of_version(table, 0) - _files_of_version(table, 1)  # D1's first file
    needed = _files_of_version(table, 2)
    assert only_v0 and not only_v0 & needed

    common = ["--project", str(project.root)]
    assert main(["vacuum", *common, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"{GROUP}: would remove 1 file(s)" in out and "registered manifest" in out and "pins version 2" in out
    assert all((Path(table) / f).exists() for f in only_v0 | needed)  # a dry run removes nothing

    assert main(["vacuum", *common]) == 0
    out = capsys.readouterr().out
    assert f"{GROUP}: removed 1 file(s)" in out and next(iter(only_v0)) in out
    assert not any((Path(table) / f).exists() for f in only_v0)
    assert all((Path(table) / f).exists() for f in needed)
    rebuilt = _build(spark, project, tmp_path / "audit" / "_manifest.json", tmp_path / "again")
    pd.testing.assert_frame_equal(rebuilt, built)
    with pytest.raises(Exception):  # noqa: B017 - Spark's own error: version 0's file is gone
        spark.read.format("delta").option("versionAsOf", 0).load(table).collect()


def test_without_a_registered_manifest_vacuum_would_remove_a_file_an_old_version_needs(session, example_project):
    from featurebank.io.spark import get_spark
    from featurebank.retention import vacuum

    project = _load(example_project, "7d")
    spark = get_spark(project.config)
    table = project.table_path(GROUP)
    _publish(spark, project, D1, D3, 10.0)
    _publish(spark, project, D3, D3, 40.0)
    for version, days in ((0, 30), (1, 10)):
        _age(spark, table, version, days)
    would = {r.table: r for r in vacuum(spark, project, dry_run=True)}[GROUP]
    assert would.files and set(would.files) == _files_of_version(table, 0) - _files_of_version(table, 1)
    assert "conf retention 7d" in would.why or "deletedFileRetentionDuration" in would.why


# --- the 30-day log retention -----------------------------------------------------------------

def _log_cleanup_world(spark, project, tmp_path: Path, *, keep_properties: bool):
    from featurebank.training.manifest import write_manifest

    from featurebank.io.spark import RETENTION_DEFAULTS

    table = project.table_path(GROUP)
    if not keep_properties:  # a table as every table was before: Delta's defaults (30 days of log)
        for key in RETENTION_DEFAULTS:
            spark.conf.unset(key)
    _publish(spark, project, D1, D3, 10.0)
    recipe = Path(write_manifest(_manifest(project, 0), str(tmp_path / "recipe.json")))
    built = _build(spark, project, recipe, tmp_path / "audit")  # manifest at version 0
    for spend in (20.0, 30.0, 40.0):
        _publish(spark, project, D1, D3, spend)  # later runs restate every date
    latest = int(spark.sql(f"DESCRIBE HISTORY delta.`{table}` LIMIT 1").first()["version"])
    for version in range(latest + 1):
        _age(spark, table, version, 40)
    # A checkpoint on the next commit; Delta cleans up expired log entries right after one.
    spark.sql(f"ALTER TABLE delta.`{table}` SET TBLPROPERTIES ('delta.checkpointInterval' = '1')")
    _publish(spark, project, D1, D1, 50.0)
    spark._jvm.org.apache.spark.sql.delta.DeltaLog.clearCache()
    return table, built


def test_a_manifest_rebuilds_identically_after_the_log_is_40_days_old_and_checkpointed(session, example_project, tmp_path):
    from featurebank.io.spark import get_spark

    project = _load(example_project, "3650d")
    spark = get_spark(project.config)
    table, built = _log_cleanup_world(spark, project, tmp_path, keep_properties=True)
    assert list((Path(table) / "_delta_log").glob("*.checkpoint.parquet"))
    assert (Path(table) / "_delta_log" / f"{0:020d}.json").exists()
    rebuilt = _build(spark, project, tmp_path / "audit" / "_manifest.json", tmp_path / "again")
    pd.testing.assert_frame_equal(rebuilt, built)


def test_without_the_retention_properties_delta_log_cleanup_breaks_the_same_rebuild(session, example_project, tmp_path):
    from featurebank.io.spark import get_spark

    project = _load(example_project, "3650d")
    spark = get_spark(project.config)
    table, _ = _log_cleanup_world(spark, project, tmp_path, keep_properties=False)
    assert list((Path(table) / "_delta_log").glob("*.checkpoint.parquet"))
    assert "delta.logRetentionDuration" not in __import__("featurebank.io.retention").io.retention.table_properties(spark, table)
    assert not (Path(table) / "_delta_log" / f"{0:020d}.json").exists()  # Delta's 30-day default removed it
    with pytest.raises(Exception):  # noqa: B017 - Delta: version 0 can no longer be reconstructed
        _build(spark, project, tmp_path / "audit" / "_manifest.json", tmp_path / "again")
