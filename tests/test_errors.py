"""Every runtime failure is a sentence, every bad argument exits 2 (issue #16, finding 10).

A corrupt Parquet file, a full disk and a Spark parse error are reported as what was being
done, the root cause from the Java cause chain, and the next step, with no Java stack trace
(without --debug); dates before 1900 and ranges too large to plan are refused at once.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest

from featurebank.cli import COMMANDS, main
from featurebank.commands.dates import MAX_CHUNKS, MAX_DATES
from featurebank.definitions import load_project
from featurebank.errors import UsageError
from featurebank.compile.run import compile_plan
from featurebank.spark_errors import describe_failure, root_cause

GROUP = "customer_card_spend"
DAY = "2024-03-02"
JAVA_NOISE = ("Py4JJavaError", "\tat org.apache", "\tat java.", "Traceback", "An error occurred while calling")


@pytest.fixture()
def project(example_project: Path) -> Path:
    """The example project with tiny sources (test_runner's)."""
    from test_runner import _transactions, _write_sources

    _write_sources(example_project, _transactions())
    return example_project


def _cli(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "featurebank", *args, "--project", str(project)],
                          capture_output=True, text=True, timeout=600, cwd=project)


def _code(argv: list[str]) -> int:
    """`main(argv)`'s exit code, argparse's SystemExit included."""
    try:
        return main(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)


def _assert_one_sentence(stderr: str) -> None:
    for noise in JAVA_NOISE:
        assert noise not in stderr, stderr[-3000:]
    [line] = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert " failed: " in line and "; " in line, line  # what was done, the cause; the next step


def test_a_corrupt_parquet_file_exits_3_naming_the_file_and_the_cause_without_a_java_trace(project: Path) -> None:
    corrupt = project / "warehouse" / "raw" / "card_transactions" / "part-1.parquet"
    corrupt.write_bytes(b"PAR1 half a file" * 64)
    result = _cli(project, "run", GROUP, "--date", DAY)
    assert result.returncode == 3, result.stdout + result.stderr
    _assert_one_sentence(result.stderr)
    # a damaged second file is met while computing (Spark infers the schema from the first)
    assert f"running feature group {GROUP} into {project}/warehouse/features/{GROUP} failed" in result.stderr
    assert f"{corrupt}" in result.stderr and "is not a Parquet file" in result.stderr
    assert "replace or remove it" in result.stderr


def test_a_full_disk_exits_3_with_no_space_left_naming_the_table_without_a_java_trace(
        project: Path, tmp_path: Path) -> None:
    mount = tmp_path / "tiny"
    mount.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a 2 MB tmpfs to fill ({mounted.stderr.strip() or 'not root'}); a full disk "
                    "cannot be simulated honestly here")
    try:
        conf = project / "conf" / "local.yaml"
        conf.write_text(conf.read_text().replace("feature_root: ./warehouse/features", f"feature_root: {mount}/features"))
        with open(mount / "filler", "wb") as filler:  # the disk is full before the run starts
            try:
                while True:
                    filler.write(b"\0" * 65536)
                    filler.flush()
            except OSError:
                pass
        result = _cli(project, "run", GROUP, "--date", DAY)
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)
    assert result.returncode == 3, result.stdout + result.stderr
    _assert_one_sentence(result.stderr)
    assert "No space left on device" in result.stderr
    assert f"{mount}/features/{GROUP}" in result.stderr and "free space" in result.stderr


def test_a_semicolon_in_a_filter_is_refused_by_validate_with_file_and_line(
        project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    definition = project / "features" / "cards" / "customer_card_spend.yaml"
    definition.write_text(definition.read_text().replace("filter: \"status = 'SETTLED'\"", "filter: \"status = 'SETTLED';\""))
    assert _code(["validate", "--project", str(project)]) == 2
    err = capsys.readouterr().err
    assert "features/cards/customer_card_spend.yaml:" in err and "`;`" in err, err


def test_a_spark_parse_error_with_an_empty_first_line_is_described_by_its_reason(spark) -> None:
    with pytest.raises(Exception) as caught:
        spark.range(3).where("id > 1;").collect()
    assert str(caught.value).startswith("\n")  # what printed `ParseException: ` and nothing else
    assert "Syntax error" in root_cause(caught.value) and "`id > 1;`" in root_cause(caught.value)
    assert describe_failure(caught.value, "filtering").startswith("filtering failed: ParseException: [PARSE_SYNTAX_ERROR]")


def test_a_snapshot_window_reaching_before_year_1_is_a_usage_error(project: Path) -> None:
    loaded = load_project(project, "local")
    with pytest.raises(UsageError, match="reach past the calendar"):
        compile_plan(loaded, GROUP, date(1, 1, 5), date(1, 1, 5))


def test_a_date_before_1900_exits_2_with_a_sentence(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _code(["run", GROUP, "--date", "0001-01-01", "--project", str(project)]) == 2
    assert "0001-01-01 is outside the snapshot dates featurebank handles (1900-01-01 .. 9998-12-31)" in capsys.readouterr().err


@pytest.mark.parametrize(("argv", "says"), [
    (["--start", "1000-01-01", "--end", "9000-12-31", "--chunk-days", "1"], "1000-01-01 is outside"),
    (["--start", "1900-01-01", "--end", "9000-12-31", "--chunk-days", "1"], f"holds 2,593,587 snapshot dates; one command covers at most {MAX_DATES:,}"),
    (["--start", "2000-01-01", "--end", "2050-12-31", "--chunk-days", "1"], f"makes 18,628 chunks; at most {MAX_CHUNKS:,}"),
])
def test_a_range_too_large_to_plan_exits_2_at_once(project: Path, capsys: pytest.CaptureFixture[str],
                                                   argv: list[str], says: str) -> None:
    started = time.monotonic()
    assert _code(["run", GROUP, *argv, "--project", str(project)]) == 2
    assert time.monotonic() - started < 5
    assert says in capsys.readouterr().err


@pytest.mark.parametrize("argv", [
    ["plan", GROUP, "--date", "2024-13-01"],
    ["plan", GROUP, "--date", "yesterday"],
    ["plan", GROUP, "--date", "10000-01-01"],
    ["plan", "no_such_group", "--date", DAY],
    ["plan", GROUP, "--date", DAY, "--start", DAY, "--end", DAY],
    ["plan", GROUP, "--start", DAY],
    ["plan", GROUP, "--start", "2024-03-05", "--end", "2024-03-01"],
    ["run", "no_such_group", "--date", DAY],
    ["run", "--date", DAY],
    ["run", GROUP, "--all", "--date", DAY],
    ["run", GROUP, "--date", DAY, "--chunk-days", "0"],
    ["run", GROUP, "--date", DAY, "--chunk-days", "-3"],
    ["run", GROUP, "--date", DAY, "--chunk-days", "two"],
    ["describe", "no_such_group"],
    ["validate", "--env", "no_such_env"],
    ["history", GROUP, "--limit", "many"],
    ["no-such-command"],
])
def test_every_bad_argument_exits_2_before_spark_starts(project: Path, capsys: pytest.CaptureFixture[str],
                                                       argv: list[str]) -> None:
    assert _code([*argv, "--project", str(project)]) == 2
    err = capsys.readouterr().err
    assert "error" in err and "Traceback" not in err


def test_the_cli_silences_spark_s_console_log_unless_debug_or_verbose(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = {}

    def handler(args):  # noqa: ANN001, ANN202
        seen["level"] = os.environ.get("FEATUREBANK_SPARK_LOG_LEVEL")
        return 0

    monkeypatch.delenv("FEATUREBANK_SPARK_LOG_LEVEL", raising=False)
    monkeypatch.setitem(COMMANDS, "validate", replace(COMMANDS["validate"], handler=handler))
    assert main(["validate"]) == 0 and seen["level"] == "OFF"
    assert main(["validate", "--debug"]) == 0 and seen["level"] == "ERROR"
    assert main(["validate", "--verbose"]) == 0 and seen["level"] == "default"  # Spark's own level
    assert "FEATUREBANK_SPARK_LOG_LEVEL" not in os.environ
