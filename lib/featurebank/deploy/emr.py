"""`featurebank deploy emr` and `deploy emr-serverless`: submit one run per feature group.

EMR (on EC2): one step per group, `command-runner.jar` running
`spark-submit --deploy-mode cluster --conf spark.archives=<env-hash.tar.gz>#environment ...
<run_group.py> --group G --env E --project <bundle>`. EMR Serverless: one job run per group
with the same entry point, arguments and archive, for exactly the dates asked for (`--date D` or
`--start S --end E` forwarded to `featurebank run`): a deploy never submits a default date (the
daily runs are the schedule's, `deploy/schedule.py`). The archive (`environment.py`) carries
featurebank and every requirement (PyYAML, sqlglot, great-expectations, ...) and is the
Python of the driver and the executors (`environment_conf`); `--py-files` would put the
wheel on the path without installing anything it needs. The cluster provides Spark and
Delta (EMR 7.x: the `delta-defaults` classification; EMR Serverless: the jars below).

A run's name carries a fingerprint of its exact arguments (artifact hashes included), so a
second deploy of the same commit finds the step/job run it already submitted (pending,
running or completed) and says `unchanged`; a failed or cancelled one is submitted again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from featurebank.compile.changes import Change
from featurebank.definitions.config import AwsSettings
from featurebank.deploy.environment import environment_conf
from featurebank.deploy.upload import ArtifactUris
from featurebank.errors import UsageError
from featurebank.io.aws import client
from featurebank.io.spark import DELTA_SQL_CONF, s3_write_conf

LIVE_STEP_STATES = ("PENDING", "CANCEL_PENDING", "RUNNING", "COMPLETED")
LIVE_RUN_STATES = ("SUBMITTED", "PENDING", "SCHEDULED", "RUNNING", "SUCCESS", "QUEUED")
SERVERLESS_DELTA_JARS = "/usr/share/aws/delta/lib/delta-spark.jar,/usr/share/aws/delta/lib/delta-storage.jar"
# EMR ships Delta's DynamoDB log store beside Delta (needed when aws.delta_log_table is set).
LOG_STORE_JAR = "/usr/share/aws/delta/lib/delta-storage-s3-dynamodb.jar"


def job_arguments(settings: AwsSettings, uris: ArtifactUris, group: str, dates: Sequence[str] = ()) -> list[str]:
    """The arguments `run_group.py` receives for one group; `dates` (`--date D` or `--start S
    --end E`) are forwarded as given, none for the schedule's daily run (today's snapshot)."""
    return ["--group", group, "--env", settings.env, "--project", uris.bundle, *dates]


def spark_conf(settings: AwsSettings, *, serverless: bool, archive: str | None = None) -> dict[str, str]:
    """Delta's SQL settings, the Python environment at `archive` (`environment_conf`), then
    `aws.emr.spark_conf` from conf (which wins)."""
    conf = dict(DELTA_SQL_CONF)
    if serverless:
        conf["spark.jars"] = SERVERLESS_DELTA_JARS
    if archive:
        conf.update(environment_conf("emr-serverless" if serverless else "emr", archive))
    conf.update(s3_write_conf(settings))  # SSE-KMS (EMRFS and S3A) and the DynamoDB log store
    if settings.delta_log_table:
        conf["spark.jars"] = ",".join(filter(None, [conf.get("spark.jars"), LOG_STORE_JAR]))
    conf.update(dict(settings.emr.spark_conf))
    return conf


def step_args(settings: AwsSettings, uris: ArtifactUris, group: str, dates: Sequence[str] = ()) -> list[str]:
    """The command-runner.jar arguments of one group's EMR step."""
    archive = _require_environment(uris)
    conf = [item for key, value in sorted(spark_conf(settings, serverless=False, archive=archive).items())
            for item in ("--conf", f"{key}={value}")]
    return ["spark-submit", "--deploy-mode", "cluster", *conf, uris.script("run_group"),
            *job_arguments(settings, uris, group, dates)]


def run_name(settings: AwsSettings, group: str, arguments: Any) -> str:
    """`featurebank-<env>-<group>-<fingerprint of the exact arguments>`."""
    fingerprint = hashlib.sha256(json.dumps(arguments, sort_keys=True).encode()).hexdigest()[:10]
    return f"featurebank-{settings.env}-{group}-{fingerprint}"


def emr_changes(settings: AwsSettings, uris: ArtifactUris, groups: list[str], cluster_id: str,
                dates: Sequence[str]) -> list[Change]:
    """One Change per group: add its step for `dates`, unless the same step is already live."""
    from botocore.exceptions import ClientError

    emr = client("emr", settings.region)
    try:
        emr.describe_cluster(ClusterId=cluster_id)
    except ClientError as error:
        raise UsageError(f"EMR cluster {cluster_id} was not found in {settings.region} ({_message(error)}); check --cluster-id") from None
    existing = {
        step["Name"]
        for page in emr.get_paginator("list_steps").paginate(ClusterId=cluster_id, StepStates=list(LIVE_STEP_STATES))
        for step in page["Steps"]
    }
    changes = []
    for group in groups:
        args = step_args(settings, uris, group, dates)
        name = run_name(settings, group, args)
        if name in existing:
            changes.append(Change("emr step", f"{cluster_id}/{name}", "unchanged"))
            continue
        step = {
            "Name": name,
            "ActionOnFailure": settings.emr.action_on_failure,
            "HadoopJarStep": {"Jar": "command-runner.jar", "Args": args},
        }

        def add(step: dict[str, Any] = step) -> None:
            emr.add_job_flow_steps(JobFlowId=cluster_id, Steps=[step])

        changes.append(Change("emr step", f"{cluster_id}/{name}", "create", (), ("emr.AddJobFlowSteps",), add))
    return changes


def serverless_job_driver(settings: AwsSettings, uris: ArtifactUris, group: str, dates: Sequence[str] = ()) -> dict[str, Any]:
    """The `jobDriver` of one group's EMR Serverless job run."""
    archive = _require_environment(uris)
    conf = " ".join(f"--conf {key}={value}" for key, value in sorted(spark_conf(settings, serverless=True, archive=archive).items()))
    return {
        "sparkSubmit": {
            "entryPoint": uris.script("run_group"),
            "entryPointArguments": job_arguments(settings, uris, group, dates),
            "sparkSubmitParameters": conf,
        }
    }


def serverless_changes(settings: AwsSettings, uris: ArtifactUris, groups: list[str], application_id: str,
                       dates: Sequence[str]) -> list[Change]:
    """One Change per group: start its job run for `dates`, unless the same run is already live."""
    role = settings.require_serverless_role()
    from botocore.exceptions import ClientError

    es = client("emr-serverless", settings.region)
    try:
        es.get_application(applicationId=application_id)
    except ClientError as error:
        raise UsageError(f"EMR Serverless application {application_id} was not found in {settings.region} ({_message(error)}); check --application-id") from None
    existing = {
        run.get("name", "")
        for page in es.get_paginator("list_job_runs").paginate(applicationId=application_id, states=list(LIVE_RUN_STATES))
        for run in page["jobRuns"]
    }
    changes = []
    for group in groups:
        driver = serverless_job_driver(settings, uris, group, dates)
        name = run_name(settings, group, driver)
        if name in existing:
            changes.append(Change("emr-serverless job run", f"{application_id}/{name}", "unchanged"))
            continue

        def start(name: str = name, driver: dict[str, Any] = driver, group: str = group) -> None:
            es.start_job_run(
                applicationId=application_id, executionRoleArn=role, name=name, jobDriver=driver,
                tags={"featurebank:env": settings.env, "featurebank:group": group, **dict(settings.tags)},
            )

        changes.append(Change("emr-serverless job run", f"{application_id}/{name}", "create", (), ("emr-serverless.StartJobRun",), start))
    return changes


def _require_environment(uris: ArtifactUris) -> str:
    """The environment archive's URI; a run without it would die at its first import."""
    if not uris.environment:
        raise ValueError("EMR runs need the environment archive: build the artifacts with python='archive'")
    return uris.environment


def _message(error: Exception) -> str:
    response = getattr(error, "response", {}) or {}
    return str(response.get("Error", {}).get("Message") or error)
