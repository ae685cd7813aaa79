"""Layers point down only, and only io/ touches storage (issue 17).

Every module of `lib/featurebank` is read with `ast` (nothing is imported), every import
it makes is found — module-level, inside functions, under `if TYPE_CHECKING:` (a type-level
dependency is still an arrow: the reader of the lower layer must not need the upper one to
understand it), relative (`from . import x`) and `importlib.import_module("...")` with a
constant name — and each module gets the rank of the longest prefix in `RANKS`. An import
of a higher rank fails the test, naming the module, the line and the arrow. So do: engine
importing io or io importing engine (same rank, separate edges), a module outside io/ that
imports `pyarrow.fs` or `boto3` or reaches the JVM through `_jvm`/`_jsc`, and any import of
`featurebank_demo` (the demo tooling lives in tools/, outside the wheel).

`KNOWN_VIOLATIONS` is empty since issue 17 removed the last fourteen arrows; a new one is to be
fixed, not listed (the test also fails when a listed one is gone, so the list only shrinks).
"""

from __future__ import annotations

import ast
import shutil
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

LIBRARY = Path(__file__).resolve().parents[1] / "lib" / "featurebank"

# Module-name prefix -> rank (longest prefix wins; a module under no prefix fails the test). A module may import only the same or a
# lower rank. Job entry points (deploy.entry, deploy.jobs) are shells like the CLI: rank 7.
RANKS: dict[str, int] = {
    # 0 base: vocabulary every layer may use
    "featurebank.errors": 0,
    "featurebank.redact": 0,
    "featurebank.console": 0,
    "featurebank.faults": 0,
    "featurebank.spark_errors": 0,
    "featurebank.aggregators": 0,
    "featurebank.days": 0,  # the one day-cut rule (wt-agg)
    # 1 definitions: YAML, model, conf, validation, expression policy; no Spark, no I/O
    "featurebank.definitions": 1,
    # 2 compile: compiled group, run plan, order, render; pure
    "featurebank.compile": 2,
    # 3 engine (DataFrames in, DataFrames out) and io (the only code that touches storage)
    "featurebank.engine": 3,
    "featurebank.io": 3,
    # 4 the publish gate
    "featurebank.gate": 4,
    # 5 runs, training sets, readiness, retention
    "featurebank.runner": 5,
    "featurebank.readiness": 5,
    "featurebank.preview": 5,  # a run's compute on a sample, writing nothing (issue 18)
    "featurebank.review": 5,  # plan as a change review; the breaking-change guard of run (issue 21)
    "featurebank.explain": 5,  # one entity's values on one date, read and explained (issue 21)
    "featurebank.retention": 5,
    "featurebank.erase": 5,  # right to erasure across every copy (issue 23)
    "featurebank.training": 5,
    # 6 readers and shippers of what runs produce
    "featurebank.catalog": 6,
    "featurebank.governance": 6,
    "featurebank.deploy": 6,
    # 7 shells: the CLI, its handlers, the package's lazy API, job entry points
    "featurebank.commands": 7,
    "featurebank.cli": 7,
    "featurebank.__main__": 7,
    "featurebank": 7,  # featurebank/__init__.py only (FeatureStore, lazily): the root is no prefix
    "featurebank.deploy.entry": 7,
    "featurebank.deploy.jobs": 7,
}

# Siblings of one rank that must not import each other: execution never reads or writes and
# storage never computes; the catalog, governance and deploy each read the layers below, not
# one another (governance -> deploy was conf parsing and a change type in the wrong place).
SIBLINGS = (("featurebank.engine", "featurebank.io"),
            ("featurebank.catalog", "featurebank.governance", "featurebank.deploy"))
SEPARATE = tuple((a, b) for group in SIBLINGS for a in group for b in group if a != b) + (
    ("featurebank.commands", "featurebank.cli"),  # one rank, one way: the CLI's table points at its handlers
)
STORAGE_EDGE = "featurebank.io"
STORAGE_MODULES = ("pyarrow.fs", "boto3")  # S3 and file systems: only through io/ (io.aws.client, io.files)
JVM_BACKDOORS = ("_jvm", "_jsc")  # Hadoop file systems reached through py4j: only in io/
DEMO = "featurebank_demo"

# Exactly today's violations (module -> what), each being removed on another branch.
KNOWN_VIOLATIONS: set[str] = set()  # issue 17 removed the last ones; keep it empty


@dataclass(frozen=True)
class Import:
    """One arrow found in a module: `module` (at `line`) depends on `target`."""

    module: str
    line: int
    target: str  # a module name, or an attribute like `_jvm` for a JVM back door
    kind: str = "import"  # "import" | "attribute"


def module_name(root: Path, path: Path) -> str:
    """`featurebank.io.spark` for `<root>/featurebank/io/spark.py`; packages are their __init__."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def library_modules(package_dir: Path) -> dict[str, Path]:
    """Every module of the package at `package_dir`, by dotted name."""
    root = package_dir.parent
    return {module_name(root, path): path for path in sorted(package_dir.rglob("*.py"))}


def imports_of(name: str, path: Path, known: set[str]) -> Iterator[Import]:
    """Every import `name` makes anywhere in its source (see the module docstring)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(name, node.lineno, alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                # `from pkg import sub` imports the module pkg.sub; `from mod import func` imports mod
                yield Import(name, node.lineno, submodule if submodule in known or _is_external_module(submodule)
                             else base)
        elif isinstance(node, ast.Call) and (dynamic := _import_module_target(node)):
            yield Import(name, node.lineno, dynamic)
        elif isinstance(node, ast.Attribute) and node.attr in JVM_BACKDOORS:
            yield Import(name, node.lineno, node.attr, kind="attribute")


def _is_external_module(name: str) -> bool:
    return name in STORAGE_MODULES


def _import_module_target(node: ast.Call) -> str | None:
    """The constant module name of an `importlib.import_module("...")` call, else None."""
    function = node.func
    named = (isinstance(function, ast.Attribute) and function.attr == "import_module") or (
        isinstance(function, ast.Name) and function.id == "import_module")
    first = node.args[0] if node.args else None
    return first.value if named and isinstance(first, ast.Constant) and isinstance(first.value, str) else None


def rank_of(module: str) -> int | None:
    """The rank of the longest prefix of `module` in RANKS (None: the module has no rank).

    The root `featurebank` ranks only itself, so a new top-level module is not silently 7.
    """
    if module in RANKS:
        return RANKS[module]
    parts = module.split(".")
    for end in range(len(parts) - 1, 1, -1):
        prefix = ".".join(parts[:end])
        if prefix in RANKS:
            return RANKS[prefix]
    return None


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def _resolve(target: str, known: set[str]) -> str:
    """The longest library module `target` names (an unknown tail is an attribute)."""
    parts = target.split(".")
    for end in range(len(parts), 0, -1):
        if ".".join(parts[:end]) in known:
            return ".".join(parts[:end])
    return target


def violations(modules: dict[str, Path]) -> dict[str, str]:
    """Every violation of the layer rules, as key (`a -> b`, `a imports x`, `a uses _jvm`) ->
    message naming the file's module, the line and the arrow."""
    known = set(modules)
    found: dict[str, str] = {}

    def add(key: str, message: str) -> None:
        found.setdefault(key, message)  # the first line of a repeated arrow is named

    for name, path in modules.items():
        rank = rank_of(name)
        if rank is None:
            add(f"{name} has no rank", f"{name} ({path.name}) has no rank: add its prefix to RANKS")
            continue
        for imp in imports_of(name, path, known):
            where = f"{name}:{imp.line}"
            if imp.kind == "attribute":
                if not _within(name, STORAGE_EDGE):
                    add(f"{name} uses {imp.target}", f"{where} uses `{imp.target}` (the JVM as a file system): "
                        f"storage goes through {STORAGE_EDGE}")
                continue
            if _within(imp.target, DEMO):
                add(f"{name} imports {DEMO}", f"{where} imports {imp.target}: the library never imports the demo "
                    "tooling (tools/featurebank_demo is outside the wheel)")
                continue
            storage = next((m for m in STORAGE_MODULES if _within(imp.target, m)), None)
            if storage is not None:
                if not _within(name, STORAGE_EDGE):
                    add(f"{name} imports {storage}", f"{where} imports {imp.target}: only {STORAGE_EDGE} touches "
                        "storage (use featurebank.io.files / featurebank.io.aws.client)")
                continue
            if not _within(imp.target, "featurebank") or imp.target == "featurebank":
                continue  # the package root: every `featurebank.x` import loads it anyway (its API is lazy)
            target = _resolve(imp.target, known)
            target_rank = rank_of(target)
            if target_rank is not None and target_rank > rank:
                add(f"{name} -> {target}", f"{where} imports {target}: arrow points up "
                    f"({name} rank {rank} -> {target} rank {target_rank})")
            for source, forbidden in SEPARATE:
                if _within(name, source) and _within(target, forbidden):
                    add(f"{name} -> {target}", f"{where} imports {target}: {source} must not import {forbidden}")
    return found


def _report(found: dict[str, str], keys: set[str]) -> str:
    return "\n".join(found[k] for k in sorted(keys))


# --- the library ---------------------------------------------------------------------------------

def test_every_arrow_in_the_library_points_down_and_only_io_touches_storage() -> None:
    found = violations(library_modules(LIBRARY))
    new = set(found) - KNOWN_VIOLATIONS
    assert not new, "layer violations (see tests/test_architecture.py RANKS):\n" + _report(found, new)


def test_every_known_violation_still_exists_so_the_list_only_shrinks() -> None:
    gone = KNOWN_VIOLATIONS - set(violations(library_modules(LIBRARY)))
    assert not gone, f"fixed, remove from KNOWN_VIOLATIONS: {sorted(gone)}"


def test_every_module_of_the_library_has_a_rank() -> None:
    unranked = [name for name in library_modules(LIBRARY) if rank_of(name) is None]
    assert not unranked, unranked


# --- the checker can fail ------------------------------------------------------------------------

@pytest.fixture()
def library_copy(tmp_path: Path) -> Path:
    """A throwaway copy of lib/featurebank to plant bad imports in."""
    copy = tmp_path / "featurebank"
    shutil.copytree(LIBRARY, copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def _new_violations(package: Path) -> dict[str, str]:
    found = violations(library_modules(package))
    return {key: message for key, message in found.items() if key not in KNOWN_VIOLATIONS}


def test_a_planted_upward_import_fails_naming_the_module_the_line_and_the_arrow(library_copy: Path) -> None:
    (library_copy / "definitions" / "throwaway.py").write_text(
        '"""Planted."""\n\n\ndef load():\n    from featurebank.runner import run_group\n\n    return run_group\n')
    assert _new_violations(library_copy) == {
        "featurebank.definitions.throwaway -> featurebank.runner":
            "featurebank.definitions.throwaway:5 imports featurebank.runner: arrow points up "
            "(featurebank.definitions.throwaway rank 1 -> featurebank.runner rank 5)",
    }


def test_type_checking_and_relative_imports_count(library_copy: Path) -> None:
    (library_copy / "compile" / "throwaway.py").write_text(
        "from typing import TYPE_CHECKING\n\nfrom .. import gate\n\nif TYPE_CHECKING:\n"
        "    from featurebank.catalog.render import render_list\n")
    found = _new_violations(library_copy)
    assert set(found) == {"featurebank.compile.throwaway -> featurebank.gate",
                          "featurebank.compile.throwaway -> featurebank.catalog.render"}
    assert found["featurebank.compile.throwaway -> featurebank.gate"].startswith("featurebank.compile.throwaway:3 ")


def test_engine_and_io_never_import_each_other(library_copy: Path) -> None:
    (library_copy / "engine" / "throwaway.py").write_text("from featurebank.io.tables import publish\n")
    (library_copy / "io" / "throwaway.py").write_text("import featurebank.engine.pit\n")
    found = _new_violations(library_copy)
    assert found == {
        "featurebank.engine.throwaway -> featurebank.io.tables":
            "featurebank.engine.throwaway:1 imports featurebank.io.tables: featurebank.engine must not import "
            "featurebank.io",
        "featurebank.io.throwaway -> featurebank.engine.pit":
            "featurebank.io.throwaway:1 imports featurebank.engine.pit: featurebank.io must not import "
            "featurebank.engine",
    }


def test_storage_outside_io_and_the_demo_fail(library_copy: Path) -> None:
    (library_copy / "catalog" / "throwaway.py").write_text(
        "import importlib\n\nfrom pyarrow import fs\n\n\ndef f(spark):\n    import boto3\n"
        "    importlib.import_module('featurebank_demo.datagen')\n    return spark.sparkContext._jvm\n")
    (library_copy / "io" / "throwaway.py").write_text("import boto3\nfrom pyarrow import fs\n\n\ndef f(s):\n"
                                                      "    return s.sparkContext._jvm\n")
    found = _new_violations(library_copy)
    assert set(found) == {"featurebank.catalog.throwaway imports pyarrow.fs", "featurebank.catalog.throwaway imports boto3",
                          "featurebank.catalog.throwaway imports featurebank_demo",
                          "featurebank.catalog.throwaway uses _jvm"}
    assert found["featurebank.catalog.throwaway uses _jvm"].startswith("featurebank.catalog.throwaway:9 uses `_jvm`")


def test_a_handler_importing_the_cli_fails(library_copy: Path) -> None:
    (library_copy / "commands" / "throwaway.py").write_text("def plan(args):\n    from featurebank.cli import main\n")
    assert _new_violations(library_copy) == {
        "featurebank.commands.throwaway -> featurebank.cli":
            "featurebank.commands.throwaway:2 imports featurebank.cli: featurebank.commands must not import "
            "featurebank.cli"}


def test_a_module_without_a_rank_fails(library_copy: Path) -> None:
    (library_copy / "nowhere.py").write_text("")
    assert _new_violations(library_copy) == {
        "featurebank.nowhere has no rank": "featurebank.nowhere (nowhere.py) has no rank: add its prefix to RANKS"}


def test_a_dynamic_import_of_a_higher_rank_counts(library_copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (library_copy / "gate_extra.py").write_text("import importlib\n\ncli = importlib.import_module('featurebank.cli')\n")
    monkeypatch.setitem(RANKS, "featurebank.gate_extra", 4)
    assert _new_violations(library_copy) == {
        "featurebank.gate_extra -> featurebank.cli":
            "featurebank.gate_extra:3 imports featurebank.cli: arrow points up "
            "(featurebank.gate_extra rank 4 -> featurebank.cli rank 7)"}


# --- the wheel clusters run ------------------------------------------------------------------------

def test_the_cluster_wheel_holds_no_demo_or_datagen_module(tmp_path: Path) -> None:
    from featurebank.deploy.package import build_wheel

    with zipfile.ZipFile(build_wheel(tmp_path)) as wheel:
        names = wheel.namelist()
    assert "featurebank/cli.py" in names  # the wheel is the library
    shipped = [n for n in names if Path(n).stem in ("demo", "datagen") or DEMO in n]
    assert not shipped, shipped
