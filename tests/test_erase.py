"""`featurebank erase` (issue 23) on a real published project: two customers erased, then looked
for everywhere under the feature root and in the registered training sets (every Parquet file on
disk read column by column, every other file grepped as bytes); everything else unchanged value
by value; a rebuild from the older manifest; a dry run that lists exactly what the run changes;
a kill -9 in the middle and a rerun that completes it; a principal conf does not list refused.

One module-scoped project: the tests run in file order (refusal, then kill + dry run + erase).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from featurebank.cli import main
from featurebank.definitions import load_project
from featurebank.erase import erase, prepare
from featurebank.faults import FAULT_ENV
from featurebank.io.tables import table_version
from featurebank.training.api import FeatureStore
from featurebank.training.manifest import registered_manifests
from featurebank_demo.datagen import DatagenParams
from featurebank_demo.demo import run_demo
from rich.console import Console

REPO = Path(__file__).resolve().parent.parent
TINY = DatagenParams(customers=30, merchants=20, days=20, end_date=date(2024, 3, 20), seed=3)
RUN_DAYS = 3
# No other key starts with either (30 customers); C0000030 is the largest key, so it is the
# maximum in the statistics of the files holding it, and of the checkpoints listing those.
KEYS = ("C0000023", "C0000030")
ERASER = "dpo@bank"
SALT = "test-salt-0123456789abcdef"
REASON = "LGPD-4711"
CONF = f"""
governance:
  erasers: [{ERASER}]
  erasure_salt: {SALT}
"""


@pytest.fixture(scope="module")
def project_dir(spark, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo project (`featurebank_demo.demo.run_demo`, its smallest data: every group
    published, card_fraud_v1 built and registered), then every table checkpointed at every
    commit (so a checkpoint names the keys before the erasure) and customer_card_spend compacted
    (older files hold the keys); a quarantined batch and a gate report naming the keys."""
    from pyspark.sql import functions as F

    from featurebank.io.erasure import log_checkpoints_holding

    root = tmp_path_factory.mktemp("erase") / "project"
    shutil.copytree(REPO / "features", root / "features")
    shutil.copytree(REPO / "conf", root / "conf")
    with open(root / "conf" / "local.yaml", "a") as conf:
        conf.write(CONF)
    demo = run_demo(root, params=TINY, run_days=RUN_DAYS, console=Console(file=io.StringIO()))
    project = load_project(root, "local")
    for name in project.groups:  # a commit each, so every table has a checkpoint (naming the keys)
        spark.sql(f"ALTER TABLE delta.`{project.table_path(name)}` "
                  "SET TBLPROPERTIES ('delta.checkpointInterval' = '1')")
    # Delta's compaction (rows unchanged, dataChange=false): every older file now holds keys only
    # older versions read, and the registered training set stays rebuildable
    spend = project.table_path("customer_card_spend")
    [partitions] = spark.sql(f"DESCRIBE DETAIL delta.`{spend}`").select("partitionColumns").first()
    (spark.read.format("delta").load(spend).repartition(2).write.format("delta").mode("overwrite")
     .option("dataChange", "false").partitionBy(*partitions).save(spend))
    assert log_checkpoints_holding(spend, KEYS)
    spine = (spark.read.parquet(str(root / "warehouse" / "raw" / "card_fraud_labels"))
             .where(F.col("ts") >= F.lit(demo.run_start.isoformat()).cast("timestamp"))
             .where(F.col("ts") < F.lit((demo.run_end + timedelta(days=1)).isoformat()).cast("timestamp")))
    spine.write.parquet(str(root / "spine"))  # the demo's spine, for the rebuild
    features = Path(project.config.feature_root)
    table = spark.read.format("delta").load(project.table_path("customer_card_spend"))
    table.where(F.col("customer_id").isin(KEYS[0], "C0000001")).write.parquet(
        str(features / "_quarantine" / "customer_card_spend" / "run-q"))
    report = features / "_reports" / "customer_card_spend" / "run-q" / "result.json"
    report.parent.mkdir(parents=True)
    report.write_text(json.dumps({"examples": [{"customer_id": KEYS[1], "spend_sum_90d": -1}]}))
    return root


def _files(root: Path) -> dict[str, str]:
    """Every file under `root` → a hash of its bytes."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _tables(spark, project) -> dict[str, pd.DataFrame]:  # noqa: ANN001
    found = {}
    for name in sorted(project.groups):
        frame = spark.read.format("delta").load(project.table_path(name)).toPandas()
        order = [c for c in frame.columns if c.endswith("_id") or c == "feature_date"]
        found[name] = frame.sort_values(order).reset_index(drop=True)
    return found


def _training(out: Path) -> pd.DataFrame:
    frame = pq.read_table(str(out)).to_pandas()
    return frame.sort_values(["txn_id"] if "txn_id" in frame else list(frame.columns)[:3]).reset_index(drop=True)


def _without(frame: pd.DataFrame) -> pd.DataFrame:
    if "customer_id" not in frame:
        return frame
    return frame[~frame.customer_id.isin(KEYS)].reset_index(drop=True)


def test_a_principal_conf_does_not_list_is_refused_and_nothing_is_touched(project_dir: Path, capsys) -> None:  # noqa: ANN001
    before = _files(project_dir / "warehouse")
    code = main(["erase", "--project", str(project_dir), "--entity", "customer", "--key", KEYS[0],
                 "--reason", REASON, "--as", "mallory"])
    assert code == 2
    assert "mallory may not erase data" in capsys.readouterr().err
    assert _files(project_dir / "warehouse") == before


def test_erase_two_customers_everywhere(spark, project_dir: Path) -> None:  # noqa: ANN001
    from pyspark.sql import functions as F

    project = load_project(project_dir, "local")
    out = project_dir / "warehouse" / "training" / "card_fraud_v1"
    tables_before, training_before = _tables(spark, project), _training(out)
    versions_before = {n: table_version(spark, project.table_path(n)) for n in project.groups}
    [(registry_entry, _)] = registered_manifests(project.config.feature_root)

    # kill -9 after the first table's DELETE commit, before its purge
    env = dict(os.environ, **{FAULT_ENV: "erase_purge", "FEATUREBANK_SPARK_MASTER": "local[1]",
                              "FEATUREBANK_USER": ERASER, "PYTHONPATH": f"{REPO / 'lib'}:{REPO / 'tools'}"})
    argv = [sys.executable, "-m", "featurebank", "erase", "--project", str(project_dir), "--entity", "customer",
            "--key", KEYS[0], "--key", KEYS[1], "--reason", REASON]
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == -9, proc.stderr[-2000:]
    for name in project.groups:  # every table is old or new: at most the one DELETE commit landed
        version = table_version(spark, project.table_path(name))
        assert version in (versions_before[name], versions_before[name] + 1)
        rows = spark.read.format("delta").load(project.table_path(name))
        if version == versions_before[name] + 1:
            assert rows.where(F.col("customer_id").isin(*KEYS)).count() == 0
        else:
            pd.testing.assert_frame_equal(_tables(spark, project)[name], tables_before[name])

    # a dry run changes nothing and lists what the real run (the rerun completing the kill) changes
    erasure = prepare(project, "customer", list(KEYS), REASON, ERASER)
    files_before = _files(project_dir / "warehouse")
    planned = erase(spark, project, erasure, dry_run=True)
    assert _files(project_dir / "warehouse") == files_before
    assert main(["erase", "--project", str(project_dir), "--entity", "customer", "--key", KEYS[0], "--key", KEYS[1],
                 "--reason", REASON, "--dry-run", "--as", ERASER]) == 0
    assert _files(project_dir / "warehouse") == files_before
    done = erase(spark, project, erasure)
    assert [(f.kind, f.where, f.rows, f.files) for f in done.findings] == \
           [(f.kind, f.where, f.rows, f.files) for f in planned.findings]
    kinds = {f.kind for f in done.findings}
    assert {"table", "quarantine", "report", "training set", "derived"} <= kinds, kinds
    assert any(f.kind == "table" and f.rows == 0 and f.files for f in done.findings)  # the killed run's purge, completed
    assert all(f.files for f in done.findings if f.kind == "table")
    # the checkpoints naming a key were replaced by a fresh one (their commits are all still there)
    dropped = [f for d in done.findings if d.kind == "table" for f in d.files if f.startswith("_delta_log/")]
    assert any(".checkpoint." in f for f in dropped), done.findings
    spend = Path(project.table_path("customer_card_spend")) / "_delta_log"
    last = json.loads((spend / "_last_checkpoint").read_text())["version"]
    assert last > max(int(Path(f).name.split(".")[0]) for f in dropped)
    assert not any((spend.parent / f).exists() for f in dropped)

    # neither key anywhere: every Parquet file read column by column, every other file as bytes
    roots = [Path(project.config.feature_root), out]
    for root in roots:
        for path in (p for p in root.rglob("*") if p.is_file()):
            if path.suffix == ".parquet":
                table = pq.read_table(str(path))
                for column in table.column_names:
                    values = table.column(column)
                    text = values.cast(pa.string()).to_pylist() if pa.types.is_string(values.type) or \
                        pa.types.is_large_string(values.type) else [json.dumps(v, default=str) for v in values.to_pylist()]
                    assert not any(k in str(v) for v in text for k in KEYS), (path, column)
            else:
                data = path.read_bytes()
                assert not any(k.encode() in data for k in KEYS), path

    # every other row unchanged, value by value; the erased rows gone
    tables_after = _tables(spark, project)
    for name, before in tables_before.items():
        pd.testing.assert_frame_equal(_without(before), _without(tables_after[name]))
    training_after = _training(out)
    pd.testing.assert_frame_equal(_without(training_before), training_after)
    assert len(training_after) < len(training_before)

    # the record holds salted hashes, not the keys; the manifest records the erasure
    [record] = [json.loads(p.read_text()) for p in (Path(project.config.feature_root) / "_erasures").glob("*.json")]
    assert (record["reason"], record["by"], record["entity"]) == (REASON, ERASER, "customer")
    assert record["key_hashes"] == list(erasure.key_hashes) and len(record["key_hashes"]) == 2
    [(_, manifest)] = registered_manifests(project.config.feature_root)
    [entry] = manifest.output["erasures"]
    assert entry["rows_removed"] == len(training_before) - len(training_after)
    assert manifest.output["rows"] == len(training_after)

    # a rebuild from the (older, now erasure-recording) manifest: the same rows but the erased ones
    rebuilt = FeatureStore(project, spark=spark).rebuild(registry_entry, spine=str(project_dir / "spine"))
    frame = rebuilt.frame.toPandas()
    frame = frame.sort_values(["txn_id"]).reset_index(drop=True)
    expected = _without(training_before)
    pd.testing.assert_frame_equal(_without(frame)[expected.columns], expected, check_dtype=False)

    # a second run finds nothing left to erase in tables, artifacts or training sets
    again = erase(spark, project, erasure, dry_run=True)
    assert {f.kind for f in again.findings} == {"derived"}


def test_conf_checks_the_erasers_and_the_salt(example_project: Path) -> None:
    from featurebank.errors import DefinitionError

    with open(example_project / "conf" / "local.yaml", "a") as conf:
        conf.write("governance:\n  erasers: dpo\n  erasure_salt: short\n")
    with pytest.raises(DefinitionError) as raised:
        load_project(example_project, "local")
    text = str(raised.value)
    assert "governance.erasers must be a list of principals" in text
    assert "governance.erasure_salt must be a secret of at least 16 characters" in text


def test_erase_without_a_salt_or_for_an_unknown_entity_is_refused(example_project: Path) -> None:
    from featurebank.errors import ConfigError, UsageError

    with open(example_project / "conf" / "local.yaml", "a") as conf:
        conf.write(f"governance:\n  erasers: [{ERASER}]\n")
    project = load_project(example_project, "local")
    with pytest.raises(ConfigError, match="erasure_salt is not set"):
        prepare(project, "customer", ["C1"], REASON, ERASER)
    project = load_project(example_project, "local")
    import dataclasses
    governance = dataclasses.replace(project.config.governance, erasure_salt=SALT)
    project = dataclasses.replace(project, config=dataclasses.replace(project.config, governance=governance))
    with pytest.raises(UsageError, match="--entity nobody is not an entity"):
        prepare(project, "nobody", ["C1"], REASON, ERASER)
    erasure = prepare(project, "customer", ["C1", " C1 ", "C2"], REASON, ERASER)
    assert erasure.keys == ("C1", "C2") and "C1" not in "".join(erasure.key_hashes)
    assert prepare(project, "customer", ["C2", "C1"], REASON, ERASER).id == erasure.id  # a rerun finds its commits


def test_a_table_with_deletion_vectors_is_refused_and_nothing_is_touched(spark, project_dir: Path, capsys) -> None:  # noqa: ANN001
    project = load_project(project_dir, "local")
    path = project.table_path("customer_profile")
    spark.sql(f"ALTER TABLE delta.`{path}` SET TBLPROPERTIES ('delta.enableDeletionVectors' = 'true')")
    before = _files(project_dir / "warehouse")
    code = main(["erase", "--project", str(project_dir), "--entity", "customer", "--key", "C0000002",
                 "--reason", REASON, "--as", ERASER])
    assert code == 2
    err = capsys.readouterr().err
    assert "table customer_profile" in err and "deletion vectors" in err and "APPLY (PURGE)" in err, err
    assert _files(project_dir / "warehouse") == before


def _log(tmp_path: Path, commits: range, checkpoints: dict[int, bytes]) -> Path:
    """A fake Delta log: JSON commits `commits`, checkpoint Parquet files whose one `add.stats`
    value is the given text (compressed, as a real checkpoint's pages are)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    log = tmp_path / "t" / "_delta_log"
    log.mkdir(parents=True)
    for version in commits:
        (log / f"{version:020d}.json").write_text("{}\n")
    for version, data in checkpoints.items():
        stats = pa.table({"add": [{"path": "part-0.parquet", "stats": data.decode()}]})
        pq.write_table(stats, log / f"{version:020d}.checkpoint.parquet", compression="zstd")
    return log.parent


def test_checkpoints_naming_a_key_are_deleted_only_while_their_commits_remain(tmp_path: Path) -> None:
    from featurebank.erase import Erasure, _stale_checkpoints
    from featurebank.errors import UsageError

    erasure = Erasure("id", "customer", "customer_id", ("C9",), ("h",), REASON, ERASER)
    # every commit there: both checkpoints naming the key can go, the clean one stays
    table = _log(tmp_path / "a", range(0, 25), {10: b"..C9..", 20: b"..C9..", 5: b"clean"})
    assert _stale_checkpoints("g", str(table), erasure) == (
        "_delta_log/00000000000000000010.checkpoint.parquet", "_delta_log/00000000000000000020.checkpoint.parquet")
    # commits 0..9 cleaned up, but checkpoint 20 is rebuildable from the clean checkpoint 15
    table = _log(tmp_path / "b", range(10, 25), {15: b"clean", 20: b"..C9.."})
    assert _stale_checkpoints("g", str(table), erasure) == ("_delta_log/00000000000000000020.checkpoint.parquet",)
    # checkpoint 10 stands in for commits 0..9, which are gone: refused, nothing touched
    table = _log(tmp_path / "c", range(10, 25), {10: b"..C9..", 20: b"clean"})
    with pytest.raises(UsageError, match="checkpoint 10 names a key") as raised:
        _stale_checkpoints("g", str(table), erasure)
    assert "nothing was touched" in str(raised.value)
    assert (table / "_delta_log" / "00000000000000000010.checkpoint.parquet").exists()
    # no checkpoint names the key: nothing to do
    assert _stale_checkpoints("g", str(_log(tmp_path / "d", range(0, 3), {2: b"clean"})), erasure) == ()


def test_a_manifest_is_repinned_only_across_commits_that_changed_no_rows(tmp_path: Path) -> None:
    from featurebank.io.erasure import changes_data_between

    log = tmp_path / "t" / "_delta_log"
    log.mkdir(parents=True)
    commits = {1: [{"metaData": {}}], 2: [{"add": {"path": "a", "dataChange": False}},
                                          {"remove": {"path": "b", "dataChange": False}}],
               3: [{"add": {"path": "c", "dataChange": True}}]}
    for version, actions in commits.items():
        (log / f"{version:020d}.json").write_text("\n".join(json.dumps(a) for a in actions) + "\n")
    table = str(log.parent)
    assert not changes_data_between(table, 0, 3)  # a property change and a compaction
    assert changes_data_between(table, 0, 4)  # commit 3 wrote rows
    assert changes_data_between(table, 3, 6)  # commits 4 and 5 are gone: counted as changes
    assert not changes_data_between(table, 5, 6)
