"""`featurebank grants`: apply Lake Formation LF-tags and SELECT grants from definitions and conf."""

from __future__ import annotations

import argparse
import sys

from featurebank.errors import EXIT_OK


def grants(args: argparse.Namespace) -> int:
    """Print what `grants` changes (create / update / grant / revoke / unchanged per item),
    then change it unless `--dry-run`. Raises `UsageError` where Lake Formation is off."""
    from featurebank.definitions import load_project
    from featurebank.compile.changes import apply_changes, print_changes
    from featurebank.governance.lakeformation import grant_changes

    project = load_project(args.project, args.env)
    changes = grant_changes(project)
    print_changes(changes, sys.stdout, dry_run=args.dry_run)
    if not args.dry_run:
        apply_changes(changes, sys.stdout)
    return EXIT_OK
