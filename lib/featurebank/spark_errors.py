"""Runtime failures as sentences: what was being done, the root cause, and the next step.

Spark reports a failure as `Py4JJavaError: An error occurred while calling o61.load.`
followed by pages of Java frames; what happened is at the bottom of the Java cause chain
(`... part-0.parquet is not a Parquet file`, `No space left on device`). `describe_failure`
walks that chain and keeps the deepest readable message; `storage_step` wraps a call into
Spark or storage so that a failure becomes a `RuntimeFailure` saying what was being done:

    with storage_step(f"reading source {name} at {path}"):
        df = reader.load(path)

The CLI uses `describe_failure` for any other unexpected error, so no Java stack trace is
printed without `--debug`. Nothing here imports Spark.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from featurebank.errors import FeaturebankError, RuntimeFailure

MAX_CAUSE = 400
_CHAIN_LIMIT = 32
# Wrappers whose message only repeats (or hides) the one below them.
_WRAPPERS = ("Job aborted due to stage failure", "Exception thrown in awaitResult", "An error occurred while calling")
_GENERIC_CLASSES = {"RuntimeException", "SparkException", "ExecutionException", "Exception", "Py4JJavaError",
                    "CapturedException", "UnknownException"}
_NEXT_STEPS = (
    ("no space left on device", "free space on that disk (or point feature_root at a larger one) and run again"),
    ("disk quota exceeded", "free space on that disk (or point feature_root at a larger one) and run again"),
    ("not a parquet file", "the file is damaged or is not Parquet: replace or remove it, then run again"),
    ("could not read footer", "the file is damaged or is not Parquet: replace or remove it, then run again"),
    ("parquetdecodingexception", "the file is damaged: replace or remove it, then run again"),
    ("can not read value", "the file is damaged: replace or remove it, then run again"),
    ("path_not_found", "check that the path exists and is spelled as the definition says"),
    ("path does not exist", "check that the path exists and is spelled as the definition says"),
    ("filenotfound", "check that the path exists and is spelled as the definition says"),
    ("no such file", "check that the path exists and is spelled as the definition says"),
    ("permission denied", "give this process access to the path (or run as a user who has it)"),
    ("access denied", "give this process access to the path (or run as a principal who has it)"),
    ("accessdenied", "give this process access to the path (or run as a principal who has it)"),
    ("parse_syntax_error", "fix the SQL it quotes in the definition's expression or filter"),
    ("divide_by_zero", "wrap the divisor in nullif(x, 0) or use try_divide(a, b) where NULL is the meaning"),
    ("remainder_by_zero", "wrap the divisor in nullif(x, 0): `a % nullif(b, 0)` is NULL where b is 0 (not try_mod, "
                          "which Spark 3.5 lacks)"),
    ("cast_invalid_input", "filter such values out in the group's filter, or use try_cast where NULL is the meaning"),
    ("arithmetic_overflow", "use a wider type (cast to decimal(38, s) or double) or filter such values out"),
    ("cast_overflow", "use a wider type (cast to decimal(38, s) or double) or filter such values out"),
    ("numeric_value_out_of_range", "use a wider decimal type or filter such values out"),
    ("outofmemory", "give Spark more memory (spark.driver.memory in conf) or run fewer dates per chunk"),
    ("java heap space", "give Spark more memory (spark.driver.memory in conf) or run fewer dates per chunk"),
)
DEFAULT_NEXT_STEP = "fix the cause and run again (--debug shows the full trace)"


def _java_of(error: BaseException) -> Any:
    """The Java throwable behind a PySpark error (Py4JJavaError or a converted exception)."""
    return getattr(error, "java_exception", None) or getattr(error, "_origin", None)


def _first_line(message: str) -> str:
    """The first non-empty line of a message; a Spark parse error keeps the SQL it quotes."""
    lines = [line.strip() for line in message.splitlines()]
    lines = [line for line in lines if line and not line.startswith("at ")]
    if not lines:
        return ""
    first = lines[0]
    if "== SQL ==" in lines:
        sql = lines[lines.index("== SQL ==") + 1:lines.index("== SQL ==") + 2]
        if sql:
            first += f" in `{sql[0]}`"
    return first


def cause_chain(error: BaseException) -> list[tuple[str, str]]:
    """(short class name, first line of message) from the error down to its deepest cause.

    Follows the Java cause chain of a PySpark error, else Python's `__cause__` chain.
    """
    chain: list[tuple[str, str]] = [(type(error).__name__, _first_line(getattr(error, "desc", None) or str(error)))]
    java = _java_of(error)
    seen = 0
    while java is not None and seen < _CHAIN_LIMIT:
        seen += 1
        try:
            name = str(java.getClass().getSimpleName())
            message = java.getMessage()
            java = java.getCause()
        except Exception:  # noqa: BLE001 - the gateway is gone: keep what we have
            break
        chain.append((name, _first_line(str(message)) if message is not None else ""))
    if _java_of(error) is None:
        cause = error.__cause__ or error.__context__
        while cause is not None and len(chain) < _CHAIN_LIMIT:
            chain.append((type(cause).__name__, _first_line(str(cause))))
            cause = cause.__cause__ or cause.__context__
    return chain


def root_cause(error: BaseException) -> str:
    """The deepest readable message of the chain, e.g. `No space left on device`."""
    for name, message in reversed(cause_chain(error)):
        if message and not message.startswith(_WRAPPERS):
            text = message if name in _GENERIC_CLASSES else f"{name}: {message}"
            return text if len(text) <= MAX_CAUSE else text[: MAX_CAUSE - 3] + "..."
    return type(error).__name__


def next_step(cause: str) -> str:
    """What to do about a root cause (a generic hint when nothing specific is known)."""
    lowered = cause.lower()
    squashed = lowered.replace(" ", "")
    for needle, step in _NEXT_STEPS:
        if needle in lowered or needle in squashed:
            return step
    return DEFAULT_NEXT_STEP


def describe_failure(error: BaseException, doing: str | None = None) -> str:
    """One sentence: `<doing> failed: <root cause>; <next step>`."""
    cause = root_cause(error)
    step = next_step(cause)
    if step == DEFAULT_NEXT_STEP:  # a wrapper higher up may say more (e.g. CANNOT_READ_FILE_FOOTER)
        step = next_step(" ".join(f"{name} {message}" for name, message in cause_chain(error)))
    return f"{doing} failed: {cause}; {step}" if doing else f"{cause}; {step}"


def is_storage_error(error: BaseException) -> bool:
    """A failure of Spark, the JVM or the file system (not a featurebank error)."""
    if isinstance(error, FeaturebankError):
        return False
    module = type(error).__module__ or ""
    return isinstance(error, OSError) or module.startswith(("py4j", "pyspark"))


@contextmanager
def storage_step(doing: str) -> Iterator[None]:
    """Turn a Spark or storage failure inside the block into a `RuntimeFailure` naming `doing`
    (e.g. "reading source card_transactions at s3://..."); other errors pass unchanged."""
    try:
        yield
    except Exception as error:
        if not is_storage_error(error):
            raise
        raise RuntimeFailure(describe_failure(error, doing)) from error


# Spark's error classes for what ANSI SQL mode turns from a silent NULL (or a wrapped number)
# into a failure (io/spark.py SEMANTICS_CONF). Spark 4 names `x % 0` REMAINDER_BY_ZERO (3.5: DIVIDE_BY_ZERO).
ANSI_ERROR_CLASSES = (
    "DIVIDE_BY_ZERO", "REMAINDER_BY_ZERO", "ARITHMETIC_OVERFLOW", "BINARY_ARITHMETIC_OVERFLOW", "CAST_INVALID_INPUT", "CAST_OVERFLOW",
    "NUMERIC_VALUE_OUT_OF_RANGE", "INTERVAL_ARITHMETIC_OVERFLOW", "INVALID_ARRAY_INDEX", "DATETIME_OVERFLOW",
    "INVALID_FRACTION_OF_SECOND", "CAST_OVERFLOW_IN_TABLE_INSERT",
)
_CLASS = re.compile(r"\[([A-Z_]+)(?:\.[A-Z_]+)?\]")


def _messages(error: BaseException) -> list[str]:
    """Every whole message of the error's chain (Java causes, else Python's), outermost first."""
    texts = [str(getattr(error, "desc", None) or error)]
    java = _java_of(error)
    seen = 0
    while java is not None and seen < _CHAIN_LIMIT:
        seen += 1
        try:
            message = java.getMessage()
            java = java.getCause()
        except Exception:  # noqa: BLE001 - the gateway is gone: keep what we have
            break
        if message is not None:
            texts.append(str(message))
    cause = error.__cause__ or error.__context__
    while cause is not None and len(texts) < _CHAIN_LIMIT:
        texts.append(str(cause))
        cause = cause.__cause__ or cause.__context__
    return texts


def ansi_failure(error: BaseException) -> tuple[str, str | None] | None:
    """(error class, the failing SQL fragment or None) when `error` is an ANSI-mode failure, else None.

    Spark quotes the failing expression as the error's query context, e.g.
    `== SQL (line 1, position 1) ==` then `a / b` then `^^^^^`, or for a DataFrame expression
    `== DataFrame ==` with a `"divide" was called from` line (then no fragment is known).
    """
    for text in _messages(error):
        found = _CLASS.search(text)
        if found is None or found.group(1) not in ANSI_ERROR_CLASSES:
            continue
        return found.group(1), _fragment(text)
    return None


def _fragment(text: str) -> str | None:
    """The SQL text a Spark error's `== SQL ... ==` context quotes (the part its carets mark)."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.strip().startswith("== SQL") and i + 1 < len(lines):
            sql = lines[i + 1]
            marks = lines[i + 2] if i + 2 < len(lines) else ""
            if marks.strip() and set(marks.strip()) == {"^"}:
                begin = len(marks) - len(marks.lstrip())
                return sql[begin:begin + len(marks.strip())].strip() or sql.strip()
            return sql.strip() or None
    return None


def ansi_sentence(error_class: str, cause: str, feature: str | None, expression: str | None,
                  keys: tuple[tuple[str, object], ...], group: str) -> str:
    """The run's failure sentence for an ANSI-mode error: group, feature, expression, a row's keys, the fix."""
    what = f"feature '{feature}' of group '{group}' (`{expression}`)" if feature else f"group '{group}'"
    row = ", ".join(f"{k}={v}" for k, v in keys)
    at = f" for the row {row}" if row else ""
    return (f"computing {what} failed{at}: {cause}; Spark runs in ANSI SQL mode, where this is an error and "
            f"never a silent NULL: {next_step(error_class)}")
