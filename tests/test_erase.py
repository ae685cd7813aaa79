"""`featurebank erase` (issue 23) on a real published project: two customers erased, then looked
for everywhere under the feature root and in the registered training sets (every Parquet file on
disk read column by column, every other file grepped as bytes); everything else unchanged value
by value; a rebuild from the older manifest; a dry run that lists exactly what the run changes;
a kill -9 in the middle and a rerun that completes it; a principal conf does not list refused.

One module-scoped project: the tests run in file order (refusal, then kill + dry run + erase).
"""

from __future__ import annotations

import hashlib
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
from featurebank.runner import run_group
from featurebank.training.api import FeatureStore
from featurebank.training.manifest import registered_manifests
from featurebank_demo.datagen import DatagenParams, generate

REPO = Path(__file__).resolve().parent.parent
TINY = DatagenParams(customers=30, merchants=20, days=20, end_date=date(2024, 3, 20), seed=3)
RUN_DATES = (date(2024, 3, 18), date(2024, 3, 20))
KEYS = ("C0000023", "C0000027")  # no other key starts with either (30 customers)
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
    """A tiny published example: every group over RUN_DATES (row groups from the data's start),
    customer_card_spend twice on the last date (so older files hold the keys), a training set
    built and registered, a quarantined batch and a gate report naming the keys."""
    from pyspark.sql import functions as F

    root = tmp_path_factory.mktemp("erase") / "project"
    shutil.copytree(REPO / "features", root / "features")
    shutil.copytree(REPO / "conf", root / "conf")
    with open(root / "conf" / "local.yaml", "a") as conf:
        conf.write(CONF)
    generate(root / "warehouse" / "raw", TINY)
    project = load_project(root, "local")
    for name, group in sorted(project.groups.items()):
        start = RUN_DATES[0] if group.kind == "aggregation" else TINY.start_date
        run_group(project, name, start, RUN_DATES[1], spark=spark)
    run_group(project, "customer_card_spend", RUN_DATES[1], RUN_DATES[1], spark=spark)
    spine = (spark.read.parquet(str(root / "warehouse" / "raw" / "card_fraud_labels"))
             .where(F.col("ts") >= F.lit(RUN_DATES[0].isoformat()).cast("timestamp"))
             .where(F.col("ts") < F.lit((RUN_DATES[1] + timedelta(days=1)).isoformat()).cast("timestamp")))
    spine.write.parquet(str(root / "spine"))
    FeatureStore(project, spark=spark).write_training_set(
        "card_fraud_v1", spine=str(root / "spine"), out=str(root / "warehouse" / "training" / "card_fraud_v1"))
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
