"""stdout carries only a command's result: no JVM or Ivy line, every option explained, a --version."""

from __future__ import annotations

import argparse
import subprocess
import sys

from featurebank.cli import build_parser


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
