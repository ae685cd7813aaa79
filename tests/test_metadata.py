"""io.metadata and the JVM-free run-log reader: what delta-rs reads from tables the real
Spark + Delta writer made is what Spark reads (locally and on a moto S3 server)."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import boto3
import pyarrow as pa
import pytest
from deltalake import DeltaTable
from publish_fixtures import batch_rows, make_batch, make_plan

from aws_fixtures import REGION, aws, moto_endpoint  # noqa: F401 - fixtures
from featurebank.errors import UsageError
from featurebank.io import metadata
from featurebank.io.runlog import RunRecord, append_run, read_runs, read_runs_direct, runs_path
from featurebank.io.tables import publish, table_version
from featurebank.io.retention import ensure_retention, table_properties

D1 = date(2024, 3, 1)
BUCKET = "bank-feature-layer"


def _record(run_id: str, status: str, start: date, end: date, group: str = "spend", version=None) -> RunRecord:
    now = datetime.now(timezone.utc)
    return RunRecord(run_id, group, "local", start, end, status, now, now + timedelta(seconds=3), 4, version, "h",
                     '{"checks": []}', "me", None, '{"2024-03-01": 2}')  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def world(spark, tmp_path_factory):
    """A feature root as runs leave it: a group table published twice (the second run adds a
    column), with retention properties, a table property and a column comment set by Spark;
    and a run log holding a published run, a run killed after its commit, one killed before
    any commit, and a failure."""
    root = str(tmp_path_factory.mktemp("metadata") / "features")
    plan = make_plan(f"{root}/spend", D1, D1 + timedelta(days=1))
    append_run(spark, root, _record("r0", "started", plan.start, plan.end))
    publish(spark, make_batch(spark, batch_rows(plan.start, plan.end)), plan, "r0", rows=6)
    append_run(spark, root, _record("r0", "published", plan.start, plan.end, version=0))
    later = replace(plan, start=D1 + timedelta(days=2), end=D1 + timedelta(days=2))
    wider = make_batch(spark, batch_rows(later.start, later.end)).selectExpr("*", "1.5 AS spend_avg_7d")
    append_run(spark, root, _record("r1-killed-after-commit", "started", later.start, later.end))
    publish(spark, wider, later, "r1-killed-after-commit", rows=3, rows_by_date={later.start: 3})
    append_run(spark, root, _record("r2-killed-before-commit", "started", D1 + timedelta(days=5), D1 + timedelta(days=5)))
    append_run(spark, root, _record("r3-failed", "failed", D1, D1, group="other"))
    ensure_retention(spark, plan.table_path, 40, lake_formation=False)
    spark.sql(f"ALTER TABLE delta.`{plan.table_path}` SET TBLPROPERTIES ('featurebank.owner' = 'team cards')")
    spark.sql(f"ALTER TABLE delta.`{plan.table_path}` ALTER COLUMN spend_sum_7d COMMENT 'spend over 7 days'")
    return root, plan.table_path


def test_version_properties_and_schema_match_what_spark_reads(spark, world):
    _, table = world
    assert metadata.table_version(table) == table_version(spark, table) == 4
    assert metadata.table_properties(table) == table_properties(spark, table)
    assert metadata.table_properties(table)["delta.logRetentionDuration"] == "interval 40 days"
    schema = spark.read.format("delta").load(table).schema
    assert [(c.name, c.type, c.nullable, c.comment) for c in metadata.table_schema(table)] == [
        (f.name, f.dataType.simpleString(), f.nullable, f.metadata.get("comment", "")) for f in schema.fields]
    assert metadata.table_schema(table)[3].comment == "spend over 7 days"


def test_the_writer_uses_no_table_feature_delta_rs_cannot_read(world):
    from deltalake import DeltaTable

    _, table = world
    protocol = DeltaTable(table).protocol()
    assert (protocol.min_reader_version, protocol.reader_features) == (1, None)


def test_no_table_is_none(tmp_path):
    (tmp_path / "plain").mkdir()
    for location in (str(tmp_path / "nothing"), str(tmp_path / "plain")):
        assert metadata.table_version(location) is None
        assert metadata.table_properties(location) is None
        assert metadata.table_schema(location) is None
        assert metadata.table_history(location) == []
    assert read_runs_direct(str(tmp_path)) == []


def test_the_direct_run_log_reader_gives_the_spark_readers_records(spark, world):
    root, _ = world
    direct, through_spark = read_runs_direct(root), read_runs(spark, root)
    assert [r.run_id for r in direct] == [r.run_id for r in through_spark]
    # A repaired run's end is its commit's time: Spark reports the log file's modification time.
    assert [replace(r, finished_at=None) for r in direct] == [replace(r, finished_at=None) for r in through_spark]
    for a, b in zip(direct, through_spark):
        assert abs(a.finished_at - b.finished_at) < timedelta(seconds=5)
        assert a.started_at.tzinfo is timezone.utc and a.finished_at.tzinfo is timezone.utc
    by_id = {r.run_id: r for r in direct}
    assert (by_id["r1-killed-after-commit"].status, by_id["r1-killed-after-commit"].repaired,
            by_id["r1-killed-after-commit"].delta_version) == ("published", True, 1)
    assert by_id["r2-killed-before-commit"].status == "incomplete"
    assert [r.run_id for r in read_runs_direct(root, "other")] == ["r3-failed"]


def test_a_partition_reads_with_its_key_filter_as_spark_reads_it(spark, world):
    _, table = world
    on_d1 = spark.read.format("delta").load(table).where(f"feature_date = '{D1}'")
    row = metadata.read_partition(table, "feature_date", D1, {"customer_id": "c1"})
    assert row.to_pylist() == [r.asDict() | {"feature_ts": r.feature_ts.astimezone(timezone.utc)}
                               for r in on_d1.where("customer_id = 'c1'").collect()]
    assert row.schema.equals(pa.schema(DeltaTable(table).schema().to_arrow()), check_metadata=True)  # Spark's types, comments
    assert metadata.read_partition(table, "feature_date", D1, {"customer_id": "c'1\" OR 1=1"}).num_rows == 0
    assert metadata.read_partition(table, "feature_date", D1 - timedelta(days=1), {}).num_rows == 0
    assert metadata.read_partition(table, "feature_date", D1, {}).num_rows == on_d1.count() == 3


def test_a_command_that_exits_right_after_a_read_exits_cleanly(spark, world, tmp_path):
    """`history` and `plan` died at exit with SIGABRT ("terminate called without an active
    exception") one time in eighty: delta-rs's `to_pyarrow_table` leaves Arrow I/O threads that
    call back into Python during the interpreter's shutdown. A process that reads a fresh
    two-run log and exits died one time in three with that reader; twenty in a row exit 0 now."""
    _, table = world
    root = str(tmp_path / "features")
    append_run(spark, root, _record("r0", "started", D1, D1))
    append_run(spark, root, _record("r0", "published", D1, D1, version=0))
    script = ("import sys; from datetime import date\n"
              "from featurebank.io import metadata\n"
              "from featurebank.io.runlog import read_runs_direct\n"
              "row = metadata.read_partition(sys.argv[2], 'feature_date', date.fromisoformat(sys.argv[3]), {'customer_id': 'c2'})\n"
              "print(len(read_runs_direct(sys.argv[1])), row.num_rows)\n")

    def once(_: int) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-c", script, root, table, str(D1)], capture_output=True, text=True,
                              timeout=120, env={**os.environ, "PYTHONPATH": str(Path(metadata.__file__).parents[2])})

    with ThreadPoolExecutor(2) as pool:
        done = list(pool.map(once, range(20)))
    assert [(d.returncode, d.stdout, d.stderr) for d in done] == [(0, "1 1\n", "")] * 20


def test_an_older_run_log_without_new_columns_reads_directly(spark, tmp_path):
    now = datetime.now(timezone.utc)
    old_ddl = ("run_id STRING NOT NULL, group STRING NOT NULL, env STRING, start_date DATE, end_date DATE, "
               "status STRING NOT NULL, started_at TIMESTAMP, finished_at TIMESTAMP, rows_written BIGINT, "
               "delta_version BIGINT, definition_hash STRING, checks_summary STRING, user STRING, error STRING")
    spark.createDataFrame([("old", "g", "local", D1, D1, "published", now, now, 3, 0, "h", "", "me", None)],
                          old_ddl).write.format("delta").save(runs_path(str(tmp_path)))
    assert read_runs_direct(str(tmp_path)) == read_runs(spark, str(tmp_path))


def test_lake_formation_tables_are_refused_with_a_sentence(world):
    root, table = world
    with pytest.raises(UsageError, match=f"{table} is governed by Lake Formation.*through the catalog"):
        metadata.table_properties(table, lake_formation=True)
    with pytest.raises(UsageError, match="Lake Formation"):
        read_runs_direct(root, lake_formation=True)


def test_without_deltalake_the_error_says_how_to_install_it(world, monkeypatch):
    _, table = world
    monkeypatch.setitem(sys.modules, "deltalake", None)
    with pytest.raises(UsageError, match=r"needs the deltalake package: install featurebank with its dependencies"):
        metadata.table_version(table)


def test_s3_tables_are_read_with_botocores_credentials(spark, world, aws):  # noqa: F811 - the fixture
    """The Spark-written tables copied to a moto bucket read the same over s3:// and s3a://."""
    root, table = world
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    for path in Path(root).rglob("*"):
        if path.is_file():
            s3.upload_file(str(path), BUCKET, "features/" + path.relative_to(root).as_posix())
    remote = f"s3a://{BUCKET}/features"
    assert metadata.table_version(f"{remote}/spend") == 4
    assert metadata.table_properties(f"s3://{BUCKET}/features/spend") == metadata.table_properties(table)
    assert metadata.table_schema(f"{remote}/spend") == metadata.table_schema(table)
    assert metadata.table_version(f"{remote}/nothing") is None
    local = read_runs_direct(root)
    assert [replace(r, finished_at=None) for r in read_runs_direct(remote)] == [replace(r, finished_at=None) for r in local]


def test_s3_storage_options_come_from_the_chain(aws, monkeypatch):  # noqa: F811 - the fixture
    monkeypatch.setenv("AWS_SESSION_TOKEN", "token-1")
    options = metadata.storage_options("s3a://bucket/features")
    assert options == {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "token-1",
                       "AWS_REGION": REGION, "AWS_ENDPOINT_URL": aws, "AWS_ALLOW_HTTP": "true"}
    assert metadata.storage_options("/local/features") == {}
