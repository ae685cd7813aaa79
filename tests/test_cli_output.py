"""stdout carries only a command's result: no JVM or Ivy line, never wrapped or cut off a
terminal, every option explained, a --version."""

from __future__ import annotations

import argparse
import io
import os
import re
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import pytest

from featurebank.cli import build_parser

REPO = Path(__file__).resolve().parent.parent
LONG_DIR = "a_directory_name_long_enough_that_any_eighty_column_layout_would_have_to_cut_it"
GROUP = "customer_spend_with_a_name_long_enough_to_wrap_an_eighty_column_terminal"
FEATURE = "amount_sum_over_the_whole_window_with_a_descriptive_name"
# A line Spark, Ivy or log4j writes (log4j's console layout starts `26/03/01 10:15:02 WARN Utils: ...`).
JVM_LINE = re.compile(r"^\d\d/\d\d/\d\d \d\d:\d\d:\d\d [A-Z]+ |:: loading settings|Ivy Default Cache|:: resolving "
                      r"dependencies|The jars for the packages|Setting default log level|To adjust logging level|log4j")


def test_starting_spark_prints_nothing_on_stdout(tmp_path):
    # Ivy's ":: loading settings ::" line used to reach stdout (and `list --json | json.tool` broke).
    script = ("from featurebank.io.spark import get_spark\n"
              "spark = get_spark(None, app_name='stdout-probe', platform='local')\n"
              "print('RESULT', spark.range(3).count())\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "RESULT 3\n", done.stdout
    assert "loading settings" in done.stderr  # the line still exists: it went to stderr


def test_version_prints_the_installed_version():
    done = subprocess.run([sys.executable, "-m", "featurebank", "--version"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.startswith("featurebank "), (done.stdout, done.stderr)


def test_every_option_and_argument_of_every_command_has_help_text():
    parser = build_parser()
    [commands] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    missing = [f"{name} {action.dest}" for name, sub in commands.choices.items() for action in sub._actions
               if not isinstance(action, argparse._HelpAction) and not action.help]
    assert not missing, missing


def test_off_a_terminal_a_command_prints_every_line_whole_and_no_jvm_line(tmp_path):
    """`featurebank run | tee`, CI, Glue logs: stdout a pipe, COLUMNS=80; long names and paths
    come out whole (no fold, no "…"), and neither stream carries Spark's, Ivy's or log4j's lines."""
    project = _long_named_project(tmp_path)
    env = {**os.environ, "COLUMNS": "80", "PYTHONPATH": f"{REPO / 'lib'}", "FEATUREBANK_SPARK_MASTER": "local[1]"}
    env.pop("FEATUREBANK_SPARK_LOG_LEVEL", None)
    env.pop("FEATUREBANK_SPARK_LOG_FILE", None)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "featurebank", *args, "--project", str(project)], env=env,
                              cwd=tmp_path, capture_output=True, text=True, timeout=900)

    run = cli("run", GROUP, "--date", "2024-03-03")
    assert run.returncode == 0, run.stdout + run.stderr
    plan = cli("plan", GROUP, "--date", "2024-03-03")
    history = cli("history", GROUP)
    for done in (plan, history):
        assert done.returncode == 0, done.stdout + done.stderr
    outputs = {"run": run.stdout, "plan": plan.stdout, "history": history.stdout}
    streams = {**outputs, "run stderr": run.stderr}
    assert {name: [line for line in text.splitlines() if JVM_LINE.search(line)] for name, text in streams.items()} \
        == {name: [] for name in streams}
    for name, out in outputs.items():
        assert "…" not in out and "\x1b[" not in out, name
    assert f"{GROUP} 2024-03-03..2024-03-03: published" in run.stdout  # one line, whole
    assert "at customer_id='c0', feature_date=2024-03-03" in run.stdout  # the warn failure, named with its row
    table_path = f"{project}/warehouse/{LONG_DIR}/features/{GROUP}"
    assert table_path in plan.stdout and f"{LONG_DIR}/txns" in plan.stdout
    [row] = [line for line in history.stdout.splitlines() if "published" in line]
    assert GROUP in history.stdout and "2024-03-03" in row and "warned" in row and f"{FEATURE}_7d" in row


def _long_named_project(tmp_path: Path) -> Path:
    """One entity, one source under a long directory name, one long-named group with a warn check that fails."""
    root = tmp_path / LONG_DIR / "project"
    (root / "conf").mkdir(parents=True)
    (root / "features").mkdir()
    (root / "conf" / "local.yaml").write_text(
        f"feature_root: ./warehouse/{LONG_DIR}/features\nvariables: {{raw_root: ./raw/{LONG_DIR}}}\n"
        "timezone: UTC\ncatalog: {type: none}\nspark: {conf: {spark.sql.shuffle.partitions: '2'}}\n")
    (root / "features" / "defs.yaml").write_text(f"""\
kind: entity
name: customer
keys: [customer_id]
---
kind: source
name: txns
format: parquet
path: ${{raw_root}}/txns
timestamp: event_ts
columns: {{customer_id: string, amount: double, event_ts: timestamp}}
---
kind: feature_group
name: {GROUP}
entity: customer
source: txns
aggregations:
  - {{name: {FEATURE}, expr: amount, function: sum, windows: [7d]}}
checks:
  - expect_column_values_to_be_between: {{column: {FEATURE}_7d, max_value: 10}}
    severity: warn
""")
    raw = root / "raw" / LONG_DIR / "txns"
    raw.mkdir(parents=True)
    pd.DataFrame({"customer_id": ["c0", "c1", "c1"], "amount": [50.0, 2.0, 3.0],
                  "event_ts": [datetime(2024, 3, 1, 10, tzinfo=timezone.utc)] * 3}).to_parquet(raw / "part-0.parquet")
    return root


def test_a_console_off_a_terminal_neither_wraps_nor_cuts(monkeypatch: pytest.MonkeyPatch) -> None:
    from rich.table import Table

    from featurebank.console import progress_console, result_console

    out, err = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setattr(sys, "stderr", err)
    monkeypatch.setenv("COLUMNS", "40")
    long = "/".join([LONG_DIR] * 4)
    table = Table(title="runs")
    for column in ("path", "status"):
        table.add_column(column, overflow="fold")
    table.add_row(long, "published")
    result_console().print(table)
    result_console().print(f"written to {long}")
    progress_console().print(f"reading {long}")
    assert long in out.getvalue() and f"written to {long}\n" in out.getvalue() and "…" not in out.getvalue()
    assert err.getvalue() == f"reading {long}\n"


def test_without_verbose_the_cli_sends_spark_s_own_output_to_a_file_and_with_it_to_stderr(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from dataclasses import replace

    from featurebank.cli import COMMANDS, main
    from featurebank.io.spark import JVM_LOG_ENV, LOG_LEVEL_ENV

    seen: dict[str, str | None] = {}

    def handler(args: argparse.Namespace) -> int:
        seen.update(level=os.environ.get(LOG_LEVEL_ENV), log=os.environ.get(JVM_LOG_ENV))
        return 0

    for name in (LOG_LEVEL_ENV, JVM_LOG_ENV):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setitem(COMMANDS, "validate", replace(COMMANDS["validate"], handler=handler))
    assert main(["validate"]) == 0
    assert seen["level"] == "OFF" and seen["log"] and Path(seen["log"]).name.startswith("featurebank-spark-")
    assert main(["validate", "--verbose"]) == 0 and seen == {"level": "default", "log": None}
    assert LOG_LEVEL_ENV not in os.environ and JVM_LOG_ENV not in os.environ


def test_a_local_jvm_told_to_log_to_a_file_writes_nothing_of_its_own_on_either_stream(tmp_path):
    log = tmp_path / "spark.log"
    script = ("from featurebank.io.spark import get_spark\n"
              "spark = get_spark(None, app_name='quiet-probe', platform='local')\n"
              "print('RESULT', spark.range(3).count())\n")
    env = {**os.environ, "FEATUREBANK_SPARK_LOG_FILE": str(log), "FEATUREBANK_SPARK_LOG_LEVEL": "OFF",
           "PYTHONPATH": str(REPO / "lib")}
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=600,
                          env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "RESULT 3\n" and not JVM_LINE.search(done.stderr), done.stderr
    assert "loading settings" in log.read_text()


def test_a_reader_that_stops_early_gets_no_error_message(tmp_path):
    """`featurebank plan G | head -1`: the closed pipe is the reader's choice, not a failure to report."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "lib")}
    proc = subprocess.Popen([sys.executable, "-m", "featurebank", "plan", "customer_card_spend", "--date", "2024-03-01",
                             "--project", str(REPO)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # before the command writes: its first write meets a closed pipe
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141 and err == "", err
