"""`featurebank list`, `describe GROUP` and `docs --out DIR`: the catalog side.

Each handler loads the project, gathers the catalog (`featurebank.catalog.collect_catalog`)
and prints or writes it. None starts Spark (the run log is read with delta-rs, profiles were
stored at publish time), except where Lake Formation governs the tables: the run log is then
read through Spark, whose column grants a direct read would bypass.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from featurebank.errors import EXIT_OK, UsageError


def list_(args: argparse.Namespace) -> int:
    """Print one line per feature group and training set (`--json`: a JSON document)."""
    from featurebank.catalog.collect import collect_catalog
    from featurebank.catalog.render import render_list, render_list_json
    from featurebank.definitions import load_project

    project = load_project(args.project, args.env)
    catalog = collect_catalog(project)
    sys.stdout.write(render_list_json(catalog) if args.json else render_list(catalog))
    return EXIT_OK


def describe(args: argparse.Namespace) -> int:
    """Print one group as a reader needs it: features in words, lineage, checks, last runs
    (`--json`: a JSON document, nothing else on stdout)."""
    from featurebank.catalog.collect import collect_catalog
    from featurebank.catalog.render import render_describe, render_describe_json
    from featurebank.definitions import load_project
    from featurebank.definitions.loader import did_you_mean

    project = load_project(args.project, args.env)
    if args.group not in project.groups:
        names = sorted(project.groups)
        raise UsageError(f"unknown feature group '{args.group}'{did_you_mean(args.group, names)} "
                         f"(groups: {', '.join(names)})")
    catalog = collect_catalog(project)
    render = render_describe_json if getattr(args, "json", False) else render_describe
    sys.stdout.write(render(catalog, args.group))
    return EXIT_OK


def docs(args: argparse.Namespace) -> int:
    """Write the static HTML catalog to `--out DIR` and print the path of its index."""
    from featurebank.catalog.site import build_site
    from featurebank.definitions import load_project

    project = load_project(args.project, args.env)
    training_dirs = [Path(d) for d in (getattr(args, "training_dir", None) or [])]
    index = build_site(project, Path(args.out), training_dirs=training_dirs)
    print(f"catalog written: {index}")
    return EXIT_OK
