"""The `featurebank` command: one table from command to handler, exit codes in one place.

`COMMANDS` maps each command to its help line, its arguments and its handler (a function in
`featurebank.commands.*` that calls one library function and prints). Handlers import the
library lazily, so `featurebank validate` and `featurebank plan` never import Spark. Whatever
a handler raises becomes a message and an exit code here (`errors.exit_code_for`: bad input 2,
a refused publish 1, anything else 3); `--debug` shows the traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from featurebank.commands import (
    catalog,
    definitions,
    deploy,
    doctor,
    erase,
    explain,
    governance,
    preview,
    runs,
    training,
    vacuum,
)
from featurebank.commands.dates import days, snapshot_date
from featurebank.errors import EXIT_RUNTIME, FeaturebankError, exit_code_for
from featurebank.io.spark import run_size, spark_output

EXIT_BROKEN_PIPE = 141  # what a shell reports for a command whose pipe closed (128 + SIGPIPE), said nothing

Handler = Callable[[argparse.Namespace], int]
Arguments = Callable[[argparse.ArgumentParser], None]


def _version() -> str:
    """The installed distribution's version (the checkout's when run from source without install)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("featurebank")
    except PackageNotFoundError:
        return "unknown (not installed)"


# --- arguments of each command (every command also takes --project, --env, --debug, --verbose)

def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--project", type=Path, default=Path("."), help="project directory (default: .)")
    parser.add_argument(
        "--env",
        default=os.environ.get("FEATUREBANK_ENV", "local"),
        help="environment: conf/<env>.yaml (default: $FEATUREBANK_ENV, else local)",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks (and Spark's errors)")
    parser.add_argument("--verbose", action="store_true",
                        help="show Spark's own output on stderr (Ivy, log4j at Spark's level); off by default")


def _dates(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--date", type=snapshot_date, help="one snapshot date (default: today in the project time zone)")
    parser.add_argument("--start", type=snapshot_date, help="first snapshot date of a range")
    parser.add_argument("--end", type=snapshot_date, help="last snapshot date of a range (inclusive)")


def _none(parser: argparse.ArgumentParser) -> None:
    """No arguments beyond the common ones."""


def _plan(p: argparse.ArgumentParser) -> None:
    p.add_argument("group", nargs="?", help="the feature group to plan in detail (or --all for the change review)")
    p.add_argument("--all", action="store_true", help="review every group's change in one page, in run order")
    _dates(p)
    p.add_argument("--json", action="store_true",
                   help="print the change review as JSON (a CI check can fail on \"change\": \"breaking\")")


def _run(p: argparse.ArgumentParser) -> None:
    p.add_argument("group", nargs="?", help="the feature group to run (or --all)")
    p.add_argument("--all", action="store_true", help="run every group in dependency order")
    _dates(p)
    p.add_argument("--dry-run", action="store_true", help="compute and check, publish nothing")
    p.add_argument("--chunk-days", type=days, help="publish a long backfill in chunks of N days, one commit each")
    p.add_argument("--missing", action="store_true",
                   help="run only the dates not yet published, or published by another data_hash; say what is skipped")
    p.add_argument("--restate", action="store_true",
                   help="recompute the published dates whose source changed since they were published (late events, "
                        "corrected or removed files); without dates, every published date is checked")
    p.add_argument("--accept-breaking", action="store_true",
                   help="run a definition change that breaks features a registered training set reads "
                        "(`featurebank plan` shows it); the run log records who accepted")
    p.add_argument("--accept-drift", action="append", default=[], metavar="FEATURE",
                   help="let FEATURE's drift check pass this run whatever its PSI (a known, intended shift; "
                        "repeat for several); the run log records it")
    p.add_argument("--json", action="store_true", help="print a JSON summary (runs, dates, rows, versions, skipped)")


def _preview(p: argparse.ArgumentParser) -> None:
    p.add_argument("group", help="the feature group to preview")
    p.add_argument("--date", type=snapshot_date, help="one snapshot date (default: the 3 latest publishable dates)")
    p.add_argument("--start", type=snapshot_date, help="first snapshot date of a range")
    p.add_argument("--end", type=snapshot_date, help="last snapshot date of a range (inclusive)")
    p.add_argument("--limit", type=int, default=100, metavar="N",
                   help="preview the first N entities in key order (default: 100)")
    p.add_argument("--keys", nargs="+", metavar="KEY",
                   help="preview these entities instead (an entity with several key columns: values comma-separated)")
    p.add_argument("--gate", action="store_true", help="also print the gate's verdict on the preview rows")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--as", dest="principal",
                   help="check access as this principal first, as a training set does (default: conf's identity "
                        "where Lake Formation governs)")


def _explain(p: argparse.ArgumentParser) -> None:
    p.add_argument("group", help="the feature group whose values to explain")
    p.add_argument("--key", action="append", required=True, metavar="[COLUMN=]VALUE",
                   help="the entity: COLUMN=VALUE per key column (a bare VALUE for a one-column key)")
    p.add_argument("--date", type=snapshot_date, help="the snapshot date (a published one)")
    p.add_argument("--at", metavar="TS", help="instead of --date: a training-set row's instant (ISO, with an offset or "
                                              "in the project time zone): which snapshot or version it joins, and why")
    p.add_argument("--feature", action="append", metavar="F", help="explain only this feature (repeatable)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.add_argument("--check", action="store_true", help="exit 1 when a recomputed value disagrees with the published one")
    p.add_argument("--as", dest="principal", help="check access as this principal first")


def _training_set(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", nargs="?", help="training set name (or use --features)")
    p.add_argument("--features", help="comma-separated group:feature references instead of a name")
    p.add_argument("--spine", required=True, help="spine path (Parquet, Delta or CSV)")
    p.add_argument("--out", required=True, help="output directory (Parquet + _manifest.json)")
    p.add_argument("--timestamp-column", default="ts", help="the spine's timestamp column (default: ts)")
    p.add_argument("--full-names", action="store_true", help="name columns <group>__<feature>")
    p.add_argument("--allow-missing", action="store_true", help="NULLs for dates a group never published")
    p.add_argument("--from-manifest", help="rebuild from the Delta versions a manifest recorded")
    p.add_argument("--as", dest="principal", help="check access as this principal first")
    p.add_argument("--as-known-at", metavar="MODE",
                   help="publish: values as published at each spine instant (no later restatement); "
                        "event: event-time correct (default, or the training set's as_known_at)")


def _vacuum(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dry-run", action="store_true", help="list what would be removed; remove nothing")


def _erase(p: argparse.ArgumentParser) -> None:
    p.add_argument("--entity", required=True, help="the entity whose rows to erase (e.g. customer)")
    p.add_argument("--key", action="append", required=True, help="a key to erase (repeat for several)")
    p.add_argument("--reason", required=True, help="why: the ticket that asks for it (recorded in _erasures)")
    p.add_argument("--dry-run", action="store_true", help="list every place holding the keys; change nothing")
    p.add_argument("--as", dest="principal", help="erase as this principal (default: who runs it)")


def _list(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _describe(p: argparse.ArgumentParser) -> None:
    p.add_argument("group", help="the feature group to describe")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")


def _history(p: argparse.ArgumentParser) -> None:
    p.add_argument("group", help="the feature group whose runs to show")
    p.add_argument("--limit", type=int, default=20, help="how many of the latest runs to show (default: 20)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _docs(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, type=Path, help="directory to write the site into (index.html)")
    p.add_argument("--training-dir", action="append", type=Path,
                   help="where to look for training sets' _manifest.json (repeatable; default: warehouse/training)")


def _package(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, default=Path("dist"), help="directory for the built artifacts (default: dist)")
    p.add_argument("--no-environment", action="store_true",
                   help="skip the cluster's Python (env-<hash>.tar.gz and requirement wheels; needs the package index)")


def _deploy(p: argparse.ArgumentParser) -> None:
    p.add_argument("target", choices=["glue", "emr", "emr-serverless", "schedule"], help="where to deploy")
    p.add_argument("--cluster-id", help="emr: the running EMR cluster (j-...) to add steps to")
    p.add_argument("--application-id", help="emr-serverless: the EMR Serverless application to start job runs on")
    p.add_argument("--dry-run", action="store_true", help="print what would change (create/update/unchanged); change nothing")
    p.add_argument("--date", type=snapshot_date, help="emr, emr-serverless: submit the runs of this snapshot date")
    p.add_argument("--start", type=snapshot_date, help="emr, emr-serverless: first snapshot date of a range")
    p.add_argument("--end", type=snapshot_date, help="emr, emr-serverless: last snapshot date of a range (inclusive)")
    p.add_argument("--skip-doctor", action="store_true", help="deploy even if a `featurebank doctor` check fails")


def _doctor(p: argparse.ArgumentParser) -> None:
    p.add_argument("--target", choices=["glue", "emr", "emr-serverless"], default="glue",
                   help="where the runs go (default: glue)")
    p.add_argument("--cluster-id", help="emr: the EMR cluster (j-...) whose release and role to check")
    p.add_argument("--application-id", help="emr-serverless: the application whose release to check")
    p.add_argument("--json", action="store_true", help="print JSON instead of the checklist")


def _grants(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dry-run", action="store_true", help="print the grants and revokes; change nothing")


# --- what a command was doing, for the sentence an unexpected failure is reported in --------

def _running(args: argparse.Namespace) -> str:
    return f"running feature group {args.group}" if args.group else "running every feature group"


def _building(args: argparse.Namespace) -> str:
    return f"building training set {args.name or args.features} into {args.out}"


def _reading_catalog(args: argparse.Namespace) -> str:
    return "reading the catalog (run log and tables)"


# --- the one table ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Command:
    """One `featurebank` command: its help line, the handler it calls, its own arguments, and
    what it is doing in words (for a runtime failure's sentence; default `featurebank <name>`)."""

    help: str
    handler: Handler
    arguments: Arguments = _none
    doing: Callable[[argparse.Namespace], str] | None = None


COMMANDS: dict[str, Command] = {
    "validate": Command("parse and check every definition and conf (no Spark)", definitions.validate),
    "plan": Command("print what a run would read, compute, check and write (no Spark)", definitions.plan, _plan),
    "run": Command("compute, gate and publish feature groups", runs.run, _run, _running),
    "preview": Command("a group's rows for a few dates on a sample of entities, as a run computes them; writes "
                       "nothing", preview.preview, _preview, lambda args: f"previewing feature group {args.group}"),
    "explain": Command("one entity's values on one date: windows, source events, recomputed vs published, and why",
                       explain.explain, _explain, lambda args: f"explaining feature group {args.group}"),
    "training-set": Command("build a point-in-time-correct training set", training.training_set, _training_set,
                            _building),
    "vacuum": Command("remove files no registered training set and no version within retention needs",
                      vacuum.vacuum, _vacuum),
    "erase": Command("erase an entity's rows everywhere (right to erasure), with a record holding no key",
                     erase.erase, _erase),
    "list": Command("feature groups and training sets", catalog.list_, _list, _reading_catalog),
    "describe": Command("one group, as a reader needs it", catalog.describe, _describe, _reading_catalog),
    "history": Command("the run log of a group", runs.history, _history,
                       lambda args: f"reading the run log of {args.group}"),
    "docs": Command("static HTML catalog", catalog.docs, _docs, lambda args: f"writing the docs site to {args.out}"),
    "package": Command("build the wheel, definitions bundle and entry scripts", deploy.package, _package),
    "deploy": Command("ship to AWS (glue | emr | emr-serverless | schedule)", deploy.deploy, _deploy),
    "doctor": Command("check the environment's AWS account before a deploy or a run (versions, S3, KMS, "
                      "role policy, Delta log store, regions)", doctor.doctor, _doctor,
                      lambda args: f"checking the AWS account of env {args.env}"),
    "iam-policy": Command("least-privilege IAM policy for the job role", deploy.iam_policy),
    "grants": Command("apply Lake Formation tags and grants from conf", governance.grants, _grants),
}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every command in `COMMANDS`; each subparser sets `args.command`."""
    parser = argparse.ArgumentParser(prog="featurebank", description="Declarative feature pipelines on Spark + Delta.")
    parser.add_argument("--version", action="version", version=f"featurebank {_version()}",
                        help="print featurebank's version and exit")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, command in COMMANDS.items():
        p = sub.add_parser(name, help=command.help)
        _common(p)
        command.arguments(p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `featurebank` command; returns the process exit code.

    Everything the command prints goes through `featurebank.redact` (no `${env:...}` value
    reaches the terminal). Spark's own output is off: its log level is OFF (`--debug`: ERROR,
    `--verbose`: Spark's own level) and a local JVM writes Ivy's report and its start-up
    warnings to a temporary file, kept only when the command fails at runtime (a JVM that does
    not start is reported with its end and its path); `--debug`/`--verbose`: to stderr. A bad
    argument exits 2 through argparse's `SystemExit`.
    """
    from featurebank.redact import RedactingStream

    args = build_parser().parse_args(argv)
    stdout, stderr = sys.stdout, sys.stderr
    with spark_output(verbose=args.verbose, debug=args.debug, size=run_size(args.command, _dates_of(args))) as spark:
        sys.stdout, sys.stderr = RedactingStream(stdout), RedactingStream(stderr)
        code = EXIT_RUNTIME
        try:
            code = _call(COMMANDS[args.command], args)
            return code
        finally:
            spark.keep = code == EXIT_RUNTIME
            sys.stdout, sys.stderr = stdout, stderr


def _dates_of(args: argparse.Namespace) -> int | None:
    """How many snapshot dates a command names (`--date`, `--start/--end`, else today's one), for
    the session's size; None where the run decides later (`--restate` without dates) or the dates are bad."""
    start, end, date = (getattr(args, name, None) for name in ("start", "end", "date"))
    if start is not None and end is not None:
        return (end - start).days + 1 if end >= start else None
    if start is not None or end is not None:
        return None
    return None if date is None and getattr(args, "restate", False) else 1


def _call(command: Command, args: argparse.Namespace) -> int:
    """Call the command's handler and map what it raises to a message and an exit code."""
    from featurebank.spark_errors import describe_failure

    try:
        return command.handler(args)
    except FeaturebankError as error:
        if args.debug:
            traceback.print_exc()
        print(f"error: {error}" if "\n" not in str(error) else f"error:\n{error}", file=sys.stderr)
        return exit_code_for(error)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # stdout's reader stopped reading (`| head`): it has what it wanted
        _detach_stdout()
        return EXIT_BROKEN_PIPE
    except Exception as error:  # a runtime failure: one sentence, traceback only on --debug
        if args.debug:
            traceback.print_exc()
        doing = command.doing(args) if command.doing else f"featurebank {args.command}"
        print(f"error: {describe_failure(error, doing)}", file=sys.stderr)
        return exit_code_for(error)


def _detach_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's last flush does not fail on the closed pipe too."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.__stdout__.fileno() if sys.__stdout__ is not None else 1)
    except (OSError, ValueError):  # no real stdout (a test's capture): nothing to detach
        pass


if __name__ == "__main__":
    sys.exit(main())
