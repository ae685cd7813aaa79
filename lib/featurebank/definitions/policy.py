"""The expression policy: what a definition's Spark SQL may do (SPEC "Expressions are data").

Every expression, filter and check condition is data: it may call only deterministic,
side-effect-free Spark SQL built-ins, over the columns it names. So it may not

- call a function on the refused list below (JVM reflection, file and partition metadata,
  randomness, the clock, the session's user or catalog, generators, errors on purpose),
  unless conf names it under `expressions: {allow_functions: [...]}` (reflection, table
  reads and generators are never allowed);
- call a function Spark does not ship (a UDF or catalog function, `db.fn(...)`);
- hold a query at any depth (`(select ...)`, `exists(select ...)`, `x in (select ...)`);
- name a table or a path (`t.col`, `parquet.`/path``, `delta.`...``) or read every
  column at once (`*`, which lineage cannot follow);
- contain `${env:...}` (the loader refuses it outside conf and a source's path or table,
  before substitution, so no secret reaches an expression).

The allow-list is `spark_functions.json` (what the pinned Spark ships) minus `REFUSED`.
The same policy is applied again to Spark's analysed plan before compute
(`featurebank.engine.policy`), because sqlglot and Spark do not parse every text alike.
Pure: no Spark.
"""

from __future__ import annotations

from collections.abc import Collection

from sqlglot import exp

from featurebank.definitions.expressions import parse_expression
from featurebank.definitions.spark_functions import spark_functions

_REFLECTION = "it runs arbitrary JVM code"
_FILE = "it depends on how Spark split the files, not on the data"
_RANDOM = "it is random, so a rerun publishes other values"
_CLOCK = "it reads the clock, so a rerun publishes other values"
_SESSION = "it reads the session, not the data"
_GENERATOR = "it makes several rows out of one"
_ERROR = "it fails the run on purpose, outside the gate"
_TABLE = "it reads a table, not the row"

# Spark SQL function → why a definition may not call it. Data: edit here, not in the checks.
REFUSED: dict[str, str] = {
    "reflect": _REFLECTION, "java_method": _REFLECTION, "try_reflect": _REFLECTION,
    "input_file_name": _FILE, "input_file_block_start": _FILE, "input_file_block_length": _FILE,
    "spark_partition_id": _FILE, "monotonically_increasing_id": _FILE,
    "rand": _RANDOM, "randn": _RANDOM, "random": _RANDOM, "uuid": _RANDOM, "shuffle": _RANDOM,
    "uniform": _RANDOM, "randstr": _RANDOM, "aes_encrypt": _RANDOM,
    "current_date": _CLOCK, "curdate": _CLOCK, "current_timestamp": _CLOCK, "now": _CLOCK,
    "localtimestamp": _CLOCK, "current_timezone": _CLOCK, "unix_timestamp": _CLOCK,
    "current_user": _SESSION, "user": _SESSION, "session_user": _SESSION, "version": _SESSION,
    "current_database": _SESSION, "current_catalog": _SESSION, "current_schema": _SESSION,
    "explode": _GENERATOR, "explode_outer": _GENERATOR, "posexplode": _GENERATOR, "posexplode_outer": _GENERATOR,
    "inline": _GENERATOR, "inline_outer": _GENERATOR, "stack": _GENERATOR, "json_tuple": _GENERATOR,
    "raise_error": _ERROR, "assert_true": _ERROR,
    "range": _TABLE, "table_changes": _TABLE, "table_changes_by_path": _TABLE, "sql_keywords": _TABLE,
}
# What conf may allow by name (`expressions.allow_functions`): never reflection, tables or generators.
ALLOWABLE = frozenset(name for name, why in REFUSED.items() if why not in (_REFLECTION, _TABLE, _GENERATOR))
# `unix_timestamp(x)` is pure; only `unix_timestamp()` reads the clock.
CLOCK_WITHOUT_ARGUMENTS = frozenset({"unix_timestamp"})
# Spark's `format.`path`` prefixes: a "column" qualified by one of these is a path read.
FILE_FORMATS = frozenset({"parquet", "delta", "csv", "json", "orc", "avro", "text", "binaryfile"})
# Check arguments that run a query or read another table (GX query and comparison expectations).
REFUSED_CHECK_ARGUMENTS = ("base_query", "comparison_query", "comparison_data_source_name", "other_table_name")


def allowed_functions(allow: Collection[str] = ()) -> frozenset[str]:
    """The functions a definition may call: Spark's built-ins minus `REFUSED`, plus `allow`."""
    return frozenset((spark_functions() - REFUSED.keys()) | (set(allow) & ALLOWABLE))


def _names(node: exp.Func) -> tuple[str, ...]:
    """The Spark names a sqlglot function node may stand for (sqlglot renames some)."""
    if isinstance(node, exp.Anonymous):
        return (node.name.lower(),)
    return tuple(name.lower() for name in node.sql_names())


def _refusal(node: exp.Func, allow: Collection[str]) -> str | None:
    if isinstance(node, exp.StrToUnix) and (node.this is None or isinstance(node.this, exp.CurrentTimestamp)):
        return None if "unix_timestamp" in allow else \
            f"calls unix_timestamp() without arguments, which definitions may not use ({_CLOCK}); {_fix('unix_timestamp')}"
    if isinstance(node, exp.CurrentTimestamp) and isinstance(node.parent, exp.StrToUnix):
        return None  # sqlglot's spelling of unix_timestamp(): reported above
    for name in _names(node):
        if name in REFUSED and not (name in allow and name in ALLOWABLE):
            if name in CLOCK_WITHOUT_ARGUMENTS and node.expressions:
                continue
            return f"calls {name}(), which definitions may not use ({REFUSED[name]}); {_fix(name)}"
    if isinstance(node.parent, exp.Dot) and node.arg_key == "expression":
        return f"calls the catalog function {node.parent.sql('spark')}, which definitions may not use (only Spark's " \
               "built-in functions run in a feature); compute it with built-in functions"
    return None


def _fix(name: str) -> str:
    if name in ALLOWABLE:
        return f"remove it, or allow it on purpose in conf: expressions: {{allow_functions: [{name}]}}"
    return "remove it"


def policy_violations(text: str, allow: Collection[str] = ()) -> tuple[str, ...]:
    """Why `text` breaks the expression policy (empty if it does not); raises `ExpressionError`.

    Each reason reads after "<what> ..." (e.g. "calls reflect(), which definitions may not
    use: ..."). Unknown functions are not reported here: `unknown_functions` says "did you
    mean". `allow` names non-deterministic functions conf allows.
    """
    tree = parse_expression(text)
    found: dict[str, None] = {}
    for node in tree.walk():
        if isinstance(node, (exp.Query, exp.Subquery)) or (isinstance(node, exp.Exists) and node.find(exp.Query)):
            found.setdefault("holds a query ((select ...)); definitions may not read other data: compute it in its "
                             "own feature group and read that group as a source", None)
        elif isinstance(node, exp.Table):
            found.setdefault(f"reads the table or path {node.sql('spark')}; definitions may read only their source's "
                             "columns: define another source instead", None)
        elif isinstance(node, exp.Star):
            found.setdefault("reads every column with *; name the columns it needs, so lineage (and PII) can "
                             "follow them", None)
        elif isinstance(node, exp.Column) and node.table:
            if node.table.lower() in FILE_FORMATS or any(c in node.sql("spark") for c in "/:"):
                found.setdefault(f"reads the path {node.sql('spark')}; definitions may read only their source's "
                                 "columns: define another source instead", None)
            else:
                found.setdefault(f"names a table ({node.sql('spark')}); write the column name alone (a field of "
                                 f"a struct column as {node.table}['{node.name}'])", None)
        elif isinstance(node, exp.Func):
            reason = _refusal(node, allow)
            if reason is not None:
                found.setdefault(reason, None)
    return tuple(found)


def check_violations(kwargs: dict[str, object]) -> tuple[str, ...]:
    """Why a check's arguments break the policy: a query or another table, or a non-Spark condition."""
    reasons = [f"has the argument {name}, which runs a query or reads another table; checks see only the batch"
               for name in REFUSED_CHECK_ARGUMENTS if name in kwargs]
    parser = kwargs.get("condition_parser")
    if "row_condition" in kwargs and parser not in (None, "spark"):
        reasons.append(f"has condition_parser {parser!r}; write row_condition in Spark SQL and condition_parser: spark")
    if "row_condition" in kwargs and not isinstance(kwargs["row_condition"], str):
        reasons.append("has a row_condition that is not text; write it as a Spark SQL predicate in quotes")
    return tuple(reasons)


__all__ = ["REFUSED", "ALLOWABLE", "allowed_functions", "policy_violations", "check_violations"]
