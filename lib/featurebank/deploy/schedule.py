"""`featurebank deploy schedule`: a Step Functions state machine that runs every feature
group in run order on the schedule's target, and an EventBridge Scheduler schedule that
starts it daily.

The state machine `featurebank-<env>` has one Task per group with a Retry, chained in
`featurebank.compile.order.run_order(project)` order (a group reading another group's table
runs after it). Each Task uses the platform's `.sync` integration, so a state ends when its
run ends and a failed run fails the state (AWS Step Functions developer guide: "Run a Job
(.sync)"; connect-glue, connect-emr, connect-emr-serverless):
- `aws.schedule.target: glue` (default): `arn:aws:states:::glue:startJobRun.sync`, the group's job;
- `emr`: `arn:aws:states:::elasticmapreduce:addStep.sync`, the step `deploy emr` would add, on
  `aws.schedule.cluster_id`;
- `emr-serverless`: `arn:aws:states:::emr-serverless:startJobRun.sync`, the job run
  `deploy emr-serverless` would start, on `aws.schedule.application_id`.
Each run gets no `--date`, i.e. today's snapshot in the project time zone: the schedule is the
only thing that runs a date nobody named. Both resources are compared with what exists and
created, updated or left unchanged.
"""

from __future__ import annotations

import json
from typing import Any

from featurebank.compile.changes import Change, diff_fields
from featurebank.compile.order import run_order
from featurebank.definitions.config import AwsSettings
from featurebank.definitions.model import Project
from featurebank.deploy.aws import account_id
from featurebank.deploy.emr import serverless_job_driver, step_args
from featurebank.deploy.glue import job_name
from featurebank.deploy.upload import ArtifactUris
from featurebank.errors import UsageError
from featurebank.io.aws import client

GLUE_SYNC = "arn:aws:states:::glue:startJobRun.sync"
EMR_STEP_SYNC = "arn:aws:states:::elasticmapreduce:addStep.sync"
EMR_SERVERLESS_SYNC = "arn:aws:states:::emr-serverless:startJobRun.sync"
RETRY = [{"ErrorEquals": ["States.ALL"], "IntervalSeconds": 300, "MaxAttempts": 2, "BackoffRate": 2.0}]


def state_machine_name(env: str) -> str:
    return f"featurebank-{env}"


def needs_artifacts(settings: AwsSettings) -> bool:
    """True when the schedule's states name the uploaded artifacts (EMR targets), so
    `deploy schedule` builds and uploads them first."""
    return settings.require_schedule().target != "glue"


def state_machine_definition(project: Project, settings: AwsSettings, uris: ArtifactUris | None = None) -> dict[str, Any]:
    """The Amazon States Language document: every group's run on the schedule's target, in run
    order. `uris` (the uploaded artifacts) are needed for the EMR targets."""
    schedule = settings.require_schedule()
    if schedule.target != "glue" and uris is None:
        raise UsageError(f"the {schedule.target} schedule runs the uploaded artifacts; build and upload them first")
    groups = list(run_order(project))
    states: dict[str, Any] = {}
    for index, group in enumerate(groups):
        state: dict[str, Any] = {"Type": "Task", **_task(settings, group, uris), "Retry": RETRY}
        if index + 1 < len(groups):
            state["Next"] = groups[index + 1]
        else:
            state["End"] = True
        states[group] = state
    return {
        "Comment": f"featurebank {settings.env}: every feature group's run on {schedule.target}, in run order",
        "StartAt": groups[0] if groups else "Done",
        "States": states or {"Done": {"Type": "Succeed"}},
    }


def _task(settings: AwsSettings, group: str, uris: ArtifactUris | None) -> dict[str, Any]:
    """`Resource` and `Parameters` of one group's Task on the schedule's target."""
    schedule = settings.require_schedule()
    if schedule.target == "glue" or uris is None:
        return {"Resource": GLUE_SYNC, "Parameters": {"JobName": job_name(settings.env, group)}}
    name = f"featurebank-{settings.env}-{group}"
    if schedule.target == "emr":
        step = {"Name": name, "ActionOnFailure": settings.emr.action_on_failure,
                "HadoopJarStep": {"Jar": "command-runner.jar", "Args": step_args(settings, uris, group)}}
        return {"Resource": EMR_STEP_SYNC, "Parameters": {"ClusterId": schedule.cluster_id, "Step": step}}
    return {"Resource": EMR_SERVERLESS_SYNC, "Parameters": {
        "ApplicationId": schedule.application_id,
        "ExecutionRoleArn": settings.require_serverless_role(),
        "Name": name,
        "JobDriver": _pascal(serverless_job_driver(settings, uris, group)),
        "Tags": {"featurebank:env": settings.env, "featurebank:group": group, **dict(settings.tags)},
    }}


def _pascal(value: Any) -> Any:
    """EMR Serverless' camelCase request keys as Step Functions' optimized integration spells
    them (`sparkSubmit` -> `SparkSubmit`); values are left alone."""
    if isinstance(value, dict):
        return {key[:1].upper() + key[1:]: _pascal(item) for key, item in value.items()}
    return value


def schedule_changes(project: Project, settings: AwsSettings, uris: ArtifactUris | None = None) -> list[Change]:
    """Changes for the state machine and the schedule that starts it (`uris`: the uploaded
    artifacts, for the EMR targets)."""
    from botocore.exceptions import ClientError

    schedule = settings.require_schedule()
    sfn = client("stepfunctions", settings.region)
    scheduler = client("scheduler", settings.region)
    name = state_machine_name(settings.env)
    arn = f"arn:aws:states:{settings.region}:{account_id(settings)}:stateMachine:{name}"
    definition = state_machine_definition(project, settings, uris)
    text = json.dumps(definition, indent=2, sort_keys=True)
    changes = []
    try:
        have = sfn.describe_state_machine(stateMachineArn=arn)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != "StateMachineDoesNotExist":
            raise

        def create_machine() -> None:
            sfn.create_state_machine(
                name=name, definition=text, roleArn=schedule.state_machine_role_arn, type="STANDARD",
                tags=[{"key": k, "value": v} for k, v in _tags(settings).items()],
            )

        changes.append(Change("state machine", name, "create", (), ("states.CreateStateMachine",), create_machine))
    else:
        fields = diff_fields(
            {"definition": definition, "roleArn": schedule.state_machine_role_arn},
            {"definition": json.loads(have["definition"]), "roleArn": have["roleArn"]},
        )
        if fields:

            def update_machine() -> None:
                sfn.update_state_machine(stateMachineArn=arn, definition=text, roleArn=schedule.state_machine_role_arn)

            changes.append(Change("state machine", name, "update", fields, ("states.UpdateStateMachine",), update_machine))
        else:
            changes.append(Change("state machine", name, "unchanged"))

    want = {
        "ScheduleExpression": schedule.cron,
        "ScheduleExpressionTimezone": schedule.timezone,
        "FlexibleTimeWindow": {"Mode": "OFF"},
        "Target": {"Arn": arn, "RoleArn": schedule.scheduler_role_arn, "Input": "{}"},
        "State": "ENABLED",
        "Description": f"featurebank {settings.env}: daily feature group runs",
    }
    try:
        current = scheduler.get_schedule(Name=name)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
            raise
        changes.append(Change("schedule", name, "create", (), ("scheduler.CreateSchedule",), lambda: scheduler.create_schedule(Name=name, **want)))
        return changes
    have_target = {k: current.get("Target", {}).get(k) for k in want["Target"]}
    fields = diff_fields(want, dict(current, Target=have_target))
    if fields:
        changes.append(Change("schedule", name, "update", fields, ("scheduler.UpdateSchedule",), lambda: scheduler.update_schedule(Name=name, **want)))
    else:
        changes.append(Change("schedule", name, "unchanged"))
    return changes


def _tags(settings: AwsSettings) -> dict[str, str]:
    return {"featurebank:env": settings.env, **dict(settings.tags)}
