"""`featurebank validate` and `featurebank plan`: definitions and plans, no Spark."""

from __future__ import annotations

import argparse
from datetime import datetime
from zoneinfo import ZoneInfo

from featurebank.errors import EXIT_OK


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
    """Print what a run of `args.group` over the given dates would read, compute, check and write."""
    from featurebank.commands.dates import resolve_dates
    from featurebank.definitions import load_project
    from featurebank.compile.plan import compile_plan

    project = load_project(args.project, args.env)
    today = datetime.now(ZoneInfo(project.config.timezone)).date()
    start, end = resolve_dates(args, today)
    print(compile_plan(project, args.group, start, end), end="")
    return EXIT_OK
