"""The JVM class archive (issue 20: a local session starts ~2.5 s faster): only a local JVM maps it,
only an archive of the size recorded when it was proved, and a damaged or foreign one never stops
a session from starting. The last test starts real JVMs (a fresh process each)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from featurebank.io import class_archive
from featurebank.io.class_archive import ARCHIVE_ENV, archive_path, java_options
from featurebank.io.spark import LOCAL_GC_OPTION, RUN_SIZE_ENV, session_conf

JAVA = "spark.driver.extraJavaOptions"


def _archive(tmp_path: Path, size: int = 4096, recorded: int | None = None) -> Path:
    path = tmp_path / "classes.jsa"
    path.write_bytes(b"\0" * size)
    path.with_name(path.name + ".size").write_text(str(size if recorded is None else recorded))
    return path


def test_a_local_session_maps_a_proved_archive_and_no_other(tmp_path, monkeypatch):
    monkeypatch.delenv(RUN_SIZE_ENV, raising=False)
    monkeypatch.delenv("FEATUREBANK_SPARK_MASTER", raising=False)
    path = _archive(tmp_path)
    monkeypatch.setenv(ARCHIVE_ENV, str(path))
    assert archive_path() == path
    assert session_conf(None, "local")[JAVA].split() == [
        "-Duser.timezone=UTC", LOCAL_GC_OPTION, f"-XX:SharedArchiveFile={path}", *class_archive.QUIET]
    for platform in ("glue", "emr", "submit"):  # their JVMs are not ours to start
        assert "SharedArchiveFile" not in session_conf(None, platform).get(JAVA, "")
    monkeypatch.setenv("FEATUREBANK_SPARK_MASTER", "spark://head:7077")  # a cluster's executors: other jars
    assert "SharedArchiveFile" not in session_conf(None, "local")[JAVA]


@pytest.mark.parametrize("case", ["truncated", "no size recorded", "absent", "off", "size not a number"])
def test_no_archive_unless_its_size_is_the_one_recorded(case, tmp_path, monkeypatch):
    """A JVM dies at start on a truncated archive: one cut short after it was proved is never given."""
    path = _archive(tmp_path, size=4096, recorded=8192 if case == "truncated" else None)
    if case == "no size recorded":
        path.with_name(path.name + ".size").unlink()
    if case == "absent":
        path.unlink()
    if case == "size not a number":
        path.with_name(path.name + ".size").write_text("4096 bytes")
    monkeypatch.setenv(ARCHIVE_ENV, "OFF" if case == "off" else str(path))
    assert archive_path() is None and java_options() == []
    monkeypatch.delenv("FEATUREBANK_SPARK_MASTER", raising=False)
    assert "SharedArchiveFile" not in session_conf(None, "local").get(JAVA, "")


def test_the_default_archive_lives_in_this_python_environment(monkeypatch):
    monkeypatch.delenv(ARCHIVE_ENV, raising=False)
    assert class_archive.default_path().is_relative_to(sys.prefix)


def _start(archive: Path | str) -> subprocess.CompletedProcess[str]:
    code = ("from featurebank.io.spark import get_spark; s = get_spark(None, platform='local'); "
            "print(s.range(5).count(), s.conf.get('spark.driver.extraJavaOptions'))")
    env = {**os.environ, ARCHIVE_ENV: str(archive)}
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)


def test_the_archive_starts_sessions_and_a_damaged_one_does_not_stop_them(tmp_path):
    """`make setup`'s archive (made here when absent) starts a session; so do one made from other
    bytes and one cut short, with the JVM's own messages about them kept off stdout."""
    made = class_archive.default_path()
    if archive_path() is None:  # `make setup` made it on CI; elsewhere make one here
        made = tmp_path / "made" / "classes.jsa"
        assert class_archive.create(made), "no archive was written"
        assert sorted(p.name for p in made.parent.iterdir()) == ["classes.jsa", "classes.jsa.size"]  # no leftovers
    good = _start(made)
    assert good.returncode == 0 and good.stdout.split()[:2] == ["5", "-Duser.timezone=UTC"], good.stderr[-2000:]
    assert f"-XX:SharedArchiveFile={made}" in good.stdout

    foreign = _archive(tmp_path, size=made.stat().st_size)  # right size, not an archive: the JVM ignores it
    with open(made, "rb") as source, open(foreign, "r+b") as target:
        target.write(source.read(64)[:4])  # even its magic number
    cut = tmp_path / "cut" / "classes.jsa"  # cut short: the recorded size no longer matches
    cut.parent.mkdir()
    with open(made, "rb") as source:
        cut.write_bytes(source.read(1 << 20))
    shutil.copy(made.with_name(made.name + ".size"), cut.with_name(cut.name + ".size"))
    for archive in (foreign, cut):
        started = _start(archive)
        assert started.returncode == 0 and started.stdout.split()[0] == "5", started.stderr[-2000:]
        assert started.stdout.count("\n") == 1 and "warning" not in started.stdout.lower(), started.stdout
