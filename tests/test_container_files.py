"""The container files agree with the library, without building an image (no Spark, no engine).

`make container` / `make container-demo` are the real proof (they build and run the image);
these tests catch the drift a build would only show minutes later: a jar version that no
longer matches the session builder, a compose command the CLI no longer accepts, a file the
Containerfile copies that the ignore file keeps out of the build context.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from featurebank.cli import build_parser
from featurebank.io.spark import HADOOP_AWS_PACKAGE

REPO = Path(__file__).resolve().parent.parent
DEFAULT = re.compile(r"\$\{[A-Z_]+:-([^}]*)\}")  # compose's ${NAME:-default}


def _compose() -> dict:  # type: ignore[type-arg]
    return yaml.safe_load((REPO / "compose.yaml").read_text())


def _with_defaults(value: str) -> str:
    return DEFAULT.sub(lambda m: m.group(1), value)


def test_image_resolves_the_hadoop_aws_jar_the_session_builder_asks_for() -> None:
    text = (REPO / "Containerfile").read_text()
    declared = re.search(r"^ARG HADOOP_AWS_PACKAGE=(\S+)$", text, re.MULTILINE)
    assert declared is not None
    assert declared.group(1) == HADOOP_AWS_PACKAGE


def test_every_file_the_containerfile_copies_is_let_into_the_build_context() -> None:
    text = (REPO / "Containerfile").read_text()
    sources = []
    for line in text.splitlines():
        parts = line.split()
        if parts[:1] == ["COPY"] and not any(p.startswith("--from") for p in parts):
            sources += [p for p in parts[1:-1] if not p.startswith("--")]
    assert sources, "no COPY found"
    rules = [r for r in (REPO / ".containerignore").read_text().splitlines() if r and not r.startswith("#")]
    assert rules[0] == "*", "the ignore file is an allow-list: everything out, then what the build needs"
    allowed = {r[1:].rstrip("/") for r in rules if r.startswith("!")}
    for source in sources:
        assert source.rstrip("/") in allowed, f"Containerfile copies {source}, but .containerignore keeps it out"
    assert (REPO / ".dockerignore").resolve() == (REPO / ".containerignore").resolve()


def test_compose_runs_one_image_as_master_two_workers_and_a_driver_on_that_master() -> None:
    services = _compose()["services"]
    assert set(services) == {"master", "worker-1", "worker-2", "driver"}
    assert len({s["image"] for s in services.values()}) == 1
    assert all(s["volumes"] == ["${PROJECT_DIR:-.}:/project"] for s in services.values())

    master = services["master"]
    assert master["entrypoint"] == ["spark-class", "org.apache.spark.deploy.master.Master"]
    flags = dict(zip(master["command"][::2], master["command"][1::2]))
    master_url = f"spark://{flags['--host']}:{flags['--port']}"
    for name in ("worker-1", "worker-2"):
        worker = services[name]
        assert worker["entrypoint"] == ["spark-class", "org.apache.spark.deploy.worker.Worker"]
        assert worker["command"][0] == master_url
        assert worker["command"][worker["command"].index("--host") + 1] == worker["hostname"] == name
    driver = services["driver"]
    assert driver["environment"]["FEATUREBANK_SPARK_MASTER"] == master_url
    assert set(driver["depends_on"]) == {"worker-1", "worker-2"}


def test_compose_driver_command_is_one_the_featurebank_cli_accepts() -> None:
    command = [_with_defaults(str(part)) for part in _compose()["services"]["driver"]["command"]]
    args = build_parser().parse_args(command)
    assert args.command == "run" and args.all and str(args.project) == "/project"
    assert args.start <= args.end


def test_read_tables_script_counts_every_delta_table_as_deltalake_reads_it(tmp_path: Path) -> None:
    import pyarrow as pa
    from deltalake import write_deltalake

    root = tmp_path / "warehouse"
    write_deltalake(str(root / "features" / "a"), pa.table({"feature_date": ["2024-01-01"] * 3, "x": [1, 2, 3]}),
                    partition_by=["feature_date"])
    write_deltalake(str(root / "features" / "a"), pa.table({"feature_date": ["2024-01-02"], "x": [4]}),
                    partition_by=["feature_date"], mode="append")
    write_deltalake(str(root / "features" / "b"), pa.table({"y": [1.5, 2.5]}))
    (root / "raw").mkdir()  # not a Delta table: ignored

    done = subprocess.run([sys.executable, str(REPO / "scripts" / "container-read-tables.py"), str(root)],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert re.search(r"features/a: version 1, partitioned by \['feature_date'\], dates 2024-01-01..2024-01-02 4 rows",
                     done.stdout), done.stdout
    assert "features/b: version 0, partitioned by -, 2 rows" in done.stdout
    assert "2 Delta table(s) read with deltalake; 0 problem(s)" in done.stdout


@pytest.mark.parametrize("content", ["empty", "none"])
def test_read_tables_script_fails_without_tables_or_rows(tmp_path: Path, content: str) -> None:
    import pyarrow as pa
    from deltalake import write_deltalake

    if content == "empty":
        write_deltalake(str(tmp_path / "t"), pa.table({"x": pa.array([], pa.int64())}))
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "container-read-tables.py"), str(tmp_path)],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 1, done.stdout + done.stderr
