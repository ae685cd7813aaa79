"""`featurebank validate` and `featurebank plan`: definitions and plans, no Spark."""

from __future__ import annotations

import argparse
from datetime import datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from featurebank.errors import EXIT_OK, UsageError

if TYPE_CHECKING:
    from featurebank.definitions.model import Project
    from featurebank.review import Review


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
    """`plan GROUP`: what a run of the group over the given dates would read, compute, check and
    write, then its change review; `plan --all`: every group's change review, in run order.
    `--json`: the reviews as one JSON document. No Spark (delta-rs reads the tables' metadata),
    except where Lake Formation governs the tables.
    """
    import json

    from featurebank.commands.dates import resolve_dates
    from featurebank.compile.order import run_order
    from featurebank.compile.run import compile_plan
    from featurebank.definitions import load_project

    if bool(args.group) == bool(args.all):
        raise UsageError("name one group to plan, or give --all for every group's change review")
    project = load_project(args.project, args.env)
    groups = run_order(project) if args.all else [args.group]
    if args.group:
        today = datetime.now(ZoneInfo(project.config.timezone)).date()
        start, end = resolve_dates(args, today)
        run = compile_plan(project, args.group, start, end)
        if not args.json:
            print(run)
    from featurebank.review import render_review, review_dict

    reviews = [_review(project, group) for group in groups]
    if args.json:
        print(json.dumps({"reviews": [review_dict(r) for r in reviews if not isinstance(r, str)],
                          "unreadable": [r.strip() for r in reviews if isinstance(r, str)]}, indent=2))
    else:
        print("\n".join(r if isinstance(r, str) else render_review(r) for r in reviews), end="")
    return EXIT_OK


def _review(project: Project, group: str) -> Review | str:
    """The group's change review; a table or registry that cannot be read gives one line saying
    so (the rest of the plan still stands)."""
    from featurebank.redact import redact
    from featurebank.review import review_group

    try:
        return review_group(project, group)
    except UsageError:
        raise
    except Exception as error:  # noqa: BLE001 - the plan itself is shown; this line says what failed
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        return redact(f"Change: {group}: unknown (cannot read what its table was published with: {reason})\n")
