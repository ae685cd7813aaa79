"""`featurebank vacuum`: remove files no registered training set and no version younger than conf's retention needs."""

from __future__ import annotations

import argparse

from featurebank.console import result_console
from featurebank.errors import EXIT_OK


def vacuum(args: argparse.Namespace) -> int:
    """Vacuum every group table and `_runs` of the environment; print per table what went.

    `--dry-run` changes nothing and prints what would be removed. Raises `UsageError` (exit 2)
    when a registered manifest cannot be read; `cli.main` maps errors to exit codes.
    """
    from rich.markup import escape

    from featurebank.definitions import load_project
    from featurebank.io.spark import get_spark
    from featurebank.retention import vacuum as run_vacuum

    project = load_project(args.project, args.env)
    console = result_console()
    results = run_vacuum(get_spark(project.config), project, dry_run=args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    for result in results:
        console.print(f"{result.table}: {verb} {len(result.files)} file(s); kept {result.retention_hours} hours "
                      f"({escape(result.why)})")
        if result.properties_set:
            console.print(f"  set {', '.join(result.properties_set)} to conf's retention {project.config.retention_days}d")
        for path in result.files:
            console.print(f"  {escape(path)}")
    if not results:
        console.print("no tables to vacuum yet")
    return EXIT_OK
