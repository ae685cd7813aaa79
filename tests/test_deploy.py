"""Deploys against a real local AWS endpoint: a moto server on 127.0.0.1 (no mocks in-process).

Every test deploys through the CLI (`featurebank.cli.main`), then reads back through boto3
what the endpoint now holds: Glue jobs with their exact arguments, uploaded artifacts, EMR
steps, EMR Serverless job runs, the state machine and the schedule.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import boto3
import pytest
import yaml

from aws_fixtures import (ARTIFACTS_BUCKET, REGION, aws, frozen_library, library_snapshot, moto_endpoint,  # noqa: F401  (fixtures)
                          write_stand_in_jar)
from featurebank.cli import main
from featurebank.definitions import load_project
from featurebank.deploy.package import build_artifacts
from featurebank.compile.order import run_order
from featurebank.deploy.emr import LOG_STORE_JAR

ARTIFACTS_PREFIX = "artifacts"
REPO = Path(__file__).resolve().parent.parent
# the cluster's Python (deploy/environment.py) is downloaded once into the tests' cache, not ~/.cache
ENVIRONMENT_CACHE = REPO / "test-artifacts" / "environments"
DELTA_CONF = (
    "spark.sql.catalog.spark_catalog=org.apache.spark.sql.delta.catalog.DeltaCatalog"
    " --conf spark.sql.extensions=io.delta.sql.DeltaSparkSessionExtension"
)
# conf/prod.yaml's SSE-KMS key and Delta log-store table (issue 19): settings every job carries.
PROD_KMS_KEY = "arn:aws:kms:eu-west-1:123456789012:key/1f0c2b9e-7a3d-4c1e-9b8a-0d6e5f4a3b21"
S3_WRITE_CONF = {
    "spark.delta.logStore.s3.impl": "io.delta.storage.S3DynamoDBLogStore",
    "spark.delta.logStore.s3a.impl": "io.delta.storage.S3DynamoDBLogStore",
    "spark.hadoop.fs.s3.enableServerSideEncryption": "true",
    "spark.hadoop.fs.s3.serverSideEncryption.kms.keyId": PROD_KMS_KEY,
    "spark.hadoop.fs.s3a.encryption.algorithm": "SSE-KMS",
    "spark.hadoop.fs.s3a.encryption.key": PROD_KMS_KEY,
    "spark.io.delta.storage.S3DynamoDBLogStore.ddb.region": "eu-west-1",
    "spark.io.delta.storage.S3DynamoDBLogStore.ddb.tableName": "featurebank-prod-delta-log",
}


def _with_s3_write(conf: str, **extra: str) -> str:
    """`conf` (Glue's one `--conf` value) with S3_WRITE_CONF (and `extra`) merged in, sorted as the deploy sorts."""
    pairs = dict(item.split("=", 1) for item in conf.split(" --conf "))
    return " --conf ".join(f"{k}={v}" for k, v in sorted({**pairs, **S3_WRITE_CONF, **extra}.items()))


GLUE_CATALOG_CONF = (
    "spark.hadoop.hive.metastore.client.factory.class="
    "com.amazonaws.glue.catalog.metastore.AWSGlueDataCatalogHiveClientFactory"
)


@pytest.fixture(autouse=True)
def environment_cache(monkeypatch):
    monkeypatch.setenv("FEATUREBANK_CACHE_DIR", str(ENVIRONMENT_CACHE))


def _glue_artifacts(project: Path, out: Path):
    """What `deploy glue` uploads: the artifacts and the requirement wheels Glue installs."""
    return build_artifacts(project, out, python="wheels")


def _client(service: str):
    return boto3.client(service, region_name=REGION)


def _cli(capsys, *argv: str) -> tuple[int, str, str]:
    if argv[:1] == ("deploy",) and "--skip-doctor" not in argv:
        # These tests pin what a deploy changes; its preflight (doctor) is tested in test_doctor.py.
        argv = (*argv, "--skip-doctor")
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _objects() -> dict[str, dict]:
    listing = _client("s3").list_objects_v2(Bucket=ARTIFACTS_BUCKET, Prefix=ARTIFACTS_PREFIX + "/")
    return {o["Key"]: o for o in listing.get("Contents", [])}


def _edit_conf(project: Path, env: str, edit) -> None:
    path = project / "conf" / f"{env}.yaml"
    data = yaml.safe_load(path.read_text())
    edit(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


# --- package --------------------------------------------------------------------------------


def test_package_is_reproducible_and_named_by_content(example_project, tmp_path):
    first = build_artifacts(example_project, tmp_path / "a")
    second = build_artifacts(example_project, tmp_path / "b")
    assert [p.name for p in first.files()] == [p.name for p in second.files()]
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(first.files(), second.files()))
    assert re.fullmatch(r"featurebank-0\.1\.0\+[0-9a-f]{12}-py3-none-any\.whl", first.wheel.name)
    assert re.fullmatch(r"featurebank-project-[0-9a-f]{12}\.zip", first.bundle.name)
    assert [name for name, _ in first.scripts] == ["run_group", "training_set", "glue_run_group"]

    with zipfile.ZipFile(first.bundle) as bundle:
        names = bundle.namelist()
        assert names == sorted(names)
        assert "features/cards/customer_card_spend.yaml" in names and "conf/prod.yaml" in names
        assert {info.date_time for info in bundle.infolist()} == {(1980, 1, 1, 0, 0, 0)}

    profile = example_project / "features" / "customers" / "profile.yaml"
    profile.write_text(profile.read_text().replace("Marketing segment", "Marketing segment (v2)"))
    changed = build_artifacts(example_project, tmp_path / "c")
    assert changed.bundle.name != first.bundle.name
    assert changed.wheel.name == first.wheel.name  # the library did not change


def test_wheel_installs_with_pip_and_leaves_spark_to_the_platform(example_project, tmp_path):
    artifacts = build_artifacts(example_project, tmp_path / "dist")
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", "--target", str(target), str(artifacts.wheel)],
        check=True,
    )
    assert (target / "featurebank" / "deploy" / "package.py").is_file()
    (dist_info,) = target.glob("featurebank-*.dist-info")
    metadata = (dist_info / "METADATA").read_text()
    version = artifacts.wheel.name.split("-")[1]
    assert f"Version: {version}" in metadata
    requires = [line.split(": ", 1)[1] for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    assert any(r.startswith("pyyaml") for r in requires) and any(r.startswith("sqlglot") for r in requires)
    assert not any(r.startswith(("pyspark", "delta-spark")) for r in requires)
    out = subprocess.run(
        [sys.executable, "-c", "import featurebank.deploy.entry, featurebank; print(featurebank.__file__)"],
        env={**os.environ, "PYTHONPATH": str(target)}, cwd=tmp_path, capture_output=True, text=True, check=True,
    ).stdout
    assert out.strip().startswith(str(target))


def test_jobs_run_from_the_wheel_zipped_on_the_path_as_spark_submit_py_files_puts_it(example_project, tmp_path):
    artifacts = build_artifacts(example_project, tmp_path / "dist")
    code = (
        "import sys, featurebank; from featurebank.deploy import entry; "
        f"assert featurebank.__file__.startswith({str(artifacts.wheel)!r}), featurebank.__file__; "
        f"code = entry.main(['validate', '--project', {str(example_project)!r}, '--env', 'prod']); "
        "import featurebank.cli; "
        f"assert not featurebank.cli.__file__.startswith({str(artifacts.wheel)!r}), featurebank.cli.__file__; "
        "sys.exit(code)"
    )
    result = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(artifacts.wheel)},
                            cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok: ")


def test_a_project_anywhere_with_only_features_and_conf_deploys_from_an_installed_featurebank(aws, example_project, tmp_path):
    assert sorted(p.name for p in example_project.iterdir()) == ["conf", "features"]
    artifacts = build_artifacts(example_project, tmp_path / "dist")
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", "--target", str(site),
                    str(artifacts.wheel)], check=True)
    # No repository checkout on the path: the library and its entry scripts come from the install.
    home = tmp_path / "home"  # the log-store jar where Spark's --packages leaves it (a stand-in)
    write_stand_in_jar(home / ".ivy2" / "jars" / "io.delta_delta-storage-s3-dynamodb-3.3.2.jar")
    result = subprocess.run([sys.executable, "-m", "featurebank", "deploy", "glue", "--env", "prod", "--skip-doctor",
                             "--project", str(example_project)],
                            env={**os.environ, "PYTHONPATH": str(site), "HOME": str(home)}, cwd=tmp_path,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    job = _client("glue").get_job(JobName="featurebank-prod-merchant_risk")["Job"]
    bucket, _, key = job["Command"]["ScriptLocation"].removeprefix("s3://").partition("/")
    shipped = _client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    assert shipped == (site / "featurebank" / "deploy" / "jobs" / "glue_run_group.py").read_bytes()
    assert shipped == artifacts.script("glue_run_group").read_bytes()


def test_package_command_validates_then_writes_artifacts(example_project, tmp_path, capsys):
    code, out, _ = _cli(capsys, "package", "--project", str(example_project), "--out", str(tmp_path / "dist"))
    assert code == 0
    listed = [Path(line).name for line in out.splitlines()]
    assert sorted(listed) == sorted(p.name for p in (tmp_path / "dist").iterdir())
    (example_project / "features" / "broken.yaml").write_text("kind: feature_group\nname: Bad Name\n")
    code, _, err = _cli(capsys, "package", "--project", str(example_project), "--out", str(tmp_path / "dist2"))
    assert code == 2 and "features/broken.yaml" in err
    assert not (tmp_path / "dist2").exists()


# --- deploy glue ----------------------------------------------------------------------------


def test_deploy_glue_uploads_artifacts_and_creates_one_job_per_group(aws, example_project, tmp_path, capsys):
    code, out, err = _cli(capsys, "deploy", "glue", "--env", "prod", "--project", str(example_project))
    assert code == 0, err
    project = load_project(example_project, "prod")
    artifacts = _glue_artifacts(example_project, tmp_path / "expected")
    base = f"s3://{ARTIFACTS_BUCKET}/{ARTIFACTS_PREFIX}"
    assert artifacts.requirements and any(p.name.startswith("great_expectations-") for p in artifacts.requirements)

    objects = _objects()
    jar_key = f"{ARTIFACTS_PREFIX}/jars/delta-storage-s3-dynamodb-3.3.2.jar"  # Delta's log store, Glue 5.1 lacks it
    assert sorted(objects) == sorted([*(f"{ARTIFACTS_PREFIX}/{p.name}" for p in artifacts.files()), jar_key])
    for path in artifacts.files():
        body = _client("s3").get_object(Bucket=ARTIFACTS_BUCKET, Key=f"{ARTIFACTS_PREFIX}/{path.name}")
        assert body["Body"].read() == path.read_bytes()
        assert body["ServerSideEncryption"] == "aws:kms"  # conf/prod.yaml gives a KMS key

    glue = _client("glue")
    names = sorted(j["Name"] for j in glue.get_jobs()["Jobs"])
    assert names == sorted(f"featurebank-prod-{g}" for g in project.groups)
    job = glue.get_job(JobName="featurebank-prod-customer_card_spend")["Job"]
    assert job["DefaultArguments"] == {
        "--job-language": "python",
        "--datalake-formats": "delta",
        "--additional-python-modules": ",".join(f"{base}/{p.name}" for p in (artifacts.wheel, *artifacts.requirements)),
        "--python-modules-installer-option": "--no-index",  # S3 only: works in a VPC without internet
        "--conf": _with_s3_write(GLUE_CATALOG_CONF + " --conf " + DELTA_CONF),
        "--enable-glue-datacatalog": "true",
        "--group": "customer_card_spend",
        "--env": "prod",
        "--project_bundle": f"{base}/{artifacts.bundle.name}",
        "--extra-jars": f"s3://{ARTIFACTS_BUCKET}/{jar_key}",
    }
    assert job["Command"] == {
        "Name": "glueetl",
        "ScriptLocation": f"{base}/{artifacts.script('glue_run_group').name}",
        "PythonVersion": "3",
    }
    assert (job["GlueVersion"], job["WorkerType"], job["NumberOfWorkers"], job["Timeout"], job["MaxRetries"]) == ("5.1", "G.2X", 10, 180, 1)
    assert job["Role"] == "arn:aws:iam::123456789012:role/featurebank-prod-job"
    assert job["SecurityConfiguration"] == "featurebank-prod-kms"
    tags = glue.get_tags(ResourceArn="arn:aws:glue:eu-west-1:123456789012:job/featurebank-prod-customer_card_spend")["Tags"]
    assert tags == {
        "featurebank:env": "prod",
        "featurebank:group": "customer_card_spend",
        "featurebank:owner": "cards-analytics",
        "cost-center": "data-platform",
        "environment": "prod",
    }
    lines = out.splitlines()
    assert sum(line.startswith("create ") for line in lines) == len(project.groups) + len(artifacts.files()) + 2  # + the log-store table and jar
    assert f"create     glue job featurebank-prod-merchant_risk" in lines


def test_second_glue_deploy_of_the_same_commit_changes_nothing(aws, example_project, tmp_path, capsys):
    assert _cli(capsys, "deploy", "glue", "--env", "prod", "--project", str(example_project))[0] == 0
    before_objects = _objects()
    before_jobs = {j["Name"]: j for j in _client("glue").get_jobs()["Jobs"]}

    code, out, _ = _cli(capsys, "deploy", "glue", "--env", "prod", "--project", str(example_project))
    assert code == 0
    changes = [line for line in out.splitlines() if not line.startswith("nothing")]
    assert changes and all(line.startswith("unchanged") for line in changes), out
    shipped = len(_glue_artifacts(example_project, tmp_path / "expected").files())
    assert f"nothing to change ({shipped + 7} unchanged)" in out  # the artifacts, 5 jobs, the log-store table and jar
    assert "done" not in out
    assert _objects() == before_objects  # same keys, ETags and LastModified: nothing re-uploaded
    assert {j["Name"]: j for j in _client("glue").get_jobs()["Jobs"]} == before_jobs


def test_glue_deploy_after_a_conf_change_updates_exactly_the_changed_fields(aws, example_project, tmp_path, capsys):
    assert _cli(capsys, "deploy", "glue", "--env", "prod", "--project", str(example_project))[0] == 0
    uploaded = set(_objects())
    created_on = _client("glue").get_job(JobName="featurebank-prod-customer_profile")["Job"]["CreatedOn"]
    _edit_conf(example_project, "prod", lambda d: d["aws"]["glue"].update(number_of_workers=4))

    code, out, err = _cli(capsys, "deploy", "glue", "--env", "prod", "--project", str(example_project))
    assert code == 0
    # conf is inside the bundle, so the bundle is new; the wheel and scripts are not re-uploaded
    new_keys = set(_objects()) - uploaded
    assert len(new_keys) == 1 and re.search(r"featurebank-project-[0-9a-f]{12}\.zip$", new_keys.pop())
    assert "update     glue job featurebank-prod-customer_profile (DefaultArguments[--project_bundle], NumberOfWorkers)" in out
    assert err == ""
    job = _client("glue").get_job(JobName="featurebank-prod-customer_profile")["Job"]
    assert job["NumberOfWorkers"] == 4
    assert job["CreatedOn"] == created_on  # updated in place (UpdateJob), never deleted and recreated
    shipped = len(_glue_artifacts(example_project, tmp_path / "expected").files())
    assert f"nothing to change ({shipped + 7} unchanged)" in _cli(capsys, "deploy", "glue", "--env", "prod", "--project", str(example_project))[1]


def test_a_glue_update_aws_refuses_is_a_sentence_naming_the_job_and_exit_3(aws, example_project, tmp_path, capsys):
    from featurebank.compile.changes import apply_changes
    from featurebank.deploy.glue import glue_changes
    from featurebank.deploy.upload import artifact_uris
    from featurebank.errors import RuntimeFailure, exit_code_for

    assert _cli(capsys, "deploy", "glue", "--env", "prod", "--project", str(example_project))[0] == 0
    _edit_conf(example_project, "prod", lambda d: d["aws"]["glue"].update(number_of_workers=4))
    project = load_project(example_project, "prod")
    settings = project.config.require_aws()
    uris = artifact_uris(settings, _glue_artifacts(example_project, tmp_path / "dist"))
    changes = glue_changes(project, settings, uris, sorted(project.groups))
    assert [c.action for c in changes] == ["update"] * len(project.groups)
    _client("glue").delete_job(JobName="featurebank-prod-merchant_risk")  # gone between the plan and the apply

    with pytest.raises(RuntimeFailure) as raised:
        apply_changes(changes, open(os.devnull, "w"))
    message = str(raised.value)
    assert message.startswith("glue.UpdateJob of Glue job featurebank-prod-merchant_risk in eu-west-1 failed (EntityNotFoundException: ")
    assert "deploy again" in message
    assert exit_code_for(raised.value) == 3
    assert "featurebank-prod-merchant_risk" not in {j["Name"] for j in _client("glue").get_jobs()["Jobs"]}  # not recreated


def test_dry_run_prints_the_calls_and_creates_nothing(aws, example_project, capsys):
    code, out, _ = _cli(capsys, "deploy", "glue", "--env", "prod", "--project", str(example_project), "--dry-run")
    assert code == 0
    assert "would call glue.CreateJob" in out and "would call s3.PutObject" in out
    assert "dry run: nothing was changed" in out
    assert _client("glue").get_jobs()["Jobs"] == []
    assert _objects() == {}


# --- deploy emr / emr-serverless ------------------------------------------------------------


def test_deploy_emr_adds_one_spark_submit_step_per_group_once(aws, example_project, tmp_path, capsys):
    emr = _client("emr")
    cluster = emr.run_job_flow(
        Name="features", ReleaseLabel="emr-7.5.0", JobFlowRole="EMR_EC2_DefaultRole", ServiceRole="EMR_DefaultRole",
        Instances={"InstanceCount": 1, "KeepJobFlowAliveWhenNoSteps": True, "MasterInstanceType": "m5.xlarge"},
    )["JobFlowId"]
    code, out, err = _cli(capsys, "deploy", "emr", "--env", "prod", "--project", str(example_project), "--cluster-id", cluster,
                          "--date", "2024-03-01")
    assert code == 0, err
    project = load_project(example_project, "prod")
    artifacts = build_artifacts(example_project, tmp_path / "expected", python="archive")
    base = f"s3://{ARTIFACTS_BUCKET}/{ARTIFACTS_PREFIX}"
    environment = f"{base}/{artifacts.environment.name}"
    assert re.fullmatch(r"env-[0-9a-f]{12}\.tar\.gz", artifacts.environment.name)
    assert f"{ARTIFACTS_PREFIX}/{artifacts.environment.name}" in _objects()

    steps = list(reversed(emr.list_steps(ClusterId=cluster)["Steps"]))  # ListSteps is newest first
    assert [s["Name"].rsplit("-", 1)[0] for s in steps] == [f"featurebank-prod-{g}" for g in run_order(project)]
    first = steps[0]
    group = run_order(project)[0]
    assert first["Config"]["Jar"] == "command-runner.jar"
    assert first["ActionOnFailure"] == "CONTINUE"
    # the archive is the Python of the driver (YARN application master) and the executors; no --py-files
    assert first["Config"]["Args"] == [
        "spark-submit", "--deploy-mode", "cluster",
        *[item for pair in _with_s3_write(DELTA_CONF, **{
            "spark.jars": LOG_STORE_JAR, "spark.archives": f"{environment}#environment",
            "spark.executorEnv.PYSPARK_PYTHON": "./environment/bin/python",
            "spark.yarn.appMasterEnv.PYSPARK_PYTHON": "./environment/bin/python"}).split(" --conf ")
          for item in ("--conf", pair)],
        f"{base}/{artifacts.script('run_group').name}",
        "--group", group, "--env", "prod", "--project", f"{base}/{artifacts.bundle.name}", "--date", "2024-03-01",
    ]
    code, out, _ = _cli(capsys, "deploy", "emr", "--env", "prod", "--project", str(example_project), "--cluster-id", cluster,
                        "--date", "2024-03-01")
    assert code == 0 and "nothing to change" in out
    assert len(emr.list_steps(ClusterId=cluster)["Steps"]) == len(project.groups)


def test_deploy_emr_without_or_with_an_unknown_cluster_id_is_a_usage_error(aws, example_project, capsys):
    code, _, err = _cli(capsys, "deploy", "emr", "--env", "prod", "--project", str(example_project))
    assert code == 2 and "--cluster-id" in err
    code, _, err = _cli(capsys, "deploy", "emr", "--env", "prod", "--project", str(example_project), "--cluster-id", "j-NOPE",
                        "--date", "2024-03-01")
    assert code == 2 and "EMR cluster j-NOPE was not found in eu-west-1" in err
    assert _objects() == {}  # nothing uploaded for a deploy that cannot happen


def test_deploy_emr_serverless_starts_one_job_run_per_group_once(aws, example_project, tmp_path, capsys):
    es = _client("emr-serverless")
    app = es.create_application(name="features", releaseLabel="emr-7.5.0", type="SPARK")["applicationId"]
    code, out, err = _cli(capsys, "deploy", "emr-serverless", "--env", "prod", "--project", str(example_project), "--application-id", app,
                          "--start", "2024-03-01", "--end", "2024-03-03")
    assert code == 0, err
    project = load_project(example_project, "prod")
    artifacts = build_artifacts(example_project, tmp_path / "expected", python="archive")
    base = f"s3://{ARTIFACTS_BUCKET}/{ARTIFACTS_PREFIX}"

    runs = es.list_job_runs(applicationId=app)["jobRuns"]
    assert sorted(r["name"].rsplit("-", 1)[0] for r in runs) == sorted(f"featurebank-prod-{g}" for g in project.groups)
    run = next(r for r in runs if r["name"].startswith("featurebank-prod-merchant_risk-"))
    detail = es.get_job_run(applicationId=app, jobRunId=run["id"])["jobRun"]
    assert detail["executionRole"] == "arn:aws:iam::123456789012:role/featurebank-prod-job"
    submit = detail["jobDriver"]["sparkSubmit"]
    assert submit["entryPoint"] == f"{base}/{artifacts.script('run_group').name}"
    assert submit["entryPointArguments"] == ["--group", "merchant_risk", "--env", "prod", "--project", f"{base}/{artifacts.bundle.name}",
                                             "--start", "2024-03-01", "--end", "2024-03-03"]
    assert submit["sparkSubmitParameters"] == (
        "--conf " + _with_s3_write(DELTA_CONF, **{
            "spark.jars": "/usr/share/aws/delta/lib/delta-spark.jar,"
                          f"/usr/share/aws/delta/lib/delta-storage.jar,{LOG_STORE_JAR}",
            "spark.archives": f"{base}/{artifacts.environment.name}#environment",
            "spark.emr-serverless.driverEnv.PYSPARK_PYTHON": "./environment/bin/python",
            "spark.executorEnv.PYSPARK_PYTHON": "./environment/bin/python"})
    )
    code, out, _ = _cli(capsys, "deploy", "emr-serverless", "--env", "prod", "--project", str(example_project), "--application-id", app,
                        "--start", "2024-03-01", "--end", "2024-03-03")
    assert code == 0 and "nothing to change" in out
    assert len(es.list_job_runs(applicationId=app)["jobRuns"]) == len(project.groups)


def test_deploy_emr_and_emr_serverless_submit_nothing_without_asked_dates(aws, example_project, capsys):
    cluster = _client("emr").run_job_flow(
        Name="features", ReleaseLabel="emr-7.5.0", JobFlowRole="EMR_EC2_DefaultRole", ServiceRole="EMR_DefaultRole",
        Instances={"InstanceCount": 1, "KeepJobFlowAliveWhenNoSteps": True, "MasterInstanceType": "m5.xlarge"},
    )["JobFlowId"]
    code, _, err = _cli(capsys, "deploy", "emr", "--env", "prod", "--project", str(example_project), "--cluster-id", cluster)
    assert code == 2 and "say which snapshot dates, --date YYYY-MM-DD or --start YYYY-MM-DD --end YYYY-MM-DD" in err
    app = _client("emr-serverless").create_application(name="f", releaseLabel="emr-7.5.0", type="SPARK")["applicationId"]
    code, _, err = _cli(capsys, "deploy", "emr-serverless", "--env", "prod", "--project", str(example_project), "--application-id", app)
    assert code == 2 and "deploy emr-serverless submits runs now" in err
    code, _, err = _cli(capsys, "deploy", "glue", "--env", "prod", "--project", str(example_project), "--date", "2024-03-01")
    assert code == 2 and "deploy glue starts no run" in err
    assert _client("emr").list_steps(ClusterId=cluster)["Steps"] == []
    assert _client("emr-serverless").list_job_runs(applicationId=app)["jobRuns"] == []
    assert _objects() == {}


# --- deploy schedule ------------------------------------------------------------------------


def test_deploy_schedule_chains_every_group_job_in_run_order_and_starts_it_daily(aws, example_project, capsys):
    code, out, err = _cli(capsys, "deploy", "schedule", "--env", "prod", "--project", str(example_project))
    assert code == 0, err
    project = load_project(example_project, "prod")
    order = run_order(project)
    arn = "arn:aws:states:eu-west-1:123456789012:stateMachine:featurebank-prod"
    machine = _client("stepfunctions").describe_state_machine(stateMachineArn=arn)
    assert machine["roleArn"] == "arn:aws:iam::123456789012:role/featurebank-prod-states"
    definition = json.loads(machine["definition"])

    walked, state = [], definition["StartAt"]
    while True:
        node = definition["States"][state]
        assert node["Type"] == "Task" and node["Resource"] == "arn:aws:states:::glue:startJobRun.sync"
        assert node["Parameters"] == {"JobName": f"featurebank-prod-{state}"}
        assert node["Retry"][0]["ErrorEquals"] == ["States.ALL"] and node["Retry"][0]["MaxAttempts"] >= 1
        walked.append(state)
        if node.get("End"):
            break
        state = node["Next"]
    assert walked == order and sorted(walked) == sorted(project.groups)

    schedule = _client("scheduler").get_schedule(Name="featurebank-prod")
    assert schedule["ScheduleExpression"] == "cron(0 2 * * ? *)"
    assert schedule["ScheduleExpressionTimezone"] == "UTC"
    assert schedule["Target"]["Arn"] == arn
    assert schedule["Target"]["RoleArn"] == "arn:aws:iam::123456789012:role/featurebank-prod-scheduler"

    code, out, _ = _cli(capsys, "deploy", "schedule", "--env", "prod", "--project", str(example_project))
    assert "unchanged  state machine featurebank-prod" in out and "unchanged  schedule featurebank-prod" in out

    _edit_conf(example_project, "prod", lambda d: d["aws"]["schedule"].update(cron="cron(30 4 * * ? *)"))
    code, out, _ = _cli(capsys, "deploy", "schedule", "--env", "prod", "--project", str(example_project))
    assert "update     schedule featurebank-prod (ScheduleExpression)" in out
    assert "unchanged  state machine featurebank-prod" in out
    assert _client("scheduler").get_schedule(Name="featurebank-prod")["ScheduleExpression"] == "cron(30 4 * * ? *)"


# --- iam-policy -----------------------------------------------------------------------------


def test_iam_policy_grants_only_the_envs_prefixes_and_is_accepted_by_iam(aws, example_project, capsys):
    code, out, _ = _cli(capsys, "iam-policy", "--env", "prod", "--project", str(example_project))
    assert code == 0
    policy = json.loads(out)
    _client("iam").create_policy(PolicyName="featurebank-prod-job", PolicyDocument=out)  # IAM accepts its syntax

    by_sid = {s["Sid"]: s for s in policy["Statement"]}
    assert by_sid["RawSourcesReadObjects"]["Action"] == ["s3:GetObject"]
    assert by_sid["RawSourcesReadObjects"]["Resource"] == ["arn:aws:s3:::acme-raw-prod-123456789012/cards/*"]
    assert by_sid["FeatureTablesReadWriteObjects"]["Resource"] == ["arn:aws:s3:::acme-featurebank-prod-123456789012/feature-layer/*"]
    assert "s3:PutObject" in by_sid["FeatureTablesReadWriteObjects"]["Action"]
    assert by_sid["ArtifactsReadObjects"]["Resource"] == ["arn:aws:s3:::acme-featurebank-prod-123456789012/artifacts/*"]
    assert by_sid["ArtifactsReadObjects"]["Action"] == ["s3:GetObject"]
    assert by_sid["FeatureCatalogReadWrite"]["Resource"] == [
        "arn:aws:glue:eu-west-1:123456789012:catalog",
        "arn:aws:glue:eu-west-1:123456789012:database/features",
        "arn:aws:glue:eu-west-1:123456789012:table/features/*",
    ]
    assert by_sid["KmsForDataAndArtifacts"]["Resource"] == [
        "arn:aws:kms:eu-west-1:123456789012:key/1f0c2b9e-7a3d-4c1e-9b8a-0d6e5f4a3b21"
    ]
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow"
        if statement["Sid"] == "LakeFormationDataAccess":  # GetDataAccess has no resource-level permissions
            assert statement["Action"] == ["lakeformation:GetDataAccess"] and statement["Resource"] == "*"
            continue
        assert "*" not in statement["Resource"] and not any(a.endswith(":*") or a == "*" for a in statement["Action"])
    listing = by_sid["RawSourcesReadList0"]
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["cards", "cards/*"]}}


# --- conf checks ----------------------------------------------------------------------------


def test_aws_conf_mistakes_are_reported_together_with_file_line_and_key(example_project, capsys):
    conf = example_project / "conf" / "prod.yaml"
    text = conf.read_text()
    text = text.replace("  region: eu-west-1\n", "  regoin: eu-west-1\n  aws_secret_access_key: abc\n")
    text = text.replace("artifacts: s3://acme-featurebank-prod-123456789012/artifacts", "artifacts: /tmp/artifacts")
    text = text.replace("worker_type: G.2X", "worker_type: G.3X")
    conf.write_text(text)
    code, _, err = _cli(capsys, "deploy", "glue", "--env", "prod", "--project", str(example_project), "--dry-run")
    assert code == 2
    lines = text.splitlines()

    def line_of(fragment: str) -> int:
        return next(i + 1 for i, line in enumerate(lines) if fragment in line)

    assert f"conf/prod.yaml:{line_of('regoin')}: aws.regoin: unknown key; did you mean 'region'?" in err
    assert f"conf/prod.yaml:{line_of('aws_secret_access_key')}: aws.aws_secret_access_key: secrets never go in conf" in err
    assert f"conf/prod.yaml:{line_of('artifacts: /tmp')}: aws.artifacts: '/tmp/artifacts' is not an S3 URI" in err
    assert f"conf/prod.yaml:{line_of('worker_type')}: aws.glue.worker_type: 'G.3X' is not a Glue worker type" in err
    assert "aws.region: is missing" in err
    assert "Traceback" not in err


def test_local_env_without_aws_section_cannot_deploy(example_project, capsys):
    code, _, err = _cli(capsys, "deploy", "glue", "--env", "local", "--project", str(example_project), "--dry-run")
    assert code == 2 and "conf/local.yaml" in err and "aws.region" in err


# --- entry points ---------------------------------------------------------------------------


def test_run_group_entry_forwards_to_featurebank_run_with_the_bundle_extracted(example_project, tmp_path):
    from featurebank.deploy.entry import run_group_argv, training_set_argv

    artifacts = build_artifacts(example_project, tmp_path / "dist")
    argv = run_group_argv(["--group", "merchant_risk", "--start", "2024-01-01", "--end", "2024-01-31", "--project", str(artifacts.bundle), "--env", "prod"])
    assert argv[:3] == ["run", "merchant_risk", "--project"]
    assert argv[4:] == ["--start", "2024-01-01", "--end", "2024-01-31", "--env", "prod"]
    extracted = Path(argv[3])
    assert (extracted / "features" / "sources.yaml").read_bytes() == (example_project / "features" / "sources.yaml").read_bytes()
    assert load_project(extracted, "prod").groups.keys() == load_project(example_project, "prod").groups.keys()

    argv = training_set_argv(["card_fraud_v1", "--spine", "s.parquet", "--out", "o", "--project", str(example_project)])
    assert argv == ["training-set", "card_fraud_v1", "--spine", "s.parquet", "--out", "o", "--project", str(example_project)]


def test_glue_script_reads_its_options_without_awsglue_and_fetches_the_bundle_from_s3(aws, example_project, tmp_path):
    import importlib.util

    from featurebank.deploy.entry import glue_argv

    artifacts = build_artifacts(example_project, tmp_path / "dist")
    spec = importlib.util.spec_from_file_location("glue_run_group", artifacts.script("glue_run_group"))
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    key = f"{ARTIFACTS_PREFIX}/{artifacts.bundle.name}"
    _client("s3").upload_file(str(artifacts.bundle), ARTIFACTS_BUCKET, key)

    options = script.resolve_options(
        ["glue_run_group.py", "--JOB_NAME", "featurebank-prod-merchant_risk", "--group", "merchant_risk",
         "--env", "prod", "--project_bundle", f"s3://{ARTIFACTS_BUCKET}/{key}", "--date", "2024-02-01"]
    )
    assert options == {"group": "merchant_risk", "env": "prod", "project_bundle": f"s3://{ARTIFACTS_BUCKET}/{key}",
                       "date": "2024-02-01", "start": None, "end": None}
    argv = glue_argv(options)
    assert argv[:3] == ["run", "merchant_risk", "--project"] and argv[4:] == ["--env", "prod", "--date", "2024-02-01"]
    assert (Path(argv[3]) / "conf" / "prod.yaml").read_bytes() == (example_project / "conf" / "prod.yaml").read_bytes()


# --- the schedule drives every target -------------------------------------------------------


def _walk(definition: dict) -> list[dict]:
    states, name = [], definition["StartAt"]
    while True:
        states.append(definition["States"][name])
        if states[-1].get("End"):
            return states
        name = states[-1]["Next"]


def _deployed_schedule(example_project, tmp_path, capsys, **schedule):  # noqa: ANN001, ANN003, ANN202
    """Deploy prod's schedule with `schedule` merged into aws.schedule; the project, the expected
    artifacts, their S3 base and the state machine's task states in order."""
    _edit_conf(example_project, "prod", lambda d: d["aws"]["schedule"].update(**schedule))
    code, out, err = _cli(capsys, "deploy", "schedule", "--env", "prod", "--project", str(example_project))
    assert code == 0, err
    artifacts = build_artifacts(example_project, tmp_path / "expected")
    arn = "arn:aws:states:eu-west-1:123456789012:stateMachine:featurebank-prod"
    definition = json.loads(_client("stepfunctions").describe_state_machine(stateMachineArn=arn)["definition"])
    return load_project(example_project, "prod"), artifacts, f"s3://{ARTIFACTS_BUCKET}/{ARTIFACTS_PREFIX}", _walk(definition)


def test_schedule_on_emr_chains_each_groups_step_with_add_step_sync_in_run_order(aws, example_project, tmp_path, capsys):
    project, artifacts, base, states = _deployed_schedule(example_project, tmp_path, capsys, target="emr",
                                                          cluster_id="j-1ABCDEF")
    assert len(states) == len(project.groups)
    for group, state in zip(run_order(project), states):
        assert state["Type"] == "Task" and state["Resource"] == "arn:aws:states:::elasticmapreduce:addStep.sync"
        assert state["Retry"][0]["ErrorEquals"] == ["States.ALL"]
        params = state["Parameters"]
        assert params["ClusterId"] == "j-1ABCDEF"
        assert params["Step"]["Name"] == f"featurebank-prod-{group}"
        assert params["Step"]["ActionOnFailure"] == "CONTINUE"
        assert params["Step"]["HadoopJarStep"]["Jar"] == "command-runner.jar"
        args = params["Step"]["HadoopJarStep"]["Args"]
        assert args[:3] == ["spark-submit", "--deploy-mode", "cluster"]
        assert args[-7:] == [f"{base}/{artifacts.script('run_group').name}", "--group", group, "--env", "prod",
                             "--project", f"{base}/{artifacts.bundle.name}"]  # no --date: each day's snapshot
    assert f"{ARTIFACTS_PREFIX}/{artifacts.bundle.name}" in _objects()  # the states name uploaded artifacts


def test_schedule_on_emr_serverless_starts_each_groups_job_run_with_start_job_run_sync(aws, example_project, tmp_path, capsys):
    project, artifacts, base, states = _deployed_schedule(example_project, tmp_path, capsys, target="emr-serverless",
                                                          application_id="00abc")
    for group, state in zip(run_order(project), states, strict=True):
        assert state["Resource"] == "arn:aws:states:::emr-serverless:startJobRun.sync"
        params = state["Parameters"]
        assert params["ApplicationId"] == "00abc"
        assert params["ExecutionRoleArn"] == "arn:aws:iam::123456789012:role/featurebank-prod-job"
        assert params["Name"] == f"featurebank-prod-{group}"
        submit = params["JobDriver"]["SparkSubmit"]
        assert submit["EntryPoint"] == f"{base}/{artifacts.script('run_group').name}"
        assert submit["EntryPointArguments"] == ["--group", group, "--env", "prod", "--project", f"{base}/{artifacts.bundle.name}"]
        assert "--py-files" not in submit["SparkSubmitParameters"]  # the environment archive carries everything
        assert f"--conf spark.archives={base}/env-" in submit["SparkSubmitParameters"]
    code, out, _ = _cli(capsys, "deploy", "schedule", "--env", "prod", "--project", str(example_project))
    assert "unchanged  state machine featurebank-prod" in out


def test_schedule_target_emr_without_a_cluster_is_a_conf_error(example_project, capsys):
    _edit_conf(example_project, "prod", lambda d: d["aws"]["schedule"].update(target="emr"))
    code, _, err = _cli(capsys, "validate", "--env", "prod", "--project", str(example_project))
    assert code == 2 and "target emr needs aws.schedule.cluster_id" in err
