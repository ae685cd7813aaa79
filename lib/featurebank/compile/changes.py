"""The plan of a deploy or of `featurebank grants`: per resource `create`, `update (fields...)`,
`grant`, `revoke` or `unchanged`.

Every deploy target (deploy/) and `grants` (governance/) first computes a list of `Change`s
by reading what exists (HEAD an S3 key, GetJob, ListPermissions, ...) and comparing it with
what the repository wants. The list is printed before anything is touched; `--dry-run` stops
there (and shows the API calls each change would make); otherwise each change's `apply` runs
in order. Unchanged resources make no calls, so a second deploy of the same commit changes
nothing and says so.

A plain value, like the run plan: it lives in compile/ so that deploy/ and governance/ share
it without importing each other. Nothing here calls AWS; `apply_changes` only runs the
callables the deploy code put in each change.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TextIO

Action = Literal["create", "update", "unchanged", "grant", "revoke"]  # grant/revoke: `featurebank grants`


@dataclass(frozen=True)
class Change:
    """One resource and what the deploy will do to it."""

    kind: str  # "s3 object", "glue job", "emr step", "emr-serverless job run", ...
    name: str
    action: Action
    fields: tuple[str, ...] = ()  # for updates: what differs
    calls: tuple[str, ...] = ()  # the API calls `apply` makes, e.g. "glue.CreateJob"
    apply: Callable[[], Any] | None = field(default=None, compare=False, repr=False)

    def __str__(self) -> str:
        changed = f" ({', '.join(self.fields)})" if self.fields else ""
        return f"{self.action:<9}  {self.kind} {self.name}{changed}"


def diff_fields(desired: Mapping[str, Any], actual: Mapping[str, Any]) -> tuple[str, ...]:
    """Names of the fields of `desired` that `actual` does not match.

    Mappings one level down (e.g. a Glue job's DefaultArguments) are compared key by key
    and reported as `Field[key]`, so users see exactly which argument changed.
    """
    changed: list[str] = []
    for name, want in desired.items():
        have = actual.get(name)
        if isinstance(want, Mapping) and isinstance(have, Mapping) and name in ("DefaultArguments", "Tags"):
            for key in sorted(set(want) | set(have)):
                if want.get(key) != have.get(key):
                    changed.append(f"{name}[{key}]")
        elif _normal(want) != _normal(have):
            changed.append(name)
    return tuple(changed)


def _normal(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _normal(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [_normal(v) for v in value]
    return value


def summary(changes: Iterable[Change]) -> str:
    """One line: how many resources each action touches, or that nothing changes."""
    counts = {"create": 0, "update": 0, "grant": 0, "revoke": 0, "unchanged": 0}
    for change in changes:
        counts[change.action] += 1
    if counts["create"] == counts["update"] == counts["grant"] == counts["revoke"] == 0:
        return f"nothing to change ({counts['unchanged']} unchanged)"
    permissions = "".join(f", {counts[a]} to {a}" for a in ("grant", "revoke") if counts[a])
    return f"{counts['create']} to create, {counts['update']} to update{permissions}, {counts['unchanged']} unchanged"


def print_changes(changes: list[Change], out: TextIO, *, dry_run: bool) -> None:
    """Print the plan of a deploy; with `dry_run`, also the API calls it would make."""
    for change in changes:
        print(str(change), file=out)
        if dry_run:
            for call in change.calls:
                print(f"           would call {call}", file=out)
    print(summary(changes) + (" (dry run: nothing was changed)" if dry_run else ""), file=out)


def apply_changes(changes: list[Change], out: TextIO) -> int:
    """Run every create/update in order; return how many ran."""
    done = 0
    for change in changes:
        if change.action == "unchanged" or change.apply is None:
            continue
        change.apply()
        done += 1
        print(f"done       {change.kind} {change.name}", file=out)
    return done
