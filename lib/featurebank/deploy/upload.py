"""Artifacts to the environment's S3 prefix: HEAD first, upload only what is not there.

Artifact names carry a content hash (`package.py`), so a key that exists with the same
sha256 (recorded as object metadata) is the same file and is not uploaded again.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from featurebank.compile.changes import Action, Change
from featurebank.definitions.config import AwsSettings
from featurebank.deploy.package import Artifacts, sha256_hex


@dataclass(frozen=True)
class ArtifactUris:
    """Where each artifact lives on S3 once uploaded."""

    wheel: str
    bundle: str
    scripts: tuple[tuple[str, str], ...]  # (entry name, s3 uri)
    environment: str | None = None  # the env-<hash12>.tar.gz archive (package.Artifacts.environment)
    requirements: tuple[str, ...] = ()  # the requirement wheels (package.Artifacts.requirements)

    def script(self, name: str) -> str:
        return dict(self.scripts)[name]


def artifact_uris(settings: AwsSettings, artifacts: Artifacts) -> ArtifactUris:
    """The S3 URIs of `artifacts` under `aws.artifacts`."""
    prefix = settings.artifacts
    return ArtifactUris(
        wheel=prefix.uri(artifacts.wheel.name),
        bundle=prefix.uri(artifacts.bundle.name),
        scripts=tuple((name, prefix.uri(path.name)) for name, path in artifacts.scripts),
        environment=prefix.uri(artifacts.environment.name) if artifacts.environment else None,
        requirements=tuple(prefix.uri(path.name) for path in artifacts.requirements),
    )


def upload_changes(settings: AwsSettings, artifacts: Artifacts) -> list[Change]:
    """One Change per artifact: `create` (upload) unless the key already holds the same bytes.

    Uploads use SSE-KMS with `aws.kms_key_arn` when conf gives one. S3 is reached through
    `featurebank.io.files` (botocore's chain, `AWS_ENDPOINT_URL`).
    """
    return [object_change(settings, path, settings.artifacts.key(path.name)) for path in artifacts.files()]


def object_change(settings: AwsSettings, path: Path, key: str) -> Change:
    """The Change that puts the local file `path` at `key` of the artifacts bucket: `unchanged`
    when the key holds the same sha256 (object metadata), else `create`/`update` (SSE-KMS
    with `aws.kms_key_arn` when conf gives one)."""
    from featurebank.io import files

    digest = sha256_hex(path)
    uri = f"s3://{settings.artifacts.bucket}/{key}"
    held = files.object_metadata(uri, region=settings.region or None)
    if held is not None and held.get("sha256") == digest:
        return Change("s3 object", uri, "unchanged")

    def put() -> None:
        files.upload(path, uri, metadata={"sha256": digest}, kms_key=settings.kms_key_arn,
                     region=settings.region or None)

    action: Action = "create" if held is None else "update"
    return Change("s3 object", uri, action, () if held is None else ("content",), ("s3.PutObject",), put)
