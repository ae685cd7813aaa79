"""`featurebank training-set`: build a point-in-time-correct training set and summarise it."""

from __future__ import annotations

import argparse

from featurebank.console import progress_console, result_console
from featurebank.errors import EXIT_OK, UsageError


def training_set(args: argparse.Namespace) -> int:
    """Build (or rebuild `--from-manifest`) a training set into `--out`; print the PIT summary.

    `--as PRINCIPAL` (default: the environment's `governance.identity` where Lake Formation
    governs it) refuses, before anything is read or written, any feature that principal may
    not read (`AccessDenied`, exit 2). Raises the `featurebank.errors` types `FeatureStore`
    raises; `cli.main` maps them to exit codes.
    """
    from featurebank.training.api import FeatureStore

    console, progress = result_console(), progress_console()
    if args.from_manifest and (args.name or args.features):
        raise UsageError("--from-manifest rebuilds what the manifest recorded; drop the name and --features")
    if args.from_manifest and getattr(args, "as_known_at", None):
        raise UsageError("--from-manifest rebuilds with the --as-known-at mode the manifest recorded; drop --as-known-at")
    if not args.from_manifest and not (args.name or args.features):
        raise UsageError("name a training set, or give --features group:feature,..., or --from-manifest M")
    store = FeatureStore(args.project, env=args.env, progress=lambda message: progress.print(f"[dim]·[/dim] {message}"))
    written = store.write_training_set(
        args.name,
        features=args.features.split(",") if args.features else None,
        spine=args.spine,
        out=args.out,
        timestamp_column=args.timestamp_column,
        full_names=args.full_names,
        allow_missing=args.allow_missing,
        from_manifest=args.from_manifest,
        principal=args.principal,
        as_known_at=getattr(args, "as_known_at", None),
    )
    console.print(render_summary(written))
    return EXIT_OK


def render_summary(written: object) -> object:
    """A rich renderable: rows, per-group versions and join outcomes, per-feature NULL shares."""
    from rich.console import Group
    from rich.table import Table

    from featurebank.training.api import WrittenTrainingSet

    assert isinstance(written, WrittenTrainingSet)
    stats, manifest = written.statistics, written.manifest
    groups = Table(title=f"training set → {written.path} ({stats.rows} rows)", title_justify="left")
    for column in ("group", "kind", "version", "matched", "no row / filled", "outside coverage / ttl", "null key/ts"):
        groups.add_column(column, justify="left" if column in ("group", "kind") else "right")
    for pinned in manifest.groups:
        name = pinned.read.group
        share = stats.status_share.get(name, {})
        if pinned.read.kind == "aggregation":
            empty, outside = share.get("filled", 0.0), share.get("uncovered", 0.0) + share.get("not_known", 0.0)
        else:
            empty, outside = share.get("no_row", 0.0), share.get("expired", 0.0)
        groups.add_row(name, pinned.read.kind, str(pinned.version), _pct(share.get("matched", 0.0)), _pct(empty),
                       _pct(outside), _pct(share.get("null_input", 0.0)))
    features = Table(title="NULL share per feature", title_justify="left")
    features.add_column("feature")
    features.add_column("group")
    features.add_column("NULL", justify="right")
    for pinned in manifest.groups:
        for _, column in pinned.read.features:
            features.add_row(column, pinned.read.group, _pct(stats.null_share.get(column, 0.0)))
    if manifest.as_known_at != "publish":
        return Group(groups, features)
    from rich.text import Text

    unknown = "; ".join(  # rows whose snapshot nothing had published by their instant
        f"{p.read.group} {round(stats.status_share.get(p.read.group, {}).get('not_known', 0.0) * stats.rows)} "
        "row(s) not yet known (NULL)" for p in manifest.groups)
    return Group(groups, Text(f"as known at publish: {unknown}", overflow="fold"), features)


def _pct(share: float) -> str:
    return f"{100 * share:.1f}%"
