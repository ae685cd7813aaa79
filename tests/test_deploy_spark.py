"""The shipped artifacts really run: the packaged wheel + bundle through `spark-submit`
exactly as the EMR step runs them, and a run writing its Delta table to `s3a://` on a moto
server. Both are checked against a brute-force pandas computation of the same features.

Each Spark run here is its own `spark-submit`/`featurebank` process (one JVM each, one core),
because the shared test session has no hadoop-aws and no `--py-files` wheel.
"""

from __future__ import annotations

import importlib.util
import subprocess
from datetime import date, datetime, timedelta

import pandas as pd
import pytest

from aws_fixtures import aws, frozen_library, library_snapshot, moto_endpoint  # noqa: F401  (fixtures)
from featurebank.definitions.config import AwsSettings, S3Uri
from featurebank.deploy.emr import step_args
from featurebank.deploy.package import build_artifacts
from featurebank.deploy.upload import ArtifactUris
from spark_submit import BIN, DELTA_PACKAGE
from spark_submit import subprocess_env as _subprocess_env

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("featurebank.runner") is None or importlib.util.find_spec("featurebank.commands.runs") is None,
    reason="needs featurebank.runner and the `run` command (helper H3), not in the tree yet",
)

START, END = date(2024, 3, 1), date(2024, 3, 4)
GROUP = "account_activity"
CONF = """\
feature_root: "${env:FB_E2E_FEATURE_ROOT}"
variables: {raw_root: "${env:FB_E2E_RAW_ROOT}"}
timezone: UTC
catalog: {type: none}
spark:
  conf:
    spark.sql.shuffle.partitions: "2"
"""
S3_CONF = """\
feature_root: s3a://featurebank-e2e/features
variables: {raw_root: "${env:FB_E2E_RAW_ROOT}"}
timezone: UTC
catalog: {type: none}
spark:
  conf:
    spark.sql.shuffle.partitions: "2"
    spark.hadoop.fs.s3a.endpoint: "${env:AWS_ENDPOINT_URL}"
    spark.hadoop.fs.s3a.endpoint.region: eu-west-1
    spark.hadoop.fs.s3a.path.style.access: "true"
    spark.hadoop.fs.s3a.connection.ssl.enabled: "false"
    spark.hadoop.fs.s3a.aws.credentials.provider: com.amazonaws.auth.EnvironmentVariableCredentialsProvider
    spark.hadoop.fs.s3a.change.detection.mode: none
"""


def _transactions() -> pd.DataFrame:
    """~40 card events on 3 accounts in the 5 weeks before START, incl. midnight edges."""
    rows = []
    statuses = ["SETTLED", "SETTLED", "DECLINED", "CHARGEBACK", "SETTLED"]
    for i in range(40):
        account = f"a{i % 3}"
        ts = datetime(2024, 1, 28) + timedelta(hours=17 * i + (i % 5))
        rows.append({
            "txn_id": f"t{i}", "customer_id": f"c{i % 3}", "account_id": account, "merchant_id": f"m{i % 4}",
            "mcc": "5411", "amount": float(10 + (i * 7) % 50), "currency": "EUR", "channel": "pos",
            "status": statuses[i % 5], "event_ts": ts,
        })
    rows.append({**rows[0], "txn_id": "edge", "event_ts": datetime(2024, 3, 2, 0, 0), "status": "DECLINED"})
    return pd.DataFrame(rows)


def _oracle(events: pd.DataFrame) -> pd.DataFrame:
    """account_activity by brute force: per snapshot date D, events in [D - N days, D)."""
    kept = events[events["status"].isin(["SETTLED", "DECLINED"])]
    out = []
    day = START
    while day <= END:
        d = pd.Timestamp(day)
        for account, group in kept.groupby("account_id"):
            in30 = group[(group.event_ts >= d - pd.Timedelta(days=30)) & (group.event_ts < d)]
            in7 = group[(group.event_ts >= d - pd.Timedelta(days=7)) & (group.event_ts < d)]
            if in30.empty:
                continue
            settled = in30[in30.status == "SETTLED"]["amount"]
            out.append({
                "account_id": account,
                "feature_date": day,
                "account_spend_30d": settled.sum() if len(settled) else None,
                "account_declines_7d": float((in7.status == "DECLINED").sum()) if len(in7) else None,
                "account_declines_30d": float((in30.status == "DECLINED").sum()),
            })
        day += timedelta(days=1)
    return pd.DataFrame(out)


def _table(path: str, storage_options: dict[str, str] | None = None) -> pd.DataFrame:
    from deltalake import DeltaTable

    frame = DeltaTable(path, storage_options=storage_options).to_pandas()
    frame["feature_date"] = pd.to_datetime(frame["feature_date"]).dt.date
    return frame.sort_values(["account_id", "feature_date"]).reset_index(drop=True)


def _features(frame: pd.DataFrame) -> pd.DataFrame:
    columns = ["account_id", "feature_date", "account_spend_30d", "account_declines_7d", "account_declines_30d"]
    frame = frame[columns].copy()
    for column in columns[2:]:
        frame[column] = frame[column].astype("float64")
    return frame.sort_values(["account_id", "feature_date"]).reset_index(drop=True)


@pytest.fixture()
def e2e_project(example_project, tmp_path, monkeypatch):
    raw = tmp_path / "raw"
    (raw / "card_transactions").mkdir(parents=True)
    events = _transactions()
    events.to_parquet(raw / "card_transactions" / "part-0.parquet", index=False)
    (example_project / "conf" / "e2e.yaml").write_text(CONF)
    (example_project / "conf" / "s3.yaml").write_text(S3_CONF)
    monkeypatch.setenv("FB_E2E_RAW_ROOT", str(raw))
    return example_project, events


def test_packaged_wheel_and_bundle_run_through_spark_submit_as_the_emr_step_does(e2e_project, tmp_path, monkeypatch):
    project, events = e2e_project
    dist = build_artifacts(project, tmp_path / "dist")
    settings = AwsSettings(env="e2e", conf_file="conf/e2e.yaml", region="eu-west-1", artifacts=S3Uri("unused", "unused"))
    local = ArtifactUris(wheel=str(dist.wheel), bundle=str(dist.bundle), scripts=tuple((n, str(p)) for n, p in dist.scripts),
                         environment="s3://unused/env-0.tar.gz")
    args = step_args(settings, local, GROUP)
    assert args[:3] == ["spark-submit", "--deploy-mode", "cluster"]
    # The environment archive (spark.archives, PYSPARK_PYTHON) is what tests/test_cluster.py
    # proves on a cluster; here the venv's Python stands in for it, the rest is the step's command.
    archive_conf = {i for i, a in enumerate(args) if a.startswith(("spark.archives=", "spark.executorEnv.PYSPARK_PYTHON=",
                                                                   "spark.yarn.appMasterEnv.PYSPARK_PYTHON="))}
    assert len(archive_conf) == 3, args
    args = [a for i, a in enumerate(args) if i not in archive_conf and i + 1 not in archive_conf]
    # The EMR step's command, with the cluster swapped for one local core; Delta's jars are
    # what the EMR cluster provides, here resolved from the Ivy cache.
    command = [str(BIN / "spark-submit"), "--master", "local[1]", "--deploy-mode", "client",
               "--packages", DELTA_PACKAGE, "--conf", "spark.ui.enabled=false", *args[3:],
               "--start", START.isoformat(), "--end", END.isoformat()]
    submitted_root = tmp_path / "submitted"
    result = subprocess.run(command, env=_subprocess_env(FB_E2E_FEATURE_ROOT=str(submitted_root)),
                            capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]

    cli_root = tmp_path / "cli"
    result = subprocess.run(
        [str(BIN / "featurebank"), "run", GROUP, "--project", str(project), "--env", "e2e",
         "--start", START.isoformat(), "--end", END.isoformat()],
        env=_subprocess_env(FB_E2E_FEATURE_ROOT=str(cli_root)), capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]

    submitted = _table(str(submitted_root / GROUP))
    direct = _table(str(cli_root / GROUP))
    pd.testing.assert_frame_equal(submitted, direct)
    pd.testing.assert_frame_equal(_features(submitted), _features(_oracle(events)), check_dtype=False)


def test_a_run_publishes_its_delta_table_to_s3a_on_the_local_endpoint(e2e_project, aws):
    import boto3

    project, events = e2e_project
    boto3.client("s3", region_name="eu-west-1").create_bucket(
        Bucket="featurebank-e2e", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
    )
    result = subprocess.run(
        [str(BIN / "featurebank"), "run", GROUP, "--project", str(project), "--env", "s3",
         "--start", START.isoformat(), "--end", END.isoformat()],
        env=_subprocess_env(), capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]

    keys = [o["Key"] for o in boto3.client("s3", region_name="eu-west-1").list_objects_v2(
        Bucket="featurebank-e2e", Prefix=f"features/{GROUP}/_delta_log/")["Contents"]]
    assert any(k.endswith("00000000000000000000.json") for k in keys)
    options = {
        "AWS_ENDPOINT_URL": aws, "AWS_ALLOW_HTTP": "true", "AWS_REGION": "eu-west-1",
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_S3_ALLOW_UNSAFE_RENAME": "true",
    }
    published = _table(f"s3://featurebank-e2e/features/{GROUP}", options)
    pd.testing.assert_frame_equal(_features(published), _features(_oracle(events)), check_dtype=False)
