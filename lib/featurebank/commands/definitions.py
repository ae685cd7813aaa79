"""`featurebank validate` and `featurebank plan`: definitions and plans, no Spark."""

from __future__ import annotations

import argparse
from datetime import datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from featurebank.errors import EXIT_OK

if TYPE_CHECKING:
    from featurebank.compile.group import CompiledGroup


def _count(number: int, word: str) -> str:
    return f"{number} {word}" if number == 1 else f"{number} {word}s"


def validate(args: argparse.Namespace) -> int:
    """Load and check every definition and the conf of `--env`; print a one-line summary.

    Returns 0; problems raise `DefinitionError`/`ConfigError`, which the CLI prints (exit 2).
    """
    from featurebank.definitions import load_project

    project = load_project(args.project, args.env)
    print(
        f"ok: {_count(len(project.entities), 'entity').replace('entitys', 'entities')}, "
        f"{_count(len(project.sources), 'source')}, {_count(len(project.groups), 'feature group')}, "
        f"{_count(len(project.training_sets), 'training set')} (env {project.config.env})"
    )
    return EXIT_OK


def plan(args: argparse.Namespace) -> int:
    """Print what a run of `args.group` over the given dates would read, compute, check and
    write, then one line saying whether it changes the published table's data or only its
    metadata (the table's properties are read from its Delta log, without Spark).
    """
    from featurebank.commands.dates import resolve_dates
    from featurebank.compile.run import compile_plan
    from featurebank.definitions import load_project

    project = load_project(args.project, args.env)
    today = datetime.now(ZoneInfo(project.config.timezone)).date()
    start, end = resolve_dates(args, today)
    run = compile_plan(project, args.group, start, end)
    print(run)
    print(_change(run.compiled, project.config.governance.lake_formation), end="")
    return EXIT_OK


def _change(compiled: CompiledGroup, lake_formation: bool) -> str:
    """The change line of `featurebank plan`; a table whose properties cannot be read is said
    so rather than failing the plan."""
    from featurebank.compile.change import DATA_HASH_PROPERTY, change_kind
    from featurebank.compile.render import change_line
    from featurebank.io.metadata import published_hashes
    from featurebank.redact import redact

    try:
        published = published_hashes(compiled.table_path, lake_formation=lake_formation)
    except Exception as error:  # noqa: BLE001 - the plan itself is shown; this line says what failed
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        return redact(f"Change: {compiled.group}: unknown (cannot read the table properties at "
                      f"{compiled.table_path}: {reason})\n")
    recorded = published is None or DATA_HASH_PROPERTY in published
    return change_line(compiled, change_kind(compiled, published), recorded)
