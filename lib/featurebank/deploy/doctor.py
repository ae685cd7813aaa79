"""`featurebank doctor`: check an environment's AWS account before anything runs on it.

One `Check` per line of the checklist, each passed (✓), failed (✗, with the fix) or unknown
(?, with why it could not be checked): what cannot be read is never passed. The checks:
- the AWS account the credentials belong to is conf's `aws.account_id`;
- the target's Spark, Delta and Python (Glue version of the jobs, or of what deploy creates;
  an EMR cluster's or EMR Serverless application's release label) are the ones of the lane the
  job carries (`deploy.versions.LANES`; a Glue job's lane is its wheels' CPython tag, otherwise
  the lane deploy builds): Glue 6.0 runs the Spark 4.1 lane, Glue 5.x and EMR 7.x the 3.5 lane;
- every S3 bucket and prefix conf names exists; the feature root and the artifacts prefix are
  writable (a probe object is put, SSE-KMS with conf's key, and deleted);
- the KMS key exists, is enabled and makes data keys;
- the job role's policies allow everything `featurebank iam-policy` lists, and
  `lakeformation:GetDataAccess` when `governance.lake_formation` is true (read from the role's
  inline and attached policies: Allow/Deny, actions and resources with wildcards; conditions,
  permission boundaries and SCPs are not evaluated);
- concurrent Delta writers on S3: with `aws.delta_log_table`, `s3_write_conf` names the
  `S3DynamoDBLogStore` for s3:// and s3a:// (no `aws.emr.spark_conf` override undoes it), the
  DynamoDB table exists with Delta's key schema, and on Glue the log-store jar is at the S3 key
  `--extra-jars` names; without it, the raw Spark keys in conf and their table;
- every bucket, the key and the log-store table are in conf's region.
`run_doctor` raises `AwsUnreachable` (exit 3) when AWS cannot be reached at all (no
credentials, endpoint not answering); everything else is a line.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from featurebank.definitions.config import AwsSettings, S3Uri
from featurebank.definitions.model import Project
from featurebank.deploy.doctor_iam import role_check
from featurebank.deploy.dynamodb import KEY_SCHEMA
from featurebank.deploy.glue import GLUE_VERSION, job_name
from featurebank.deploy.iam import s3_prefixes
from featurebank.deploy.log_store_jar import coordinates, jar_key, jar_uri
from featurebank.deploy.versions import (LANES, TESTED, Runtime, emr_runtime, glue_runtime, lane_fix, lane_for_python,
                                         lane_problems, wheels_python)
from featurebank.errors import AwsFailure
from featurebank.io.aws import aws_errors, client, explain
from featurebank.io.spark import LOG_STORE_CLASS, s3_write_conf

Status = Literal["pass", "fail", "unknown"]
TargetKind = Literal["glue", "emr", "emr-serverless"]
SYMBOLS = {"pass": "✓", "fail": "✗", "unknown": "?"}
PROBE_DIR = "_featurebank_doctor"
LOG_STORE_KEYS = ("spark.delta.logStore.s3.impl", "spark.delta.logStore.s3a.impl")
DDB_TABLE_KEY = "spark.io.delta.storage.S3DynamoDBLogStore.ddb.tableName"
DDB_REGION_KEY = "spark.io.delta.storage.S3DynamoDBLogStore.ddb.region"
DDB_DEFAULT_TABLE = "delta_log"  # Delta's default when the table name is not set


@dataclass(frozen=True)
class Check:
    """One line of the checklist: what was checked, what was found, and the fix when not passed."""

    name: str
    status: Status
    detail: str
    fix: str = ""

    def lines(self) -> list[str]:
        """`✓ name: detail`, then `    fix: ...` for a failed or unknown line."""
        out = [f"{SYMBOLS[self.status]} {self.name}: {self.detail}"]
        if self.fix and self.status != "pass":
            out.append(f"    fix: {self.fix}")
        return out


@dataclass(frozen=True)
class Target:
    """Where the runs go: Glue jobs, steps on an EMR cluster, or EMR Serverless job runs."""

    kind: TargetKind = "glue"
    cluster_id: str | None = None
    application_id: str | None = None


@dataclass(frozen=True)
class Report:
    """The doctor's answer for one environment and target."""

    env: str
    target: Target
    identity: str
    checks: tuple[Check, ...]

    @property
    def failed(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if c.status == "fail")

    @property
    def unknown(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if c.status == "unknown")

    def text(self) -> str:
        """The checklist, then one summary line."""
        lines = [f"featurebank doctor --env {self.env} (target {self.target.kind}, as {self.identity})"]
        for check in self.checks:
            lines += check.lines()
        if self.failed:
            lines.append(f"{len(self.failed)} check(s) failed, {len(self.unknown)} unknown: fix the ✗ lines first")
        elif self.unknown:
            lines.append(f"no check failed; {len(self.unknown)} could not be checked (?): nothing says they hold")
        else:
            lines.append("every check passed")
        return "\n".join(lines)

    def to_json(self) -> str:
        return json.dumps({
            "env": self.env, "target": self.target.kind, "identity": self.identity,
            "ok": not self.failed, "failed": len(self.failed), "unknown": len(self.unknown),
            "checks": [{"check": c.name, "status": c.status, "detail": c.detail, "fix": c.fix} for c in self.checks],
        }, indent=2)


@dataclass
class _Seen:
    """Regions found along the way, for the region-consistency line."""

    regions: dict[str, str] = field(default_factory=dict)  # resource -> region


def run_doctor(project: Project, target: Target = Target(), *, deploying: bool = False) -> Report:
    """Run every check against the environment's account; raises `AwsUnreachable` when AWS cannot be
    reached at all, `ConfigError` when conf has no `aws:` section. `deploying`: the preflight of a
    deploy, which creates the log-store table and uploads its jar, so their absence is not a failure."""
    settings = project.config.require_aws()
    with aws_errors(f"asking AWS who the credentials of env {settings.env} belong to (sts:GetCallerIdentity)"):
        who = client("sts", settings.region).get_caller_identity()
    seen = _Seen()
    checks = [_account(settings, who)]
    checks += _guarded("Platform versions", lambda: _versions(project, settings, target))
    checks += _guarded("S3 locations", lambda: _s3_locations(project, settings, seen))
    checks += _guarded("KMS key", lambda: [_kms(settings, seen)])
    checks += _guarded("Job role policy", lambda: [role_check(project, settings, _role_arn(settings, target))])
    checks += _guarded("Delta log store", lambda: _log_store(project, settings, seen, target, deploying))
    checks.append(_regions(settings, seen))
    return Report(settings.env, target, str(who.get("Arn", "?")), tuple(checks))


def _guarded(name: str, run: Callable[[], list[Check]]) -> list[Check]:
    """The checks `run` makes, or one unknown line saying why it could not make them."""
    try:
        return run()
    except Exception as error:  # noqa: BLE001 - a check that cannot be made is unknown, never passed
        failure = explain(error, f"checking {name.lower()}")
        return [Check(name, "unknown", str(failure or f"{type(error).__name__}: {error}"),
                      "give the identity running doctor read access to it, or check it by hand")]


def _code(error: Exception) -> str:
    return str(getattr(error, "response", {}).get("Error", {}).get("Code", ""))


# --- account and versions -------------------------------------------------------------------------

def _account(settings: AwsSettings, who: dict[str, Any]) -> Check:
    account = str(who.get("Account", ""))
    if settings.account_id and account != settings.account_id:
        return Check("AWS account", "fail", f"the credentials belong to account {account}, {settings.conf_file} names "
                     f"aws.account_id {settings.account_id}",
                     f"use credentials of account {settings.account_id} (AWS_PROFILE), or correct aws.account_id")
    return Check("AWS account", "pass", f"{account} (as {who.get('Arn', '?')})")


def _versions(project: Project, settings: AwsSettings, target: Target) -> list[Check]:
    if target.kind == "glue":
        jobs = _glue_versions(project, settings)
        return [_runtime_check(f"Glue version {version} ({where})", glue_runtime(version), lane, evidence,
                               f"deploy sets Glue {GLUE_VERSION}: `featurebank deploy glue --env {settings.env}` "
                               f"updates the jobs ({TESTED.describe()})")
                for (version, lane, evidence), where in sorted(jobs.items())]
    if target.kind == "emr":
        if not target.cluster_id:
            return [Check("EMR release", "unknown", "no --cluster-id given: the cluster's release was not read",
                          "run doctor --target emr --cluster-id j-...")]
        label = client("emr", settings.region).describe_cluster(ClusterId=target.cluster_id)["Cluster"].get("ReleaseLabel", "")
        where = f"cluster {target.cluster_id}"
    else:
        if not target.application_id:
            return [Check("EMR Serverless release", "unknown", "no --application-id given: the release was not read",
                          "run doctor --target emr-serverless --application-id ID")]
        app = client("emr-serverless", settings.region).get_application(applicationId=target.application_id)
        label, where = app["application"].get("releaseLabel", ""), f"application {target.application_id}"
    return [_runtime_check(f"EMR release {label} ({where})", emr_runtime(label), _DEPLOY_LANE, _DEPLOY_EVIDENCE,
                           "use an EMR 7.x release from emr-7.1.0 on (Spark 3.5, Delta 3, Python 3.11 installed)")]


# deploy builds the Spark 3.5 lane's artifacts (cp311 wheels, a Python 3.11 environment archive)
_DEPLOY_LANE = next(name for name, lane in LANES.items() if lane == TESTED)
_DEPLOY_EVIDENCE = f"deploy builds for Python {TESTED.python[0]}"


def _glue_versions(project: Project, settings: AwsSettings) -> dict[tuple[str, str, str], str]:
    """(Glue version, lane, how the lane was read) -> which jobs run it (or what deploy would create
    when no job exists yet). The lane is read from the CPython tag of the job's wheels."""
    glue = client("glue", settings.region)
    found: dict[tuple[str, str, str], list[str]] = {}
    for group in sorted(project.groups):
        name = job_name(settings.env, group)
        try:
            job = glue.get_job(JobName=name)["Job"]
        except Exception as error:
            if _code(error) == "EntityNotFoundException":
                continue
            raise
        version = str(job.get("GlueVersion") or "0.9")
        pythons = wheels_python(str(job.get("DefaultArguments", {}).get("--additional-python-modules", "")))
        lane = lane_for_python(next(iter(pythons))) if len(pythons) == 1 else None
        if lane:
            key = (version, lane, f"the job's wheels are cp{LANES[lane].python[0].replace('.', '')}")
        else:
            key = (version, _DEPLOY_LANE, f"the job names no wheel built for one CPython version and {_DEPLOY_EVIDENCE}")
        found.setdefault(key, []).append(name)
    if not found:
        return {(GLUE_VERSION, _DEPLOY_LANE, _DEPLOY_EVIDENCE): "no job deployed yet: the version deploy creates"}
    return {key: ", ".join(names) if len(names) <= 2 else f"{len(names)} jobs" for key, names in found.items()}


def _runtime_check(name: str, runtime: Runtime | None, lane: str, evidence: str, fix: str) -> Check:
    tested = f"{LANES[lane].platform}: {LANES[lane].describe()}"
    if runtime is None:
        return Check(name, "unknown", f"not in featurebank's version table ({evidence}: {tested})",
                     "check the release notes of this version by hand, or use a version the table knows")
    problems = lane_problems(runtime, lane, evidence)
    if problems:
        return Check(name, "fail", "; ".join(problems), f"{fix}; or {lane_fix(runtime, lane)}")
    return Check(name, "pass", f"{runtime.describe()} ({evidence}: {tested})")


# --- S3, KMS, log store, regions --------------------------------------------------------------------

def _s3_locations(project: Project, settings: AwsSettings, seen: _Seen) -> list[Check]:
    config = project.config
    raw = [s.location for s in project.sources.values()] + [v for k, v in config.variables if k == "raw_root"]
    wanted: list[tuple[str, S3Uri, bool, str]] = []  # (label, uri, write probe, conf key)
    if config.feature_root.startswith(("s3://", "s3a://")):
        wanted.append(("feature root", S3Uri.parse(config.feature_root), True, "feature_root"))
    wanted.append(("artifacts", settings.artifacts, True, "aws.artifacts"))
    wanted += [("raw sources", uri, False, "variables.raw_root / the source's location") for uri in s3_prefixes(raw)]
    s3 = client("s3", settings.region)
    return [_s3_check(s3, settings, seen, *item) for item in wanted]


def _s3_check(s3: Any, settings: AwsSettings, seen: _Seen, label: str, uri: S3Uri, probe: bool, key: str) -> Check:
    name = f"S3 {label} {uri.uri()}"
    doing = f"checking {uri.uri()}"
    try:
        with aws_errors(doing):
            s3.head_bucket(Bucket=uri.bucket)
            location = s3.get_bucket_location(Bucket=uri.bucket).get("LocationConstraint") or "us-east-1"
    except AwsFailure as failure:
        return _s3_failure(name, failure, uri, settings, key)
    except Exception as error:
        if _code(error) in ("404", "NoSuchBucket", "NotFound"):
            return Check(name, "fail", f"the bucket {uri.bucket} does not exist",
                         f"create it in {settings.region}, or correct {key} in {settings.conf_file}")
        return _s3_failure(name, error, uri, settings, key)
    seen.regions[f"bucket {uri.bucket}"] = location
    try:
        with aws_errors(doing):
            if not probe:
                listed = s3.list_objects_v2(Bucket=uri.bucket, Prefix=uri.prefix.rstrip("/") + "/" if uri.prefix else "", MaxKeys=1)
                if not listed.get("KeyCount", 0):
                    return Check(name, "unknown", "the bucket exists but nothing is under the prefix yet",
                                 f"land the source data there, or correct {key}")
                return Check(name, "pass", "exists and is readable")
            probe_key = uri.key(f"{PROBE_DIR}/{secrets.token_hex(8)}")
            extra = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": settings.kms_key_arn} if settings.kms_key_arn else {}
            s3.put_object(Bucket=uri.bucket, Key=probe_key, Body=b"featurebank doctor probe", **extra)
            s3.delete_object(Bucket=uri.bucket, Key=probe_key)
    except Exception as error:  # noqa: BLE001 - reported as the line's answer
        return _s3_failure(name, error, uri, settings, key, writing=probe)
    sse = ", SSE-KMS with conf's key" if settings.kms_key_arn else ""
    return Check(name, "pass", f"exists and is writable (a probe object put{sse} and deleted)")


def _s3_failure(name: str, error: Exception, uri: S3Uri, settings: AwsSettings, key: str, writing: bool = False) -> Check:
    failure = error if isinstance(error, AwsFailure) else explain(error, f"checking {uri.uri()}")
    text = str(failure or f"{_code(error) or type(error).__name__}: {error}")
    if writing and _code(error) in ("AccessDenied", "403", "KMS.NotFoundException", "KMS.DisabledException"):
        return Check(name, "fail", f"cannot write under the prefix: {text}",
                     "allow s3:PutObject/DeleteObject there (and kms:GenerateDataKey on the key) to the deploying identity")
    return Check(name, "unknown", text, f"check {key} in {settings.conf_file} and the identity's S3 access")


def _kms(settings: AwsSettings, seen: _Seen) -> Check:
    arn = settings.kms_key_arn
    if not arn:
        return Check("KMS key", "unknown", f"{settings.conf_file} names no aws.kms_key_arn: objects get the "
                     "buckets' default encryption", "add aws.kms_key_arn (the environment's customer-managed key)")
    kms = client("kms", arn.split(":")[3] or settings.region)
    seen.regions["KMS key"] = arn.split(":")[3]
    try:
        metadata = kms.describe_key(KeyId=arn)["KeyMetadata"]
    except Exception as error:
        if _code(error) == "NotFoundException":
            return Check("KMS key", "fail", f"{arn} does not exist", f"create the key, or correct aws.kms_key_arn in {settings.conf_file}")
        raise
    state = metadata.get("KeyState", "?")
    if state != "Enabled":
        return Check("KMS key", "fail", f"{arn} is {state}", "enable the key (or cancel its deletion)")
    kms.generate_data_key(KeyId=arn, KeySpec="AES_256")
    return Check("KMS key", "pass", f"{arn} is enabled and makes data keys")


def _log_store(project: Project, settings: AwsSettings, seen: _Seen, target: Target, deploying: bool) -> list[Check]:
    """The log-store line(s): from `s3_write_conf` when conf sets `aws.delta_log_table` (its
    table's key schema, and on Glue the jar at its S3 key), else from raw Spark keys in conf."""
    name = "Delta log store (concurrent writers on S3)"
    if settings.delta_log_table:
        return _configured_log_store(project, settings, seen, target, deploying)
    conf = dict(project.config.spark.conf) | dict(settings.emr.spark_conf)
    stores = {key: conf.get(key) for key in LOG_STORE_KEYS}
    if not any(stores.values()):
        return [Check(name, "unknown", "conf sets no spark.delta.logStore.s3.impl / s3a.impl nor aws.delta_log_table: "
                      "two drivers writing one table (two jobs, two steps, any run and `_runs`) are not known to be safe",
                      f"set aws.delta_log_table in {settings.conf_file}: deploy creates the table and wires "
                      f"{LOG_STORE_CLASS} for s3:// and s3a://")]
    wrong = sorted(key for key, value in stores.items() if value != LOG_STORE_CLASS)
    if wrong:
        return [Check(name, "fail", f"{', '.join(wrong)} is not {LOG_STORE_CLASS}: a table written through that scheme "
                      "has no commit arbitration", f"set {', '.join(wrong)} to {LOG_STORE_CLASS} in spark.conf")]
    table = conf.get(DDB_TABLE_KEY) or DDB_DEFAULT_TABLE
    region = conf.get(DDB_REGION_KEY) or "us-east-1"  # Delta's default region for the table
    return [_log_table(name, settings, seen, table, region, deploying)]


def _configured_log_store(project: Project, settings: AwsSettings, seen: _Seen, target: Target,
                          deploying: bool) -> list[Check]:
    """`aws.delta_log_table` set: the settings the runs get name the log store for both schemes,
    the table has Delta's key schema, and (Glue) the jar is at the key `--extra-jars` names."""
    name = "Delta log store (concurrent writers on S3)"
    # what a run's session ends up with: session_conf lets s3_write_conf win over spark.conf,
    # EMR's step/job conf lets aws.emr.spark_conf win over it
    conf = dict(project.config.spark.conf) | s3_write_conf(settings)
    if target.kind != "glue":
        conf |= dict(settings.emr.spark_conf)
    wrong = sorted(key for key in LOG_STORE_KEYS if conf.get(key) != LOG_STORE_CLASS)
    if wrong:
        overridden = "aws.emr.spark_conf" if target.kind != "glue" else "spark.conf"
        return [Check(name, "fail", f"aws.delta_log_table is {settings.delta_log_table} but the runs' Spark settings set "
                      f"{', '.join(f'{k}={conf.get(k)}' for k in wrong)}, not {LOG_STORE_CLASS}: commits through that "
                      "scheme bypass the table", f"remove {', '.join(wrong)} from {overridden} in {settings.conf_file}")]
    table = conf.get(DDB_TABLE_KEY) or DDB_DEFAULT_TABLE
    region = conf.get(DDB_REGION_KEY) or "us-east-1"
    checks = [_log_table(name, settings, seen, table, region, deploying)]
    if target.kind == "glue":
        checks.append(_log_store_jar(settings, deploying))
    return checks


def _log_table(name: str, settings: AwsSettings, seen: _Seen, table: str, region: str, deploying: bool) -> Check:
    """The log-store table exists, is ACTIVE and has Delta's key schema (tablePath HASH, fileName RANGE)."""
    seen.regions[f"DynamoDB table {table}"] = region
    try:
        described = client("dynamodb", region).describe_table(TableName=table)["Table"]
    except Exception as error:
        if _code(error) != "ResourceNotFoundException":
            raise
        if deploying and table == settings.delta_log_table:
            return Check(name, "unknown", f"the DynamoDB table {table} does not exist in {region} yet: this deploy creates it",
                         "run `featurebank doctor` after the deploy to check it")
        return Check(name, "fail", f"the DynamoDB table {table} does not exist in {region}",
                     f"`featurebank deploy` creates it, or create it (hash key tablePath, range key fileName)")
    keys = sorted(described.get("KeySchema", []), key=lambda k: k["KeyType"])
    if keys != KEY_SCHEMA:
        found = ", ".join(f"{k['AttributeName']} {k['KeyType']}" for k in keys) or "none"
        return Check(name, "fail", f"the DynamoDB table {table} in {region} has key schema {found}, not the one Delta's "
                     "log store writes (tablePath HASH, fileName RANGE): every commit through it fails",
                     f"name a new table in aws.delta_log_table ({settings.conf_file}) and deploy, which creates it "
                     "with Delta's schema; delete the old one if nothing else uses it")
    status = described.get("TableStatus", "?")
    if status != "ACTIVE":
        return Check(name, "unknown", f"the DynamoDB table {table} in {region} is {status}", "wait until it is ACTIVE")
    return Check(name, "pass", f"{LOG_STORE_CLASS} for s3:// and s3a://, table {table} in {region} is ACTIVE "
                 "with Delta's key schema")


def _log_store_jar(settings: AwsSettings, deploying: bool) -> Check:
    """The log-store jar is at the S3 key the Glue jobs' `--extra-jars` names."""
    name = "Delta log store jar (Glue --extra-jars)"
    uri = jar_uri(settings)
    try:
        client("s3", settings.region).head_object(Bucket=settings.artifacts.bucket, Key=jar_key(settings))
    except Exception as error:
        if _code(error) not in ("404", "NoSuchKey", "NotFound"):
            raise  # an unknown line (`_guarded`), e.g. access denied
        if deploying:
            return Check(name, "unknown", f"{uri} is not there yet: this deploy uploads it",
                         "run `featurebank doctor` after the deploy to check it")
        return Check(name, "fail", f"{uri} does not exist: AWS Glue {GLUE_VERSION} does not ship Delta's DynamoDB log "
                     f"store, so every Glue run fails to load {LOG_STORE_CLASS}",
                     f"`featurebank deploy glue --env {settings.env}` uploads it (from aws.delta_log_store_jar, "
                     f"~/.ivy2 or ~/.m2; Maven coordinates {coordinates()})")
    return Check(name, "pass", f"{uri} is there")


def _regions(settings: AwsSettings, seen: _Seen) -> Check:
    other = {resource: region for resource, region in sorted(seen.regions.items()) if region != settings.region}
    if other:
        listed = ", ".join(f"{resource} is in {region}" for resource, region in other.items())
        return Check("Regions", "fail", f"{listed}; {settings.conf_file} says aws.region {settings.region}",
                     "keep every resource in one region (cross-region reads cost and KMS keys do not cross), or fix aws.region")
    if not seen.regions:
        return Check("Regions", "unknown", "no resource's region could be read", "see the lines above")
    return Check("Regions", "pass", f"every resource read is in {settings.region}")


def _role_arn(settings: AwsSettings, target: Target) -> str | None:
    if target.kind == "glue":
        return settings.glue.role_arn if settings.glue else None
    if target.kind == "emr-serverless":
        return settings.emr.serverless_execution_role_arn
    if not target.cluster_id:
        return None
    profile = client("emr", settings.region).describe_cluster(ClusterId=target.cluster_id)["Cluster"].get(
        "Ec2InstanceAttributes", {}).get("IamInstanceProfile")
    if not profile:
        return None
    roles = client("iam", settings.region).get_instance_profile(InstanceProfileName=profile.rsplit("/", 1)[-1])
    found = roles["InstanceProfile"].get("Roles", [])
    return str(found[0]["Arn"]) if found else None
