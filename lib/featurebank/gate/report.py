"""Where the gate's artifacts live and how its report is written (`result.json`, `report.html`).

`<feature_root>/_reports/<group>/<run_id>/` holds the report of each run,
`<feature_root>/_quarantine/<group>/<run_id>/` a refused batch; the catalog, readiness and
`featurebank history` read them back through these paths.
"""

from __future__ import annotations

import html
import json
from datetime import date
from typing import TYPE_CHECKING

from featurebank.gate.results import CheckResult, GateResult, _short

if TYPE_CHECKING:
    from collections.abc import Iterable

    from featurebank.compile.run import Plan
    from featurebank.engine.profile import GroupProfile


def artifact_dir(feature_root: str, area: str, group: str, run_id: str) -> str:
    """`<feature_root>/<area>/<group>/<run_id>` (area: `_reports` or `_quarantine`)."""
    return f"{feature_root.rstrip('/')}/{area}/{group}/{run_id}"


def profile_location(feature_root: str, group: str, feature_date: date) -> str:
    """Where the profile of one published snapshot date is stored, beside the gate reports:
    `<feature_root>/_reports/<group>/profiles/<feature_date>.json` (`engine.profile` format)."""
    return f"{artifact_dir(feature_root, '_reports', group, 'profiles')}/{feature_date.isoformat()}.json"


def stored_profile(feature_root: str, group: str, feature_date: date) -> GroupProfile | None:
    """The profile stored for `group` on `feature_date`; None when none was stored.

    Raises ValueError naming the file when one is there but cannot be read as a profile.
    """
    from featurebank.engine.profile import profile_from_json
    from featurebank.io.files import read_text

    location = profile_location(feature_root, group, feature_date)
    try:
        text = read_text(location)
    except (OSError, UnicodeDecodeError):  # absent, or unreadable as text
        return None
    try:
        return profile_from_json(text)
    except ValueError as problem:
        raise ValueError(f"the profile {location} cannot be read: {problem}") from None


def write_profiles(feature_root: str, group: str, profiles: Iterable[GroupProfile], personal: frozenset[str]
                   ) -> list[GroupProfile]:
    """Store each profile at `profile_location`, the values of `personal` features left out
    (`engine.profile.without_values`): the runner's profiles of what it published, and the drift
    check's profiles of reference dates that had none (`gate.drift.drift_references`). Returns
    the profiles as stored."""
    from featurebank.engine.profile import profile_json, without_values
    from featurebank.io.files import write_text

    stored = [without_values(profile, personal) for profile in profiles]
    for profile in stored:
        write_text(profile_location(feature_root, group, profile.feature_date), profile_json(profile))
    return stored


def write_report(result: GateResult, plan: Plan) -> None:
    """`result.json` and `report.html` into `result.report_dir` (local or S3, through io.files)."""
    from featurebank.io.files import write_text

    document = result.to_dict() | {
        "data_hash": plan.data_hash,
        "start": plan.start.isoformat(),
        "end": plan.end.isoformat(),
        "table_path": plan.table_path,
        "quarantine_dir": result.quarantine_dir,
    }
    write_text(f"{result.report_dir}/result.json", json.dumps(document, indent=2, sort_keys=True))
    write_text(f"{result.report_dir}/report.html", render_html(result, plan))


def render_html(result: GateResult, plan: Plan) -> str:
    """A self-contained, readable HTML page of one validation (no scripts, no external assets)."""
    status = "PASSED" if result.passed else "REFUSED"
    colour = "#1a7f37" if result.passed else "#cf222e"
    rows = []
    for c in result.checks:
        state = "pass" if c.success else ("fail" if c.severity == "error" else "warn")
        args = ", ".join(f"{k}={_short(v)}" for k, v in c.kwargs.items())
        rows.append(
            f"<tr class='{state}'><td>{state.upper()}</td><td>{html.escape(c.severity)}</td>"
            f"<td><code>{html.escape(c.expectation)}</code><br><small>{html.escape(args)}</small></td>"
            f"<td>{html.escape(c.column or '')}</td><td>{html.escape(c.describe_observed())}{_distributions(c)}</td>"
            f"<td><small>{html.escape(c.origin)}</small></td></tr>"
        )
    quarantine = (
        f"<p>Rejected batch kept in <code>{html.escape(result.quarantine_dir)}</code>.</p>"
        if result.quarantine_dir
        else ""
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>featurebank gate: {html.escape(result.group)} {html.escape(result.run_id)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; color: #1f2328; }}
h1 span {{ color: {colour}; }}
table {{ border-collapse: collapse; width: 100%; }}
th, td {{ border: 1px solid #d0d7de; padding: .4rem .6rem; text-align: left; vertical-align: top; }}
tr.pass td:first-child {{ color: #1a7f37; }} tr.fail {{ background: #ffebe9; }} tr.warn {{ background: #fff8c5; }}
dt {{ font-weight: 600; }}
</style></head><body>
<h1>{html.escape(result.group)}: <span>{status}</span></h1>
<dl>
<dt>Run</dt><dd>{html.escape(result.run_id)}</dd>
<dt>Snapshot dates</dt><dd>{plan.start.isoformat()} .. {plan.end.isoformat()}</dd>
<dt>Rows checked</dt><dd>{result.row_count}</dd>
<dt>Table</dt><dd><code>{html.escape(plan.table_path)}</code></dd>
<dt>Data hash</dt><dd><code>{html.escape(plan.data_hash)}</code></dd>
<dt>Checks</dt><dd>{html.escape(result.headline())}</dd>
</dl>
{quarantine}
<table><thead><tr><th>Status</th><th>Severity</th><th>Expectation</th><th>Column</th><th>Observed</th><th>Defined at</th></tr></thead>
<tbody>
{chr(10).join(rows)}
</tbody></table>
</body></html>
"""


def _distributions(check: CheckResult) -> str:
    """For a drift check: the reference's and the worst date's share of each bucket, side by side."""
    observed = check.observed_value
    if not isinstance(observed, dict) or "buckets" not in observed:
        return ""
    rows = "".join(f"<tr><td>{html.escape(str(b))}</td><td>{e:.1%}</td><td>{o:.1%}</td></tr>"
                   for b, e, o in zip(observed["buckets"], observed["expected"], observed["observed"]))
    return (f"<table><thead><tr><th>bucket</th><th>reference</th><th>{html.escape(str(observed['worst_date']))}</th>"
            f"</tr></thead><tbody>{rows}</tbody></table>")
