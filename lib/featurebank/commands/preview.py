"""`featurebank preview`: a group's rows for a few dates on a few entities; writes nothing."""

from __future__ import annotations

import argparse
import json
import math
import sys
from datetime import date, datetime
from typing import Any

from featurebank.console import progress_console, result_console
from featurebank.errors import EXIT_OK


def preview(args: argparse.Namespace) -> int:
    """Print `GROUP`'s rows for the dates on the sampled entities (`--json`: one JSON document),
    and with `--gate` the gate's verdict on them. Returns 0 whatever the verdict (nothing is
    published); bad input exits 2 (`UsageError`), a source that no longer matches its definition 2."""
    from rich.markup import escape
    from rich.table import Table

    from featurebank.commands.dates import resolve_dates
    from featurebank.definitions import load_project
    from featurebank.preview import preview as compute_preview
    from featurebank.spark_errors import storage_step

    given = args.date or args.start or args.end
    start, end = resolve_dates(args, date.today()) if given else (None, None)  # else: the latest publishable dates
    project = load_project(args.project, args.env)
    with storage_step(f"previewing feature group {args.group}"):
        result = compute_preview(project, args.group, start=start, end=end, limit=args.limit, keys=args.keys,
                                 gate=args.gate, principal=args.principal)
    if args.json:
        sys.stdout.write(json.dumps(result.to_dict(), indent=2) + "\n")
        return EXIT_OK
    console = result_console()
    dates = str(result.start) if result.start == result.end else f"{result.start}..{result.end}"
    table = Table(title=f"{result.group} {dates}: {len(result.rows)} rows of {len(result.entities)} entities "
                        "(preview: nothing written)")
    for column in result.columns:
        table.add_column(column, overflow="fold")
    for row in result.rows:
        table.add_row(*(escape(_cell(v)) for v in row))
    console.print(table)
    if result.gate is not None:
        verdict = "would pass" if result.gate.passed else "would refuse to publish"
        console.print(f"gate on the preview rows ({result.gate.row_count}): {verdict}, {result.gate.headline()}",
                      markup=False)
        for check in result.gate.checks:
            console.print(f"  {check.line()}", markup=False)
    progress_console().print(f"computed in {result.seconds:.1f}s", markup=False)
    return EXIT_OK


def _cell(value: Any) -> str:
    """A value as the table shows it: floats to 6 significant digits (`--json` has every digit)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    return str(value)
