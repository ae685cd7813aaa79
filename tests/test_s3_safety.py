"""Issue 19, part C: safe concurrent writers on S3, SSE-KMS on every write, readers outside Spark.

Against a real moto server on 127.0.0.1 (tests/aws_fixtures.py), never in-process mocks:
- the DynamoDB table of Delta's S3DynamoDBLogStore is created by `deploy` and a second deploy
  changes nothing; conf wires the log store for both `s3://` and `s3a://`; the job role may
  use the table (notes/19-s3.md says why the concurrency proof itself is not made here);
- every object featurebank writes under the feature root and the artifacts prefix is SSE-KMS
  with conf's key, read back with HeadObject;
- the Glue table Athena reads, field by field, after a publish and after an added column.
"""

from __future__ import annotations

from types import SimpleNamespace

import subprocess

import boto3
import pandas as pd
import pytest

from aws_fixtures import ARTIFACTS_BUCKET, REGION, aws, frozen_library, library_snapshot, moto_endpoint  # noqa: F401  (fixtures)
from featurebank.cli import main
from featurebank.definitions import load_project
from featurebank.io import files
from featurebank.io.spark import LOG_STORE_CLASS, s3_write_conf, session_conf

KMS_KEY = "arn:aws:kms:eu-west-1:123456789012:key/1f0c2b9e-7a3d-4c1e-9b8a-0d6e5f4a3b21"  # conf/prod.yaml
LOG_TABLE = "featurebank-prod-delta-log"


def _cli(capsys, *argv: str) -> tuple[int, str, str]:
    if argv[:1] == ("deploy",):  # these tests pin what a deploy makes; its preflight is test_doctor.py's
        argv = (*argv, "--skip-doctor")
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# --- safe concurrent writers: conf, table, IAM -------------------------------------------------------

def test_prod_conf_wires_the_dynamodb_log_store_for_s3_and_s3a_and_sse_kms_for_both_connectors(example_project):
    config = load_project(example_project, "prod").config
    assert config.aws is not None and config.aws.delta_log_table == LOG_TABLE
    for platform in ("glue", "emr", "local"):
        conf = session_conf(config, platform)
        assert conf["spark.delta.logStore.s3.impl"] == LOG_STORE_CLASS == "io.delta.storage.S3DynamoDBLogStore"
        assert conf["spark.delta.logStore.s3a.impl"] == LOG_STORE_CLASS
        assert conf["spark.io.delta.storage.S3DynamoDBLogStore.ddb.tableName"] == LOG_TABLE
        assert conf["spark.io.delta.storage.S3DynamoDBLogStore.ddb.region"] == REGION
        assert conf["spark.hadoop.fs.s3a.encryption.algorithm"] == "SSE-KMS"
        assert conf["spark.hadoop.fs.s3a.encryption.key"] == KMS_KEY
        assert conf["spark.hadoop.fs.s3.enableServerSideEncryption"] == "true"
        assert conf["spark.hadoop.fs.s3.serverSideEncryption.kms.keyId"] == KMS_KEY


def test_an_environment_without_a_key_or_log_table_gets_no_such_settings(example_project):
    dev = load_project(example_project, "dev").config
    assert s3_write_conf(dev.aws) == {} and s3_write_conf(None) == {}


def test_a_malformed_log_table_name_is_a_conf_problem_at_its_line(example_project, capsys):
    conf = example_project / "conf" / "prod.yaml"
    conf.write_text(conf.read_text().replace(f"delta_log_table: {LOG_TABLE}", "delta_log_table: 'no spaces/here'"))
    code, _, err = _cli(capsys, "validate", "--project", str(example_project), "--env", "prod")
    assert code == 2
    assert "conf/prod.yaml:" in err and "aws.delta_log_table: 'no spaces/here' is not a DynamoDB table name" in err


def test_deploy_creates_the_log_store_table_as_delta_documents_it_and_a_second_deploy_changes_nothing(
        aws, example_project, capsys):
    code, out, err = _cli(capsys, "deploy", "glue", "--env", "prod", "--project", str(example_project))
    assert code == 0, err
    assert f"create dynamodb table {LOG_TABLE}" in out or f"dynamodb table {LOG_TABLE}" in out
    ddb = boto3.client("dynamodb", region_name=REGION)
    table = ddb.describe_table(TableName=LOG_TABLE)["Table"]
    assert table["KeySchema"] == [{"AttributeName": "tablePath", "KeyType": "HASH"},
                                  {"AttributeName": "fileName", "KeyType": "RANGE"}]
    assert sorted((a["AttributeName"], a["AttributeType"]) for a in table["AttributeDefinitions"]) == [
        ("fileName", "S"), ("tablePath", "S")]
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    ttl = ddb.describe_time_to_live(TableName=LOG_TABLE)["TimeToLiveDescription"]
    assert ttl["TimeToLiveStatus"] == "ENABLED" and ttl["AttributeName"] == "expireTime"

    code, out, err = _cli(capsys, "deploy", "glue", "--env", "prod", "--project", str(example_project))
    assert code == 0, err
    lines = [line for line in out.splitlines() if "dynamodb table" in line]
    assert lines and all("unchanged" in line for line in lines), out
    assert not [line for line in out.splitlines() if line.lstrip().startswith(("create", "+", "update", "~"))], out


def test_the_job_role_may_use_the_log_store_table_and_the_key(example_project, capsys):
    import json

    code, out, _ = _cli(capsys, "iam-policy", "--env", "prod", "--project", str(example_project))
    assert code == 0
    statements = {s["Sid"]: s for s in json.loads(out)["Statement"]}
    store = statements["DeltaLogStore"]
    assert store["Resource"] == [f"arn:aws:dynamodb:{REGION}:123456789012:table/{LOG_TABLE}"]
    assert {"dynamodb:PutItem", "dynamodb:GetItem", "dynamodb:Query", "dynamodb:DescribeTable"} <= set(store["Action"])
    assert statements["KmsForDataAndArtifacts"]["Resource"] == [KMS_KEY]
    assert {"kms:GenerateDataKey", "kms:Decrypt"} <= set(statements["KmsForDataAndArtifacts"]["Action"])


def test_glue_and_emr_jobs_carry_the_encryption_and_log_store_settings(example_project):
    from featurebank.deploy.emr import LOG_STORE_JAR, spark_conf
    from featurebank.deploy.glue import desired_job
    from featurebank.deploy.upload import ArtifactUris

    project = load_project(example_project, "prod")
    settings = project.config.require_aws()
    uris = ArtifactUris("s3://a/w.whl", "s3://a/b.zip", (("glue_run_group", "s3://a/g.py"),))
    glue_conf = desired_job(project, settings, uris, sorted(project.groups)[0])["DefaultArguments"]["--conf"]
    for key, value in s3_write_conf(settings).items():
        assert f"{key}={value}" in glue_conf
    for serverless in (False, True):
        conf = spark_conf(settings, serverless=serverless)
        assert conf["spark.hadoop.fs.s3.serverSideEncryption.kms.keyId"] == KMS_KEY
        assert LOG_STORE_JAR in conf["spark.jars"].split(",")


# --- encryption everywhere -----------------------------------------------------------------------------

def _unencrypted(bucket: str, prefix: str, key: str) -> list[str]:
    """Every object under `prefix` that is not SSE-KMS under `key` (HeadObject, one by one)."""
    s3 = boto3.client("s3", region_name=REGION)
    bad, listed = [], 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            listed += 1
            head = s3.head_object(Bucket=bucket, Key=item["Key"])
            if head.get("ServerSideEncryption") != "aws:kms" or head.get("SSEKMSKeyId") != key:
                bad.append(f"{item['Key']}: {head.get('ServerSideEncryption')} {head.get('SSEKMSKeyId')}")
    assert listed, f"nothing under s3://{bucket}/{prefix}"
    return bad


def test_deploy_uploads_every_artifact_sse_kms_with_the_conf_key(aws, example_project, capsys):
    code, _, err = _cli(capsys, "deploy", "glue", "--env", "prod", "--project", str(example_project))
    assert code == 0, err
    assert _unencrypted(ARTIFACTS_BUCKET, "artifacts/", KMS_KEY) == []


def test_files_written_beside_spark_use_the_process_key(aws):
    try:
        files.use_kms_key(KMS_KEY)
        files.write_text(f"s3://{ARTIFACTS_BUCKET}/feature-layer/_reports/g/result.json", "{}")
        files.write_bytes(f"s3a://{ARTIFACTS_BUCKET}/feature-layer/training/ts/part-0.parquet", b"x")
        assert _unencrypted(ARTIFACTS_BUCKET, "feature-layer/", KMS_KEY) == []
    finally:
        files.use_kms_key(None)


# --- readers outside Spark: the Glue table Athena reads -------------------------------------------

def _storage_options(endpoint: str) -> dict[str, str]:
    return {"AWS_ENDPOINT_URL": endpoint, "AWS_ALLOW_HTTP": "true", "AWS_REGION": REGION,
            "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_S3_ALLOW_UNSAFE_RENAME": "true"}


def test_a_published_table_is_registered_as_athena_reads_delta_and_follows_an_added_column(aws):
    from deltalake import write_deltalake

    from featurebank.io.metadata import table_schema
    from featurebank.io.table_metadata import GLUE_PARAMETERS, sync_glue_table

    boto3.client("glue", region_name=REGION).create_database(DatabaseInput={"Name": "features"})
    path = f"s3a://{ARTIFACTS_BUCKET}/feature-layer/card_activity"
    delta_uri = f"s3://{ARTIFACTS_BUCKET}/feature-layer/card_activity"
    plan = SimpleNamespace(group="card_activity", table_path=path, description="Card spend features.")
    first = pd.DataFrame({"card_id": ["c1"], "feature_date": [pd.Timestamp("2024-03-01").date()],
                          "spend_30d": [12.5], "txn_count_7d": pd.array([3], dtype="int64")})
    write_deltalake(delta_uri, first, partition_by=["feature_date"], storage_options=_storage_options(aws))

    assert sync_glue_table(plan, "features", region=REGION) == "create"  # type: ignore[arg-type]
    assert sync_glue_table(plan, "features", region=REGION) == "unchanged"  # type: ignore[arg-type]
    table = boto3.client("glue", region_name=REGION).get_table(DatabaseName="features", Name="card_activity")["Table"]
    # What Athena needs (io/table_metadata.py quotes AWS's list): the Glue table exists, is
    # EXTERNAL_TABLE, table_type=DELTA, its location is the table root as s3:// (never s3a://).
    assert table["Name"] == "card_activity" and table["DatabaseName"] == "features"
    assert table["TableType"] == "EXTERNAL_TABLE"
    assert table["Parameters"]["table_type"] == "DELTA"
    assert table["Parameters"] == GLUE_PARAMETERS
    assert table["Parameters"]["spark.sql.sources.provider"] == "delta"
    assert table["StorageDescriptor"]["Location"] == delta_uri
    assert table["StorageDescriptor"]["SerdeInfo"]["SerializationLibrary"].endswith("ParquetHiveSerDe")
    assert [(c["Name"], c["Type"]) for c in table["StorageDescriptor"]["Columns"]] == [
        ("card_id", "string"), ("feature_date", "date"), ("spend_30d", "double"), ("txn_count_7d", "bigint")]
    assert not table.get("PartitionKeys")  # Athena takes partitions from the Delta log
    assert table["Description"] == "Card spend features."

    second = first.assign(feature_date=[pd.Timestamp("2024-03-02").date()], decline_rate=[0.25])
    write_deltalake(delta_uri, second, mode="append", schema_mode="merge", partition_by=["feature_date"],
                    storage_options=_storage_options(aws))
    assert sync_glue_table(plan, "features", region=REGION) == "update"  # type: ignore[arg-type]
    table = boto3.client("glue", region_name=REGION).get_table(DatabaseName="features", Name="card_activity")["Table"]
    columns = [(c["Name"], c["Type"]) for c in table["StorageDescriptor"]["Columns"]]
    assert columns == [(c.name, c.type) for c in table_schema(path) or ()]  # the Delta log's order
    assert sorted(columns) == [("card_id", "string"), ("decline_rate", "double"), ("feature_date", "date"),
                               ("spend_30d", "double"), ("txn_count_7d", "bigint")]
    assert table["Parameters"]["table_type"] == "DELTA" and table["StorageDescriptor"]["Location"] == delta_uri


def test_glue_refusing_the_entry_is_a_sentence_naming_the_table(aws):
    from featurebank.errors import RuntimeFailure
    from featurebank.io.metadata import TableColumn
    from featurebank.io.table_metadata import sync_glue_table

    plan = SimpleNamespace(group="g", table_path=f"s3://{ARTIFACTS_BUCKET}/feature-layer/g", description=None)
    with pytest.raises(RuntimeFailure, match=r"refused to register nowhere\.g .*check that the database exists"):
        sync_glue_table(plan, "nowhere", region=REGION, columns=(TableColumn("a", "string", True),))  # type: ignore[arg-type]




# --- a real run through s3a:// on the local endpoint: every object it writes is SSE-KMS ------------------
#
# The AWS SDK v1 under S3A refuses to send SSE-KMS parameters over plain HTTP ("HTTPS must be
# used when sending customer encryption keys"), as AWS itself only takes them over TLS; so this
# run talks to a moto server on HTTPS with a certificate made here, trusted by the driver JVM
# (a trust store) and by botocore (AWS_CA_BUNDLE).

@pytest.fixture()
def moto_https(aws, tmp_path_factory, monkeypatch):
    """A second moto server (with the same fixes) on HTTPS, its certificate trusted by boto3 and
    by a Java trust store; yields (endpoint, trust store path)."""
    import socket
    import sys
    import time
    import urllib.request

    import aws_fixtures

    folder = tmp_path_factory.mktemp("tls")
    # A test CA and a server certificate it signs (rustls, which delta-rs uses, refuses a
    # self-signed CA certificate as the server's own); every client trusts the CA.
    ca, ca_key, cert, key, store = (folder / n for n in ("ca.pem", "ca.key", "cert.pem", "key.pem", "trust.jks"))
    (folder / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n")
    for command in (
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=featurebank test CA",
         "-keyout", str(ca_key), "-out", str(ca)],
        ["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", str(key),
         "-out", str(folder / "cert.csr")],
        ["openssl", "x509", "-req", "-in", str(folder / "cert.csr"), "-CA", str(ca), "-CAkey", str(ca_key),
         "-CAcreateserial", "-days", "2", "-extfile", str(folder / "ext.cnf"), "-out", str(cert)],
        ["keytool", "-importcert", "-noprompt", "-alias", "moto-ca", "-file", str(ca), "-keystore", str(store),
         "-storepass", "changeit"],
    ):
        subprocess.run(command, check=True, capture_output=True)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen([sys.executable, aws_fixtures.__file__, "-H", "127.0.0.1", "-p", str(port), "-s",
                                "-c", str(cert), "-k", str(key)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"https://127.0.0.1:{port}"
    import ssl

    context = ssl.create_default_context(cafile=str(ca))
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1, context=context)
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail("the HTTPS moto server did not start")
            time.sleep(0.2)
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("AWS_CA_BUNDLE", str(ca))
    monkeypatch.setenv("SSL_CERT_FILE", str(ca))  # delta-rs reads the run log and tables over TLS too
    yield endpoint, store
    process.terminate()
    process.wait(timeout=10)


def test_a_run_through_s3a_writes_every_object_sse_kms_with_the_conf_key(moto_https, example_project, tmp_path):
    """Tables, `_runs`, reports and profiles: Spark's writes through S3A's SSE-KMS settings,
    featurebank's own through io/files.py with the same key (one `featurebank run` process)."""
    from spark_submit import BIN, subprocess_env
    from test_deploy_spark import END, GROUP, S3_CONF, START, _transactions

    endpoint, store = moto_https
    raw = tmp_path / "raw" / "card_transactions"
    raw.mkdir(parents=True)
    _transactions().to_parquet(raw / "part-0.parquet", index=False)
    conf = S3_CONF.replace('spark.hadoop.fs.s3a.connection.ssl.enabled: "false"', 'spark.hadoop.fs.s3a.connection.ssl.enabled: "true"')
    conf = conf.replace("spark:\n  conf:\n", "spark:\n  conf:\n    spark.driver.extraJavaOptions: "
                        f'"-Duser.timezone=UTC -Djavax.net.ssl.trustStore={store} -Djavax.net.ssl.trustStorePassword=changeit"\n')
    conf += f"aws:\n  region: {REGION}\n  artifacts: s3://{ARTIFACTS_BUCKET}/artifacts\n  kms_key_arn: {KMS_KEY}\n"
    (example_project / "conf" / "s3.yaml").write_text(conf)
    boto3.client("s3", region_name=REGION).create_bucket(
        Bucket="featurebank-e2e", CreateBucketConfiguration={"LocationConstraint": REGION})
    result = subprocess.run(
        [str(BIN / "featurebank"), "run", GROUP, "--project", str(example_project), "--env", "s3",
         "--start", START.isoformat(), "--end", END.isoformat()],
        env=subprocess_env(FB_E2E_RAW_ROOT=str(tmp_path / "raw")), capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    keys = [o["Key"] for o in boto3.client("s3", region_name=REGION).list_objects_v2(
        Bucket="featurebank-e2e", Prefix="features/")["Contents"]]
    assert any(k.startswith(f"features/{GROUP}/_delta_log/") for k in keys)
    assert any(k.startswith(f"features/{GROUP}/") and k.endswith(".parquet") for k in keys)
    assert any(k.startswith("features/_runs/") for k in keys)
    assert _unencrypted("featurebank-e2e", "features/", KMS_KEY) == []
