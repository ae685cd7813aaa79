"""Error types, and the one table that maps them to exit codes.

Every error a user can cause is a type here. The CLI and the `jobs/` entry points map them
to exit codes in one place (`exit_code_for`): definition, configuration or usage problems
exit 2 and nothing runs; a refused publish exits 1; anything else is a runtime failure (3).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with the input, at a place a user can open in an editor."""

    file: str
    line: int
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.message}"


class FeaturebankError(Exception):
    """Base of every error featurebank raises on purpose."""


class DefinitionError(FeaturebankError):
    """One or more problems in `features/` or `conf/`, reported together, sorted by place."""

    def __init__(self, problems: list[Problem] | Problem | str) -> None:
        if isinstance(problems, str):
            problems = [Problem("", 0, problems)]
        elif isinstance(problems, Problem):
            problems = [problems]
        self.problems = sorted(set(problems))
        super().__init__("\n".join(str(p) for p in self.problems))


class ConfigError(DefinitionError):
    """A problem in `conf/<env>.yaml` or the environment it reads."""


class UsageError(FeaturebankError):
    """A command was called with arguments that cannot work (exit 2, nothing ran)."""


class SourceMismatch(FeaturebankError):
    """A source's real columns or types no longer match its definition (exit 2, nothing ran)."""


class RuntimeFailure(FeaturebankError):
    """Storage or Spark failed while doing something named (exit 3): the message says what was
    being done, the root cause (from the Java cause chain) and the next step."""


class AwsFailure(RuntimeFailure, OSError):
    """An AWS call failed for a reason a user can fix (exit 3): the message says what was being
    done, what is wrong and what to do. Built in one place, `featurebank.io.aws.explain`; an
    `OSError` too, so storage code that treats an unreadable file as an `OSError` still does."""


class AwsUnreachable(AwsFailure):
    """AWS cannot be reached at all: no credentials in the standard chain, or the endpoint does
    not answer. Nothing on AWS could be read or checked."""


class AwsAccessDenied(AwsFailure, PermissionError):
    """AWS refused the call to the identity in use (AccessDenied and kin)."""


class AwsResourceMissing(AwsFailure, FileNotFoundError):
    """A resource conf names (an S3 bucket) does not exist where the call looked for it."""


class PreflightFailed(FeaturebankError):
    """`featurebank doctor` found a check that fails, so `deploy` refused to start (exit 1);
    `checks` are the doctor's lines, each with its fix."""

    def __init__(self, message: str, checks: tuple[object, ...] = ()) -> None:
        super().__init__(message)
        self.checks = checks


class Verdict(Protocol):
    """What a refused publish carries of the gate's verdict (`gate.GateResult` is one).

    Declared here, structurally, so that the error (rank 0) needs no import of the gate
    (rank 4); mypy checks at `gate.run_gate`'s raise that a `GateResult` is a `Verdict`.
    """

    @property
    def group(self) -> str: ...

    @property
    def run_id(self) -> str: ...

    @property
    def row_count(self) -> int: ...

    def to_json(self) -> str: ...


class GateFailed(FeaturebankError):
    """An error-severity check failed: nothing was published (exit 1).

    `result` is the gate's verdict (a `gate.GateResult`: every check, the report and
    quarantine places), always given: a refusal with no validation behind it is a
    `SourceNotReady`, not a `GateFailed`.
    """

    def __init__(self, message: str, result: Verdict) -> None:
        super().__init__(message)
        self.result = result


class SourceNotReady(FeaturebankError):
    """A source's data is not complete or not there for the run's dates: nothing ran (exit 1).

    Raised before compute when the source is empty in the read range, its latest event day
    is older than its `lag` allows, or its readiness signal does not hold; `report` is where
    the JSON report was written.
    """

    def __init__(self, message: str, report: str = "") -> None:
        self.report = report
        super().__init__(message)


class SourceUnreadable(FeaturebankError):
    """Something a source read needs (e.g. a Parquet footer) cannot be read (exit 3)."""


class RunLogUnwritten(FeaturebankError):
    """A run published (its Delta commit landed) but its run-log row could not be written
    (exit 3: the table is right, the log repairs itself from the commit)."""


class MissingCoverage(FeaturebankError):
    """A training-set spine asks for dates a group never published (exit 2)."""


class AccessDenied(FeaturebankError):
    """A principal asked for features it was not granted (exit 2, nothing written)."""


class BreakingChangeRefused(FeaturebankError):
    """A run would change published features a registered training set reads, and nobody
    accepted it (`--accept-breaking`): nothing ran (exit 1, a refused publish)."""


EXIT_OK = 0
EXIT_GATE = 1
EXIT_USAGE = 2
EXIT_RUNTIME = 3


# The exit code of each error type, checked in order; any other exception exits EXIT_RUNTIME.
EXIT_CODES: tuple[tuple[tuple[type[BaseException], ...], int], ...] = (
    ((GateFailed, SourceNotReady, BreakingChangeRefused), EXIT_GATE),  # a refused publish: the input may be right, the data is not
    ((PreflightFailed,), EXIT_GATE),  # a refused deploy: a doctor check failed, nothing was changed
    ((DefinitionError, UsageError, SourceMismatch, MissingCoverage, AccessDenied), EXIT_USAGE),  # nothing ran
)


def exit_code_for(error: BaseException) -> int:
    """The exit code SPEC gives an error: 2 bad input, 1 publish refused, 3 anything else."""
    return next((code for types, code in EXIT_CODES if isinstance(error, types)), EXIT_RUNTIME)
