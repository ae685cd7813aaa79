"""featurebank on a real multi-process Spark standalone cluster gives the same tables as local
mode (issue 9), with the packed environment as the only Python that has featurebank's
dependencies (issue 19: "EMR-like").

A master and two one-core workers start from the installed pyspark (`cluster.py`). The
packaged artifacts run there as on EMR: `spark-submit --master spark://...` of
`run_group.py` (`--all`) and `training_set.py` (the packaged entry scripts), Delta through
`--packages`, the project as its bundle zip, and Python from the environment archive
`featurebank package` builds (`env-<hash>.tar.gz`, deploy/environment.py): the drivers run the
archive's `bin/python` unpacked by the test, the executors unpack it from `--archives
env.tar.gz#environment` and run `./environment/bin/python` (`spark.executorEnv.PYSPARK_PYTHON`),
as YARN and EMR Serverless do with `spark.archives`. pyspark and py4j come from the installed
pyspark's `python/lib` zips, which spark-submit and the workers put on the path (the platform's
part, as on EMR). No PYTHONPATH of this process reaches the cluster. A probe on every executor
shows featurebank, yaml, sqlglot, great_expectations, numpy and pyarrow imported from
`./environment`. The `--py-files` route of the wheel keeps its own probe. The executors run with a non-UTC
machine time zone, so nothing may depend on the JVM's or the OS's zone. The same project
and dates then run in local mode (the shared `spark` session), and every published table and
the training set must be equal row for row; one group is also checked against pandas.

`make cluster-test` runs this file; the application ids the master registered and the row
counts compared are printed at the end of the pytest output.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pytest

from cluster import Application, StandaloneCluster, isolated_python
from featurebank_demo.datagen import DatagenParams, generate
from featurebank.deploy.environment import INTERPRETER, wheel_tag_problems
from featurebank.deploy.package import Artifacts, build_artifacts
from featurebank.io.spark import session_conf
from spark_submit import DELTA_PACKAGE, subprocess_env

REPO = Path(__file__).resolve().parent.parent
START, END = date(2024, 6, 17), date(2024, 6, 30)  # every day the generated data covers
DATA = DatagenParams(customers=30, merchants=20, days=14, end_date=END, seed=11)
TRAINING_SET = "card_fraud_v1"
EXECUTOR_TZ = "America/New_York"  # the cluster machines' zone; the project's is UTC
ENVIRONMENT_CACHE = REPO / "test-artifacts" / "environments"  # pip downloads once, archives by hash
ARCHITECTURE = "x86_64"  # aws.emr.architecture's default, and this machine's
PROBED = ("featurebank", "yaml", "sqlglot", "great_expectations", "numpy", "pyarrow")
CONF = """\
# written by tests/test_cluster.py
feature_root: {feature_root}
variables: {{raw_root: {raw_root}}}
timezone: UTC
catalog: {{type: none}}
spark:
  conf:
    spark.master: "local[2]"  # spark-submit's --master must win over this (engine.session)
    spark.sql.shuffle.partitions: "2"  # one task per executor core
"""
SUBMIT_OPTIONS = ["--packages", DELTA_PACKAGE, "--driver-memory", "1g", "--executor-memory", "1g",
                  "--conf", "spark.ui.enabled=false", "--conf", "spark.ui.showConsoleProgress=false"]


@dataclass(frozen=True)
class World:
    """One project with generated data and two environments writing to two feature roots."""

    root: Path
    project: Path
    raw: Path
    artifacts: Artifacts
    cluster_features: Path  # env `cluster`
    local_features: Path  # env `reference`
    cluster_training: Path
    local_training: Path


@dataclass(frozen=True)
class Packed:
    """The environment archive, and the drivers' copy of it unpacked by the test."""

    archive: Path  # env-<hash12>.tar.gz
    driver_root: Path  # where the test unpacked it
    python: Path  # driver_root/bin/python
    env: dict[str, str]  # spark-submit's environment: the drivers on the archive's Python


class Summary:
    """Lines shown in pytest's terminal summary (so `make test` shows them without -s)."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, line: str) -> None:
        print(line, flush=True)
        self.lines.append(line)

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if self.lines:
            terminalreporter.section("Spark standalone cluster")
            for line in self.lines:
                terminalreporter.write_line(line)


@pytest.fixture(scope="module")
def summary(request: pytest.FixtureRequest) -> Summary:
    found = Summary()
    request.config.pluginmanager.register(found, f"featurebank-cluster-summary-{id(found)}")
    return found


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    root = tmp_path_factory.mktemp("cluster-world")
    project = root / "project"
    shutil.copytree(REPO / "features", project / "features")
    shutil.copytree(REPO / "conf", project / "conf")
    raw = root / "raw"
    generate(raw, DATA)
    for env, features in (("cluster", root / "cluster" / "features"), ("reference", root / "local" / "features")):
        (project / "conf" / f"{env}.yaml").write_text(
            CONF.format(feature_root=json.dumps(str(features)), raw_root=json.dumps(str(raw))))
    return World(root=root, project=project, raw=raw, artifacts=build_artifacts(project, root / "dist"),
                 cluster_features=root / "cluster" / "features", local_features=root / "local" / "features",
                 cluster_training=root / "cluster" / "training" / TRAINING_SET,
                 local_training=root / "local" / "training" / TRAINING_SET)


@pytest.fixture(scope="module")
def cluster(world: World, summary: Summary) -> Iterator[StandaloneCluster]:
    began = time.monotonic()
    # PYTHONPATH emptied: the workers (hence executors) must not see this checkout's lib/
    with StandaloneCluster(world.root / "spark", workers=2, worker_cores=1, worker_memory="2g",
                           env={"TZ": EXECUTOR_TZ, "PYTHONPATH": ""}) as running:
        summary.add(f"master {running.master_url} with 2 workers ALIVE after {time.monotonic() - began:.1f}s "
                    f"(web UI {running.web_url})")
        try:
            yield running
        finally:
            stragglers = running.stop()
            summary.add("cluster stopped: master and workers ended by pid"
                        + (f"; stragglers ended by pid: {stragglers}" if stragglers else ", no stragglers"))
    assert not stragglers, f"processes outlived their workers: {stragglers}"


@pytest.fixture(scope="module")
def driver_env(world: World) -> dict[str, str]:
    """The spark-submit environment: drivers and executors on the isolated Python."""
    python = str(isolated_python(world.root / "python"))
    env = subprocess_env(PYSPARK_PYTHON=python, PYSPARK_DRIVER_PYTHON=python, PYTHONPATH="")  # not this checkout's lib/
    env.pop("FEATUREBANK_SPARK_MASTER")
    return env


@pytest.fixture(scope="module")
def packed(world: World, summary: Summary) -> Packed:
    """The archive `featurebank package` builds for EMR, unpacked for the drivers."""
    import os
    import tarfile

    os.environ.setdefault("FEATUREBANK_CACHE_DIR", str(ENVIRONMENT_CACHE))
    began = time.monotonic()
    artifacts = build_artifacts(world.project, world.root / "dist-env", python="archive", architecture=ARCHITECTURE)
    assert artifacts.environment is not None
    root = world.root / "driver-environment"
    with tarfile.open(artifacts.environment) as archive:
        archive.extractall(root, filter="tar")
    env = subprocess_env(PYSPARK_PYTHON="./environment/bin/python", PYSPARK_DRIVER_PYTHON=str(root / "bin" / "python"),
                         PYTHONPATH="")  # spark-submit adds the installed pyspark's python/lib zips itself
    env.pop("FEATUREBANK_SPARK_MASTER")
    summary.add(f"environment {artifacts.environment.name}: {artifacts.environment.stat().st_size / 1e6:.0f} MB, "
                f"built or taken from the cache in {time.monotonic() - began:.1f}s")
    return Packed(archive=artifacts.environment, driver_root=root, python=root / "bin" / "python", env=env)


def _environment_options(packed: Packed) -> list[str]:
    """What ships the archive to the executors and makes it their Python."""
    return ["--archives", f"{packed.archive}#environment",
            "--conf", "spark.executorEnv.PYSPARK_PYTHON=./environment/bin/python"]


def test_a_conf_master_never_overrides_the_master_the_launcher_chose() -> None:
    from featurebank.definitions.config import Config, SparkSettings

    config = Config(env="x", feature_root="/tmp/f", spark=SparkSettings((("spark.master", "local[2]"),)))
    assert session_conf(config, "local")["spark.master"] == "local[2]"
    for platform in ("submit", "emr", "glue"):
        assert "spark.master" not in session_conf(config, platform)


@pytest.mark.cluster
def test_the_drivers_and_executors_import_featurebank_only_from_the_shipped_wheel(
        world: World, cluster: StandaloneCluster, driver_env: dict[str, str], summary: Summary) -> None:
    python = driver_env["PYSPARK_PYTHON"]
    hidden = subprocess.run([python, "-c", "import featurebank"], capture_output=True, text=True, env=driver_env)
    assert hidden.returncode != 0 and "No module named 'featurebank'" in hidden.stderr, \
        "the isolated Python still sees the editable install: a missing --py-files would go unnoticed"

    wheel = world.artifacts.wheel
    done, app = _submit(cluster, ["--py-files", str(wheel), str(REPO / "tests" / "cluster_probe.py")], driver_env)
    probe = json.loads(next(line for line in done.stdout.splitlines() if line.startswith("PROBE "))[6:])
    assert probe["master"] == cluster.master_url
    assert wheel.name in probe["driver"], probe["driver"]
    content_hash = wheel.name.split("+")[1].split("-")[0]
    for task in probe["executors"]:
        # the wheel, shipped by engine.session as a .zip copy (PySpark puts no .whl on executors' path)
        found = str(Path(task["cwd"], task["file"]))  # relative to the executor's directory
        assert found.startswith(str(cluster.workdir)) and content_hash in found, \
            f"an executor imported featurebank from {found}, not from the shipped wheel"
        assert task["cwd"].startswith(str(cluster.workdir)), f"a task ran outside the cluster's workers: {task['cwd']}"
    summary.add(f"probe {app.id} ({app.state}, {app.cores} cores): the driver imported featurebank from "
                f"{wheel.name}; {len(probe['executors'])} tasks in {len({t['pid'] for t in probe['executors']})} "
                f"executor Python process(es) from {Path(probe['executors'][0]['file']).parents[1].name} "
                f"(the wheel, shipped as .zip)")


@pytest.mark.cluster
def test_the_packed_environment_is_the_only_python_with_featurebanks_dependencies(
        world: World, cluster: StandaloneCluster, packed: Packed, summary: Summary) -> None:
    import os

    # the interpreter is the one EMR 7.x nodes have (Amazon Linux 2023's /usr/bin/python3.11)
    assert os.readlink(packed.python) == INTERPRETER
    # the same interpreter without the archive has none of featurebank's dependencies: only
    # the archive can make the imports below succeed
    bare = subprocess.run([INTERPRETER, "-c", "import featurebank"], capture_output=True, text=True, env=packed.env)
    assert bare.returncode != 0 and "No module named 'featurebank'" in bare.stderr
    for name in ("sqlglot", "great_expectations", "pyarrow"):
        assert subprocess.run([INTERPRETER, "-c", f"import {name}"], capture_output=True, env=packed.env).returncode != 0, \
            f"{INTERPRETER} imports {name} without the archive: the proof would not prove the archive ships it"

    # compiled wheels are manylinux for the configured architecture (their WHEEL tags)
    site = packed.driver_root / "lib" / "python3.11" / "site-packages"
    assert wheel_tag_problems(site, ARCHITECTURE) == []
    compiled = sorted(p.parent.name for p in site.glob("*.dist-info/WHEEL") if "Root-Is-Purelib: false" in p.read_text())
    assert any(name.startswith(("numpy-", "pyarrow-", "pandas-")) for name in compiled), compiled
    # the platform's own (Spark, delta-spark's `delta` package, py4j) never ship; deltalake (delta-rs) does
    assert not list(site.glob("pyspark*")) and not list(site.glob("py4j*"))
    assert not (site / "delta").exists() and not list(site.glob("delta_spark*"))
    assert list(site.glob("deltalake-*.dist-info"))

    done, app = _submit(cluster, [*_environment_options(packed), str(REPO / "tests" / "cluster_env_probe.py")], packed.env)
    probe = json.loads(next(line for line in done.stdout.splitlines() if line.startswith("PROBE "))[6:])
    assert probe["master"] == cluster.master_url
    for name in PROBED:
        assert probe["driver"]["modules"][name].startswith(str(packed.driver_root)), (name, probe["driver"])
    cwds = set()
    for task in probe["executors"]:
        assert task["cwd"].startswith(str(cluster.workdir)), f"a task ran outside the cluster's workers: {task['cwd']}"
        environment = os.path.join(task["cwd"], "environment")
        assert task["prefix"] == environment, task
        for name in PROBED:
            found = task["modules"][name]
            assert found.startswith(environment + os.sep), \
                f"an executor imported {name} from {found}, not from ./environment of {task['cwd']}"
            assert str(REPO) not in found and ".venv" not in found, found
        cwds.add(task["cwd"])
    assert len(cwds) == 2, f"the probe ran on {len(cwds)} executor(s), not on both workers: {sorted(cwds)}"
    summary.add(f"environment probe {app.id} ({app.state}, {app.cores} cores): driver on {packed.python} -> "
                f"{INTERPRETER}; {len(probe['executors'])} tasks on {len(cwds)} executors imported "
                f"{', '.join(PROBED)} from ./environment")


@pytest.mark.cluster
@pytest.mark.timeout(1800)
def test_a_cluster_run_and_training_set_equal_a_local_run_row_for_row(
        world: World, cluster: StandaloneCluster, packed: Packed, summary: Summary, spark) -> None:
    from featurebank.cli import main as featurebank
    from featurebank.definitions import load_project

    dist, dates = world.artifacts, ["--start", START.isoformat(), "--end", END.isoformat()]
    driver_env = packed.env
    common = _environment_options(packed)  # the archive carries featurebank: no --py-files
    project = ["--project", str(dist.bundle), "--env", "cluster"]
    spine = str(world.raw / "card_fraud_labels")

    began = time.monotonic()
    _, run_app = _submit(cluster, [*common, str(dist.script("run_group")), "--all", *project, *dates], driver_env)
    summary.add(f"run --all on the cluster: {run_app.id} ({run_app.name}, {run_app.state}, {run_app.cores} cores), "
                f"{time.monotonic() - began:.1f}s")
    began = time.monotonic()
    _, set_app = _submit(cluster, [*common, str(dist.script("training_set")), TRAINING_SET, "--spine", spine,
                                   "--out", str(world.cluster_training), *project], driver_env)
    summary.add(f"training-set {TRAINING_SET} on the cluster: {set_app.id} ({set_app.name}, {set_app.state}, "
                f"{set_app.cores} cores), {time.monotonic() - began:.1f}s")

    began = time.monotonic()
    local = ["--project", str(world.project), "--env", "reference"]
    assert featurebank(["run", "--all", *local, *dates]) == 0
    assert featurebank(["training-set", TRAINING_SET, "--spine", spine, "--out", str(world.local_training), *local]) == 0
    summary.add(f"the same in local mode ({spark.sparkContext.master}): {time.monotonic() - began:.1f}s")

    definitions = load_project(world.project, "reference")
    for name, group in sorted(definitions.groups.items()):
        order = [*definitions.entities[group.entity].keys, "feature_date" if group.aggregations else "feature_ts"]
        on_cluster = _delta(world.cluster_features / name, order)
        in_local = _delta(world.local_features / name, order)
        assert len(in_local) > 0, f"{name}: the local run published nothing; the comparison would be empty"
        pd.testing.assert_frame_equal(on_cluster, in_local, check_exact=True, obj=f"table {name}")
        summary.add(f"table {name}: {len(on_cluster)} rows x {on_cluster.shape[1]} columns on the cluster, "
                    f"{len(in_local)} in local mode: identical")

        _check_profiles(world, name, group.aggregations)

    _check_against_pandas(_delta(world.cluster_features / "customer_card_spend", ["customer_id", "feature_date"]),
                          pd.read_parquet(world.raw / "card_transactions"))

    spine_columns = list(pd.read_parquet(spine).columns)
    on_cluster = _training_set(world.cluster_training, spine_columns)
    in_local = _training_set(world.local_training, spine_columns)
    assert len(in_local) == len(pd.read_parquet(spine)) > 0
    pd.testing.assert_frame_equal(on_cluster, in_local, check_exact=True, obj=f"training set {TRAINING_SET}")
    cluster_manifest, local_manifest = _manifest(world.cluster_training), _manifest(world.local_training)
    assert cluster_manifest["spine"]["fingerprint"] == local_manifest["spine"]["fingerprint"]
    assert _pins(cluster_manifest) == _pins(local_manifest)
    summary.add(f"training set {TRAINING_SET}: {len(on_cluster)} rows x {on_cluster.shape[1]} columns on the "
                f"cluster, {len(in_local)} in local mode: identical (same spine fingerprint, versions, hashes)")


# --- helpers ---------------------------------------------------------------------------------


def _submit(cluster: StandaloneCluster, args: list[str], env: dict[str, str]) -> tuple[
        subprocess.CompletedProcess[str], Application]:
    """spark-submit to the cluster; returns the result and the one application it registered."""
    before = {app.id for app in cluster.applications()}
    done = cluster.submit([*SUBMIT_OPTIONS, *args], env=env, cwd=cluster.workdir)
    assert done.returncode == 0, (f"spark-submit exited {done.returncode}\n{done.stdout[-3000:]}\n"
                                  f"{done.stderr[-5000:]}\n{cluster.log_tails()}")
    new = _settled_applications(cluster, before)
    assert len(new) == 1, f"expected one application registered at {cluster.master_url}, found {new}"
    app = new[0]
    # 2 cores: one executor on each worker, so the work really crossed processes
    assert app.state == "FINISHED" and app.cores == 2, app
    logged = re.findall(r"app ID (app-[0-9]+-[0-9]+)", done.stderr)
    assert not logged or logged == [app.id], f"spark-submit's log names {logged}, the master {app.id}"
    return done, app


def _settled_applications(cluster: StandaloneCluster, before: set[str]) -> list[Application]:
    """The applications registered since `before`, once the master no longer lists them as
    running (it learns of a driver's exit a moment after spark-submit returns)."""
    deadline = time.monotonic() + 30
    while True:
        new = [app for app in cluster.applications() if app.id not in before]
        if all(app.state != "RUNNING" for app in new) or time.monotonic() > deadline:
            return new
        time.sleep(0.5)


def _check_profiles(world: World, group: str, aggregations: object) -> None:
    """The profile the cluster's run stored for `group`'s last date holds the local run's counts: its
    histograms were binned on the executors (`engine.profile._bin_counts`) and a profile that fails
    there is only a warning, so the stored document is the proof. Means and quartiles are left out:
    their last bits follow the order Spark adds values in."""
    from dataclasses import replace

    from featurebank.engine.profile import GroupProfile
    from featurebank.gate.report import stored_profile

    on_cluster = stored_profile(str(world.cluster_features), group, END)
    in_local = stored_profile(str(world.local_features), group, END)
    if aggregations:
        assert in_local is not None and in_local.features, f"{group}: the local run stored no profile of {END}"
    assert (on_cluster is None) == (in_local is None), f"{group}: a profile of {END} stored on one side only"
    if on_cluster is None or in_local is None:
        return

    def counts(profile: GroupProfile) -> dict[str, object]:
        return {name: replace(p, mean=None, quartiles=None) for name, p in profile.features.items()}

    assert on_cluster.rows == in_local.rows and counts(on_cluster) == counts(in_local), f"{group}: profiles differ"


def _delta(path: Path, order: list[str]) -> pd.DataFrame:
    from featurebank.io import metadata

    frame = metadata.read_rows(str(path)).to_pandas()
    return frame.sort_values(order).reset_index(drop=True)


def _training_set(path: Path, spine_columns: list[str]) -> pd.DataFrame:
    frame = pd.read_parquet(path)
    return frame.sort_values(spine_columns).reset_index(drop=True)


def _manifest(path: Path) -> dict:
    return json.loads((path / "_manifest.json").read_text())


def _pins(manifest: dict) -> list[tuple[str, int, str, object, object]]:
    """Per group: Delta version read, definition hash, published dates and columns."""
    return sorted((g["read"]["group"], g["version"], g["data_hash"], g["published"], g["read"]["features"])
                  for g in manifest["groups"])


def _check_against_pandas(table: pd.DataFrame, events: pd.DataFrame) -> None:
    """customer_card_spend by brute force: for each date D, SETTLED events in [D - N days, D);
    a row exists exactly when there is one in the 90 days before D."""
    settled = events[events["status"] == "SETTLED"]
    expected = []
    day = START
    while day <= END:
        midnight = pd.Timestamp(day, tz="UTC")
        for customer, rows in settled.groupby("customer_id"):
            def window(days: int, rows: pd.DataFrame = rows) -> pd.DataFrame:
                return rows[(rows.event_ts >= midnight - pd.Timedelta(days=days)) & (rows.event_ts < midnight)]
            if window(90).empty:
                continue
            expected.append({"customer_id": customer, "feature_date": day, "txn_count_7d": len(window(7)),
                             "spend_sum_30d": window(30)["amount"].sum() if len(window(30)) else None,
                             "merchants_30d": window(30)["merchant_id"].nunique()})
        day += timedelta(days=1)
    oracle = pd.DataFrame(expected).sort_values(["customer_id", "feature_date"]).reset_index(drop=True)
    got = table[["customer_id", "feature_date", "txn_count_7d", "spend_sum_30d", "merchants_30d"]].copy()
    got["feature_date"] = pd.to_datetime(got["feature_date"]).dt.date
    for column in ("txn_count_7d", "merchants_30d"):
        got[column] = got[column].astype("int64")
    got["spend_sum_30d"] = got["spend_sum_30d"].astype("float64")
    assert len(oracle) > 0
    pd.testing.assert_frame_equal(got, oracle, check_dtype=False, rtol=1e-9, obj="customer_card_spend vs pandas")
