"""Delta's DynamoDB log store on Glue (issue 19): `deploy glue` ships the jar Glue 5.1 lacks
through `--extra-jars`, and `doctor` checks the log store (table key schema, jar, settings).

Against a real moto server on 127.0.0.1 (tests/aws_fixtures.py). The real jar cannot be had on
this machine (notes/19-s3.md), so a small stand-in jar (a zip with a manifest) built here
takes its place: what is proven is where it is looked for, uploaded and referenced.
"""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest
import yaml

from aws_fixtures import (ARTIFACTS_BUCKET, REGION, aws, frozen_library, library_snapshot, moto_endpoint,  # noqa: F401
                          write_stand_in_jar)
from featurebank.cli import main
from featurebank.definitions import load_project
from featurebank.deploy import log_store_jar
from featurebank.deploy.doctor import Target, run_doctor
from featurebank.deploy.glue import desired_job
from featurebank.deploy.upload import ArtifactUris

REPO = Path(__file__).resolve().parent.parent
JAR_NAME = "delta-storage-s3-dynamodb-3.3.2.jar"  # Glue 5.1 runs Delta 3.3.2
JAR_KEY = f"artifacts/jars/{JAR_NAME}"
KMS_KEY = "arn:aws:kms:eu-west-1:123456789012:key/1f0c2b9e-7a3d-4c1e-9b8a-0d6e5f4a3b21"  # conf/prod.yaml's
LOG_TABLE = "featurebank-prod-delta-log"  # conf/prod.yaml's aws.delta_log_table
LOG_STORE = "Delta log store (concurrent writers on S3)"
JAR_CHECK = "Delta log store jar (Glue --extra-jars)"
DELTA_KEYS = [{"AttributeName": "tablePath", "KeyType": "HASH"}, {"AttributeName": "fileName", "KeyType": "RANGE"}]


@pytest.fixture(autouse=True)
def environment_cache(monkeypatch):
    monkeypatch.setenv("FEATUREBANK_CACHE_DIR", str(REPO / "test-artifacts" / "environments"))


def _client(service: str):
    return boto3.client(service, region_name=REGION)


def _edit_conf(project: Path, edit) -> None:
    path = project / "conf" / "prod.yaml"
    data = yaml.safe_load(path.read_text())
    edit(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def _deploy_glue(capsys, project: Path, *extra: str) -> tuple[int, str, str]:
    code = main(["deploy", "glue", "--env", "prod", "--project", str(project), "--skip-doctor", *extra])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


_REAL_SEARCH = log_store_jar.search_paths  # taken before the `aws` fixture points it at a stand-in


def _nowhere(monkeypatch, home: Path) -> None:
    """The real search, in an empty home: no jar in any cache."""
    monkeypatch.setattr(log_store_jar, "search_paths", lambda _home=None: _REAL_SEARCH(home))


# --- the careless user first: no jar, a wrong path, a file that is not a jar -----------------------

def test_deploy_glue_without_the_jar_anywhere_refuses_with_where_it_looked_and_changes_nothing(
        aws, example_project, tmp_path, monkeypatch, capsys):
    home = tmp_path / "empty-home"
    (home / ".ivy2" / "jars").mkdir(parents=True)
    _nowhere(monkeypatch, home)
    code, out, err = _deploy_glue(capsys, example_project)
    assert code == 2, out + err
    assert err.count("\n") == 1  # one sentence
    assert "deploy glue refused: aws.delta_log_table is set in conf/prod.yaml and AWS Glue 5.1 does not ship" in err
    assert f"no {JAR_NAME} was found (looked in {home}/.ivy2/jars/io.delta_{JAR_NAME}, " in err
    assert f"{home}/.m2/repository/io/delta/delta-storage-s3-dynamodb/3.3.2/{JAR_NAME}" in err
    assert "get io.delta:delta-storage-s3-dynamodb:3.3.2" in err and "aws.delta_log_store_jar" in err
    assert _client("glue").get_jobs()["Jobs"] == []
    assert _client("s3").list_objects_v2(Bucket=ARTIFACTS_BUCKET).get("KeyCount") == 0
    assert _client("dynamodb").list_tables()["TableNames"] == []


@pytest.mark.parametrize("given, what", [("jars/missing.jar", "which is not a file"),
                                          ("conf/prod.yaml", "which is not a jar (not a zip archive)")])
def test_a_conf_jar_path_that_is_missing_or_not_a_jar_is_one_sentence_and_exit_2(
        aws, example_project, capsys, given, what):
    _edit_conf(example_project, lambda d: d["aws"].update(delta_log_store_jar=given))
    code, _, err = _deploy_glue(capsys, example_project, "--dry-run")
    assert code == 2
    assert f"aws.delta_log_store_jar in conf/prod.yaml names {example_project / given}, {what}" in err
    assert err.count("\n") == 1


def test_the_jar_is_looked_for_in_ivy_then_maven_caches(tmp_path):
    home = tmp_path / "home"
    paths = log_store_jar.search_paths(home)
    assert paths == [home / ".ivy2" / "jars" / f"io.delta_{JAR_NAME}",
                     home / ".ivy2" / "cache" / "io.delta" / "delta-storage-s3-dynamodb" / "jars" / JAR_NAME,
                     home / ".m2" / "repository" / "io" / "delta" / "delta-storage-s3-dynamodb" / "3.3.2" / JAR_NAME]
    (home / ".ivy2.5.2").mkdir(parents=True)  # Spark 4's Ivy home is searched too
    assert home / ".ivy2.5.2" / "jars" / f"io.delta_{JAR_NAME}" in log_store_jar.search_paths(home)

    project = load_project(REPO, "prod")
    settings = project.config.require_aws()
    maven = write_stand_in_jar(paths[2])
    assert log_store_jar.find_jar(settings, REPO, home) == maven
    ivy = write_stand_in_jar(paths[1])
    assert log_store_jar.find_jar(settings, REPO, home) == ivy  # Ivy first
    paths[0].parent.mkdir(parents=True)
    paths[0].write_text("not a zip")  # a broken download is skipped, never shipped
    assert log_store_jar.find_jar(settings, REPO, home) == ivy


def test_only_an_environment_with_a_log_table_gets_extra_jars(example_project):
    uris = ArtifactUris("s3://a/w.whl", "s3://a/b.zip", (("glue_run_group", "s3://a/g.py"),))
    prod = load_project(example_project, "prod")
    group = sorted(prod.groups)[0]
    arguments = desired_job(prod, prod.config.require_aws(), uris, group)["DefaultArguments"]
    assert arguments["--extra-jars"] == f"s3://{ARTIFACTS_BUCKET}/{JAR_KEY}"
    _edit_conf(example_project, lambda d: d["aws"].pop("delta_log_table"))
    prod = load_project(example_project, "prod")
    assert "--extra-jars" not in desired_job(prod, prod.config.require_aws(), uris, group)["DefaultArguments"]
    settings = prod.config.require_aws()
    assert log_store_jar.jar_changes(settings, example_project, Path("/nonexistent")) == []  # nothing looked for


# --- the jar on S3 and in every job -----------------------------------------------------------------

def test_deploy_glue_uploads_the_conf_jar_sse_kms_and_every_job_names_it_and_a_second_deploy_changes_nothing(
        aws, example_project, capsys):
    jar = write_stand_in_jar(example_project / "jars" / "log-store.jar")
    _edit_conf(example_project, lambda d: d["aws"].update(delta_log_store_jar="jars/log-store.jar"))  # relative to the project
    code, out, err = _deploy_glue(capsys, example_project)
    assert code == 0, err
    assert f"create     s3 object s3://{ARTIFACTS_BUCKET}/{JAR_KEY}" in out.splitlines()
    s3 = _client("s3")
    head = s3.head_object(Bucket=ARTIFACTS_BUCKET, Key=JAR_KEY)
    assert (head["ServerSideEncryption"], head["SSEKMSKeyId"]) == ("aws:kms", KMS_KEY)
    assert s3.get_object(Bucket=ARTIFACTS_BUCKET, Key=JAR_KEY)["Body"].read() == jar.read_bytes()
    jobs = _client("glue").get_jobs()["Jobs"]
    assert len(jobs) == len(load_project(example_project, "prod").groups)
    assert {j["DefaultArguments"]["--extra-jars"] for j in jobs} == {f"s3://{ARTIFACTS_BUCKET}/{JAR_KEY}"}

    code, out, err = _deploy_glue(capsys, example_project)
    assert code == 0, err
    assert f"unchanged  s3 object s3://{ARTIFACTS_BUCKET}/{JAR_KEY}" in out.splitlines(), out
    assert "nothing to change" in out
    again = s3.head_object(Bucket=ARTIFACTS_BUCKET, Key=JAR_KEY)
    assert (again["ETag"], again["LastModified"]) == (head["ETag"], head["LastModified"])  # not re-uploaded
    listed = s3.list_objects_v2(Bucket=ARTIFACTS_BUCKET, Prefix="artifacts/jars/")
    assert [o["Key"] for o in listed["Contents"]] == [JAR_KEY]

    with jar.open("ab") as handle:  # another build of that jar: same key, new bytes, uploaded again
        handle.write(b"\0")
    code, out, _ = _deploy_glue(capsys, example_project)
    assert code == 0 and f"update     s3 object s3://{ARTIFACTS_BUCKET}/{JAR_KEY} (content)" in out.splitlines(), out
    assert s3.get_object(Bucket=ARTIFACTS_BUCKET, Key=JAR_KEY)["Body"].read() == jar.read_bytes()


# --- doctor: one sentence per failure ---------------------------------------------------------------

def _log_store_lines(project: Path, target: Target = Target(), deploying: bool = False) -> dict[str, object]:
    report = run_doctor(load_project(project, "prod"), target, deploying=deploying)
    return {c.name: c for c in report.checks if c.name.startswith("Delta log store")}


def _table(keys=DELTA_KEYS) -> None:
    names = sorted({k["AttributeName"] for k in keys})
    _client("dynamodb").create_table(TableName=LOG_TABLE, BillingMode="PAY_PER_REQUEST", KeySchema=keys,
                                     AttributeDefinitions=[{"AttributeName": n, "AttributeType": "S"} for n in names])


def _jar() -> None:
    _client("s3").put_object(Bucket=ARTIFACTS_BUCKET, Key=JAR_KEY, Body=b"PK")


def test_doctor_passes_the_log_store_when_table_and_jar_are_there(aws, example_project):
    _table()
    _jar()
    lines = _log_store_lines(example_project)
    assert lines[LOG_STORE].status == "pass" and lines[JAR_CHECK].status == "pass", lines
    assert f"table {LOG_TABLE} in {REGION} is ACTIVE with Delta's key schema" in lines[LOG_STORE].detail


def test_doctor_fails_a_missing_log_table_and_a_missing_jar_each_with_its_sentence(aws, example_project, capsys):
    code = main(["doctor", "--env", "prod", "--project", str(example_project)])
    out = capsys.readouterr().out
    assert code == 1
    assert f"✗ {LOG_STORE}: the DynamoDB table {LOG_TABLE} does not exist in {REGION}" in out
    assert (f"✗ {JAR_CHECK}: s3://{ARTIFACTS_BUCKET}/{JAR_KEY} does not exist: AWS Glue 5.1 does not ship Delta's "
            "DynamoDB log store, so every Glue run fails to load io.delta.storage.S3DynamoDBLogStore") in out
    assert "fix: `featurebank deploy glue --env prod` uploads it" in out and "io.delta:delta-storage-s3-dynamodb:3.3.2" in out
    # the deploy's own preflight: what this deploy creates is not a failure, and not passed either
    lines = _log_store_lines(example_project, deploying=True)
    assert lines[LOG_STORE].status == "unknown" and "this deploy creates it" in lines[LOG_STORE].detail
    assert lines[JAR_CHECK].status == "unknown" and "this deploy uploads it" in lines[JAR_CHECK].detail


def test_doctor_fails_a_log_table_with_another_key_schema(aws, example_project):
    _table([{"AttributeName": "id", "KeyType": "HASH"}])
    _jar()
    check = _log_store_lines(example_project, deploying=True)[LOG_STORE]  # a deploy would not fix it either
    assert check.status == "fail"
    assert check.detail == (f"the DynamoDB table {LOG_TABLE} in {REGION} has key schema id HASH, not the one Delta's log "
                            "store writes (tablePath HASH, fileName RANGE): every commit through it fails")
    assert "name a new table in aws.delta_log_table (conf/prod.yaml)" in check.fix


def test_doctor_fails_an_emr_conf_that_overrides_the_log_store_and_emr_needs_no_jar(aws, example_project):
    _table()
    _edit_conf(example_project, lambda d: d["aws"]["emr"].update(
        spark_conf={"spark.delta.logStore.s3a.impl": "org.apache.spark.sql.delta.storage.S3SingleDriverLogStore"}))
    lines = _log_store_lines(example_project, Target("emr"))
    assert JAR_CHECK not in lines  # EMR ships the jar in /usr/share/aws/delta/lib
    check = lines[LOG_STORE]
    assert check.status == "fail"
    assert check.detail.startswith(f"aws.delta_log_table is {LOG_TABLE} but the runs' Spark settings set "
                                   "spark.delta.logStore.s3a.impl=org.apache.spark.sql.delta.storage.S3SingleDriverLogStore")
    assert check.fix == "remove spark.delta.logStore.s3a.impl from aws.emr.spark_conf in conf/prod.yaml"
    lines = _log_store_lines(example_project, Target("glue"))  # Glue jobs do not take aws.emr.spark_conf
    assert lines[LOG_STORE].status == "pass" and lines[JAR_CHECK].status == "fail"


def test_doctor_without_a_log_table_says_unknown_not_passed(aws, example_project):
    _edit_conf(example_project, lambda d: d["aws"].pop("delta_log_table"))
    lines = _log_store_lines(example_project)
    assert list(lines) == [LOG_STORE] and lines[LOG_STORE].status == "unknown"
    assert "set aws.delta_log_table in conf/prod.yaml" in lines[LOG_STORE].fix
