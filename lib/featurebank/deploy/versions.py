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
  every 7.x ships Spark 3.5.x and Delta 3.x; Python 3.11 is installed beside 3.9 from 7.1 on) and
  .../emr-spark800-release.html (`emr-spark-8.0.0`, May 2026, the first EMR release with Spark 4:
  Spark 4.0.2-amzn-0, Delta 4.0.0-amzn-1, Scala 2.13, Python 3.11/3.12/3.13: Spark 4.0, not 4.1, so
  neither lane runs on it).
featurebank has two lanes (issue 24), each a pinned Spark/Delta/Python triple tested here: the
Spark 3.5 lane (Python 3.11; Glue 5.x, EMR 7.x) and the Spark 4.1 lane (Python 3.13; Glue 6.0).
A target runs only the lane its platform matches; which lane a deployed job carries is read from
its wheels' CPython tags (`cp311`, `cp313`).
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


# What featurebank is built and tested against, per lane (pyproject selects the lane by Python:
# < 3.13 pyspark >=3.5.7,<3.6 + delta-spark >=3.3.2,<3.4; >= 3.13 pyspark 4.1 + delta-spark 4.x,
# constraints-spark4.txt): a platform must run the lane's Spark minor, its Delta major, and offer
# its Python (the wheels and the packed environment are built for that interpreter).
LANES: dict[str, Runtime] = {
    "3.5": Runtime("featurebank's Spark 3.5 lane", spark="3.5", delta="3.3", python=("3.11",), java="17"),
    "4.1": Runtime("featurebank's Spark 4.1 lane", spark="4.1", delta="4.3", python=("3.13",), java="17"),
}
TESTED = LANES["3.5"]  # the lane deploy builds for (environment.PYTHON_VERSION is 3.11)

GLUE_FOR_LANE = {"3.5": "5.1", "4.1": "6.0"}  # the Glue release each lane is tested against (rows of GLUE below)
GLUE_VERSION = GLUE_FOR_LANE["3.5"]  # the Glue version `deploy glue` creates jobs with (TESTED's lane)

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
    "emr-spark-8.0.0": Runtime("Amazon EMR emr-spark-8.0.0", spark="4.0.2", delta="4.0.0",
                               python=("3.11", "3.12", "3.13")),
}
_WHEEL_PYTHON = re.compile(r"-cp3(\d+)-cp3\1m?-[^/]*\.whl$")  # `-cp311-cp311-`; abi3 wheels say nothing
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


def lane_for_python(version: str) -> str | None:
    """The lane whose interpreter is Python `version` (`3.13` -> `4.1`), None for any other."""
    return next((name for name, lane in LANES.items() if lane.python[0] == version.strip()), None)


def wheels_python(wheels: str) -> set[str]:
    """The CPython versions the binary wheels among `wheels` (comma-separated URIs, as Glue's
    `--additional-python-modules`) are built for: `{'3.11'}`; empty when all are pure Python."""
    found = (_WHEEL_PYTHON.search(w.strip()) for w in wheels.split(","))
    return {f"3.{m.group(1)}" for m in found if m}


def lane_problems(runtime: Runtime, lane: str, evidence: str) -> list[str]:
    """Why `runtime` cannot run lane `lane`'s artifacts, one phrase each ([] when it can).

    The last phrase names the lane and where it was read (`evidence`: `the job's wheels are
    cp311`), so a Glue 6.0 job carrying the 3.5 lane's wheels, or the reverse, is refused with a
    sentence that says which side to change.
    """
    problems = mismatches(runtime, LANES[lane])
    if problems:
        problems.append(f"{evidence}, so it carries {LANES[lane].platform} (Spark {LANES[lane].spark}, "
                        f"Python {LANES[lane].python[0]})")
    return problems


def lane_fix(runtime: Runtime, lane: str) -> str:
    """The next step when `runtime` cannot run lane `lane`: the release that lane runs on, and the
    other lane when that one fits `runtime`."""
    glue = GLUE_FOR_LANE[lane]
    text = f"run {LANES[lane].platform}'s wheels on AWS Glue {glue} ({GLUE[glue].describe()})"
    fits = [name for name in LANES if name != lane and not mismatches(runtime, LANES[name])]
    if fits:
        text += (f", or package {LANES[fits[0]].platform}'s wheels (Python {LANES[fits[0]].python[0]}) "
                 f"for {runtime.platform}")
    return text


def _parts(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", version)[:3])
