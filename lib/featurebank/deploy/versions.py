"""What each AWS Glue and Amazon EMR release runs, against what featurebank is tested with.

`featurebank doctor` reads the target's release (a Glue job's `GlueVersion`, an EMR cluster's
or EMR Serverless application's release label) and compares it here. The table is AWS's own
documentation, read in 2026:
- Glue: https://docs.aws.amazon.com/glue/latest/dg/release-notes.html (4.0: Spark 3.3.0,
  Python 3.10, Java 8; 5.0: Spark 3.5.4, Python 3.11, Java 17, Delta 3.3.0; 5.1: Spark 3.5.6,
  Python 3.11, Java 17, Delta 3.3.2) and .../migrating-version-60.html (6.0: Spark 4.1.1,
  Scala 2.13, Python 3.13, Java 17, Delta 4.2.0).
- EMR: https://docs.aws.amazon.com/emr/latest/ReleaseGuide/Spark-release-history.html and the
  7.x release pages (7.13.0: Spark 3.5.6-amzn-2, Delta 3.3.2-amzn-2, Python 3.9 and 3.11;
  every 7.x ships Spark 3.5.x and Delta 3.x; Python 3.11 is installed beside 3.9 from 7.1 on).
Pure values and comparisons: no AWS, no Spark.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Runtime:
    """What one platform release runs. Versions may be partial (`3.5` = any 3.5.x)."""

    platform: str
    spark: str
    delta: str
    python: tuple[str, ...]  # the interpreters a job can run on (the first is the default)
    java: str = "17"

    def describe(self) -> str:
        """`Spark 3.5.6, Delta 3.3.2, Python 3.11, Java 17`."""
        return f"Spark {self.spark}, Delta {self.delta}, Python {'/'.join(self.python)}, Java {self.java}"


# What featurebank is built and tested against (pyproject: pyspark >=3.5.7,<3.6, delta-spark
# >=3.3.2,<3.4, Python 3.11): a platform must run the same Spark minor, the same Delta major,
# and offer Python 3.11 (the wheel and the packed environment are cp311).
TESTED = Runtime("featurebank", spark="3.5", delta="3.3", python=("3.11",), java="17")

GLUE_VERSION = "5.1"  # the Glue version `deploy glue` creates jobs with (a row of GLUE below)

GLUE: dict[str, Runtime] = {
    "4.0": Runtime("AWS Glue 4.0", spark="3.3.0", delta="2.1.0", python=("3.10",), java="8"),
    "5.0": Runtime("AWS Glue 5.0", spark="3.5.4", delta="3.3.0", python=("3.11",), java="17"),
    "5.1": Runtime("AWS Glue 5.1", spark="3.5.6", delta="3.3.2", python=("3.11",), java="17"),
    "6.0": Runtime("AWS Glue 6.0", spark="4.1.1", delta="4.2.0", python=("3.13",), java="17"),
}

# Exact rows where the release page was read; other labels fall back to their family below.
EMR: dict[str, Runtime] = {
    "emr-7.13.0": Runtime("Amazon EMR 7.13.0", spark="3.5.6", delta="3.3.2", python=("3.9", "3.11")),
    "emr-7.0.0": Runtime("Amazon EMR 7.0.0", spark="3.5.0", delta="3.0.0", python=("3.9",)),
}
_EMR_LABEL = re.compile(r"^emr-(\d+)\.(\d+)\.(\d+)$")


def glue_runtime(version: str) -> Runtime | None:
    """The runtime of Glue `version` (`5.1`), None when the table does not know it."""
    return GLUE.get(version.strip())


def emr_runtime(release_label: str) -> Runtime | None:
    """The runtime of an EMR (or EMR Serverless) release label (`emr-7.5.0`), None when unknown.

    7.x: Spark 3.5.x, Delta 3.x, Python 3.9 (3.11 too from 7.1); 6.x: Spark 3.4 or older,
    Delta 2.x at most, Python 3.7. Anything else is unknown.
    """
    label = release_label.strip()
    if label in EMR:
        return EMR[label]
    match = _EMR_LABEL.match(label)
    if not match:
        return None
    major, minor = int(match.group(1)), int(match.group(2))
    name = f"Amazon EMR {label.removeprefix('emr-')}"
    if major == 7:
        return Runtime(name, spark="3.5", delta="3", python=("3.9", "3.11") if minor >= 1 else ("3.9",))
    if major == 6:
        return Runtime(name, spark="3.4", delta="2", python=("3.7",), java="8")
    return None


def mismatches(runtime: Runtime, tested: Runtime = TESTED) -> list[str]:
    """Why `runtime` cannot run what featurebank was tested with, one phrase each ([] when it can).

    Spark must match in major and minor (a new major breaks the API; Delta's jars are built per
    Spark minor), Delta in major, and Python `tested.python[0]` must be one of the interpreters.
    """
    problems = []
    have, want = _parts(runtime.spark), _parts(tested.spark)
    if have[:1] != want[:1]:
        problems.append(f"another Spark major: {runtime.platform} runs Spark {runtime.spark}, featurebank is tested "
                        f"with Spark {tested.spark}.x")
    elif have[:2] != want[:2] and len(have) > 1:
        problems.append(f"{runtime.platform} runs Spark {runtime.spark}, featurebank is tested with Spark {tested.spark}.x")
    if _parts(runtime.delta)[:1] != _parts(tested.delta)[:1]:
        problems.append(f"{runtime.platform} ships Delta {runtime.delta}, featurebank is tested with Delta {tested.delta}.x")
    python = tested.python[0]
    if python not in runtime.python:
        problems.append(f"{runtime.platform} offers Python {'/'.join(runtime.python)}, featurebank's wheel and "
                        f"environment are built for Python {python}")
    return problems


def _parts(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", version)[:3])
