"""The expression policy again, on Spark's own reading of a batch, before anything is computed.

`validate` checks every expression with sqlglot (`definitions.policy`); Spark parses the same
text with its own parser, and the two do not agree on everything (a bare `localtimestamp`,
a new function name, a dialect corner). So before compute, `check_batch` walks the analysed
logical plan of the batch DataFrame and refuses what Spark itself resolved to reflection,
randomness, the clock, file metadata, a UDF or a subquery, and any relation that is not the
source's own read; and `check_input_types` checks each aggregation's input type against its
function from the real source schema. Both run on the driver, over the plan only: no job.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from featurebank.definitions.expressions import input_type_problem
from featurebank.errors import DefinitionError, Problem, SourceMismatch

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from featurebank.compile.run import Plan

# Catalyst expression classes (simple names) a definition may not turn into → what the user wrote.
REFUSED_EXPRESSIONS: dict[str, str] = {
    "CallMethodViaReflection": "reflect/java_method/try_reflect",
    "InputFileName": "input_file_name", "InputFileBlockStart": "input_file_block_start",
    "InputFileBlockLength": "input_file_block_length",
    "SparkPartitionID": "spark_partition_id", "MonotonicallyIncreasingID": "monotonically_increasing_id",
    "Rand": "rand/random", "Randn": "randn", "Uuid": "uuid", "Shuffle": "shuffle", "Uniform": "uniform",
    "RandStr": "randstr", "AesEncrypt": "aes_encrypt",
    "CurrentDate": "current_date", "CurrentTimestamp": "current_timestamp", "Now": "now",
    "LocalTimestamp": "localtimestamp", "CurrentTimeZone": "current_timezone",
    "CurrentUser": "current_user/user/session_user", "SparkVersion": "version",
    "CurrentDatabase": "current_database/current_schema", "CurrentCatalog": "current_catalog",
    "RaiseError": "raise_error/assert_true",
    "ScalaUDF": "a Scala UDF", "PythonUDF": "a Python UDF", "ScalaUDAF": "a Scala UDAF",
    "ScalaAggregator": "a Scala aggregator", "HiveSimpleUDF": "a Hive UDF", "HiveGenericUDF": "a Hive UDF",
    "HiveGenericUDTF": "a Hive UDTF", "HiveUDAFFunction": "a Hive UDAF",
    "ScalarSubquery": "a subquery", "ListQuery": "a subquery (x in (select ...))", "Exists": "a subquery (exists)",
    "InSubquery": "a subquery (x in (select ...))", "LateralSubquery": "a lateral subquery",
}
# Relations the engine itself builds; any other leaf must be one of the source's own reads.
ENGINE_RELATIONS = ("LocalRelation", "OneRowRelation", "Range", "LogicalRDD")
# Class names of conf-allowed functions (`expressions.allow_functions`), by Spark name.
ALLOWED_BY_NAME: dict[str, tuple[str, ...]] = {
    "rand": ("Rand",), "random": ("Rand",), "randn": ("Randn",), "uuid": ("Uuid",), "shuffle": ("Shuffle",),
    "current_date": ("CurrentDate",), "curdate": ("CurrentDate",), "current_timestamp": ("CurrentTimestamp",),
    "now": ("Now",), "localtimestamp": ("LocalTimestamp",), "current_timezone": ("CurrentTimeZone",),
    "unix_timestamp": ("CurrentTimestamp",), "current_user": ("CurrentUser",), "user": ("CurrentUser",),
    "session_user": ("CurrentUser",), "version": ("SparkVersion",), "input_file_name": ("InputFileName",),
    "input_file_block_start": ("InputFileBlockStart",), "input_file_block_length": ("InputFileBlockLength",),
    "spark_partition_id": ("SparkPartitionID",), "monotonically_increasing_id": ("MonotonicallyIncreasingID",),
    "current_database": ("CurrentDatabase",), "current_schema": ("CurrentDatabase",),
    "current_catalog": ("CurrentCatalog",), "aes_encrypt": ("AesEncrypt",), "raise_error": ("RaiseError",),
    "assert_true": ("RaiseError",), "uniform": ("Uniform",), "randstr": ("RandStr",),
}


def _simple_name(java_object: Any) -> str:
    return str(java_object.getClass().getSimpleName())


def _items(seq: Any) -> list[Any]:
    iterator = seq.iterator()
    items = []
    while iterator.hasNext():
        items.append(iterator.next())
    return items


def _analysed(frame: DataFrame) -> Any:
    return frame._jdf.queryExecution().analyzed()


def _leaves(root: Any) -> list[Any]:
    """The leaf relations of a logical plan (plan nodes only: no expression is visited)."""
    leaves, plans = [], [root]
    while plans:
        children = _items(plans[-1].children())
        node = plans.pop()
        if children:
            plans.extend(children)
        else:
            leaves.append(node)
    return leaves


def _expression_refusals(frame: DataFrame, base: DataFrame, allowed: set[str]) -> list[str]:
    """What the plan nodes `frame` adds on top of `base` call that definitions may not."""
    base_root = _analysed(base)
    found: list[str] = []
    plans = [_analysed(frame)]
    while plans:
        node = plans.pop()
        if node.equals(base_root):
            continue
        plans.extend(_items(node.children()))
        expressions = _items(node.expressions())
        while expressions:
            expression = expressions.pop()
            kind = _simple_name(expression)
            if kind in REFUSED_EXPRESSIONS and kind not in allowed:
                found.append(f"calls {REFUSED_EXPRESSIONS[kind]} (Spark's {kind})")
            elif kind == "StaticInvoke" and not str(expression.staticObject().getName()).startswith("org.apache.spark."):
                found.append(f"calls the Java method {expression.staticObject().getName()}.{expression.functionName()}")
            expressions.extend(_items(expression.children()))
    return found


def plan_refusals(batch: DataFrame, events: DataFrame, plan: Plan, allow: tuple[str, ...] = ()) -> list[str]:
    """What Spark's reading of `plan`'s expressions does that definitions may not (empty when nothing).

    Spark analyses the group's filter, aggregation inputs and row-level features over
    `events` (the source as read), and its derived features and checks' `row_condition`s over
    `batch`, exactly as compute and the gate will; every expression those add to the plan is
    walked. Every leaf of `batch`'s plan must be an engine-made relation or a leaf of
    `events`' plan. `allow` names functions conf allows (`expressions.allow_functions`).
    """
    from pyspark.sql import functions as F

    allowed = {cls for name in allow for cls in ALLOWED_BY_NAME.get(name, ())}
    over_events = [t for t in (plan.filter, *(a.expr for a in plan.aggregates), *(f.expr for f in plan.features)) if t]
    conditions = [c.arguments["row_condition"] for c in plan.checks if isinstance(c.arguments.get("row_condition"), str)]
    over_batch = [*(d.expr for d in plan.derived), *conditions]
    found: dict[str, None] = {}
    for frame, texts in ((events, over_events), (batch, over_batch)):
        if texts:
            for refusal in _expression_refusals(frame.select(*[F.expr(t) for t in texts]), frame, allowed):
                found.setdefault(refusal, None)
    own = _leaves(_analysed(events))
    for leaf in _leaves(_analysed(batch)):
        kind = _simple_name(leaf)
        # sameResult: equal once expression ids are normalised (a self-join renumbers one side)
        if kind not in ENGINE_RELATIONS and not any(leaf.sameResult(read) for read in own):
            found.setdefault(f"reads {kind} {str(leaf.simpleString(100))[:200]}, which is not its source", None)
    return list(found)


def check_batch(batch: DataFrame, events: DataFrame, plan: Plan) -> None:
    """Raise `DefinitionError` (exit 2) if Spark's reading of `plan.group`'s definitions breaks the policy."""
    refusals = plan_refusals(batch, events, plan, plan.allow_functions)
    if refusals:
        raise DefinitionError([
            Problem(f"feature group '{plan.group}'", 0, f"as Spark reads its definitions, it {refusal}, which definitions "
                    "may not do (SPEC: expressions are data); nothing was computed: remove it from the group's "
                    "expressions, filter and checks, and run featurebank validate")
            for refusal in refusals
        ])


def check_input_types(events: DataFrame, plan: Plan) -> None:
    """Raise `SourceMismatch` (exit 2) if an aggregation's input, typed by the real source, does not fit its function."""
    from pyspark.sql import functions as F

    aggregates = [(a, a.expr) for a in plan.aggregates if a.expr is not None]
    if not aggregates:
        return
    schema = events.select(*[F.expr(expr).alias(f"_v{i}") for i, (_, expr) in enumerate(aggregates)]).schema
    problems = []
    for (aggregate, _), field in zip(aggregates, schema.fields):
        spark_type = field.dataType.simpleString()
        reason = input_type_problem(aggregate.function, spark_type)
        if reason is not None:
            problems.append(f"aggregation '{aggregate.name}' of feature group '{plan.group}' applies {aggregate.function} "
                            f"to {aggregate.expr!r}, which source '{plan.source.name}' ({plan.source.location}) "
                            f"makes {spark_type}, but {reason}")
    if problems:
        raise SourceMismatch("\n".join(problems) + "\nnothing was computed; declare the source's real column types and run validate")
