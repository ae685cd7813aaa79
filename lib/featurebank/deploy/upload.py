"""Artifacts to the environment's S3 prefix: HEAD first, upload only what is not there.

Artifact names carry a content hash (`package.py`), so a key that exists with the same
sha256 (recorded as object metadata) is the same file and is not uploaded again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from featurebank.compile.changes import Action, Change
from featurebank.definitions.config import AwsSettings
from featurebank.io.aws import client
from featurebank.deploy.package import Artifacts, sha256_hex


@dataclass(frozen=True)
class ArtifactUris:
    """Where each artifact lives on S3 once uploaded."""

    wheel: str
    bundle: str
    scripts: tuple[tuple[str, str], ...]  # (entry name, s3 uri)

    def script(self, name: str) -> str:
        return dict(self.scripts)[name]


def artifact_uris(settings: AwsSettings, artifacts: Artifacts) -> ArtifactUris:
    """The S3 URIs of `artifacts` under `aws.artifacts`."""
    prefix = settings.artifacts
    return ArtifactUris(
        wheel=prefix.uri(artifacts.wheel.name),
        bundle=prefix.uri(artifacts.bundle.name),
        scripts=tuple((name, prefix.uri(path.name)) for name, path in artifacts.scripts),
    )


def upload_changes(settings: AwsSettings, artifacts: Artifacts) -> list[Change]:
    """One Change per artifact: `create` (upload) unless the key already holds the same bytes.

    Uploads use SSE-KMS with `aws.kms_key_arn` when conf gives one.
    """
    s3 = client("s3", settings.region)
    bucket = settings.artifacts.bucket
    changes = []
    for path in artifacts.files():
        key = settings.artifacts.key(path.name)
        digest = sha256_hex(path)
        head = _head(s3, bucket, key)
        uri = f"s3://{bucket}/{key}"
        if head is not None and head.get("Metadata", {}).get("sha256") == digest:
            changes.append(Change("s3 object", uri, "unchanged"))
            continue
        extra: dict[str, Any] = {"Metadata": {"sha256": digest}}
        if settings.kms_key_arn:
            extra.update(ServerSideEncryption="aws:kms", SSEKMSKeyId=settings.kms_key_arn)

        def put(path: Any = path, key: str = key, extra: dict[str, Any] = extra) -> None:
            s3.upload_file(str(path), bucket, key, ExtraArgs=extra)

        action: Action = "create" if head is None else "update"
        changes.append(Change("s3 object", uri, action, () if head is None else ("content",), ("s3.PutObject",), put))
    return changes


def _head(s3: Any, bucket: str, key: str) -> dict[str, Any] | None:
    from botocore.exceptions import ClientError

    try:
        return dict(s3.head_object(Bucket=bucket, Key=key))
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return None
        raise
