"""The aggregation functions' registry (featurebank.aggregators): types, input checks, words.

Pure Python, no Spark: what definitions, `plan` and the catalog ask of an aggregator. The
values each function computes are checked against the oracle in tests/test_aggregate.py.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from featurebank.aggregators import AGGREGATION_FUNCTIONS, Aggregator, aggregator
from featurebank.definitions.expressions import input_type_problem
from featurebank.definitions.model import COUNT_FUNCTIONS

LIB = Path(__file__).resolve().parent.parent / "lib" / "featurebank"


def test_registry_lists_the_nine_functions_in_the_order_definitions_name_them():
    assert AGGREGATION_FUNCTIONS == (
        "count", "sum", "avg", "min", "max", "stddev", "count_distinct", "approx_count_distinct", "last",
    )
    assert all(isinstance(aggregator(n), Aggregator) and aggregator(n).name == n for n in AGGREGATION_FUNCTIONS)


def test_an_unknown_function_is_refused_with_the_known_ones_named():
    with pytest.raises(ValueError, match=r"unknown aggregation function 'median' \(one of: count, sum, .*last\)"):
        aggregator("median")
    assert input_type_problem("median", "double") is None  # the loader reports the name itself


def test_count_family_is_zero_over_an_empty_window_and_the_rest_null():
    assert COUNT_FUNCTIONS == ("count", "count_distinct", "approx_count_distinct")
    assert {n: aggregator(n).empty for n in AGGREGATION_FUNCTIONS} == {
        "count": 0, "sum": None, "avg": None, "min": None, "max": None, "stddev": None,
        "count_distinct": 0, "approx_count_distinct": 0, "last": None,
    }


@pytest.mark.parametrize(
    ("function", "input_type", "output"),
    [
        ("count", "string", "bigint"), ("count_distinct", "?", "bigint"), ("approx_count_distinct", "int", "bigint"),
        ("stddev", "decimal(12,2)", "double"), ("stddev", "?", "double"),
        ("sum", "int", "bigint"), ("sum", "float", "double"), ("sum", "decimal(12,2)", "decimal(22,2)"),
        ("sum", "decimal(35,3)", "decimal(38,3)"), ("sum", "?", "?"), ("sum", "string", "?"),
        ("avg", "bigint", "double"), ("avg", "double", "double"), ("avg", "?", "double"), ("avg", "string", "?"),
        ("avg", "decimal(12,2)", "decimal(16,6)"), ("avg", "decimal(36,36)", "decimal(38,38)"),
        ("min", "date", "date"), ("max", "decimal(5,1)", "decimal(5,1)"), ("last", "string", "string"),
    ],
)
def test_output_type_follows_spark(function, input_type, output):
    assert aggregator(function).output_type(input_type) == output


def test_input_checks_belong_to_each_function():
    for name in ("sum", "avg", "stddev"):
        assert input_type_problem(name, "decimal(10, 2)") is None
        assert input_type_problem(name, "string").startswith(f"{name} needs a number (tinyint, smallint, int, bigint")
    for name in ("min", "max", "last"):
        assert input_type_problem(name, "string") is None
        assert input_type_problem(name, "array<map<string,int>>").startswith(f"{name} needs a value Spark can order")
    for name in COUNT_FUNCTIONS:
        assert input_type_problem(name, "map<string,int>") is None
    assert all(input_type_problem(n, "?") is None for n in AGGREGATION_FUNCTIONS)


def test_each_function_says_what_it_computes():
    heads = {n: aggregator(n).sentence("amount", "payments") for n in AGGREGATION_FUNCTIONS}
    assert heads["count"] == "number of non-NULL values of amount over payments events"
    assert aggregator("count").sentence(None, "payments") == "number of payments events"
    assert heads["avg"] == "mean of amount over payments events"
    assert heads["approx_count_distinct"].endswith("amount (within 5% relative error) over payments events")
    assert aggregator("count").empty_sentence == "0 when there is none"
    assert aggregator("last").empty_sentence == "NULL when there is none"


def test_the_aggregators_package_imports_nothing_from_featurebank_but_errors():
    # Rank 0: definitions and compile import it; an import of anything above would point up.
    for path in sorted((LIB / "aggregators").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("featurebank"):
                assert node.module.startswith(("featurebank.aggregators", "featurebank.errors")), (path.name, node.module)


def test_definitions_and_compile_read_aggregators_without_loading_spark():
    code = ("import sys, featurebank.compile.run, featurebank.compile.semantics, featurebank.days; "
            "from featurebank.aggregators import aggregator; aggregator('sum').output_type('int'); "
            "print('pyspark' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_windowing_code_names_no_aggregation_function():
    # Adding a function is one class: engine/aggregate.py asks the aggregator for every phase.
    tree = ast.parse((LIB / "engine" / "aggregate.py").read_text())
    strings = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    assert not strings & set(AGGREGATION_FUNCTIONS)


def test_shared_phase_columns_are_kept_once_by_their_alias_on_every_spark_lane(spark):
    """`unique_columns` reads each phase column's alias from its text (Spark 4 has no JVM `expr()`
    on a Column; 3.5 backquotes names that need it): repeated names are computed once, and a
    column without an alias is refused, never silently kept or dropped."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    from featurebank.engine.aggregate import alias_name, unique_columns

    w = Window.partitionBy("a").orderBy("b")
    cols = [F.sum("x").over(w).alias("__fb_s`um"), (F.col("a") + 1).alias("n_1"),
            F.when(F.col("a") > 1, F.lit("x AS y")).alias("z"), F.col("q").alias("a.b"), F.col("r").alias("n_1")]
    assert [alias_name(c) for c in cols] == ["__fb_s`um", "n_1", "z", "a.b", "n_1"]
    kept = unique_columns(cols)
    assert [alias_name(c) for c in kept] == ["__fb_s`um", "n_1", "z", "a.b"] and kept[1] is cols[1]
    with pytest.raises(ValueError, match="must be an alias"):
        alias_name(F.col("a") + 1)
