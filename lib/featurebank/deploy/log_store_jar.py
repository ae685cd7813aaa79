"""Delta's DynamoDB log-store jar for Glue: found on this machine, uploaded beside the artifacts.

AWS Glue 5.1 runs Delta 3.3.2 (`--datalake-formats delta`) but does not ship
`delta-storage-s3-dynamodb`, the jar of `io.delta.storage.S3DynamoDBLogStore` that
`s3_write_conf` names when `aws.delta_log_table` is set: without it every Glue run fails to
load the class. So `deploy glue` uploads the jar of Glue's Delta version to
`<aws.artifacts>/jars/delta-storage-s3-dynamodb-<version>.jar` (SSE-KMS like every artifact,
HEAD first: the same bytes are not uploaded twice) and the job lists it in `--extra-jars`
(Glue's job argument for extra jars: comma-separated S3 paths of individual .jar files).
EMR needs none of this: it ships the jar in /usr/share/aws/delta/lib (`deploy.emr.LOG_STORE_JAR`).

Where the jar comes from, first match wins: `aws.delta_log_store_jar` in conf (a path, relative
to the project root), then the local Ivy caches Spark's `--packages` fills (`~/.ivy2*/jars`,
`~/.ivy2*/cache`) and the local Maven repository (`~/.m2/repository`). Not downloaded here:
a deploy fetches nothing it did not test, and where it looked is said when it is missing.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from featurebank.compile.changes import Change
from featurebank.definitions.config import AwsSettings
from featurebank.deploy.upload import object_change
from featurebank.deploy.versions import GLUE, GLUE_VERSION
from featurebank.errors import UsageError

ORGANISATION = "io.delta"
MODULE = "delta-storage-s3-dynamodb"
JAR_DIR = "jars"  # under aws.artifacts
DELTA_VERSION = GLUE[GLUE_VERSION].delta  # the jar must match the Delta the Glue jobs run


def coordinates(version: str = DELTA_VERSION) -> str:
    """The Maven coordinates of the jar: `io.delta:delta-storage-s3-dynamodb:3.3.2`."""
    return f"{ORGANISATION}:{MODULE}:{version}"


def jar_name(version: str = DELTA_VERSION) -> str:
    """`delta-storage-s3-dynamodb-<version>.jar`, the file name on S3 and in Maven/Ivy caches."""
    return f"{MODULE}-{version}.jar"


def jar_key(settings: AwsSettings) -> str:
    """The object key of the jar in the artifacts bucket: `<prefix>/jars/<jar_name>`."""
    return settings.artifacts.key(f"{JAR_DIR}/{jar_name()}")


def jar_uri(settings: AwsSettings) -> str | None:
    """The jar's S3 URI for Glue's `--extra-jars`; None when conf sets no `aws.delta_log_table`."""
    if not settings.delta_log_table:
        return None
    return f"s3://{settings.artifacts.bucket}/{jar_key(settings)}"


def search_paths(home: Path | None = None, version: str = DELTA_VERSION) -> list[Path]:
    """Where the jar is looked for on this machine, in order (existing or not)."""
    home = Path.home() if home is None else home
    name = jar_name(version)
    ivy_homes = sorted(home.glob(".ivy2*")) or [home / ".ivy2"]
    paths = []
    for ivy in ivy_homes:
        paths.append(ivy / "jars" / f"{ORGANISATION}_{name}")  # where spark-submit --packages copies it
        paths.append(ivy / "cache" / ORGANISATION / MODULE / "jars" / name)  # Ivy's own cache layout
    paths.append(home / ".m2" / "repository" / "io" / "delta" / MODULE / version / name)
    return paths


def find_jar(settings: AwsSettings, project_root: Path, home: Path | None = None) -> Path:
    """The local jar to upload: conf's `aws.delta_log_store_jar`, else the first cache hit.

    Raises UsageError (exit 2, nothing changed) when conf's path is not a jar or nothing is
    found, naming where it looked and how to get it.
    """
    need = (f"aws.delta_log_table is set in {settings.conf_file} and AWS Glue {GLUE_VERSION} does not ship "
            f"Delta's DynamoDB log store, so deploy glue uploads {jar_name()} for the jobs' --extra-jars")
    if settings.delta_log_store_jar:
        given = Path(settings.delta_log_store_jar).expanduser()
        path = given if given.is_absolute() else project_root / given
        if not path.is_file():
            raise UsageError(f"aws.delta_log_store_jar in {settings.conf_file} names {path}, which is not a file; {need}: "
                             f"correct the path, or download {coordinates()} from Maven Central there")
        if not zipfile.is_zipfile(path):
            raise UsageError(f"aws.delta_log_store_jar in {settings.conf_file} names {path}, which is not a jar "
                             f"(not a zip archive); {need}: point it at the {jar_name()} of {coordinates()}")
        return path
    places = search_paths(home)
    for path in places:
        if path.is_file() and zipfile.is_zipfile(path):
            return path
    raise UsageError(
        f"deploy glue refused: {need}, and no {jar_name()} was found (looked in {', '.join(str(p) for p in places)}); "
        f"get {coordinates()} (`mvn dependency:get -Dartifact={coordinates()}` fills ~/.m2, "
        f"`spark-submit --packages {coordinates()}` fills ~/.ivy2) or set aws.delta_log_store_jar to its path, "
        "then deploy again")


def jar_changes(settings: AwsSettings, project_root: Path, home: Path | None = None) -> list[Change]:
    """The upload of the log-store jar for Glue: [] without `aws.delta_log_table`, else one
    Change (`create`, `update` when the key holds other bytes, or `unchanged`)."""
    if not settings.delta_log_table:
        return []
    return [object_change(settings, find_jar(settings, project_root, home), jar_key(settings))]
