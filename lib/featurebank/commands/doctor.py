"""`featurebank doctor`: the preflight checklist of an environment's AWS account.

Exit codes (errors.EXIT_CODES): 0 when no check failed (unknown lines are printed, not
passed), 1 when one failed (a refusal, like a refused publish), 2 for a bad conf (no `aws:`
section, a conf error), 3 when AWS cannot be reached at all (no credentials, endpoint not
answering: `AwsUnreachable`).
"""

from __future__ import annotations

import argparse
import sys

from featurebank.errors import EXIT_GATE, EXIT_OK


def doctor(args: argparse.Namespace) -> int:
    """Print every check (✓ / ✗ / ?) with a fix per failed line, or `--json`; 1 when any failed."""
    from featurebank.definitions import load_project
    from featurebank.deploy.doctor import Target, run_doctor

    project = load_project(args.project, args.env)
    report = run_doctor(project, Target(args.target, args.cluster_id, args.application_id))
    print(report.to_json() if args.json else report.text())
    return EXIT_GATE if report.failed else EXIT_OK
