"""`featurebank explain`: one entity's values on one snapshot date, recomputed, compared and explained;
with `--at`, which snapshot or version a training-set row at that instant joins, and why."""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from featurebank.console import progress_console, result_console
from featurebank.errors import EXIT_GATE, EXIT_OK, UsageError

if TYPE_CHECKING:
    from featurebank.compile.explain import Explanation
    from featurebank.training.joined import Joined


def explain(args: argparse.Namespace) -> int:
    """Print, per feature, its window, the events in it (those the filter removed marked, and
    why), the recomputed and the published value, whether they agree, and why (`--json`: one
    JSON document). Exit 0 whatever the comparison says (a disagreement is printed, not an
    error); with `--check`, exit 1 when any value disagrees, for scripts. Bad input, an
    unpublished date or a refused principal exit 2 before anything is read. `--at TS` instead
    of `--date`: first the training-set join's choice for that instant (`training.joined`)."""
    from featurebank.definitions import load_project
    from featurebank.explain import explain as explain_entity
    from featurebank.spark_errors import storage_step

    began = time.monotonic()
    at = getattr(args, "at", None)
    if (args.date is None) == (at is None):
        raise UsageError("give --date D (a snapshot date) or --at TS (a training-set row's instant), "
                         + ("not both" if at is not None else "one of them"))
    project = load_project(args.project, args.env)
    if at is not None:
        return _explain_at(args, project, began)
    with storage_step(f"explaining feature group {args.group}"):
        result = explain_entity(project, args.group, args.key, args.date, features=args.feature,
                                principal=args.principal)
    if args.json:
        sys.stdout.write(json.dumps(result.to_dict(), indent=2) + "\n")
    else:
        result_console().print(render(result), markup=False, highlight=False, soft_wrap=True)
    progress_console().print(f"explained in {time.monotonic() - began:.1f}s", markup=False)
    if args.check and not result.agree:
        progress_console().print("the recomputed values disagree with the published ones (--check)", markup=False)
        return EXIT_GATE
    return EXIT_OK


def _explain_at(args: argparse.Namespace, project: Any, began: float) -> int:
    """`explain --at`: the join's choice for a training-set row, then the chosen date explained."""
    from featurebank.spark_errors import storage_step
    from featurebank.training.joined import explain_at

    with storage_step(f"explaining feature group {args.group}"):
        joined = explain_at(project, args.group, args.key, args.at, features=args.feature, principal=args.principal)
    if args.json:
        sys.stdout.write(json.dumps(joined.to_dict(), indent=2) + "\n")
    else:
        result_console().print(render_joined(joined), markup=False, highlight=False, soft_wrap=True)
    progress_console().print(f"explained in {time.monotonic() - began:.1f}s", markup=False)
    if args.check and joined.explanation is not None and not joined.explanation.agree:
        progress_console().print("the recomputed values disagree with the published ones (--check)", markup=False)
        return EXIT_GATE
    return EXIT_OK


def render_joined(joined: Joined) -> str:
    """The text `featurebank explain --at` prints: the join's choice, the values, then the date explained."""
    keys = ", ".join(f"{k}={_cell(v)}" for k, v in joined.keys)
    lines = [f"training-set row: {joined.group} ({keys}) at {joined.text.strip()}",
             f"joined: {joined.why}",
             "values: " + ", ".join(f"{c} = {_cell(v)}" for c, v in joined.values)]
    if joined.explanation is not None:
        lines += ["", render(joined.explanation)]
    return "\n".join(lines)


def render(result: Explanation) -> str:
    """The text `featurebank explain` prints."""
    keys = ", ".join(f"{k}={_cell(v)}" for k, v in result.keys)
    lines = [f"{result.group} ({keys}) on {result.date}, time zone {result.timezone}: "
             f"{'agrees' if result.agree else 'DISAGREES'} with the published table",
             f"row: {result.row_why}"]
    if result.stale:
        lines.append(f"note: {result.date} was published by data_hash {result.published_hash}, and the definition now "
                     f"computes data_hash {result.definition_hash}: values it changed are expected to differ until "
                     f"the date is run again (featurebank run {result.group} --date {result.date})")
    lines += ["", f"events read ({len(result.events)}):"]
    for i, event in enumerate(result.events):
        when = "no time" if event.ts is None else event.ts.astimezone(_zone(result.timezone)).strftime("%Y-%m-%d %H:%M:%S")
        mark = "kept" if event.kept else f"removed: {event.removed_by}"
        shown = " ".join(f"{c}={_cell(v)}" for c, v in event.columns
                         if c not in dict(result.keys) and not (v is not None and v == event.ts))  # time: shown once
        lines.append(f"  #{i} {when}  {shown}  [{mark}]")
    for feature in result.features:
        lines.append("")
        head = feature.feature
        if feature.function:
            head += f"  {feature.function}({feature.expr or '*'}) over {feature.window_days}d"
        elif feature.expr:
            head += f"  {feature.expr}"
        lines.append(head)
        if feature.window is not None:
            start, end = (t.astimezone(_zone(result.timezone)).strftime("%Y-%m-%d %H:%M") for t in feature.window)
            lines.append(f"  window  [{start}, {end}) {result.timezone}")
        if feature.events:
            marks = " ".join(f"#{i}" if result.events[i].kept else f"(#{i} removed)" for i in feature.events)
            lines.append(f"  {'events ' if feature.kind == 'aggregation' else 'version'} {marks}")
        lines.append(f"  recomputed {_cell(feature.value)}  published {_cell(feature.published)}  "
                     f"agree {'yes' if feature.agree else 'NO'}")
        lines.append(f"  why: {feature.why}")
    return "\n".join(lines)


def _zone(name: str) -> Any:
    from zoneinfo import ZoneInfo

    return ZoneInfo(name)


def _cell(value: Any) -> str:
    """A value as printed: NULL, strings quoted, floats with every digit (repr), times in ISO."""
    if value is None:
        return "NULL"
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    return repr(value) if isinstance(value, float) else str(value)
