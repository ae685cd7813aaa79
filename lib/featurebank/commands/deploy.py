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
from typing import Any

from featurebank.errors import UsageError


def package(args: argparse.Namespace) -> int:
    """Build the wheel, bundle and entry scripts into `--out`, and (unless
    `--no-environment`) the cluster's Python for `aws.emr.architecture`; list them."""
    from featurebank.definitions import load_project
    from featurebank.deploy.package import build_artifacts

    project = load_project(args.project, args.env)
    architecture = project.config.aws.emr.architecture if project.config.aws else "x86_64"
    artifacts = build_artifacts(project.root, args.out, python=None if args.no_environment else "both",
                                architecture=architecture)
    for path in artifacts.files():
        print(path)
    return 0


def deploy(args: argparse.Namespace) -> int:
    """Run `featurebank doctor` (refuse with exit 1 on a failed check unless `--skip-doctor`),
    print the changes a deploy makes (create / update / unchanged), then make them unless
    `--dry-run`. `deploy emr` / `emr-serverless` submit runs only for the dates asked for."""
    from featurebank.compile.order import run_order
    from featurebank.definitions import load_project
    from featurebank.io.aws import aws_errors

    project = load_project(args.project, args.env)
    settings = project.config.require_aws()
    groups = run_order(project)
    if args.target == "emr" and not args.cluster_id:
        raise UsageError("deploy emr needs --cluster-id j-XXXXXXXX (the EMR cluster to add steps to)")
    if args.target == "emr-serverless" and not args.application_id:
        raise UsageError("deploy emr-serverless needs --application-id ID (the EMR Serverless application)")
    dates = run_dates(args)
    with aws_errors(f"deploying {args.target} to env {settings.env} ({settings.region})"):
        if not args.skip_doctor:
            _preflight(project, args)
        _deploy(project, args, groups, dates)
    return 0


def run_dates(args: argparse.Namespace) -> tuple[str, ...]:
    """The `featurebank run` date arguments `deploy emr|emr-serverless` forwards: `--date D` or
    `--start S --end E`, required (a deploy never runs a date nobody asked for); none for the
    targets that start no run (glue, schedule), where giving one is a usage error."""
    from featurebank.commands.dates import resolve_dates

    given = bool(args.date or args.start or args.end)
    if args.target in ("glue", "schedule"):
        if given:
            raise UsageError(f"deploy {args.target} starts no run, so --date/--start/--end do not apply; the schedule runs "
                             "each day's snapshot, and `featurebank run` (or deploy emr / emr-serverless) runs named dates")
        return ()
    if not given:
        raise UsageError(f"deploy {args.target} submits runs now: say which snapshot dates, --date YYYY-MM-DD or "
                         "--start YYYY-MM-DD --end YYYY-MM-DD (the daily runs are the schedule's: deploy schedule)")
    start, end = resolve_dates(args, today=args.date or args.start)
    return ("--date", start.isoformat()) if start == end else ("--start", start.isoformat(), "--end", end.isoformat())


def _preflight(project: Any, args: argparse.Namespace) -> None:
    """The doctor's checklist for the deploy's target; `PreflightFailed` (exit 1) on a failed line."""
    from featurebank.deploy.doctor import Target, run_doctor
    from featurebank.errors import PreflightFailed

    if args.target == "schedule":
        schedule = project.config.require_aws().require_schedule()
        target = Target(schedule.target, schedule.cluster_id, schedule.application_id)  # type: ignore[arg-type]  # conf checked it
    else:
        target = Target(args.target, args.cluster_id, args.application_id)
    report = run_doctor(project, target, deploying=True)
    if report.failed:
        print(report.text(), file=sys.stderr)
        raise PreflightFailed(
            f"deploy {args.target} refused: {len(report.failed)} doctor check(s) failed "
            f"({', '.join(c.name for c in report.failed)}); nothing was changed. Fix the lines marked ✗ above "
            "(`featurebank doctor` shows them again), or deploy with --skip-doctor to go ahead anyway",
            report.failed)


def _deploy(project: Any, args: argparse.Namespace, groups: list[str], dates: tuple[str, ...]) -> None:
    from featurebank.compile.changes import apply_changes, print_changes
    from featurebank.deploy.dynamodb import log_store_changes
    from featurebank.deploy.log_store_jar import jar_changes
    from featurebank.deploy.package import build_artifacts
    from featurebank.deploy.schedule import needs_artifacts, schedule_changes
    from featurebank.deploy.upload import artifact_uris, upload_changes

    settings = project.config.require_aws()
    with tempfile.TemporaryDirectory(prefix="featurebank-deploy-") as out:
        changes = []
        uris = None
        if args.target != "schedule" or needs_artifacts(settings):
            # Glue installs requirement wheels (it runs x86_64); EMR unpacks the archive
            glue = args.target == "glue"  # a schedule needs artifacts only for the EMR targets
            if glue:  # first: a missing log-store jar refuses before anything is built
                changes += jar_changes(settings, project.root)
            artifacts = build_artifacts(project.root, Path(out), python="wheels" if glue else "archive",
                                        architecture="x86_64" if glue else settings.emr.architecture)
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
            changes += emr_changes(settings, uris, groups, args.cluster_id, dates)
        elif args.target == "emr-serverless":
            from featurebank.deploy.emr import serverless_changes

            assert uris is not None
            changes += serverless_changes(settings, uris, groups, args.application_id, dates)
        else:
            changes += schedule_changes(project, settings, uris)
        print_changes(changes, sys.stdout, dry_run=args.dry_run)
        if not args.dry_run:
            apply_changes(changes, sys.stdout)


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
