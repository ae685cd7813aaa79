"""The typed conf: one environment's `conf/<env>.yaml` as frozen values, parsed once.

`load_project` (through `definitions.conf_load.load_config`) reads the file once, checks every
section, reports every problem at once as one `ConfigError` at `conf/<env>.yaml:line`, and
returns a `Config`. Everything downstream reads these values; nothing reads conf again:

    config.aws.glue.worker_type           # deploy (None when conf has no aws: section)
    config.require_aws().require_glue()   # the same, or a ConfigError saying what to add
    config.governance.consumers           # grants and the training-set access check
    config.spark.conf                     # the Spark session

Credentials never come from conf (a secret-looking key is refused when conf is read); the
AWS standard credential chain supplies them. Pure values: no I/O, no AWS, no Spark.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from featurebank.definitions.model import NOWHERE, Location
from featurebank.errors import ConfigError, Problem

CatalogType = Literal["none", "glue", "hive"]
CATALOG_TYPES: tuple[CatalogType, ...] = ("none", "glue", "hive")
GLUE_WORKER_TYPES = ("G.025X", "G.1X", "G.2X", "G.4X", "G.8X", "G.12X", "G.16X", "R.1X", "R.2X", "R.4X", "R.8X", "Z.2X")
EMR_ACTIONS_ON_FAILURE = ("CONTINUE", "CANCEL_AND_WAIT", "TERMINATE_CLUSTER")
SCHEDULE_TARGETS = ("glue", "emr", "emr-serverless")
EMR_ARCHITECTURES = ("x86_64", "aarch64")  # the nodes' CPU; aarch64: Graviton
PII = "pii"  # the tag key featurebank computes for every column (lineage), values PII_VALUES
PII_VALUES = ("true", "false")
_S3_URI = re.compile(r"^s3a?://([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(/.*)?$")


def tag_value(value: object) -> str:
    """A tag value as Lake Formation stores it: text; YAML booleans become `true` / `false`."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# --- aws: ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class S3Uri:
    """`s3://bucket/prefix` split into its parts (prefix without leading/trailing slash)."""

    bucket: str
    prefix: str

    @classmethod
    def parse(cls, uri: str) -> S3Uri:
        """Split `s3://bucket/some/prefix` (or `s3a://`); raises ValueError for anything else."""
        match = _S3_URI.match(uri)
        if not match:
            raise ValueError(uri)
        return cls(match.group(1), (match.group(2) or "").strip("/"))

    def key(self, name: str) -> str:
        """The object key of `name` under the prefix."""
        return f"{self.prefix}/{name}" if self.prefix else name

    def uri(self, name: str = "") -> str:
        """`s3://bucket/prefix[/name]`."""
        key = self.key(name) if name else self.prefix
        return f"s3://{self.bucket}/{key}" if key else f"s3://{self.bucket}"


@dataclass(frozen=True)
class GlueSettings:
    """`aws.glue`: how each group's AWS Glue job runs."""

    role_arn: str
    worker_type: str = "G.1X"
    number_of_workers: int = 2
    timeout_minutes: int = 120
    max_retries: int = 0
    security_configuration: str | None = None


@dataclass(frozen=True)
class EmrSettings:
    """`aws.emr`: EMR steps and EMR Serverless job runs."""

    action_on_failure: str = "CONTINUE"
    spark_conf: tuple[tuple[str, str], ...] = ()
    serverless_execution_role_arn: str | None = None
    architecture: str = "x86_64"  # of the nodes: the environment archive's wheels (aarch64: Graviton)


@dataclass(frozen=True)
class ScheduleSettings:
    """`aws.schedule`: the daily Step Functions run started by EventBridge Scheduler."""

    cron: str  # an EventBridge Scheduler expression: cron(0 2 * * ? *)
    timezone: str
    state_machine_role_arn: str
    scheduler_role_arn: str
    target: str = "glue"  # what each state runs: a Glue job, an EMR step, an EMR Serverless job run
    cluster_id: str | None = None  # target emr: the cluster the steps go to
    application_id: str | None = None  # target emr-serverless: the application the job runs start on


@dataclass(frozen=True)
class AwsSettings:
    """`aws:`: everything a deploy needs to know about one environment's AWS account."""

    env: str
    conf_file: str  # conf/<env>.yaml, for messages
    region: str
    artifacts: S3Uri
    account_id: str | None = None
    kms_key_arn: str | None = None
    tags: tuple[tuple[str, str], ...] = ()
    # DynamoDB table of Delta's S3DynamoDBLogStore (safe concurrent writers; `deploy` creates it)
    delta_log_table: str | None = None
    # Local path of that log store's jar for Glue (`deploy glue` uploads it; else found in ~/.ivy2*, ~/.m2)
    delta_log_store_jar: str | None = None
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


# --- governance: ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Consumer:
    """One grant conf gives: `principal` may SELECT every column whose tags match `tag_expression`.

    `tag_expression` is (key, allowed values) pairs, keys sorted, values as conf lists them.
    """

    principal: str  # an IAM role/user ARN or a 12-digit account id
    tag_expression: tuple[tuple[str, tuple[str, ...]], ...]
    description: str = ""
    loc: Location = NOWHERE

    def allowed(self, key: str) -> tuple[str, ...] | None:
        """The values this grant allows for `key`, or None when the grant does not constrain it."""
        return dict(self.tag_expression).get(key)

    def expression_text(self) -> str:
        """`{domain: [cards, fraud], pii: [false]}`, as conf writes it."""
        return "{" + ", ".join(f"{k}: [{', '.join(v)}]" for k, v in self.tag_expression) + "}"


@dataclass(frozen=True)
class Governance:
    """`governance:`: the tag vocabulary, Lake Formation, and who may read what.

    `tags` is the vocabulary (key → allowed values, text); empty means "not declared", and
    then any tag is accepted. `pii` is always a key, with values true and false.
    """

    conf_file: str = ""  # conf/<env>.yaml, for messages
    tags: tuple[tuple[str, tuple[str, ...]], ...] = ()
    declared: bool = False  # conf declares `tags:` (then unknown tags in definitions are errors)
    lake_formation: bool = False
    lf_tags: tuple[str, ...] = ()  # the tag keys Lake Formation governs; () = every key (no vocabulary)
    identity: str | None = None
    consumers: tuple[Consumer, ...] = ()
    erasers: tuple[str, ...] = ()  # who may run `featurebank erase` (issue 23); none: nobody
    erasure_salt: str | None = None  # salts the key hashes of `_erasures` (a secret: ${env:NAME})

    @property
    def vocabulary(self) -> dict[str, tuple[str, ...]]:
        """Tag key → allowed values, `pii` always included."""
        values = dict(self.tags)
        values.setdefault(PII, PII_VALUES)
        return values

    def grants_of(self, principal: str) -> tuple[Consumer, ...]:
        """Every grant conf gives `principal` (a principal may appear in several entries)."""
        return tuple(c for c in self.consumers if c.principal == principal)


# --- spark: and the whole conf ---------------------------------------------------------------


@dataclass(frozen=True)
class SparkSettings:
    """`spark:`: settings every Spark session of the environment starts with."""

    conf: tuple[tuple[str, str], ...] = ()  # (key, value as text), in conf order


@dataclass(frozen=True)
class Config:
    """One environment's settings from `conf/<env>.yaml`, checked, with paths already resolved."""

    env: str
    feature_root: str  # absolute path or URI (s3://...)
    variables: tuple[tuple[str, str], ...] = ()
    timezone: str = "UTC"
    catalog_type: CatalogType = "none"
    catalog_database: str | None = None
    # values of the ${env:NAME} the project reads: used as they are, masked wherever text is
    # printed or stored (featurebank.redact); never shown by repr
    secrets: tuple[str, ...] = field(default=(), repr=False)
    spark: SparkSettings = SparkSettings()
    aws: AwsSettings | None = None  # None: conf has no aws: section (this environment cannot deploy)
    governance: Governance = Governance()
    retention_days: int = 3650  # Delta log and deleted-file retention of every table (see retention.py)
    loc: Location = NOWHERE
    allow_functions: tuple[str, ...] = ()  # refused Spark functions conf allows (`expressions:`)

    @property
    def conf_file(self) -> str:
        """`conf/<env>.yaml`, as messages name it."""
        return f"conf/{self.env}.yaml"

    def require_aws(self) -> AwsSettings:
        """The `aws:` settings, or a ConfigError saying what to add to deploy."""
        if self.aws is None:
            raise ConfigError(
                Problem(self.conf_file, 0, "no `aws:` section; add aws.region and aws.artifacts (s3://bucket/prefix) to deploy")
            )
        return self.aws

