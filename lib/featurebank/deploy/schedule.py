"""`featurebank deploy schedule`: a Step Functions state machine that runs every feature
group's Glue job in run order, and an EventBridge Scheduler schedule that starts it daily.

The state machine `featurebank-<env>` has one Task per group
(`arn:aws:states:::glue:startJobRun.sync`, so a state waits for its job to finish) with a
Retry, chained in `featurebank.compile.order.run_order(project)` order: a group reading another
group's table runs after it. Each job runs with no `--date`, i.e. today's snapshot in the
project time zone. Both resources are compared with what exists and created, updated or
left unchanged.
"""

from __future__ import annotations

import json
from typing import Any

from featurebank.compile.changes import Change, diff_fields
from featurebank.compile.order import run_order
from featurebank.definitions.config import AwsSettings
from featurebank.definitions.model import Project
from featurebank.deploy.aws import account_id
from featurebank.deploy.glue import job_name
from featurebank.io.aws import client

GLUE_SYNC = "arn:aws:states:::glue:startJobRun.sync"
RETRY = [{"ErrorEquals": ["States.ALL"], "IntervalSeconds": 300, "MaxAttempts": 2, "BackoffRate": 2.0}]


def state_machine_name(env: str) -> str:
    return f"featurebank-{env}"


def state_machine_definition(project: Project, settings: AwsSettings) -> dict[str, Any]:
    """The Amazon States Language document: every group's Glue job, in run order."""
    groups = list(run_order(project))
    states: dict[str, Any] = {}
    for index, group in enumerate(groups):
        state: dict[str, Any] = {
            "Type": "Task",
            "Resource": GLUE_SYNC,
            "Parameters": {"JobName": job_name(settings.env, group)},
            "Retry": RETRY,
        }
        if index + 1 < len(groups):
            state["Next"] = groups[index + 1]
        else:
            state["End"] = True
        states[group] = state
    return {
        "Comment": f"featurebank {settings.env}: every feature group's Glue job in run order",
        "StartAt": groups[0] if groups else "Done",
        "States": states or {"Done": {"Type": "Succeed"}},
    }


def schedule_changes(project: Project, settings: AwsSettings) -> list[Change]:
    """Changes for the state machine and the schedule that starts it."""
    from botocore.exceptions import ClientError

    schedule = settings.require_schedule()
    sfn = client("stepfunctions", settings.region)
    scheduler = client("scheduler", settings.region)
    name = state_machine_name(settings.env)
    arn = f"arn:aws:states:{settings.region}:{account_id(settings)}:stateMachine:{name}"
    definition = state_machine_definition(project, settings)
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
