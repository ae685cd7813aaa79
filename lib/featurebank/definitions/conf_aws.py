"""`aws:` of `conf/<env>.yaml` → `AwsSettings`: the deployment settings, checked as conf is read.

Every key is checked and every problem reported (an unknown key with a did-you-mean, a
missing or malformed value, anything that looks like a secret), each at `conf/<env>.yaml:line`
and named by its dotted key (`aws.glue.worker_type: ...`). Credentials never come from conf:
the standard AWS credential chain supplies them.
"""

from __future__ import annotations

import re
from typing import Any

from featurebank.definitions.config import (
    EMR_ACTIONS_ON_FAILURE,
    EMR_ARCHITECTURES,
    GLUE_WORKER_TYPES,
    SCHEDULE_TARGETS,
    AwsSettings,
    EmrSettings,
    GlueSettings,
    S3Uri,
    ScheduleSettings,
)
from featurebank.definitions.loader import YList, YMap, did_you_mean
from featurebank.errors import Problem

_ARN = re.compile(r"^arn:aws[a-z-]*:[a-z0-9-]+:[a-z0-9-]*:(\d{12})?:.+$")
_SECRET_WORDS = ("secret", "password", "access_key", "token", "credential")
KEYS: dict[str, tuple[str, ...]] = {
    "aws": ("region", "account_id", "artifacts", "kms_key_arn", "delta_log_table", "delta_log_store_jar", "tags", "glue", "emr", "schedule"),
    "aws.glue": ("role_arn", "worker_type", "number_of_workers", "timeout_minutes", "max_retries", "security_configuration"),
    "aws.emr": ("action_on_failure", "spark_conf", "serverless_execution_role_arn", "architecture"),
    "aws.schedule": ("cron", "timezone", "state_machine_role_arn", "scheduler_role_arn", "target", "cluster_id",
                     "application_id"),
}


def parse_aws(data: YMap | None, env: str, rel: str, line: int, timezone: str, problems: list[Problem]) -> AwsSettings | None:
    """Check `aws:` (`data`, written at `line` of `rel`); None when conf has no such section.

    Appends a problem for every mistake; `timezone` (conf's) is the schedule's default.
    """
    if data is None:
        return None
    reader = _Reader(rel, problems)
    aws = reader.section("aws", data, line)
    region = reader.string(aws, "region", required=True)
    artifacts_text = reader.string(aws, "artifacts", required=True)
    artifacts = S3Uri("invalid", "")
    if artifacts_text:
        try:
            artifacts = S3Uri.parse(artifacts_text)
        except ValueError:
            reader.problem(aws, "artifacts", f"'{artifacts_text}' is not an S3 URI; write s3://bucket/prefix")
    account_id = reader.string(aws, "account_id")
    if account_id and not re.fullmatch(r"\d{12}", account_id):
        reader.problem(aws, "account_id", f"'{account_id}' is not a 12-digit AWS account id")

    glue = None
    if aws.get("glue") is not None:
        g = reader.section("aws.glue", aws.get("glue"), aws.line_of("glue"))
        worker_type = reader.string(g, "worker_type") or "G.1X"
        if worker_type not in GLUE_WORKER_TYPES:
            reader.problem(g, "worker_type", f"'{worker_type}' is not a Glue worker type; use one of {', '.join(GLUE_WORKER_TYPES)}")
        glue = GlueSettings(
            role_arn=reader.arn(g, "role_arn", required=True) or "",
            worker_type=worker_type,
            number_of_workers=reader.integer(g, "number_of_workers", 2, minimum=2),
            timeout_minutes=reader.integer(g, "timeout_minutes", 120, minimum=1),
            max_retries=reader.integer(g, "max_retries", 0, minimum=0),
            security_configuration=reader.string(g, "security_configuration"),
        )

    emr = EmrSettings()
    if aws.get("emr") is not None:
        e = reader.section("aws.emr", aws.get("emr"), aws.line_of("emr"))
        action = reader.string(e, "action_on_failure") or "CONTINUE"
        if action not in EMR_ACTIONS_ON_FAILURE:
            reader.problem(e, "action_on_failure", f"'{action}' is not one of {', '.join(EMR_ACTIONS_ON_FAILURE)}")
        architecture = reader.string(e, "architecture") or "x86_64"
        if architecture not in EMR_ARCHITECTURES:
            reader.problem(e, "architecture", f"'{architecture}' is not one of {', '.join(EMR_ARCHITECTURES)} (the nodes' CPU: aarch64 for Graviton)")
        emr = EmrSettings(
            action_on_failure=action,
            spark_conf=reader.mapping(e, "spark_conf"),
            serverless_execution_role_arn=reader.arn(e, "serverless_execution_role_arn"),
            architecture=architecture,
        )

    schedule = None
    if aws.get("schedule") is not None:
        s = reader.section("aws.schedule", aws.get("schedule"), aws.line_of("schedule"))
        cron = reader.string(s, "cron", required=True) or ""
        if cron and not cron.startswith(("cron(", "rate(")):
            cron = f"cron({cron})"
        state_machine_role = reader.arn(s, "state_machine_role_arn", required=True) or ""
        target = reader.string(s, "target") or "glue"
        if target not in SCHEDULE_TARGETS:
            reader.problem(s, "target", f"'{target}' is not one of {', '.join(SCHEDULE_TARGETS)}")
        cluster_id, application_id = reader.string(s, "cluster_id"), reader.string(s, "application_id")
        if target == "emr" and not cluster_id:
            reader.problem(s, "target", "target emr needs aws.schedule.cluster_id (the EMR cluster, j-...)")
        if target == "emr-serverless" and not application_id:
            reader.problem(s, "target", "target emr-serverless needs aws.schedule.application_id")
        schedule = ScheduleSettings(
            cron=cron,
            timezone=reader.string(s, "timezone") or timezone,
            state_machine_role_arn=state_machine_role,
            scheduler_role_arn=reader.arn(s, "scheduler_role_arn") or state_machine_role,
            target=target,
            cluster_id=cluster_id,
            application_id=application_id,
        )
    return AwsSettings(
        env=env,
        conf_file=rel,
        region=region or "",
        artifacts=artifacts,
        account_id=account_id,
        kms_key_arn=reader.arn(aws, "kms_key_arn"),
        tags=reader.mapping(aws, "tags"),
        delta_log_table=_table_name(reader, aws, "delta_log_table"),
        delta_log_store_jar=reader.string(aws, "delta_log_store_jar"),
        glue=glue,
        emr=emr,
        schedule=schedule,
    )


def _table_name(reader: _Reader, section: _Section, key: str) -> str | None:
    """A DynamoDB table name (3-255 of `A-Za-z0-9_.-`); anything else is a problem."""
    text = reader.string(section, key)
    if text and not re.fullmatch(r"[A-Za-z0-9_.-]{3,255}", text):
        reader.problem(section, key, f"'{text}' is not a DynamoDB table name; use 3-255 letters, digits, '_', '-' or '.'")
        return None
    return text


class _Section(YMap):
    """A checked mapping of `aws:` that knows its dotted path (`aws.glue`)."""

    def __init__(self, path: str, line: int) -> None:
        super().__init__(line)
        self.path = path


class _Reader:
    """Reads typed values out of `aws:` mappings, appending a problem for each mistake."""

    def __init__(self, rel: str, problems: list[Problem]) -> None:
        self.rel = rel
        self.problems = problems

    def problem(self, section: _Section, key: str, message: str) -> None:
        """A problem about `<section>.<key>`, at the key's line (else the section's)."""
        self.problems.append(Problem(self.rel, section.line_of(key), f"{section.path}.{key}: {message}"))

    def section(self, path: str, value: Any, line: int) -> _Section:
        """`value` as a section at `path`; unknown and secret-looking keys are problems."""
        section = _Section(path, line)
        if value is None or value == []:
            return section
        if not isinstance(value, YMap):
            self.problems.append(Problem(self.rel, line, f"{path}: must be a mapping of settings"))
            return section
        for key, item in value.items():
            section[key] = item
            section.key_lines[key] = value.line_of(key)
            if any(word in key.lower() for word in _SECRET_WORDS):
                self.problem(section, key, "secrets never go in conf; remove it and let the standard AWS credential chain supply credentials")
            elif key not in KEYS[path]:
                self.problem(section, key, "unknown key" + (did_you_mean(key, KEYS[path]) or f"; known keys: {', '.join(KEYS[path])}"))
        return section  # its own line is where the section's key is: a missing key is reported there

    def string(self, section: _Section, key: str, *, required: bool = False) -> str | None:
        """Text (a number is taken as text); None when absent."""
        value = section.get(key)
        if value is None or value == "":
            if required:
                self.problem(section, key, "is missing; add it")
            return None
        if not isinstance(value, (str, int)) or isinstance(value, bool):
            self.problem(section, key, "must be a string")
            return None
        return str(value)

    def arn(self, section: _Section, key: str, *, required: bool = False) -> str | None:
        """An ARN; anything else is a problem."""
        text = self.string(section, key, required=required)
        if text and not _ARN.match(text):
            self.problem(section, key, f"'{text}' is not an ARN; write arn:aws:<service>:<region>:<account>:<resource>")
            return None
        return text

    def integer(self, section: _Section, key: str, default: int, *, minimum: int) -> int:
        """A whole number >= `minimum`; `default` when absent."""
        value = section.get(key)
        if value is None:
            return default
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            self.problem(section, key, f"must be a whole number >= {minimum}")
            return default
        return value

    def mapping(self, section: _Section, key: str) -> tuple[tuple[str, str], ...]:
        """Names to values as sorted text pairs; () when absent."""
        value = section.get(key)
        if value is None or (isinstance(value, YList) and not value):
            return ()
        if not isinstance(value, YMap):
            self.problem(section, key, "must be a mapping of names to values")
            return ()
        return tuple(sorted((str(k), str(v)) for k, v in value.items()))
