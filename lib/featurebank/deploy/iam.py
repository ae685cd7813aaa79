"""`featurebank iam-policy`: the least-privilege IAM policy of the job role of one environment.

Derived from what the project reads and writes, never wider:
- read the S3 prefixes of the sources (and `variables.raw_root` when it is on S3);
- read and write the feature root (tables, `_runs`, `_quarantine`, `_reports`);
- read the artifacts prefix (wheel, bundle, scripts);
- the Glue Data Catalog: the feature database and its tables, and any `table` sources;
- the KMS key from conf, if any (SSE-KMS on every write); CloudWatch Logs of Glue jobs;
- the DynamoDB table of Delta's log store (`aws.delta_log_table`), if any.
ARNs use `aws.account_id` from conf, or `*` when conf does not give it.
"""

from __future__ import annotations

from typing import Any

from featurebank.definitions.model import Project
from featurebank.definitions.config import AwsSettings, S3Uri
from featurebank.deploy.dynamodb import JOB_ACTIONS, table_arn

S3_READ = ["s3:GetObject"]
S3_WRITE = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]
GLUE_READ = ["glue:GetDatabase", "glue:GetTable", "glue:GetTables", "glue:GetPartition", "glue:GetPartitions", "glue:BatchGetPartition"]
GLUE_WRITE = GLUE_READ + ["glue:CreateTable", "glue:UpdateTable", "glue:CreatePartition", "glue:BatchCreatePartition", "glue:UpdatePartition"]


def s3_prefixes(uris: list[str]) -> list[S3Uri]:
    """The distinct S3 prefixes among `uris` (non-S3 ignored), without ones another covers."""
    parsed = sorted({S3Uri.parse(u) for u in uris if u.startswith(("s3://", "s3a://"))}, key=lambda s: (s.bucket, s.prefix))
    kept: list[S3Uri] = []
    for uri in parsed:
        covered = any(k.bucket == uri.bucket and (not k.prefix or uri.prefix == k.prefix or uri.prefix.startswith(k.prefix + "/")) for k in kept)
        if not covered:
            kept.append(uri)
    return kept


LAKE_FORMATION_ACTIONS = ("lakeformation:GetDataAccess",)


def policy_document(project: Project, settings: AwsSettings) -> dict[str, Any]:
    """The IAM policy document (a dict ready for json.dumps) for the job role."""
    account = settings.account_id or "*"
    region = settings.region
    raw = [s.location for s in project.sources.values()] + [str(v) for k, v in project.config.variables if k == "raw_root"]
    statements: list[dict[str, Any]] = []
    statements += _s3("RawSourcesRead", s3_prefixes(raw), S3_READ)
    statements += _s3("FeatureTablesReadWrite", s3_prefixes([project.config.feature_root]), S3_WRITE)
    statements += _s3("ArtifactsRead", [settings.artifacts], S3_READ)

    catalog = f"arn:aws:glue:{region}:{account}:catalog"
    database = project.config.catalog_database
    if project.config.catalog_type == "glue" and database:
        statements.append({
            "Sid": "FeatureCatalogReadWrite",
            "Effect": "Allow",
            "Action": GLUE_WRITE,
            "Resource": [catalog, f"arn:aws:glue:{region}:{account}:database/{database}", f"arn:aws:glue:{region}:{account}:table/{database}/*"],
        })
    tables = sorted({s.location for s in project.sources.values() if s.format == "table"})
    if tables:
        databases = sorted({t.split(".", 1)[0] for t in tables})
        statements.append({
            "Sid": "SourceTablesRead",
            "Effect": "Allow",
            "Action": GLUE_READ,
            "Resource": [catalog]
            + [f"arn:aws:glue:{region}:{account}:database/{d}" for d in databases]
            + [f"arn:aws:glue:{region}:{account}:table/{t.replace('.', '/', 1)}" for t in tables],
        })
    if settings.kms_key_arn:
        statements.append({
            "Sid": "KmsForDataAndArtifacts",
            "Effect": "Allow",
            "Action": ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:DescribeKey"],
            "Resource": [settings.kms_key_arn],
        })
    if settings.delta_log_table:
        statements.append({"Sid": "DeltaLogStore", "Effect": "Allow", "Action": JOB_ACTIONS,
                           "Resource": [table_arn(settings, account)]})
    if project.config.governance.lake_formation:  # Lake Formation vends the S3 credentials of registered tables
        statements.append({"Sid": "LakeFormationDataAccess", "Effect": "Allow", "Action": list(LAKE_FORMATION_ACTIONS),
                           "Resource": "*"})
    statements.append({
        "Sid": "GlueJobLogs",
        "Effect": "Allow",
        "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
        "Resource": [f"arn:aws:logs:{region}:{account}:log-group:/aws-glue/*", f"arn:aws:logs:{region}:{account}:log-group:/aws-glue/*:*"],
    })
    return {"Version": "2012-10-17", "Statement": statements}


def _s3(sid: str, prefixes: list[S3Uri], actions: list[str]) -> list[dict[str, Any]]:
    if not prefixes:
        return []
    objects = [f"arn:aws:s3:::{p.bucket}/{p.prefix}/*" if p.prefix else f"arn:aws:s3:::{p.bucket}/*" for p in prefixes]
    statements: list[dict[str, Any]] = [{"Sid": f"{sid}Objects", "Effect": "Allow", "Action": actions, "Resource": objects}]
    for index, bucket in enumerate(sorted({p.bucket for p in prefixes})):
        listed = [p.prefix for p in prefixes if p.bucket == bucket]
        statement: dict[str, Any] = {"Sid": f"{sid}List{index}", "Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": [f"arn:aws:s3:::{bucket}"]}
        if all(listed):
            statement["Condition"] = {"StringLike": {"s3:prefix": sorted({x for p in listed for x in (p, f"{p}/*")})}}
        statements.append(statement)
    return statements
