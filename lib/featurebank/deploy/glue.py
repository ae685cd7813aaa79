"""`featurebank deploy glue`: one AWS Glue 5.1 job per feature group.

Each job runs `glue_run_group.py` (shipped in `featurebank/deploy/jobs/`) with the project
bundle passed as `--project_bundle`. Python dependencies (`glue_python_arguments`): the
library wheel and every requirement as wheels on S3, all listed in
`--additional-python-modules`, installed with `--no-index`: Glue's pip then never reaches for
PyPI, so a job in a VPC without internet (only an S3 endpoint) starts, and every run gets the
versions tested where `package` ran. Spark and Delta are the platform's (environment.py); with
`aws.delta_log_table` the job adds Delta's DynamoDB log-store jar, which Glue lacks, through
`--extra-jars` (log_store_jar.py).

Updates: the desired job is compared with GetJob (and GetTags); a match is `unchanged` and
makes no call. A changed job is updated with UpdateJob, then its tags with TagResource /
UntagResource. A call AWS refuses stops the deploy with a `RuntimeFailure` naming the job,
the call and AWS's answer (exit 3); the job is never deleted and recreated behind the
user's back.
"""

from __future__ import annotations

from typing import Any

from featurebank.compile.changes import Change, diff_fields
from featurebank.definitions.config import AwsSettings
from featurebank.definitions.model import Project
from featurebank.deploy.aws import account_id
from featurebank.deploy.log_store_jar import jar_uri
from featurebank.deploy.upload import ArtifactUris
from featurebank.deploy.versions import GLUE_VERSION
from featurebank.errors import RuntimeFailure
from featurebank.io.aws import client
from featurebank.io.spark import DELTA_SQL_CONF, s3_write_conf

GLUE_CATALOG_CONF = {
    "spark.hadoop.hive.metastore.client.factory.class": "com.amazonaws.glue.catalog.metastore.AWSGlueDataCatalogHiveClientFactory",
}


def job_name(env: str, group: str) -> str:
    """The Glue job of a group in an environment: `featurebank-<env>-<group>`."""
    return f"featurebank-{env}-{group}"


def spark_conf_argument(conf: dict[str, str]) -> str:
    """Glue takes one `--conf` value; further settings follow as ` --conf k=v` inside it."""
    return " --conf ".join(f"{key}={value}" for key, value in sorted(conf.items()))


def glue_python_arguments(uris: ArtifactUris) -> dict[str, str]:
    """The job arguments that install featurebank and its requirements from S3 only.

    Glue 5.x runs pip at job start on `--additional-python-modules` (S3 wheels allowed) with
    `--python-modules-installer-option` passed to it; `--no-index` keeps it off PyPI.
    """
    return {
        "--additional-python-modules": ",".join([uris.wheel, *uris.requirements]),
        "--python-modules-installer-option": "--no-index",
    }


def desired_job(project: Project, settings: AwsSettings, uris: ArtifactUris, group: str) -> dict[str, Any]:
    """The CreateJob request (without Name) for one group, Tags included."""
    glue = settings.require_glue()
    definition = project.groups[group]
    conf = dict(DELTA_SQL_CONF)
    if project.config.catalog_type == "glue":
        conf.update(GLUE_CATALOG_CONF)
    conf.update(s3_write_conf(settings))  # SSE-KMS through S3A (Glue 5.1's connector), DynamoDB log store
    arguments = {
        "--job-language": "python",
        "--datalake-formats": "delta",
        **glue_python_arguments(uris),
        "--conf": spark_conf_argument(conf),
        "--enable-glue-datacatalog": "true",
        "--group": group,
        "--env": settings.env,
        "--project_bundle": uris.bundle,
    }
    log_store_jar = jar_uri(settings)  # Glue 5.1 lacks Delta's DynamoDB log store: deploy uploads its jar
    if log_store_jar:
        arguments["--extra-jars"] = log_store_jar
    job: dict[str, Any] = {
        "Description": (definition.description or f"featurebank feature group {group}")[:2048],
        "Role": glue.role_arn,
        "ExecutionProperty": {"MaxConcurrentRuns": 1},
        "Command": {"Name": "glueetl", "ScriptLocation": uris.script("glue_run_group"), "PythonVersion": "3"},
        "DefaultArguments": arguments,
        "MaxRetries": glue.max_retries,
        "Timeout": glue.timeout_minutes,
        "GlueVersion": GLUE_VERSION,
        "WorkerType": glue.worker_type,
        "NumberOfWorkers": glue.number_of_workers,
    }
    if glue.security_configuration:
        job["SecurityConfiguration"] = glue.security_configuration
    tags = {"featurebank:env": settings.env, "featurebank:group": group, **dict(settings.tags)}
    if definition.owner:
        tags["featurebank:owner"] = definition.owner
    job["Tags"] = tags
    return job


def glue_changes(project: Project, settings: AwsSettings, uris: ArtifactUris, groups: list[str]) -> list[Change]:
    """One Change per group's Glue job: create, update (changed fields) or unchanged."""
    from botocore.exceptions import ClientError

    glue_client = client("glue", settings.region)
    arn_prefix = f"arn:aws:glue:{settings.region}:{account_id(settings)}:job/"
    changes = []
    for group in groups:
        name = job_name(settings.env, group)
        want = desired_job(project, settings, uris, group)
        try:
            have = glue_client.get_job(JobName=name)["Job"]
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "EntityNotFoundException":
                raise
            changes.append(Change("glue job", name, "create", (), ("glue.CreateJob",), _creator(glue_client, name, want)))
            continue
        have = dict(have, Tags=glue_client.get_tags(ResourceArn=arn_prefix + name).get("Tags", {}))
        fields = diff_fields(want, have)
        if not fields:
            changes.append(Change("glue job", name, "unchanged"))
            continue
        updater = _updater(settings, glue_client, name, want, have, arn_prefix + name)
        changes.append(Change("glue job", name, "update", fields, ("glue.UpdateJob", "glue.TagResource"), updater))
    return changes


def _creator(glue_client: Any, name: str, want: dict[str, Any]) -> Any:
    def create() -> None:
        glue_client.create_job(Name=name, **want)

    return create


def _updater(settings: AwsSettings, glue_client: Any, name: str, want: dict[str, Any], have: dict[str, Any], arn: str) -> Any:
    def update() -> None:
        from botocore.exceptions import ClientError

        job_update = {k: v for k, v in want.items() if k != "Tags"}
        stale = sorted(set(have.get("Tags", {})) - set(want["Tags"]))
        call = "glue.UpdateJob"
        try:
            glue_client.update_job(JobName=name, JobUpdate=job_update)
            if stale:
                call = "glue.UntagResource"
                glue_client.untag_resource(ResourceArn=arn, TagsToRemove=stale)
            call = "glue.TagResource"
            glue_client.tag_resource(ResourceArn=arn, TagsToAdd=want["Tags"])
        except ClientError as error:
            answer = error.response.get("Error", {})
            raise RuntimeFailure(
                f"{call} of Glue job {name} in {settings.region} failed ({answer.get('Code', 'no error code')}: "
                f"{answer.get('Message', error)}); the changes printed before it were made, this one and the ones "
                "after it were not; fix the cause (the job, or the deploying role's glue permissions) and deploy "
                "again, which makes only what is still missing"
            ) from error

    return update
