"""The `featurebank` command: argument parsing, one library call per command, exit codes.

Commands own no logic. Each handler imports the library function it calls lazily, so that
`featurebank validate` and `featurebank plan` never import Spark. Errors map to exit codes
in one place (`errors.exit_code_for`); `--debug` shows the traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from datetime import date
from pathlib import Path

from featurebank.errors import EXIT_USAGE, FeaturebankError, UsageError, exit_code_for

SPARK_LOG_LEVEL = "FEATUREBANK_SPARK_LOG_LEVEL"  # read by engine.session.get_spark


FIRST_DATE = date(1900, 1, 1)  # no feature store holds snapshots older; earlier is a typo
LAST_DATE = date(9998, 12, 31)  # D + 1 and a window before D stay inside the calendar
MAX_DATES = 36_600  # snapshot dates one command may cover (100 years)
MAX_CHUNKS = 10_000  # chunks one backfill may be cut into


def _date(text: str) -> date:
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a date; write it as YYYY-MM-DD") from None
    if not FIRST_DATE <= day <= LAST_DATE:
        raise argparse.ArgumentTypeError(f"{text} is outside the snapshot dates featurebank handles "
                                         f"({FIRST_DATE} .. {LAST_DATE}); check the year")
    return day


def _version() -> str:
    """The installed distribution's version (the checkout's when run from source without install)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("featurebank")
    except PackageNotFoundError:
        return "unknown (not installed)"


def _positive(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number of days") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"{number} is not a number of days; give 1 or more")
    return number


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--project", type=Path, default=Path("."), help="project directory (default: .)")
    parser.add_argument(
        "--env",
        default=os.environ.get("FEATUREBANK_ENV", "local"),
        help="environment: conf/<env>.yaml (default: $FEATUREBANK_ENV, else local)",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks")


def _dates(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--date", type=_date, help="one snapshot date (default: today in the project time zone)")
    parser.add_argument("--start", type=_date, help="first snapshot date of a range")
    parser.add_argument("--end", type=_date, help="last snapshot date of a range (inclusive)")


def resolve_dates(args: argparse.Namespace, today: date) -> tuple[date, date]:
    """`--date D`, or `--start S --end E`, or today; anything else is a usage error."""
    if args.date and (args.start or args.end):
        raise UsageError("give either --date or --start/--end, not both")
    if args.date:
        return args.date, args.date
    if args.start or args.end:
        if not (args.start and args.end):
            raise UsageError("--start and --end go together; give both")
        if args.end < args.start:
            raise UsageError(f"--end {args.end} is before --start {args.start}; swap them")
        _check_size(args.start, args.end, getattr(args, "chunk_days", None))
        return args.start, args.end
    return today, today


def _check_size(start: date, end: date, chunk_days: int | None) -> None:
    """Refuse, at once, a range too large to compile (else planning it runs for hours, silently)."""
    days = (end - start).days + 1
    chunks = -(-days // chunk_days) if chunk_days else 1
    if days > MAX_DATES:
        raise UsageError(f"--start {start} --end {end} holds {days:,} snapshot dates; one command covers at most "
                         f"{MAX_DATES:,} (100 years): check the years, or split the range into several runs")
    if chunks > MAX_CHUNKS:
        raise UsageError(f"--start {start} --end {end} with --chunk-days {chunk_days} makes {chunks:,} chunks; at most "
                         f"{MAX_CHUNKS:,} are allowed: give a larger --chunk-days (e.g. {-(-days // MAX_CHUNKS)})")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="featurebank", description="Declarative feature pipelines on Spark + Delta.")
    parser.add_argument("--version", action="version", version=f"featurebank {_version()}",
                        help="print featurebank's version and exit")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("validate", help="parse and check every definition and conf (no Spark)")
    _common(p)

    p = sub.add_parser("plan", help="print what a run would read, compute, check and write (no Spark)")
    _common(p)
    p.add_argument("group", help="the feature group to plan")
    _dates(p)

    p = sub.add_parser("run", help="compute, gate and publish feature groups")
    _common(p)
    p.add_argument("group", nargs="?", help="the feature group to run (or --all)")
    p.add_argument("--all", action="store_true", help="run every group in dependency order")
    _dates(p)
    p.add_argument("--dry-run", action="store_true", help="compute and check, publish nothing")
    p.add_argument("--chunk-days", type=_positive, help="publish a long backfill in chunks of N days, one commit each")

    p = sub.add_parser("training-set", help="build a point-in-time-correct training set")
    _common(p)
    p.add_argument("name", nargs="?", help="training set name (or use --features)")
    p.add_argument("--features", help="comma-separated group:feature references instead of a name")
    p.add_argument("--spine", required=True, help="spine path (Parquet, Delta or CSV)")
    p.add_argument("--out", required=True, help="output directory (Parquet + _manifest.json)")
    p.add_argument("--timestamp-column", default="ts", help="the spine's timestamp column (default: ts)")
    p.add_argument("--full-names", action="store_true", help="name columns <group>__<feature>")
    p.add_argument("--allow-missing", action="store_true", help="NULLs for dates a group never published")
    p.add_argument("--from-manifest", help="rebuild from the Delta versions a manifest recorded")
    p.add_argument("--as", dest="principal", help="check access as this principal first")

    p = sub.add_parser("vacuum", help="remove files no registered training set and no version within retention needs")
    _common(p)
    p.add_argument("--dry-run", action="store_true", help="list what would be removed; remove nothing")

    p = sub.add_parser("list", help="feature groups and training sets")
    _common(p)
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")

    p = sub.add_parser("describe", help="one group, as a reader needs it")
    _common(p)
    p.add_argument("group", help="the feature group to describe")

    p = sub.add_parser("history", help="the run log of a group")
    _common(p)
    p.add_argument("group", help="the feature group whose runs to show")
    p.add_argument("--limit", type=int, default=20, help="how many of the latest runs to show (default: 20)")

    p = sub.add_parser("docs", help="static HTML catalog")
    _common(p)
    p.add_argument("--out", required=True, type=Path, help="directory to write the site into (index.html)")
    p.add_argument("--training-dir", action="append", type=Path,
                   help="where to look for training sets' _manifest.json (repeatable; default: warehouse/training)")

    p = sub.add_parser("package", help="build the wheel, definitions bundle and entry scripts")
    _common(p)
    p.add_argument("--out", type=Path, default=Path("dist"), help="directory for the built artifacts (default: dist)")

    p = sub.add_parser("deploy", help="ship to AWS (glue | emr | emr-serverless | schedule)")
    _common(p)
    p.add_argument("target", choices=["glue", "emr", "emr-serverless", "schedule"], help="where to deploy")
    p.add_argument("--cluster-id", help="emr: the running EMR cluster (j-...) to add steps to")
    p.add_argument("--application-id", help="emr-serverless: the EMR Serverless application to start job runs on")
    p.add_argument("--dry-run", action="store_true", help="print what would change (create/update/unchanged); change nothing")

    p = sub.add_parser("iam-policy", help="least-privilege IAM policy for the job role")
    _common(p)

    p = sub.add_parser("grants", help="apply Lake Formation tags and grants from conf")
    _common(p)
    p.add_argument("--dry-run", action="store_true", help="print the grants and revokes; change nothing")
    return parser


# Each command's handler lives with the code it drives; the table keeps this file thin.
HANDLERS: dict[str, str] = {
    "validate": "featurebank.commands:validate",
    "plan": "featurebank.commands:plan",
    "run": "featurebank.commands:run",
    "training-set": "featurebank.commands:training_set",
    "vacuum": "featurebank.commands.vacuum:vacuum",
    "list": "featurebank.commands:list_",
    "describe": "featurebank.commands:describe",
    "history": "featurebank.commands:history",
    "docs": "featurebank.commands:docs",
    "package": "featurebank.commands:package",
    # direct: once imported, the submodule featurebank.commands.deploy shadows the function
    "deploy": "featurebank.commands.deploy:deploy",
    "iam-policy": "featurebank.commands:iam_policy",
    "grants": "featurebank.commands:grants",
}


def _handler(command: str) -> Callable[[argparse.Namespace], int]:
    import importlib

    module, _, name = HANDLERS[command].partition(":")
    return getattr(importlib.import_module(module), name)  # type: ignore[no-any-return]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `featurebank` command; returns the process exit code.

    Everything the command prints goes through `featurebank.redact` (no `${env:...}` value
    reaches the terminal), and Spark's own console log is off unless `--debug` is given.
    """
    from featurebank.redact import RedactingStream

    parser = build_parser()
    args = parser.parse_args(argv)
    stdout, stderr = sys.stdout, sys.stderr
    log_level = os.environ.get(SPARK_LOG_LEVEL)
    os.environ[SPARK_LOG_LEVEL] = log_level or ("ERROR" if args.debug else "OFF")
    sys.stdout, sys.stderr = RedactingStream(stdout), RedactingStream(stderr)
    try:
        return _run(args)
    finally:
        sys.stdout, sys.stderr = stdout, stderr
        if log_level is None:
            os.environ.pop(SPARK_LOG_LEVEL, None)


def _run(args: argparse.Namespace) -> int:
    """Call the command's handler and map what it raises to a message and an exit code."""
    from featurebank.spark_errors import describe_failure

    try:
        return _handler(args.command)(args)
    except FeaturebankError as error:
        if args.debug:
            traceback.print_exc()
        print(f"error: {error}" if "\n" not in str(error) else f"error:\n{error}", file=sys.stderr)
        return exit_code_for(error)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # a runtime failure: one sentence, traceback only on --debug
        if args.debug:
            traceback.print_exc()
        print(f"error: {describe_failure(error, _doing(args))}", file=sys.stderr)
        return exit_code_for(error)


def _doing(args: argparse.Namespace) -> str:
    """What a command was doing, for the sentence an unexpected failure is reported in."""
    group = getattr(args, "group", None)
    if args.command == "run":
        return f"running feature group {group}" if group else "running every feature group"
    if args.command == "training-set":
        return f"building training set {args.name or args.features} into {args.out}"
    if args.command == "history":
        return f"reading the run log of {group}"
    if args.command == "docs":
        return f"writing the docs site to {args.out}"
    if args.command in ("list", "describe"):
        return "reading the catalog (run log and tables)"
    return f"featurebank {args.command}"


if __name__ == "__main__":
    sys.exit(main())
