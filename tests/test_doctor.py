"""`featurebank doctor` against a real moto endpoint, and AWS failures as sentences
(missing credentials, an endpoint that does not answer, a missing bucket, an access denied)."""

from __future__ import annotations

import http.server
import json
import socket
import threading

import boto3
import pytest
import yaml

from aws_fixtures import ARTIFACTS_BUCKET, REGION, aws, frozen_library, library_snapshot, moto_endpoint  # noqa: F401  (fixtures)
from featurebank.cli import main
from featurebank.definitions import load_project
from featurebank.deploy.iam import policy_document
from featurebank.io import files

RAW_BUCKET = "acme-raw-prod-123456789012"
ROLE = "featurebank-prod-job"


def _client(service: str):
    return boto3.client(service, region_name=REGION)


def _edit_conf(project, edit) -> None:
    path = project / "conf" / "prod.yaml"
    data = yaml.safe_load(path.read_text())
    edit(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def _healthy(project, *, lake_formation_actions: bool = True) -> None:
    """The prod account as a run needs it: buckets, data, a KMS key, the job role, the log store."""
    s3 = _client("s3")
    s3.create_bucket(Bucket=RAW_BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_object(Bucket=RAW_BUCKET, Key="cards/transactions/part-0.parquet", Body=b"x")
    key = _client("kms").create_key()["KeyMetadata"]["Arn"]
    _client("s3").put_object(Bucket=ARTIFACTS_BUCKET, Key="artifacts/jars/delta-storage-s3-dynamodb-3.3.2.jar", Body=b"PK")
    _client("dynamodb").create_table(
        TableName="featurebank-prod-delta-log", BillingMode="PAY_PER_REQUEST",  # conf's aws.delta_log_table
        AttributeDefinitions=[{"AttributeName": "tablePath", "AttributeType": "S"}, {"AttributeName": "fileName", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "tablePath", "KeyType": "HASH"}, {"AttributeName": "fileName", "KeyType": "RANGE"}])

    def edit(data):
        data["aws"]["kms_key_arn"] = key
        data["spark"]["conf"].update({
            "spark.delta.logStore.s3.impl": "io.delta.storage.S3DynamoDBLogStore",
            "spark.delta.logStore.s3a.impl": "io.delta.storage.S3DynamoDBLogStore",
            "spark.io.delta.storage.S3DynamoDBLogStore.ddb.tableName": "delta_log",
            "spark.io.delta.storage.S3DynamoDBLogStore.ddb.region": REGION,
        })

    _edit_conf(project, edit)
    document = policy_document(load_project(project, "prod"), load_project(project, "prod").config.require_aws())
    if not lake_formation_actions:  # a role made before iam-policy listed Lake Formation's action
        document["Statement"] = [s for s in document["Statement"] if s.get("Sid") != "LakeFormationDataAccess"]
    assert any(s.get("Sid") == "LakeFormationDataAccess" for s in policy_document(
        load_project(project, "prod"), load_project(project, "prod").config.require_aws())["Statement"])
    iam = _client("iam")
    iam.create_role(RoleName=ROLE, AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}))
    iam.put_role_policy(RoleName=ROLE, PolicyName="featurebank", PolicyDocument=json.dumps(document))


def _doctor(capsys, project, *extra: str) -> tuple[int, str, str]:
    code = main(["doctor", "--env", "prod", "--project", str(project), *extra])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_a_healthy_account_passes_every_check(aws, example_project, capsys):
    _healthy(example_project)
    code, out, err = _doctor(capsys, example_project)
    assert code == 0, out + err
    assert "✗" not in out and "?" not in out.replace("(target", "")
    assert "✓ Glue version 5.1" in out and "Spark 3.5.6, Delta 3.3.2, Python 3.11, Java 17" in out
    assert f"✓ S3 feature root s3://{ARTIFACTS_BUCKET}/feature-layer: exists and is writable" in out
    assert "✓ Job role policy" in out and "Lake Formation's GetDataAccess" in out
    assert "✓ Delta log store" in out and "✓ Regions: every resource read is in eu-west-1" in out
    assert _client("s3").list_objects_v2(Bucket=ARTIFACTS_BUCKET, Prefix="feature-layer/_featurebank_doctor").get("KeyCount") == 0
    code, out, _ = _doctor(capsys, example_project, "--json")
    report = json.loads(out)
    assert code == 0 and report["ok"] and {c["status"] for c in report["checks"]} == {"pass"}


def test_doctor_catches_a_missing_bucket_with_its_sentence_and_deploy_refuses(aws, example_project, capsys):
    _healthy(example_project)
    _client("s3").delete_object(Bucket=RAW_BUCKET, Key="cards/transactions/part-0.parquet")
    _client("s3").delete_bucket(Bucket=RAW_BUCKET)
    code, out, _ = _doctor(capsys, example_project)
    assert code == 1
    assert f"✗ S3 raw sources s3://{RAW_BUCKET}/cards: the bucket {RAW_BUCKET} does not exist" in out
    assert "    fix: create it in eu-west-1, or correct variables.raw_root" in out
    code = main(["deploy", "glue", "--env", "prod", "--project", str(example_project)])
    err = capsys.readouterr().err
    assert code == 1 and "deploy glue refused: 1 doctor check(s) failed (S3 raw sources" in err
    assert _client("glue").get_jobs()["Jobs"] == []  # nothing changed
    assert main(["deploy", "glue", "--env", "prod", "--project", str(example_project), "--skip-doctor"]) == 0


def test_doctor_catches_a_policy_without_lake_formation_actions(aws, example_project, capsys):
    _healthy(example_project, lake_formation_actions=False)
    code, out, _ = _doctor(capsys, example_project)
    assert code == 1
    assert f"✗ Job role policy: arn:aws:iam::123456789012:role/{ROLE} does not allow lakeformation:GetDataAccess on *" in out
    assert "governance.lake_formation is true, so also allow lakeformation:GetDataAccess on *" in out


def test_doctor_catches_a_glue_version_with_another_spark_major(aws, example_project, capsys):
    _healthy(example_project)
    group = sorted(load_project(example_project, "prod").groups)[0]
    _client("glue").create_job(Name=f"featurebank-prod-{group}", Role=f"arn:aws:iam::123456789012:role/{ROLE}",
                               Command={"Name": "glueetl", "ScriptLocation": "s3://x/y.py"}, GlueVersion="6.0")
    code, out, _ = _doctor(capsys, example_project)
    assert code == 1
    assert (f"✗ Glue version 6.0 (featurebank-prod-{group}): another Spark major: AWS Glue 6.0 runs Spark 4.1.1, "
            "featurebank is tested with Spark 3.5.x") in out
    assert "Python 3.13" in out and "fix: deploy sets Glue 5.1" in out


def test_doctor_says_unknown_not_passed_for_what_it_cannot_check(aws, example_project, capsys):
    _client("s3").create_bucket(Bucket=RAW_BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    _edit_conf(example_project, lambda d: d["aws"].pop("delta_log_table"))  # no log store named anywhere
    code, out, _ = _doctor(capsys, example_project)
    assert "? Delta log store (concurrent writers on S3): conf sets no spark.delta.logStore" in out
    assert f"? S3 raw sources s3://{RAW_BUCKET}/cards: the bucket exists but nothing is under the prefix yet" in out
    assert "✗ KMS key" in out and "does not exist" in out  # conf's key is not in this account
    assert code == 1


def test_doctor_on_emr_reads_the_clusters_release(aws, example_project, capsys):
    cluster = _client("emr").run_job_flow(
        Name="f", ReleaseLabel="emr-7.0.0", JobFlowRole="EMR_EC2_DefaultRole", ServiceRole="EMR_DefaultRole",
        Instances={"InstanceCount": 1, "KeepJobFlowAliveWhenNoSteps": True, "MasterInstanceType": "m5.xlarge"})["JobFlowId"]
    code, out, _ = _doctor(capsys, example_project, "--target", "emr", "--cluster-id", cluster)
    assert f"✗ EMR release emr-7.0.0 (cluster {cluster}): Amazon EMR 7.0.0 offers Python 3.9" in out and code == 1


# --- sentences, not exception names ---------------------------------------------------------------

def _closed_port() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_no_credentials_is_a_sentence_and_exit_3(aws, example_project, monkeypatch, tmp_path, capsys):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    code, _, err = _doctor(capsys, example_project)
    assert code == 3 and "NoCredentialsError" not in err
    assert "failed: no usable AWS credentials were found" in err and "aws sso login" in err
    code = main(["deploy", "glue", "--env", "prod", "--project", str(example_project), "--skip-doctor"])
    err = capsys.readouterr().err
    assert code == 3 and "no usable AWS credentials were found" in err and "Traceback" not in err


def test_an_endpoint_that_does_not_answer_is_a_sentence_and_exit_3(aws, example_project, monkeypatch, capsys):
    url = _closed_port()
    monkeypatch.setenv("AWS_ENDPOINT_URL", url)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    code, _, err = _doctor(capsys, example_project)
    assert code == 3 and f"{url}" in err and "does not answer (EndpointConnectionError)" in err
    assert f"AWS_ENDPOINT_URL={url} is set" in err


def test_uploading_to_a_missing_bucket_is_a_sentence_not_s3_upload_failed_error(aws, example_project, tmp_path, capsys):
    source = tmp_path / "a.txt"
    source.write_text("x")
    with pytest.raises(OSError) as caught:
        files.upload(source, "s3://no-such-bucket-fb/a.txt")
    assert "uploading to s3://no-such-bucket-fb/a.txt failed: the S3 bucket" in str(caught.value)
    assert "does not exist" in str(caught.value) and "S3UploadFailedError" not in str(caught.value)
    _edit_conf(example_project, lambda d: d["aws"].update(artifacts="s3://no-such-bucket-fb/artifacts"))
    code = main(["deploy", "glue", "--env", "prod", "--project", str(example_project), "--skip-doctor"])
    err = capsys.readouterr().err
    assert code == 3 and "the S3 bucket" in err and "does not exist" in err and "S3UploadFailedError" not in err


class _Deny(http.server.BaseHTTPRequestHandler):
    """An endpoint that answers every call as AWS does when a policy denies it."""

    def _answer(self) -> None:
        body = b"<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>"
        self.send_response(403)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _answer

    def log_message(self, *args) -> None:
        pass


def test_an_access_denied_is_a_sentence_naming_what_to_do(aws, monkeypatch):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Deny)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{server.server_address[1]}")
        with pytest.raises(PermissionError) as caught:
            files.write_bytes(f"s3://{ARTIFACTS_BUCKET}/x.txt", b"x")
    finally:
        server.shutdown()
    message = str(caught.value)
    assert message.startswith(f"writing s3://{ARTIFACTS_BUCKET}/x.txt failed: AWS denied it to the identity in use (AccessDenied")
    assert "featurebank iam-policy --env E" in message
