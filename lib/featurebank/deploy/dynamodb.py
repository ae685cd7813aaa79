"""The DynamoDB table of Delta's `S3DynamoDBLogStore`: created by `deploy`, then left alone.

Delta on S3 gives concurrent writers from more than one driver mutual exclusion only through
this table (Delta's "multi-cluster setup"): every commit to an `s3://`/`s3a://` Delta table
first puts an item keyed (`tablePath` HASH, `fileName` RANGE) with a condition that it does
not exist. Serialising the runs of one group is not enough here: every group's run appends to
the one `_runs` table. The schema is the one Delta documents (and creates itself when it may):
both keys strings, on-demand capacity (a few items per run, bursty), TTL on `expireTime` so
DynamoDB drops the entries Delta marks complete after a day.

Like every deployed resource: `create` when missing, `unchanged` when the table has Delta's
key schema and TTL on `expireTime`, `update (ttl)` when only TTL is off. A table with another
key schema is never changed behind the user's back: a `RuntimeFailure` names the table and
what to do.
"""

from __future__ import annotations

from typing import Any

from featurebank.compile.changes import Change
from featurebank.definitions.config import AwsSettings
from featurebank.errors import RuntimeFailure
from featurebank.io.aws import client

TTL_ATTRIBUTE = "expireTime"
KEY_SCHEMA = [{"AttributeName": "tablePath", "KeyType": "HASH"}, {"AttributeName": "fileName", "KeyType": "RANGE"}]
ATTRIBUTES = [{"AttributeName": "tablePath", "AttributeType": "S"}, {"AttributeName": "fileName", "AttributeType": "S"}]
# What the job role does on the table (Delta's client: DescribeTable at start, conditional
# PutItem per commit, GetItem/Query to find and recover the latest commit).
JOB_ACTIONS = ["dynamodb:DescribeTable", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query", "dynamodb:UpdateItem"]


def table_arn(settings: AwsSettings, account: str) -> str:
    """The ARN of the log-store table in the environment's region and `account` (`*` allowed)."""
    return f"arn:aws:dynamodb:{settings.region}:{account}:table/{settings.delta_log_table}"


def desired_table(settings: AwsSettings) -> dict[str, Any]:
    """The CreateTable request of the log-store table (Delta's schema, on demand, conf's tags)."""
    tags = {"featurebank:env": settings.env, **dict(settings.tags)}
    request: dict[str, Any] = {
        "TableName": settings.delta_log_table,
        "AttributeDefinitions": ATTRIBUTES,
        "KeySchema": KEY_SCHEMA,
        "BillingMode": "PAY_PER_REQUEST",
        "Tags": [{"Key": k, "Value": v} for k, v in sorted(tags.items())],
    }
    if settings.kms_key_arn:  # the commit entries name data files: encrypt them with the data's key
        request["SSESpecification"] = {"Enabled": True, "SSEType": "KMS", "KMSMasterKeyId": settings.kms_key_arn}
    return request


def log_store_changes(settings: AwsSettings) -> list[Change]:
    """The change the log-store table needs: [] without `aws.delta_log_table`, else one Change."""
    from botocore.exceptions import ClientError

    if not settings.delta_log_table:
        return []
    ddb = client("dynamodb", settings.region)
    name = settings.delta_log_table
    try:
        have = ddb.describe_table(TableName=name)["Table"]
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
            raise
        return [Change("dynamodb table", name, "create", (), ("dynamodb.CreateTable", "dynamodb.UpdateTimeToLive"),
                       _creator(settings, ddb))]
    if sorted(have.get("KeySchema", []), key=lambda k: k["KeyType"]) != KEY_SCHEMA:
        raise RuntimeFailure(
            f"DynamoDB table {name} in {settings.region} (aws.delta_log_table in {settings.conf_file}) exists with key "
            f"schema {have.get('KeySchema')}, not Delta's log store schema (tablePath HASH, fileName RANGE); "
            "name another table in aws.delta_log_table, or delete that one if nothing uses it, and deploy again")
    ttl = ddb.describe_time_to_live(TableName=name).get("TimeToLiveDescription", {})
    if ttl.get("TimeToLiveStatus") in ("ENABLED", "ENABLING") and ttl.get("AttributeName") == TTL_ATTRIBUTE:
        return [Change("dynamodb table", name, "unchanged")]
    return [Change("dynamodb table", name, "update", ("ttl",), ("dynamodb.UpdateTimeToLive",), lambda: _enable_ttl(ddb, name))]


def _creator(settings: AwsSettings, ddb: Any) -> Any:
    def create() -> None:
        name = settings.delta_log_table
        ddb.create_table(**desired_table(settings))
        ddb.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
        _enable_ttl(ddb, name)

    return create


def _enable_ttl(ddb: Any, name: str | None) -> None:
    ddb.update_time_to_live(TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE})
