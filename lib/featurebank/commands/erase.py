"""`featurebank erase`: an entity's rows out of every table, old file, artifact and training set."""

from __future__ import annotations

import argparse

from featurebank.console import result_console
from featurebank.errors import EXIT_OK


def erase(args: argparse.Namespace) -> int:
    """Erase `--key`s of `--entity` everywhere (`featurebank.erase.erase`); print each place.

    Refuses (exit 2, before Spark starts, nothing touched) a principal that conf's
    `governance.erasers` does not list, a missing `governance.erasure_salt`, an unknown entity.
    `--dry-run` lists exactly what the real run changes and changes nothing.
    """
    from rich.markup import escape

    from featurebank.definitions import load_project
    from featurebank.erase import erase as run_erase
    from featurebank.erase import prepare
    from featurebank.io.runlog import current_user
    from featurebank.io.spark import get_spark

    project = load_project(args.project, args.env)
    principal = args.principal or current_user(feature_root=project.config.feature_root)
    erasure = prepare(project, args.entity, list(args.key), args.reason, principal)
    result = run_erase(get_spark(project.config), project, erasure, dry_run=args.dry_run)
    console = result_console()
    verb = "would erase" if args.dry_run else "erased"
    console.print(f"erasure {erasure.id}: {verb} {len(erasure.keys)} {escape(erasure.entity)} key(s) "
                  f"from {sum(1 for f in result.findings if f.kind != 'derived')} place(s)")
    for finding in result.findings:
        console.print(f"  {escape(finding.line())}")
        for path in finding.files:
            console.print(f"    {escape(path)}")
    if not result.findings:
        console.print("  no place holds these keys")
    if result.record:
        console.print(f"recorded in {escape(result.record)} (salted key hashes, never the keys)")
    return EXIT_OK
