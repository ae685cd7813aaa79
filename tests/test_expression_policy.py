"""Expressions are data (issue 16 findings 1, 5, 12): the policy at validate time and on Spark's plan.

Hostile definitions are also in tests/definitions_corpus/ (policy_*, yaml_*, sum_over_string,
pii_*), checked line by line by tests/test_definitions.py; this file covers what the corpus
cannot say: conf allowing a function, the loader's bounds, and the second check on Spark's
analysed plan before compute.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pytest

from featurebank.definitions import load_project
from featurebank.definitions.expressions import ExpressionError
from featurebank.definitions.policy import REFUSED, allowed_functions, policy_violations
from featurebank.definitions.spark_functions import spark_functions
from featurebank.engine import compute_batch
from featurebank.io.sources import read_source
from featurebank.engine.policy import plan_refusals
from featurebank.errors import ConfigError, DefinitionError, SourceMismatch
from featurebank.compile.group import AggregateSpec, ExprSpec, OutputColumn, SourceRead
from featurebank.compile.run import Plan, compile_plan

CORPUS = Path(__file__).resolve().parent / "definitions_corpus"
SECRET_CALL = "reflect('java.lang.System', 'getProperty', 'user.dir')"


def compute(spark, plan):
    """The executor as the runner drives it: the source read at the I/O edge, then compute_batch."""
    return compute_batch(read_source(spark, plan.source, plan.timezone), plan)


def base_project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    shutil.copytree(CORPUS / "_base", root)
    return root


def write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


# -- validate time ----------------------------------------------------------------------------


@pytest.mark.parametrize("text", [
    SECRET_CALL, "java_method('java.lang.System', 'getenv', 'S')", "try_reflect('a', 'b')", "input_file_name()",
    "input_file_block_start()", "rand()", "randn(1)", "random()", "uuid()", "shuffle(array(1, 2))",
    "monotonically_increasing_id()", "spark_partition_id()", "current_date()", "current_date", "current_timestamp()",
    "now()", "curdate()", "current_timezone()", "localtimestamp()", "unix_timestamp()", "current_user()", "user()",
    "session_user()", "version()", "amount + (select 1)", "coalesce((select max(amount) from t), 0)",
    "exists(select 1)", "amount in (select amount from t)", "parquet.`/data/x`", "delta.`/data/x`.income",
    "t.amount", "hash(*)", "db.fn(amount)", "upper(concat(status, (select 'x')))",
])
def test_refused_expression_is_reported(text: str) -> None:
    assert policy_violations(text), text


@pytest.mark.parametrize("text", ["1; select 2", "status = 'SETTLED';", "amount; drop table t"])
def test_a_semicolon_outside_a_string_is_refused_as_a_second_statement(text: str) -> None:
    with pytest.raises(ExpressionError, match="`;`"):
        policy_violations(text)
    assert policy_violations("status = ';'") == ()  # inside a string it is just a character


@pytest.mark.parametrize("text", [
    "upper(segment)", "case when income < 3000 then 'low' else 'high' end", "datediff(updated_at, opened_at)",
    "spend_sum_7d / nullif(txn_count_7d, 0)", "unix_timestamp(event_ts)", "exists(tags, x -> x = 'vip')",
    "transform(tags, x -> upper(x))", "coalesce(amount, 0)", "named_struct('a', 1).a", "date_trunc('month', event_ts)",
])
def test_pure_expression_passes(text: str) -> None:
    assert policy_violations(text) == ()


def test_allow_list_is_sparks_functions_minus_the_refused() -> None:
    allowed = allowed_functions()
    assert "upper" in allowed and "reflect" not in allowed and "current_date" not in allowed
    assert allowed == spark_functions() - REFUSED.keys()
    assert "current_date" in allowed_functions(["current_date"])
    assert "reflect" not in allowed_functions(["reflect"])


def test_conf_may_allow_a_clock_function_by_name(tmp_path: Path) -> None:
    root = base_project(tmp_path)
    group = ("kind: feature_group\nname: spend\nentity: customer\nsource: txns\n"
             "aggregations:\n  - {name: spend_sum, expr: amount, function: sum, windows: [7d]}\n"
             "derived:\n  - {name: age, expr: \"datediff(current_date(), feature_date)\"}\n")
    write(root, "features/g.yaml", group)
    with pytest.raises(DefinitionError, match="current_date"):
        load_project(root, "local")
    write(root, "conf/local.yaml", (root / "conf/local.yaml").read_text() + "expressions: {allow_functions: [current_date]}\n")
    project = load_project(root, "local")
    assert project.config.allow_functions == ("current_date",)
    assert compile_plan(project, "spend", date(2024, 1, 2), date(2024, 1, 2)).allow_functions == ("current_date",)


def test_conf_cannot_allow_reflection(tmp_path: Path) -> None:
    root = base_project(tmp_path)
    write(root, "conf/local.yaml", (root / "conf/local.yaml").read_text() + "expressions: {allow_functions: [java_method]}\n")
    with pytest.raises(ConfigError, match="never allowed"):
        load_project(root, "local")


def test_env_values_are_not_substituted_outside_source_locations(tmp_path: Path) -> None:
    root = base_project(tmp_path)
    write(root, "features/g.yaml", "kind: entity\nname: account\nkeys: [account_id]\ndescription: \"${env:FB_SECRET}\"\n")
    with pytest.raises(DefinitionError) as raised:
        load_project(root, "local", environ={"FB_SECRET": "hunter2"})
    assert "features/g.yaml:4: ${env:FB_SECRET} is used in description:" in str(raised.value)
    assert "hunter2" not in str(raised.value)


def test_alias_bomb_stops_at_its_budget_quickly(tmp_path: Path) -> None:
    root = base_project(tmp_path)
    shutil.copytree(CORPUS / "yaml_alias_bomb" / "features", root / "features", dirs_exist_ok=True)
    started = time.perf_counter()
    with pytest.raises(DefinitionError, match="expands to more than 100,000 values"):
        load_project(root, "local")
    assert time.perf_counter() - started < 2.0  # a hang guard: unbounded expansion takes minutes and gigabytes


def test_deep_nesting_is_a_definition_error_not_a_recursion_error(tmp_path: Path) -> None:
    root = base_project(tmp_path)
    write(root, "features/deep.yaml", "kind: entity\nname: deep\nkeys:\n" + "".join("  " * i + "- \n" for i in range(1, 5001)))
    with pytest.raises(DefinitionError, match="nests more than 100 levels"):
        load_project(root, "local")


def test_cli_validate_exits_2_for_hostile_definitions(tmp_path: Path) -> None:
    for case in ("policy_reflect", "yaml_deep_nesting"):
        root = tmp_path / case
        shutil.copytree(CORPUS / "_base", root)
        shutil.copytree(CORPUS / case / "features", root / "features", dirs_exist_ok=True)
        result = subprocess.run([sys.executable, "-m", "featurebank", "validate", "--project", str(root), "--env", "local"],
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 2, result.stderr
        assert "features/case.yaml:" in result.stderr and "Traceback" not in result.stderr


# -- Spark's plan, before compute --------------------------------------------------------------


@pytest.fixture()
def utc_session(spark):  # type: ignore[no-untyped-def]
    """compute_batch sets the session zone to the project zone: put the fixture's UTC back."""
    yield spark
    spark.conf.set("spark.sql.session.timeZone", "UTC")


def customers(tmp_path: Path) -> str:
    path = str(tmp_path / "customers.parquet")
    pd.DataFrame({
        "customer_id": ["c1", "c2"], "segment": ["retail", "sme"], "income": [1000.0, 2000.0],
        "updated_at": pd.to_datetime(["2024-03-10 10:00:00", "2024-03-10 11:00:00"]).astype("datetime64[us]"),
    }).to_parquet(path)
    return path


def row_plan(location: str, *features: ExprSpec, filter: str | None = None) -> Plan:
    start = end = date(2024, 3, 10)
    read = SourceRead("customers", "parquet", location, "updated_at", ("customer_id", "segment", "income", "updated_at"),
                      (), start, end + timedelta(days=1))
    output = [OutputColumn("customer_id", "string", "key"), OutputColumn("feature_date", "date", "partition"),
              OutputColumn("feature_ts", "timestamp", "time")] + [OutputColumn(f.name, "?", "feature") for f in features]
    return Plan(group="profile", kind="row", entity="customer", keys=("customer_id",), source=read, filter=filter,
                aggregates=(), derived=(), features=features, ttl_days=None, start=start, end=end, timezone="UTC",
                table_path="/tmp/none", output=tuple(output), checks=(), lineage=(), data_hash="x", metadata_hash="x")


def test_plan_check_refuses_what_sqlglot_reads_as_a_column(utc_session, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # sqlglot reads a bare `user` as a column (so a source without declared columns validates);
    # Spark resolves it to current_user() and would publish who ran the job.
    assert policy_violations("user") == ()
    plan = row_plan(customers(tmp_path), ExprSpec("who", "user"))
    with pytest.raises(DefinitionError) as raised:
        compute(utc_session, plan)
    assert "feature group 'profile'" in str(raised.value) and "CurrentUser" in str(raised.value)


def test_plan_check_refuses_reflection_in_a_feature_and_a_subquery_in_a_filter(utc_session, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = customers(tmp_path)
    plan = row_plan(path, ExprSpec("leak", SECRET_CALL),
                    filter=f"income < (select max(income) from parquet.`{path}`)")
    with pytest.raises(DefinitionError) as raised:
        compute(utc_session, plan)
    message = str(raised.value)
    assert "CallMethodViaReflection" in message and "ScalarSubquery" in message


def test_plan_check_lets_pure_and_conf_allowed_expressions_through(utc_session, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    plan = row_plan(customers(tmp_path), ExprSpec("segment", "upper(segment)"), ExprSpec("today", "current_date()"))
    with pytest.raises(DefinitionError, match="current_date"):
        compute(utc_session, plan)
    batch = compute(utc_session, replace(plan, allow_functions=("current_date",)))
    assert sorted(r["segment"] for r in batch.collect()) == ["RETAIL", "SME"]


def test_plan_check_walks_derived_features_and_refuses_other_relations(spark, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    customers_path = customers(tmp_path)
    events = spark.createDataFrame([("c1", 1.0)], "customer_id string, amount double")
    batch = events.groupBy("customer_id").sum("amount").withColumnRenamed("sum(amount)", "spend_sum_7d")
    plan = replace(row_plan("<memory>"), kind="aggregation", derived=(ExprSpec("leak", f"concat(spend_sum_7d, {SECRET_CALL})"),))
    assert plan_refusals(batch, events, plan) == ["calls reflect/java_method/try_reflect (Spark's CallMethodViaReflection)"]
    assert plan_refusals(batch, events, replace(plan, derived=())) == []
    elsewhere = spark.createDataFrame([("c1", 2.0)], "customer_id string, amount double")
    joined = batch.join(events, "customer_id").join(elsewhere.withColumnRenamed("amount", "other"), "customer_id")
    assert plan_refusals(joined, events, replace(plan, derived=())) == []  # engine-made relations
    other_read = spark.read.parquet(customers_path).select("customer_id", "income")
    refusals = plan_refusals(batch.join(other_read, "customer_id"), events, replace(plan, derived=()))
    assert len(refusals) == 1 and refusals[0].startswith("reads LogicalRelation") and "not its source" in refusals[0]


def test_sum_over_a_string_column_is_refused_before_compute(utc_session, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # No declared column types, so validate cannot know: the real schema says string.
    plan = replace(row_plan(customers(tmp_path)), kind="aggregation",
                   aggregates=(AggregateSpec("segment_sum", "sum", "segment", (7,)),))
    with pytest.raises(SourceMismatch, match="applies sum to 'segment'.* string, but sum needs a number"):
        compute(utc_session, plan)
