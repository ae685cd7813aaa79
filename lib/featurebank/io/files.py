"""Files on local paths and S3: the one way featurebank reads and writes its own files.

Gate and readiness reports, training-set manifests and the registry, training-set part
files rewritten after Spark, deploy bundles and artifacts all go through here. (Tables and
sources are Spark's or delta-rs's business: `io.tables`, `io.sources`, `io.metadata`.)

A location is a local path (relative, absolute or `file://...`) or an S3 URI; `s3://` and
`s3a://` (and `s3n://`) name the same object. S3 is reached through botocore
(`featurebank.io.aws.client("s3", region)`): its standard credential chain (environment,
profile, instance or task role) and `AWS_ENDPOINT_URL`, the same chain every other AWS call
outside Spark uses. Spark's own reads and writes keep Spark's S3A chain. Any other scheme is
refused with a `UsageError` naming the location.

Encryption: every object written to S3 here is SSE-KMS under the environment's key. A caller
may name the key (`kms_key=`); otherwise the process's key applies, which
`use_kms_key(config.aws.kms_key_arn)` sets once conf is known (`io.spark.get_spark` does it
for every session built from conf), the same key the session's S3A/EMRFS settings use.

S3 has no directories: a "directory" is every key below `<key>/`; `makedirs` is implied.
Failures are `OSError`s whose message names the location: `FileNotFoundError` when nothing
is there, `PermissionError` when S3 refuses access, `OSError` otherwise.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from featurebank.errors import UsageError

S3_SCHEMES = ("s3", "s3a", "s3n")
Kind = Literal["file", "directory"]


_KMS_KEY: list[str | None] = [None]  # the process's default SSE-KMS key (use_kms_key)


def use_kms_key(key: str | None) -> None:
    """Encrypt every later S3 write of this process with SSE-KMS under `key` (None: S3's default)."""
    _KMS_KEY[0] = key


def default_kms_key() -> str | None:
    """The SSE-KMS key S3 writes use when the caller names none."""
    return _KMS_KEY[0]


@dataclass(frozen=True)
class S3Location:
    """`s3://bucket/key`, split, with the scheme the caller spelled it with."""

    scheme: str
    bucket: str
    key: str

    def child(self, key: str) -> str:
        """The location of `key` in the same bucket, spelled with the same scheme."""
        return f"{self.scheme}://{self.bucket}/{key}"


def is_s3(location: str | Path) -> bool:
    """True for `s3://`, `s3a://` and `s3n://` URIs."""
    return str(location).split("://", 1)[0].lower() in S3_SCHEMES and "://" in str(location)


def s3_location(location: str) -> S3Location:
    """Split an S3 URI; raises `UsageError` when it names no bucket."""
    scheme, rest = location.split("://", 1)
    bucket, _, key = rest.partition("/")
    if not bucket:
        raise UsageError(f"{location} names no S3 bucket; write s3://<bucket>/<key>")
    return S3Location(scheme.lower(), bucket, key.lstrip("/"))


def local_path(location: str | Path) -> Path:
    """The local path of a location that is not on S3 (`file://` stripped); raises `UsageError`
    for any other scheme."""
    text = str(location)
    if text.startswith("file:"):
        return Path("/" + text[len("file:"):].lstrip("/"))
    if "://" in text:
        raise UsageError(f"{text}: featurebank reads and writes its files on local paths and S3 only "
                         "(s3://, s3a://); use one of those for the feature root and outputs")
    return Path(text)


# --- read ----------------------------------------------------------------------------------------

def read_bytes(location: str | Path) -> bytes:
    """The content of the file at `location`; raises `FileNotFoundError` when there is none."""
    if is_s3(location):
        s3 = s3_location(str(location))
        with _s3_errors("read", str(location)):
            return bytes(_client().get_object(Bucket=s3.bucket, Key=s3.key)["Body"].read())
    return local_path(location).read_bytes()


def read_text(location: str | Path) -> str:
    """The file at `location` as UTF-8 text; raises `FileNotFoundError` when there is none."""
    return read_bytes(location).decode("utf-8")


def kind(location: str | Path) -> Kind | None:
    """`file`, `directory` (S3: any key below `<key>/`) or None when nothing is there."""
    if not is_s3(location):
        path = local_path(location)
        return "file" if path.is_file() else "directory" if path.is_dir() else None
    s3 = s3_location(str(location))
    client = _client()
    if s3.key and not s3.key.endswith("/") and _head(s3, str(location)) is not None:
        return "file"
    prefix = s3.key.rstrip("/") + "/" if s3.key.strip("/") else ""
    with _s3_errors("list", str(location)):
        page = client.list_objects_v2(Bucket=s3.bucket, Prefix=prefix, MaxKeys=1)
    return "directory" if page.get("KeyCount", 0) else None


def exists(location: str | Path) -> bool:
    """True when a file or a (non-empty, on S3) directory is at `location`."""
    return kind(location) is not None


def file_stat(location: str | Path) -> tuple[int, float] | None:
    """(bytes, modification time in epoch seconds) of the file at `location`, from the same call
    `list_stats` makes (S3: a listing, not HeadObject, whose time has another resolution), so the
    two compare equal for an unchanged file; None when there is no such file."""
    if not is_s3(location):
        try:
            stat = local_path(location).stat()
        except FileNotFoundError:
            return None
        return stat.st_size, stat.st_mtime
    s3 = s3_location(str(location))
    with _s3_errors("list", str(location)):
        page = _client().list_objects_v2(Bucket=s3.bucket, Prefix=s3.key, MaxKeys=1)
    found = [o for o in page.get("Contents", []) if o["Key"] == s3.key]
    return (int(found[0].get("Size", 0)), found[0]["LastModified"].timestamp()) if found else None


def object_metadata(location: str, *, region: str | None = None) -> dict[str, str] | None:
    """The user metadata of the S3 object at `location` (`x-amz-meta-*`), None when absent.
    `region`: the bucket's, when the caller knows it (conf's `aws.region`)."""
    head = _head(s3_location(location), location, region)
    return None if head is None else dict(head.get("Metadata", {}))


# --- list ----------------------------------------------------------------------------------------

def list_names(location: str | Path) -> list[str]:
    """The names directly inside the directory `location` (files and subdirectories), sorted;
    [] when it does not exist."""
    if not is_s3(location):
        path = local_path(location)
        return sorted(p.name for p in path.iterdir()) if path.is_dir() else []
    s3 = s3_location(str(location))
    prefix = s3.key.rstrip("/") + "/" if s3.key.strip("/") else ""
    names: set[str] = set()
    with _s3_errors("list", str(location)):
        for page in _client().get_paginator("list_objects_v2").paginate(Bucket=s3.bucket, Prefix=prefix, Delimiter="/"):
            names.update(o["Key"][len(prefix):] for o in page.get("Contents", []))
            names.update(p["Prefix"][len(prefix):].rstrip("/") for p in page.get("CommonPrefixes", []))
    return sorted(n for n in names if n)


def list_files(location: str | Path) -> list[str]:
    """Every file below the directory `location` (recursively), as paths relative to it with
    `/` separators, sorted; [] when it does not exist."""
    return [name for name, _ in list_sizes(location)]


def list_sizes(location: str | Path) -> list[tuple[str, int]]:
    """Every file below the directory `location` with its size in bytes, as (path relative to it
    with `/` separators, bytes), sorted by path; [] when it does not exist."""
    return [(name, size) for name, size, _ in list_stats(location)]


def list_stats(location: str | Path) -> list[tuple[str, int, float]]:
    """Every file below the directory `location` as (path relative to it with `/` separators,
    bytes, modification time in epoch seconds), sorted by path; [] when it does not exist."""
    if not is_s3(location):
        root = local_path(location)
        if not root.is_dir():
            return []
        found = []
        for p in root.rglob("*"):
            if p.is_file():
                stat = p.stat()
                found.append((p.relative_to(root).as_posix(), stat.st_size, stat.st_mtime))
        return sorted(found)
    s3 = s3_location(str(location))
    prefix = s3.key.rstrip("/") + "/" if s3.key.strip("/") else ""
    listed: list[tuple[str, int, float]] = []
    with _s3_errors("list", str(location)):
        for page in _client().get_paginator("list_objects_v2").paginate(Bucket=s3.bucket, Prefix=prefix):
            listed += [(o["Key"][len(prefix):], int(o.get("Size", 0)), o["LastModified"].timestamp())
                       for o in page.get("Contents", []) if not o["Key"].endswith("/")]
    return sorted(listed)


def join(location: str | Path, *parts: str) -> str:
    """`location/part/...` with one `/` between parts, the scheme kept as spelled."""
    text = str(location).rstrip("/")
    return "/".join([text, *(p.strip("/") for p in parts)])


# --- write ---------------------------------------------------------------------------------------

def write_bytes(location: str | Path, data: bytes, *, metadata: Mapping[str, str] | None = None,
                kms_key: str | None = None) -> None:
    """Write `data` to `location` atomically, creating local directories as needed.

    Local: a temporary file beside the target, then a rename, so a reader sees the old file or
    the new one, never a part. S3: one PutObject (atomic by nature), with user `metadata` and
    SSE-KMS under `kms_key`, else the process's key (`use_kms_key`) (both ignored locally).
    """
    if is_s3(location):
        s3 = s3_location(str(location))
        extra = _put_arguments(metadata, kms_key)
        with _s3_errors("write", str(location)):
            _client().put_object(Bucket=s3.bucket, Key=s3.key, Body=data, **extra)
        return
    target = local_path(location)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_text(location: str | Path, text: str) -> None:
    """Write `text` as UTF-8 to `location` atomically (see `write_bytes`)."""
    write_bytes(location, text.encode("utf-8"))


def upload(source: Path, location: str, *, metadata: Mapping[str, str] | None = None,
           kms_key: str | None = None, region: str | None = None) -> None:
    """Copy the local file `source` to `location` (S3: a managed, multipart upload for large
    files, with user `metadata` and SSE-KMS under `kms_key` when given, in `region` when the
    caller knows the bucket's)."""
    if not is_s3(location):
        write_bytes(location, source.read_bytes())
        return
    s3 = s3_location(location)
    with _s3_errors("upload to", location):
        _client(region).upload_file(str(source), s3.bucket, s3.key, ExtraArgs=_put_arguments(metadata, kms_key))


def download(location: str, target: Path) -> None:
    """Copy the file at `location` to the local file `target` (its directory must exist)."""
    if not is_s3(location):
        target.write_bytes(local_path(location).read_bytes())
        return
    s3 = s3_location(location)
    with _s3_errors("download", location):
        _client().download_file(s3.bucket, s3.key, str(target))


def delete(location: str | Path) -> None:
    """Delete the file at `location`; nothing to delete is not an error."""
    if is_s3(location):
        s3 = s3_location(str(location))
        with _s3_errors("delete", str(location)):
            _client().delete_object(Bucket=s3.bucket, Key=s3.key)
        return
    local_path(location).unlink(missing_ok=True)


# --- S3 plumbing -----------------------------------------------------------------------------------

def _head(s3: S3Location, location: str, region: str | None = None) -> dict[str, Any] | None:
    """HeadObject's answer, or None when there is no such object."""
    try:
        with _s3_errors("look up", location):
            return dict(_client(region).head_object(Bucket=s3.bucket, Key=s3.key))
    except FileNotFoundError:
        return None


def _put_arguments(metadata: Mapping[str, str] | None, kms_key: str | None) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    if metadata:
        extra["Metadata"] = dict(metadata)
    key = kms_key or _KMS_KEY[0]
    if key:
        extra.update(ServerSideEncryption="aws:kms", SSEKMSKeyId=key)
    return extra


def _client(region: str | None = None) -> Any:
    """The S3 client for `region` (None: the chain's) and the current endpoint and credentials settings."""
    keys = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_DEFAULT_REGION",
            "AWS_REGION")
    return _cached_client(region, tuple(os.environ.get(k) for k in keys))


@lru_cache(maxsize=8)
def _cached_client(region: str | None, environment: tuple[str | None, ...]) -> Any:
    # Keyed on the environment the chain reads, so a changed endpoint or identity gets a new client.
    from featurebank.io.aws import client

    del environment
    return client("s3", region)


_GERUNDS = {"read": "reading", "list": "listing", "write": "writing", "upload to": "uploading to",
            "download": "downloading", "delete": "deleting", "look up": "looking up"}


@contextmanager
def _s3_errors(action: str, location: str) -> Iterator[None]:
    """botocore's errors as `OSError`s naming `location`, the cause and the next step.

    An absent object is a plain `FileNotFoundError`; missing or refused credentials, an endpoint
    that does not answer, a missing bucket and an access denied are the sentences of
    `featurebank.io.aws.explain` (`AwsFailure`s, which are `OSError`s too).
    """
    from botocore.exceptions import BotoCoreError, ClientError

    from featurebank.io.aws import explain

    try:
        yield
    except Exception as error:
        details = error.response.get("Error", {}) if isinstance(error, ClientError) else {}
        code = str(details.get("Code", ""))
        message = details.get("Message") or code
        if code in ("404", "NoSuchKey", "NotFound"):
            raise FileNotFoundError(f"{location} does not exist") from None
        failure = explain(error, f"{_GERUNDS.get(action, action)} {location}")
        if failure is not None:
            raise failure from None
        if isinstance(error, ClientError):
            raise OSError(f"S3 failed to {action} {location}: {code} {message}") from None
        if isinstance(error, BotoCoreError):
            raise OSError(f"cannot {action} {location}: {error}; check the AWS credentials and network "
                          "(AWS_PROFILE, AWS_ENDPOINT_URL)") from None
        raise
