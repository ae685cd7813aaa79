"""Secrets stay secret (issue #16, finding 6): a value read with `${env:NAME}` is used as it is
(the source path holding it still reads), but no printed, rendered or stored artefact shows it.

One tiny project whose raw data lives under a directory named after a planted secret, and a
free-text conf variable holding a second one (definitions may not carry either anywhere but
a source's path, so conf values and source locations are where secrets can leak from). Every command's stdout and stderr, every file under the feature root (Delta logs
as bytes, Parquet files decoded) and the docs site are searched for both: zero hits.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from featurebank.cli import main
from featurebank.redact import MASK, redact, remember

SECRET = "s3cr3t-planted-9f1c"
TOKEN = "tok-Zq81-planted-4e"
PLANTED = (SECRET, TOKEN)
DAY = "2024-03-02"
CONF = f"""\
feature_root: ./warehouse/features
variables:
  raw_root: ../data/${{env:FB_SECRET}}/warehouse/raw
  contact: "ops desk ${{env:FB_TOKEN}}"
timezone: UTC
catalog: {{type: none}}
spark:
  conf:
    spark.sql.shuffle.partitions: "2"
"""


def _leaks(text: str | bytes) -> list[str]:
    data = text.encode("utf-8", "replace") if isinstance(text, str) else text
    return [s for s in PLANTED if s.encode() in data]


def _parquet_leaks(path: Path) -> list[str]:
    """Secrets in a Parquet file's decoded string values and its footer metadata."""
    table = pq.read_table(path)
    found = set()
    for value in (table.schema.metadata or {}).values():
        found.update(_leaks(value))
    for column in table.columns:
        if str(column.type) in ("string", "large_string"):
            for value in column.to_pylist():
                if value:
                    found.update(_leaks(value))
    return sorted(found)


def _file_leaks(root: Path) -> dict[str, list[str]]:
    leaks = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        found = set(_leaks(path.read_bytes()))
        if path.suffix == ".parquet":
            found.update(_parquet_leaks(path))
        if found:
            leaks[str(path.relative_to(root))] = sorted(found)
    return leaks


@pytest.fixture()
def secret_project(example_project: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    from test_runner import _transactions, _write_sources

    (example_project / "conf" / "local.yaml").write_text(CONF)
    _write_sources(example_project.parent / "data" / SECRET, _transactions())
    monkeypatch.setenv("FB_SECRET", SECRET)
    monkeypatch.setenv("FB_TOKEN", TOKEN)
    return example_project


def _cli(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FB_SECRET": SECRET, "FB_TOKEN": TOKEN}
    return subprocess.run([sys.executable, "-m", "featurebank", *args, "--project", str(project)],
                          capture_output=True, text=True, env=env, timeout=600, cwd=project)


def test_redact_masks_every_spelling_of_a_remembered_value_and_ignores_short_ones() -> None:
    remember(["a b/cd-secret", "q&a's-secret", "1"])
    assert redact("path file:/x/a%20b/cd-secret/y and a b/cd-secret") == f"path file:/x/{MASK}/y and {MASK}"
    assert redact("<p>q&amp;a&#x27;s-secret</p>") == f"<p>{MASK}</p>"
    assert redact("1 + 1") == "1 + 1"


def test_a_planted_env_secret_appears_in_no_output_no_table_no_run_log_and_no_docs(
        spark, secret_project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    project = secret_project
    outputs: dict[str, str] = {}
    for name, args in {
        "validate": ["validate"],
        "plan": ["plan", "customer_card_spend", "--date", DAY],
        "run": ["run", "customer_card_spend", "--date", DAY],
    }.items():
        result = _cli(project, *args)
        assert result.returncode == 0, result.stdout + result.stderr
        outputs[name] = result.stdout + result.stderr
    assert f"/data/{MASK}/warehouse/raw/card_transactions" in outputs["plan"]  # the path shows, its secret not

    # A failure whose message quotes a path holding the secret: printed and logged.
    customers = project.parent / "data" / SECRET / "warehouse" / "raw" / "customers" / "part-0.parquet"
    customers.write_bytes(b"this is not parquet at all" * 40)
    failed = _cli(project, "run", "customer_profile", "--date", DAY)
    assert failed.returncode == 3, failed.stdout + failed.stderr
    assert "part-0.parquet" in failed.stderr
    outputs["failed run"] = failed.stdout + failed.stderr

    site = tmp_path / "site"
    for name, args in {
        "docs": ["docs", "--out", str(site)],
        "list": ["list"],
        "list --json": ["list", "--json"],
        "describe": ["describe", "customer_card_spend"],
        "history": ["history", "customer_profile"],
    }.items():
        code = main([*args, "--project", str(project)])
        captured = capsys.readouterr()
        assert code == 0, captured.out + captured.err
        outputs[name] = captured.out + captured.err

    assert {name: _leaks(text) for name, text in outputs.items() if _leaks(text)} == {}
    feature_root = project / "warehouse" / "features"
    assert (feature_root / "customer_card_spend" / "_delta_log").is_dir()
    assert (feature_root / "_runs").is_dir()
    assert _file_leaks(feature_root) == {}
    assert _file_leaks(site) == {}
    # The secret-bearing path really was read: the run published rows.
    table = spark.read.format("delta").load(str(feature_root / "customer_card_spend"))
    assert table.count() > 0
