"""Deployment settings from `conf/<env>.yaml` (`aws:`), and boto3 clients that honour them.

The loader passes `aws:` through raw (`Config.aws`); this module is its one reader. It checks
every key and reports all problems at once as a `ConfigError` naming `conf/<env>.yaml:line`
and the key. Credentials never come from conf: boto3's standard chain (environment, profile,
instance/task role) supplies them, and `AWS_ENDPOINT_URL` (or `AWS_ENDPOINT_URL_<SERVICE>`)
points every client at another endpoint, e.g. a local moto server in tests.
"""

from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from featurebank.definitions.model import Project
from featurebank.errors import ConfigError, Problem

GLUE_WORKER_TYPES = ("G.025X", "G.1X", "G.2X", "G.4X", "G.8X", "G.12X", "G.16X", "R.1X", "R.2X", "R.4X", "R.8X", "Z.2X")
EMR_ACTIONS_ON_FAILURE = ("CONTINUE", "CANCEL_AND_WAIT", "TERMINATE_CLUSTER")
_ARN = re.compile(r"^arn:aws[a-z-]*:[a-z0-9-]+:[a-z0-9-]*:(\d{12})?:.+$")
_SECRET_WORDS = ("secret", "password", "access_key", "token", "credential")

_KEYS: dict[str, tuple[str, ...]] = {
    "aws": ("region", "account_id", "artifacts", "kms_key_arn", "tags", "glue", "emr", "schedule"),
    "aws.glue": ("role_arn", "worker_type", "number_of_workers", "timeout_minutes", "max_retries", "security_configuration"),
    "aws.emr": ("action_on_failure", "spark_conf", "serverless_execution_role_arn"),
    "aws.schedule": ("cron", "timezone", "state_machine_role_arn", "scheduler_role_arn"),
}


@dataclass(frozen=True)
class S3Uri:
    """`s3://bucket/prefix` split into its parts (prefix without leading/trailing slash)."""

    bucket: str
    prefix: str

    @classmethod
    def parse(cls, uri: str) -> S3Uri:
        """Split `s3://bucket/some/prefix`; raises ValueError for anything else."""
        match = re.match(r"^s3a?://([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(/.*)?$", uri)
        if not match:
            raise ValueError(uri)
        return cls(match.group(1), (match.group(2) or "").strip("/"))

    def key(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    def uri(self, name: str = "") -> str:
        key = self.key(name) if name else self.prefix
        return f"s3://{self.bucket}/{key}" if key else f"s3://{self.bucket}"


@dataclass(frozen=True)
class GlueSettings:
    role_arn: str
    worker_type: str = "G.1X"
    number_of_workers: int = 2
    timeout_minutes: int = 120
    max_retries: int = 0
    security_configuration: str | None = None


@dataclass(frozen=True)
class EmrSettings:
    action_on_failure: str = "CONTINUE"
    spark_conf: tuple[tuple[str, str], ...] = ()
    serverless_execution_role_arn: str | None = None


@dataclass(frozen=True)
class ScheduleSettings:
    cron: str  # an EventBridge Scheduler expression: cron(0 2 * * ? *)
    timezone: str
    state_machine_role_arn: str
    scheduler_role_arn: str


@dataclass(frozen=True)
class AwsSettings:
    """Everything a deploy needs to know about one environment's AWS account."""

    env: str
    conf_file: str  # conf/<env>.yaml, for messages
    region: str
    artifacts: S3Uri
    account_id: str | None = None
    kms_key_arn: str | None = None
    tags: tuple[tuple[str, str], ...] = ()
    glue: GlueSettings | None = None
    emr: EmrSettings = EmrSettings()
    schedule: ScheduleSettings | None = None

    def require_glue(self) -> GlueSettings:
        """The `aws.glue` settings, or a ConfigError saying what to add."""
        if self.glue is None:
            raise ConfigError(
                Problem(self.conf_file, 0, "aws.glue is missing; add aws.glue.role_arn (and worker_type, number_of_workers)")
            )
        return self.glue

    def require_schedule(self) -> ScheduleSettings:
        """The `aws.schedule` settings, or a ConfigError saying what to add."""
        if self.schedule is None:
            raise ConfigError(
                Problem(self.conf_file, 0, "aws.schedule is missing; add aws.schedule.cron and aws.schedule.state_machine_role_arn")
            )
        return self.schedule

    def require_serverless_role(self) -> str:
        """The EMR Serverless job execution role, or a ConfigError saying what to add."""
        if not self.emr.serverless_execution_role_arn:
            raise ConfigError(
                Problem(self.conf_file, 0, "aws.emr.serverless_execution_role_arn is missing; add the job runtime role's ARN")
            )
        return self.emr.serverless_execution_role_arn


def load_settings(project: Project) -> AwsSettings:
    """Read and check `aws:` of the project's environment.

    Raises ConfigError with every problem (unknown key with a did-you-mean, missing or
    malformed value, anything that looks like a secret), each at `conf/<env>.yaml:line`.
    """
    env = project.config.env
    conf_file = f"conf/{env}.yaml"
    raw = _plain(dict(project.config.aws))
    lines = _key_lines(project.root / "conf" / f"{env}.yaml")
    reader = _Reader(conf_file, lines)
    if not raw:
        raise ConfigError(
            Problem(conf_file, 0, "no `aws:` section; add aws.region and aws.artifacts (s3://bucket/prefix) to deploy")
        )
    reader.known("aws", raw)
    region = reader.string("aws.region", raw.get("region"), required=True)
    artifacts_text = reader.string("aws.artifacts", raw.get("artifacts"), required=True)
    artifacts = S3Uri("invalid", "")
    if artifacts_text:
        try:
            artifacts = S3Uri.parse(artifacts_text)
        except ValueError:
            reader.problem("aws.artifacts", f"'{artifacts_text}' is not an S3 URI; write s3://bucket/prefix")
    account_id = reader.string("aws.account_id", raw.get("account_id"))
    if account_id and not re.fullmatch(r"\d{12}", account_id):
        reader.problem("aws.account_id", f"'{account_id}' is not a 12-digit AWS account id")
    kms = reader.arn("aws.kms_key_arn", raw.get("kms_key_arn"))
    tags = reader.mapping("aws.tags", raw.get("tags"))

    glue = None
    if raw.get("glue") is not None:
        g = reader.section("aws.glue", raw["glue"])
        worker_type = reader.string("aws.glue.worker_type", g.get("worker_type")) or "G.1X"
        if worker_type not in GLUE_WORKER_TYPES:
            reader.problem("aws.glue.worker_type", f"'{worker_type}' is not a Glue worker type; use one of {', '.join(GLUE_WORKER_TYPES)}")
        glue = GlueSettings(
            role_arn=reader.arn("aws.glue.role_arn", g.get("role_arn"), required=True) or "",
            worker_type=worker_type,
            number_of_workers=reader.integer("aws.glue.number_of_workers", g.get("number_of_workers"), 2, minimum=2),
            timeout_minutes=reader.integer("aws.glue.timeout_minutes", g.get("timeout_minutes"), 120, minimum=1),
            max_retries=reader.integer("aws.glue.max_retries", g.get("max_retries"), 0, minimum=0),
            security_configuration=reader.string("aws.glue.security_configuration", g.get("security_configuration")),
        )

    emr = EmrSettings()
    if raw.get("emr") is not None:
        e = reader.section("aws.emr", raw["emr"])
        action = reader.string("aws.emr.action_on_failure", e.get("action_on_failure")) or "CONTINUE"
        if action not in EMR_ACTIONS_ON_FAILURE:
            reader.problem("aws.emr.action_on_failure", f"'{action}' is not one of {', '.join(EMR_ACTIONS_ON_FAILURE)}")
        emr = EmrSettings(
            action_on_failure=action,
            spark_conf=reader.mapping("aws.emr.spark_conf", e.get("spark_conf")),
            serverless_execution_role_arn=reader.arn("aws.emr.serverless_execution_role_arn", e.get("serverless_execution_role_arn")),
        )

    schedule = None
    if raw.get("schedule") is not None:
        s = reader.section("aws.schedule", raw["schedule"])
        cron = reader.string("aws.schedule.cron", s.get("cron"), required=True) or ""
        if cron and not cron.startswith(("cron(", "rate(")):
            cron = f"cron({cron})"
        sm_role = reader.arn("aws.schedule.state_machine_role_arn", s.get("state_machine_role_arn"), required=True) or ""
        schedule = ScheduleSettings(
            cron=cron,
            timezone=reader.string("aws.schedule.timezone", s.get("timezone")) or project.config.timezone,
            state_machine_role_arn=sm_role,
            scheduler_role_arn=reader.arn("aws.schedule.scheduler_role_arn", s.get("scheduler_role_arn")) or sm_role,
        )
    reader.raise_if_any()
    return AwsSettings(
        env=env,
        conf_file=conf_file,
        region=region or "",
        artifacts=artifacts,
        account_id=account_id,
        kms_key_arn=kms,
        tags=tags,
        glue=glue,
        emr=emr,
        schedule=schedule,
    )


def client(service: str, settings: AwsSettings, **config: Any) -> Any:
    """A boto3 client in the environment's region (`featurebank.io.aws.client`)."""
    from featurebank.io import aws

    return aws.client(service, settings.region, **config)


def account_id(settings: AwsSettings) -> str:
    """The account the ARNs of this environment live in: conf's `account_id`, else STS."""
    if settings.account_id:
        return settings.account_id
    return str(client("sts", settings).get_caller_identity()["Account"])


# --- reading the raw section ---------------------------------------------------------------


class _Reader:
    def __init__(self, conf_file: str, lines: dict[str, int]) -> None:
        self.conf_file = conf_file
        self.lines = lines
        self.problems: list[Problem] = []

    def line(self, key: str) -> int:
        while key:
            if key in self.lines:
                return self.lines[key]
            key = key.rpartition(".")[0]
        return 0

    def problem(self, key: str, message: str) -> None:
        self.problems.append(Problem(self.conf_file, self.line(key), f"{key}: {message}"))

    def known(self, path: str, mapping: dict[str, Any]) -> None:
        for key in mapping:
            if any(word in str(key).lower() for word in _SECRET_WORDS):
                self.problem(f"{path}.{key}", "secrets never go in conf; remove it and let the standard AWS credential chain supply credentials")
            elif key not in _KEYS[path]:
                close = difflib.get_close_matches(str(key), _KEYS[path], n=1)
                hint = f"did you mean '{close[0]}'?" if close else f"known keys: {', '.join(_KEYS[path])}"
                self.problem(f"{path}.{key}", f"unknown key; {hint}")

    def section(self, path: str, value: Any) -> dict[str, Any]:
        if value == []:
            return {}
        if not isinstance(value, dict):
            self.problem(path, "must be a mapping of settings")
            return {}
        self.known(path, value)
        return value

    def string(self, key: str, value: Any, *, required: bool = False) -> str | None:
        if value is None or value == "":
            if required:
                self.problem(key, "is missing; add it")
            return None
        if not isinstance(value, (str, int)) or isinstance(value, bool):
            self.problem(key, "must be a string")
            return None
        return str(value)

    def arn(self, key: str, value: Any, *, required: bool = False) -> str | None:
        text = self.string(key, value, required=required)
        if text and not _ARN.match(text):
            self.problem(key, f"'{text}' is not an ARN; write arn:aws:<service>:<region>:<account>:<resource>")
            return None
        return text

    def integer(self, key: str, value: Any, default: int, *, minimum: int) -> int:
        if value is None:
            return default
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            self.problem(key, f"must be a whole number >= {minimum}")
            return default
        return value

    def mapping(self, key: str, value: Any) -> tuple[tuple[str, str], ...]:
        if value is None or value == [] or value == ():
            return ()
        if not isinstance(value, dict):
            self.problem(key, "must be a mapping of names to values")
            return ()
        return tuple(sorted((str(k), str(v)) for k, v in value.items()))

    def raise_if_any(self) -> None:
        if self.problems:
            raise ConfigError(self.problems)


def _plain(value: Any) -> Any:
    """Tuples of pairs (how the loader may freeze mappings) back into dicts."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, tuple) and value and all(isinstance(p, tuple) and len(p) == 2 and isinstance(p[0], str) for p in value):
        return {k: _plain(v) for k, v in value}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _key_lines(path: Path) -> dict[str, int]:
    """`aws.glue.role_arn` -> line number in the conf file, for messages (best effort)."""
    import yaml

    try:
        root = yaml.compose(path.read_text())
    except (OSError, yaml.YAMLError):
        return {}
    lines: dict[str, int] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                name = f"{prefix}.{key_node.value}" if prefix else str(key_node.value)
                lines[name] = key_node.start_mark.line + 1
                walk(value_node, name)

    walk(root, "")
    return lines
