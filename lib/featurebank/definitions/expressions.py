"""Spark SQL expressions, parsed once with sqlglot (dialect "spark").

Referenced columns, lineage and type inference all come from the parse tree, never from
regular expressions. Nothing here runs SQL; it only reads it.
"""

from __future__ import annotations

import re

from collections.abc import Mapping
from functools import lru_cache

import sqlglot
from sqlglot import TokenType, exp
from sqlglot.errors import ParseError, SqlglotError
from sqlglot.optimizer.annotate_types import annotate_types
from sqlglot.optimizer.qualify import qualify

from featurebank.aggregators import AGGREGATION_FUNCTIONS, UNKNOWN_TYPE, aggregator

DIALECT = "spark"


class ExpressionError(ValueError):
    """An expression that is not one valid Spark SQL expression; the message says why."""


@lru_cache(maxsize=4096)
def parse_expression(text: str) -> exp.Expr:
    """Parse one Spark SQL expression; raises `ExpressionError` with a one-line reason."""
    if not text.strip():
        raise ExpressionError("it is empty; write an expression")
    try:
        if any(token.token_type == TokenType.SEMICOLON for token in sqlglot.tokenize(text, dialect=DIALECT)):
            raise ExpressionError("it holds a `;` outside a string: one expression only, no statements; "
                                  "remove the `;` and what follows it")
        tree = sqlglot.parse_one(text, dialect=DIALECT)
    except ParseError as error:
        first = error.errors[0] if error.errors else {}
        what = str(first.get("description") or "cannot parse it")
        if what.startswith("Required keyword"):
            what = "incomplete expression (an operator or function is missing an operand)"
        where = f" at column {first['col']}" if first.get("col") else ""
        raise ExpressionError(f"{what}{where}; fix the expression") from None
    except SqlglotError as error:
        raise ExpressionError(f"{str(error).splitlines()[0]}; fix the expression") from None
    if isinstance(tree, exp.Alias):
        raise ExpressionError("it has an alias; drop `as ...` (the feature's name already names the column)")
    if isinstance(tree, (exp.Query, exp.DDL, exp.DML, exp.Command)):
        raise ExpressionError("it is a statement, not an expression; write only the expression")
    return tree


def referenced_columns(text: str) -> tuple[str, ...]:
    """Column names an expression reads, in order of first appearance (raises `ExpressionError`)."""
    seen: dict[str, None] = {}
    for column in parse_expression(text).find_all(exp.Column, bfs=False):
        seen.setdefault(column.name, None)
    return tuple(seen)


def aggregate_functions(text: str) -> tuple[str, ...]:
    """Names of aggregate functions used in an expression (they do not belong in row expressions)."""
    return tuple(sorted({node.sql_name().lower() for node in parse_expression(text).find_all(exp.AggFunc)}))


def unknown_functions(text: str) -> tuple[str, ...]:
    """Functions an expression calls that are not Spark SQL built-ins (raises `ExpressionError`)."""
    from featurebank.definitions.spark_functions import spark_functions

    known = spark_functions()
    called = (node.name.lower() for node in parse_expression(text).find_all(exp.Anonymous, bfs=False)
              if not isinstance(node.parent, exp.Dot))  # db.function(...) is a catalog function
    return tuple(dict.fromkeys(name for name in called if name not in known))


def valid_type(type_text: str) -> bool:
    """Whether `type_text` is a Spark SQL type name sqlglot knows (e.g. `double`, `decimal(10,2)`)."""
    try:
        built = exp.DataType.build(type_text, dialect=DIALECT)
    except (SqlglotError, ValueError):
        return False
    return bool(built.this != exp.DataType.Type.USERDEFINED)


# Spellings sqlglot keeps but Spark's schema (`simpleString`) writes another way.
_SPARK_SPELLING = {
    "decimal": "decimal(10,0)",
    "timestamp_ltz": "timestamp",
    "text": "string",
}


def normalise_type(type_text: str) -> str:
    """The lowercase spelling Spark's schema gives a type (`DECIMAL(10, 2)` → `decimal(10,2)`,
    `long` → `bigint`, `decimal` → `decimal(10,0)`, `varchar(10)` → `string`): the one type
    normaliser, for declared types and for the types a source's schema reports alike."""
    try:
        text = exp.DataType.build(type_text, dialect=DIALECT).sql(DIALECT).lower()
    except (SqlglotError, ValueError):
        text = type_text.strip().lower()
    text = re.sub(r"\s*([,:<>()])\s*", r"\1", text)
    text = re.sub(r"\b(?:var)?char\(\d+\)", "string", text)
    return _SPARK_SPELLING.get(text, text)


def infer_type(text: str, column_types: Mapping[str, str]) -> str:
    """The Spark SQL type of an expression over columns of known types, or "?" if unknown."""
    if not column_types:
        return UNKNOWN_TYPE
    try:
        tree = parse_expression(text)
        schema: dict[str, object] = {"t": {name: type_ for name, type_ in column_types.items() if type_ != UNKNOWN_TYPE}}
        if any(c.name not in column_types or column_types[c.name] == UNKNOWN_TYPE for c in tree.find_all(exp.Column)):
            return UNKNOWN_TYPE
        select = exp.select(tree.copy().as_("_value")).from_("t")
        select = qualify(select, schema=schema, dialect=DIALECT)
        typed = annotate_types(select, schema=schema, dialect=DIALECT)
        result = typed.selects[0].type
    except (SqlglotError, ExpressionError, ValueError, KeyError):
        return UNKNOWN_TYPE
    if result is None or result.this in (exp.DataType.Type.UNKNOWN, exp.DataType.Type.NULL, exp.DataType.Type.USERDEFINED):
        return UNKNOWN_TYPE
    return result.sql(DIALECT).lower().replace(", ", ",")


def input_type_problem(function: str, type_text: str) -> str | None:
    """Why aggregation `function` cannot take a value of Spark type `type_text`, or None if it can.

    The function's aggregator decides (`Aggregator.input_problem`: sum/avg/stddev need a
    number, min/max/last an orderable value, counts take anything); an unknown type ("?")
    passes, the runtime check sees the real one. An unknown function passes too: the loader
    reports its name.
    """
    if function not in AGGREGATION_FUNCTIONS:
        return None
    return aggregator(function).input_problem(type_text)
