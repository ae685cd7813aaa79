"""What `featurebank list` and `featurebank describe` print: plain text tables and JSON.

Pure functions of a `Catalog` value, so tests pin the text without a terminal.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from featurebank.catalog.collect import Catalog, GroupEntry, TrainingSetEntry
from featurebank.catalog.status import NEVER_RUN, check_column, match_checks, outcome_word
from featurebank.compile.render import text_table
from featurebank.io.runlog import RunRecord
from featurebank.redact import redact

LIST_COLUMNS = ("name", "kind", "entity", "features", "owner", "tags", "last published", "freshness", "last status")


def _tags(tags: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(tags.items()))


def training_set_status(catalog: Catalog, entry: TrainingSetEntry) -> dict[str, Any]:
    """A training set is as fresh as its stalest group; its status is its newest build."""
    statuses = [catalog.groups[g].status for g in entry.groups if g in catalog.groups]
    published = [s.last_published_date for s in statuses]
    last = None if not published or any(p is None for p in published) else min(p for p in published if p)
    behind = None if last is None else (catalog.expected_date - last).days
    if not statuses or all(not s.runs for s in statuses):
        freshness = NEVER_RUN
    elif behind is None:
        freshness = "never published"
    else:
        freshness = "fresh" if behind <= 0 else f"{behind} day{'s' if behind != 1 else ''} behind"
    newest = entry.manifests[0] if entry.manifests else None
    status = f"built {newest.created_at[:10]}" if newest else "never built"
    return {"last_published": last, "freshness_days": behind, "freshness": freshness, "last_status": status}


def list_rows(catalog: Catalog) -> list[dict[str, Any]]:
    """One dict per group, then per training set (JSON-ready: dates as ISO strings)."""
    rows: list[dict[str, Any]] = []
    for g in catalog.groups.values():
        status = g.status
        rows.append({
            "name": g.name, "kind": f"{g.compiled.kind} group", "entity": g.compiled.entity,
            "features": g.feature_count, "owner": g.compiled.owner, "tags": g.tags,
            "last_published": status.last_published_date.isoformat() if status.last_published_date else None,
            "freshness_days": status.freshness_days, "freshness": status.freshness,
            "last_status": status.last_status, "delta_version": status.delta_version,
            "description": g.compiled.description,
        })
    for t in catalog.training_sets.values():
        info = training_set_status(catalog, t)
        entities = sorted({catalog.groups[g].compiled.entity for g in t.groups if g in catalog.groups})
        rows.append({
            "name": t.name, "kind": "training set", "entity": ", ".join(entities), "features": len(t.features),
            "owner": t.owner, "tags": {},
            "last_published": info["last_published"].isoformat() if info["last_published"] else None,
            "freshness_days": info["freshness_days"], "freshness": info["freshness"],
            "last_status": info["last_status"], "delta_version": None, "description": t.description,
            "groups": list(t.groups),
        })
    return rows


def render_list_json(catalog: Catalog) -> str:
    """`featurebank list --json`: the expected date and one object per group and training set."""
    document = {"expected_date": catalog.expected_date.isoformat(), "timezone": catalog.timezone,
                "env": catalog.env, "items": list_rows(catalog)}
    return redact(json.dumps(document, indent=2, sort_keys=True) + "\n")


def render_list(catalog: Catalog) -> str:
    """`featurebank list`: a header line, then one aligned line per group and training set."""
    lines = [f"Feature catalog ({catalog.env}): freshness against {catalog.expected_date}, "
             f"today in {catalog.timezone}", ""]
    table = [tuple(c.upper() for c in LIST_COLUMNS)]
    for r in list_rows(catalog):
        table.append((r["name"], r["kind"], r["entity"], str(r["features"]), r["owner"] or "-",
                      _tags(r["tags"]) or "-", r["last_published"] or "-", r["freshness"], r["last_status"]))
    return redact("\n".join(lines + text_table(table)) + "\n")


def _wrap(text: str, width: int, indent: str) -> list[str]:
    import textwrap

    return textwrap.wrap(text, width=width, initial_indent=indent, subsequent_indent=indent,  # names, paths whole
                         break_long_words=False, break_on_hyphens=False) or [indent]


def render_describe(catalog: Catalog, group: str) -> str:
    """`featurebank describe GROUP`: header, status, every feature in words, checks, runs."""
    g: GroupEntry = catalog.groups[group]
    compiled, status = g.compiled, g.status
    lines = [f"{g.name}: {compiled.description}" if compiled.description else g.name, ""]
    kind = ("aggregation group: one row per entity and snapshot date" if compiled.kind == "aggregation"
            else "row-level group: one row per source row")
    facts = [
        ("kind", kind),
        ("entity", f"{compiled.entity} (keys: {', '.join(compiled.keys)})"),
        ("owner", compiled.owner or "-"),
        ("tags", _tags(g.tags) or "-"),
        ("source", f"{compiled.source.name} ({compiled.source.format}: {compiled.source.location})"),
        ("filter", compiled.filter or "(none: every source row)"),
        ("table", f"{compiled.table_path} (Delta, partitioned by feature_date)"),
        ("Delta version", "-" if status.delta_version is None else str(status.delta_version)),
        ("definition", f"data {compiled.data_hash}, metadata {compiled.metadata_hash} ({g.defined_at})"),
        ("last published", str(status.last_published_date or "-")),
        ("freshness", f"{status.freshness} (expected latest snapshot date: {status.expected_date}, "
                      f"today in {compiled.timezone})"),
        ("last status", status.last_status),
    ]
    lines += text_table([(f"{k}:", v) for k, v in facts], "  ")
    if compiled.kind == "aggregation":
        lines += ["", f"  Snapshot date D: days are cut at midnight {compiled.timezone}; a row exists for D when the "
                      f"entity has a filtered event in the {compiled.max_window} days before D."]
    lines += ["", f"Features ({g.feature_count}):"]
    types = {c.name: c.type for c in compiled.output}
    descriptions = {c.name: c.description for c in compiled.output}
    for name, meaning in g.semantics.items():
        lines.append(f"  {name}  {types.get(name, '?')}  [{meaning.kind}]")
        if descriptions.get(name):
            lines += _wrap(descriptions[name], 100, "      ")
        lines += _wrap(meaning.sentence, 100, "      meaning: ")[:1] + _wrap(meaning.sentence, 100, "               ")[1:]
        lines.append(f"      source columns: {', '.join(meaning.source_columns) or '(none: counts events)'}")
    lines += ["", "Checks (last result" + (f" from run {status.checks_run_id}" if status.checks_run_id else "") + "):"]
    rows = []
    for check, outcome in match_checks(compiled.checks, status.last_checks):
        arguments = dict(check.kwargs)
        args = ", ".join(f"{k}={v}" for k, v in arguments.items() if k not in ("column", "column_list"))
        rows.append((check.severity, f"{check.expectation}[{check_column(arguments)}]" + (f"({args})" if args else ""),
                     outcome_word(outcome), outcome.observed if outcome else ""))
    lines += text_table(rows, "  ")
    lines += ["", "Last runs (newest first):"]
    if not status.recent_runs:
        lines.append("  never run")
    else:
        run_rows = [("RUN", "STATUS", "DATES", "ROWS", "VERSION", "STARTED (UTC)", "USER")]
        for r in status.recent_runs:
            dates = str(r.start_date) if r.start_date == r.end_date else f"{r.start_date}..{r.end_date}"
            run_rows.append((r.run_id, r.status, dates, str(r.rows_written),
                             "-" if r.delta_version is None else str(r.delta_version),
                             r.started_at.strftime("%Y-%m-%d %H:%M:%S"), r.user or "-"))
        lines += text_table(run_rows, "  ")
    return redact("\n".join(lines) + "\n")


def run_dict(run: RunRecord) -> dict[str, Any]:
    """One logged run, JSON-ready (`history --json`, `describe --json`): dates ISO, instants ISO
    UTC, `gate` the stored gate summary (None when the gate did not judge it)."""
    from featurebank.gate import summarize_checks_json

    try:
        gate = json.loads(run.checks_summary) if run.checks_summary else None
    except ValueError:
        gate = None
    try:
        by_date = json.loads(run.rows_by_date) if run.rows_by_date else None
    except ValueError:
        by_date = None
    return {
        "run_id": run.run_id, "group": run.group, "env": run.env, "status": run.status, "repaired": run.repaired,
        "start_date": run.start_date.isoformat(), "end_date": run.end_date.isoformat(),
        "rows": run.rows_written, "rows_by_date": by_date, "delta_version": run.delta_version,
        "data_hash": run.definition_hash or None, "user": run.user or None,
        "started_at": run.started_at.isoformat(), "finished_at": run.finished_at.isoformat(),
        "duration_seconds": round(run.duration_seconds, 3), "checks": summarize_checks_json(run.checks_summary),
        "gate": gate, "error": run.error,
    }


def render_history_json(group: str, runs: Sequence[RunRecord]) -> str:
    """`featurebank history GROUP --json`: the group and its runs, newest first."""
    document = {"group": group, "runs": [run_dict(r) for r in runs]}
    return redact(json.dumps(document, indent=2, sort_keys=True, default=str) + "\n")


def describe_dict(catalog: Catalog, group: str) -> dict[str, Any]:
    """What `describe GROUP` prints, as one JSON-ready dict (facts, status, features in words,
    checks with their last result, recent runs)."""
    g: GroupEntry = catalog.groups[group]
    compiled, status = g.compiled, g.status
    columns = {c.name: c for c in compiled.output}
    checks = []
    for check, outcome in match_checks(compiled.checks, status.last_checks):
        arguments = dict(check.kwargs)
        checks.append({"expectation": check.expectation, "column": check_column(arguments) or None,
                       "severity": check.severity, "kwargs": arguments, "defined_at": check.origin,
                       "result": outcome_word(outcome), "observed": outcome.observed if outcome else None})
    return {
        "name": g.name, "kind": compiled.kind, "description": compiled.description, "entity": compiled.entity,
        "keys": list(compiled.keys), "owner": compiled.owner, "tags": g.tags,
        "source": {"name": compiled.source.name, "format": compiled.source.format,
                   "location": compiled.source.location, "description": g.source_description},
        "filter": compiled.filter, "table": compiled.table_path, "timezone": compiled.timezone,
        "data_hash": compiled.data_hash, "metadata_hash": compiled.metadata_hash, "defined_at": g.defined_at,
        "max_window_days": compiled.max_window if compiled.kind == "aggregation" else None,
        "status": {
            "expected_date": status.expected_date.isoformat(),
            "last_published": status.last_published_date.isoformat() if status.last_published_date else None,
            "freshness_days": status.freshness_days, "freshness": status.freshness,
            "last_status": status.last_status, "delta_version": status.delta_version,
            "checks_run_id": status.checks_run_id,
        },
        "features": [{
            "name": name, "type": columns[name].type if name in columns else None, "kind": meaning.kind,
            "description": columns[name].description if name in columns else "", "meaning": meaning.sentence,
            "source_columns": list(meaning.source_columns),
        } for name, meaning in g.semantics.items()],
        "checks": checks,
        "recent_runs": [run_dict(r) for r in status.recent_runs],
    }


def render_describe_json(catalog: Catalog, group: str) -> str:
    """`featurebank describe GROUP --json`: `describe_dict` as a JSON document."""
    return redact(json.dumps(describe_dict(catalog, group), indent=2, sort_keys=True, default=str) + "\n")
