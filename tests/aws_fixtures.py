"""Fixtures for tests that talk to AWS: a real moto server on 127.0.0.1, never in-process mocks.

Import the fixtures into a test module: `from aws_fixtures import aws, moto_endpoint, ...`.

moto differs from AWS where featurebank needs it: it does not implement Glue's `UpdateJob`
(HTTP 500), `GetResourceLFTags` on a table never tagged fails (HTTP 500) where AWS answers
"no tags", and EMR Serverless `ListJobRuns` of an application without runs yet answers
ResourceNotFound where AWS answers an empty list. Product code calls AWS as AWS behaves and reports a failure as a
failure; the gaps are filled here, in the fake: this file, run as a script, starts the moto
server with both fixed (`_moto_as_aws_answers`).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import boto3
import pytest

REGION = "eu-west-1"
ARTIFACTS_BUCKET = "acme-featurebank-prod-123456789012"  # conf/prod.yaml's aws.artifacts bucket


@pytest.fixture(scope="session")
def library_snapshot(tmp_path_factory):
    """A copy of the featurebank package taken once: other work edits the live tree while
    these tests run, and a wheel must not change between two deploys of one test."""
    import shutil

    from featurebank.deploy import package

    target = tmp_path_factory.mktemp("library") / "featurebank"
    shutil.copytree(package.library_dir(), target, ignore=shutil.ignore_patterns("__pycache__"))
    return target


@pytest.fixture(autouse=True)
def frozen_library(library_snapshot, monkeypatch):
    from featurebank.deploy import package

    monkeypatch.setattr(package, "library_dir", lambda: library_snapshot)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def moto_endpoint():
    """A moto server subprocess on a free port (`_moto_as_aws_answers`), stopped at the end of the session."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"{url}/moto-api/", timeout=1)
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail("the moto server did not start")
            time.sleep(0.2)
    yield url
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()


def write_stand_in_jar(path: Path) -> Path:
    """A small jar standing in for Delta's `delta-storage-s3-dynamodb` (a zip with a manifest,
    fixed timestamps: the same bytes every time), which cannot be downloaded here."""
    import zipfile

    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as jar:
        for name, text in (("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\nCreated-By: featurebank tests\n"),
                           ("io/delta/storage/README.txt", "stand-in for S3DynamoDBLogStore\n")):
            jar.writestr(zipfile.ZipInfo(name, (1980, 1, 1, 0, 0, 0)), text)
    return path


@pytest.fixture()
def aws(moto_endpoint, monkeypatch, tmp_path):
    """A clean moto state, and an environment whose standard chain holds dummy credentials.
    `deploy glue` finds a stand-in log-store jar (`write_stand_in_jar`) where it looks on this
    machine (`log_store_jar.search_paths`), in this process only."""
    from featurebank.deploy import log_store_jar

    jar = write_stand_in_jar(tmp_path / "stand-in-ivy" / log_store_jar.jar_name())
    monkeypatch.setattr(log_store_jar, "search_paths", lambda home=None: [jar])
    urllib.request.urlopen(urllib.request.Request(f"{moto_endpoint}/moto-api/reset", method="POST"))
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    boto3.client("s3", region_name=REGION).create_bucket(
        Bucket=ARTIFACTS_BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION}
    )
    return moto_endpoint


def _moto_as_aws_answers() -> None:
    """Give moto Glue's `UpdateJob` (the job's fields become those of `JobUpdate`, as AWS
    does; an unknown job is `EntityNotFoundException`); let `GetResourceLFTags` answer "no
    tags" for a database or table never tagged, and `ListJobRuns` no runs for an application
    that has none yet. Test scaffolding only."""
    from moto.core.responses import ActionResult
    from moto.core.utils import camelcase_to_underscores, utcnow
    from moto.emrserverless.models import EMRServerlessBackend
    from moto.glue.responses import GlueResponse
    from moto.lakeformation.models import LakeFormationBackend

    def update_job(self: GlueResponse) -> ActionResult:
        name = self._get_param("JobName")
        job = self.glue_backend.get_job(name)
        for field, value in (self._get_param("JobUpdate") or {}).items():
            setattr(job, camelcase_to_underscores(field), value)
        job.last_modified_on = utcnow()
        return ActionResult({"JobName": name})

    GlueResponse.update_job = update_job  # type: ignore[attr-defined]

    tags_of = LakeFormationBackend.get_resource_lf_tags

    def get_resource_lf_tags(self: LakeFormationBackend, catalog_id: str, resource: dict) -> tuple:
        if "Database" in resource:
            database = resource["Database"]
            self.lf_database_tags.setdefault((database.get("CatalogId", self.account_id), database["Name"]), [])
        if "Table" in resource:
            table = resource["Table"]
            self.lf_table_tags.setdefault((table.get("CatalogId", self.account_id), table["DatabaseName"], table["Name"]), [])
        return tags_of(self, catalog_id, resource)

    LakeFormationBackend.get_resource_lf_tags = get_resource_lf_tags  # type: ignore[method-assign]

    runs_of = EMRServerlessBackend.list_job_runs

    def list_job_runs(self: EMRServerlessBackend, application_id: str, *args: object, **kwargs: object) -> list:
        if application_id in self.applications:
            self.job_runs.setdefault(application_id, [])
        return runs_of(self, application_id, *args, **kwargs)  # type: ignore[arg-type]

    EMRServerlessBackend.list_job_runs = list_job_runs  # type: ignore[method-assign]


if __name__ == "__main__":  # the moto server `moto_endpoint` starts
    from moto.server import main

    _moto_as_aws_answers()
    main(sys.argv[1:])
