"""`featurebank package`, `deploy glue|emr|emr-serverless|schedule` and `iam-policy`.

Each handler loads the project (so broken definitions never ship), calls the deploy
library, and prints what it will change before changing it.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from featurebank.errors import UsageError


def package(args: argparse.Namespace) -> int:
    """Build the wheel, bundle and entry scripts into `--out` and list them."""
    from featurebank.definitions import load_project
    from featurebank.deploy.package import build_artifacts

    project = load_project(args.project, args.env)
    artifacts = build_artifacts(project.root, args.out)
    for path in artifacts.files():
        print(path)
    return 0


def deploy(args: argparse.Namespace) -> int:
    """Print the changes a deploy makes (create / update / unchanged), then make them
    unless `--dry-run`."""
    from featurebank.compile.changes import apply_changes, print_changes
    from featurebank.compile.order import run_order
    from featurebank.definitions import load_project
    from featurebank.deploy.package import build_artifacts
    from featurebank.deploy.dynamodb import log_store_changes
    from featurebank.deploy.schedule import schedule_changes
    from featurebank.deploy.upload import artifact_uris, upload_changes

    project = load_project(args.project, args.env)
    settings = project.config.require_aws()
    groups = run_order(project)
    if args.target == "emr" and not args.cluster_id:
        raise UsageError("deploy emr needs --cluster-id j-XXXXXXXX (the EMR cluster to add steps to)")
    if args.target == "emr-serverless" and not args.application_id:
        raise UsageError("deploy emr-serverless needs --application-id ID (the EMR Serverless application)")
    with tempfile.TemporaryDirectory(prefix="featurebank-deploy-") as out:
        changes = []
        uris = None
        if args.target != "schedule":
            artifacts = build_artifacts(project.root, Path(out))
            uris = artifact_uris(settings, artifacts)
            changes += upload_changes(settings, artifacts)
            changes += log_store_changes(settings)
        if args.target == "glue":
            from featurebank.deploy.glue import glue_changes

            assert uris is not None
            changes += glue_changes(project, settings, uris, groups)
        elif args.target == "emr":
            from featurebank.deploy.emr import emr_changes

            assert uris is not None
            changes += emr_changes(settings, uris, groups, args.cluster_id)
        elif args.target == "emr-serverless":
            from featurebank.deploy.emr import serverless_changes

            assert uris is not None
            changes += serverless_changes(settings, uris, groups, args.application_id)
        else:
            changes += schedule_changes(project, settings)
        print_changes(changes, sys.stdout, dry_run=args.dry_run)
        if not args.dry_run:
            apply_changes(changes, sys.stdout)
    return 0


def iam_policy(args: argparse.Namespace) -> int:
    """Print the least-privilege IAM policy (JSON) for the environment's job role."""
    from featurebank.definitions import load_project
    from featurebank.deploy.iam import policy_document

    project = load_project(args.project, args.env)
    settings = project.config.require_aws()
    if not settings.account_id:
        print("note: conf has no aws.account_id; ARNs use '*' for the account", file=sys.stderr)
    print(json.dumps(policy_document(project, settings), indent=2))
    return 0
