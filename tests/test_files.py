"""io.files: one file abstraction for local paths and S3 (a real moto server, botocore's chain)."""

from __future__ import annotations

import boto3
import pytest

from aws_fixtures import REGION, aws, moto_endpoint  # noqa: F401 - fixtures
from featurebank.errors import UsageError
from featurebank.io import files

BUCKET = "bank-features"


@pytest.fixture()
def bucket(aws):  # noqa: F811 - the fixture
    boto3.client("s3", region_name=REGION).create_bucket(
        Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    return f"s3://{BUCKET}"


@pytest.fixture(params=["local", "s3", "s3a"])
def root(request, tmp_path):
    """The same tests over a local directory, s3:// and s3a://."""
    if request.param == "local":
        return str(tmp_path / "root")
    request.getfixturevalue("bucket")
    return f"{request.param}://{BUCKET}/root"


def test_a_written_file_reads_back_and_is_listed(root):
    files.write_text(f"{root}/_reports/spend/run-1/result.json", '{"passed": true}')
    files.write_bytes(f"{root}/_reports/spend/run-1/report.html", b"<html>")
    files.write_text(f"{root}/_reports/other/run-2/result.json", "{}")
    assert files.read_text(f"{root}/_reports/spend/run-1/result.json") == '{"passed": true}'
    assert files.read_bytes(f"{root}/_reports/spend/run-1/report.html") == b"<html>"
    assert files.list_files(f"{root}/_reports") == ["other/run-2/result.json", "spend/run-1/report.html",
                                                    "spend/run-1/result.json"]
    assert files.list_names(f"{root}/_reports/spend/run-1") == ["report.html", "result.json"]
    assert files.list_names(f"{root}/_reports") == ["other", "spend"]
    assert files.kind(f"{root}/_reports/spend/run-1/result.json") == "file"
    assert files.kind(f"{root}/_reports/spend") == "directory"
    assert files.kind(f"{root}/_reports/spend/") == "directory"
    assert files.kind(f"{root}/_reports/nothing") is None
    assert files.exists(f"{root}/_reports") and not files.exists(f"{root}/_reports/nothing")


def test_an_absent_file_is_file_not_found_and_empty_listings(root):
    with pytest.raises(FileNotFoundError, match="nothing.json"):
        files.read_text(f"{root}/nothing.json")
    assert files.list_files(f"{root}/nowhere") == []
    assert files.list_names(f"{root}/nowhere") == []


def test_overwrite_replaces_and_delete_removes(root):
    location = f"{root}/a/b.txt"
    files.write_text(location, "old")
    files.write_text(location, "new")
    assert files.read_text(location) == "new"
    files.delete(location)
    files.delete(location)  # nothing to delete: not an error
    assert not files.exists(location)


def test_local_writes_leave_no_temporary_files(tmp_path):
    for i in range(3):
        files.write_text(tmp_path / "out" / "x.json", str(i))
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["x.json"]


def test_s3_and_s3a_name_the_same_object(bucket):
    files.write_text(f"s3a://{BUCKET}/m/_manifest.json", "{}")
    assert files.read_text(f"s3://{BUCKET}/m/_manifest.json") == "{}"


def test_upload_keeps_metadata_and_download_copies(bucket, tmp_path):
    source = tmp_path / "wheel.whl"
    source.write_bytes(b"wheel bytes")
    files.upload(source, f"{bucket}/artifacts/wheel.whl", metadata={"sha256": "abc"})
    assert files.object_metadata(f"{bucket}/artifacts/wheel.whl") == {"sha256": "abc"}
    assert files.object_metadata(f"{bucket}/artifacts/missing.whl") is None
    target = tmp_path / "copy.whl"
    files.download(f"{bucket}/artifacts/wheel.whl", target)
    assert target.read_bytes() == b"wheel bytes"


def test_s3_goes_through_botocores_chain(bucket, monkeypatch):
    """No credentials in the chain: a sentence naming the location, not a pyarrow/C++ SDK error."""
    files.write_text(f"{bucket}/x.txt", "x")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(OSError, match=f"s3://{BUCKET}/x.txt"):
        files.read_text(f"{bucket}/x.txt")


def test_a_missing_bucket_and_other_schemes_are_sentences(aws):  # noqa: F811 - the fixture
    with pytest.raises(FileNotFoundError, match="bucket does not exist"):
        files.read_text("s3://no-such-bucket/x.json")
    with pytest.raises(UsageError, match="local paths and S3 only"):
        files.write_text("hdfs://namenode/features/x.json", "{}")
    with pytest.raises(UsageError, match="names no S3 bucket"):
        files.read_text("s3:///x.json")


def test_file_uris_are_local_paths(tmp_path):
    files.write_text(f"file://{tmp_path}/a.txt", "a")
    assert (tmp_path / "a.txt").read_text() == "a"
    assert files.read_text(f"file:{tmp_path}/a.txt") == "a"
