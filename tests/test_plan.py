"""The plan compiler: what a run reads, computes, checks and writes, without Spark."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
from datetime import date
from pathlib import Path

import pytest

from featurebank.cli import main
from featurebank.definitions import load_project
from featurebank.errors import UsageError
from featurebank.compile.group import KEY_CHECK, compile_group
from featurebank.compile.order import run_order
from featurebank.compile.run import compile_plan

GOLDEN = Path(__file__).resolve().parent / "golden"
CORPUS_BASE = Path(__file__).resolve().parent / "definitions_corpus" / "_base"
UPDATE = os.environ.get("FEATUREBANK_UPDATE_GOLDEN") == "1"


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def small_project(tmp_path: Path, definitions: str) -> Path:
    root = tmp_path / "project"
    shutil.copytree(CORPUS_BASE, root)
    (root / "features" / "groups.yaml").write_text(definitions)
    return root


@pytest.mark.parametrize("group", ["customer_card_spend", "customer_profile"])
def test_printed_plan_matches_golden_file(group: str, example_project: Path) -> None:
    code, out, err = run_cli("plan", group, "--start", "2024-01-01", "--end", "2024-03-31",
                             "--project", str(example_project), "--env", "local")
    assert (code, err) == (0, "")
    text = out.replace(str(example_project.resolve()), "<project>")
    golden = GOLDEN / f"plan_{group}.txt"
    if UPDATE:
        golden.write_text(text)
    assert text == golden.read_text()


def test_aggregation_plan_reads_max_window_before_start_up_to_end(example_project: Path) -> None:
    project = load_project(example_project, "local")
    plan = compile_plan(project, "customer_card_spend", date(2024, 1, 1), date(2024, 3, 31))
    assert (plan.source.read_start, plan.source.read_end_exclusive) == (date(2023, 10, 3), date(2024, 3, 31))
    assert plan.max_window == 90
    assert plan.source.columns == ("customer_id", "event_ts", "status", "amount", "merchant_id", "mcc", "channel")
    assert dict(plan.source.declared_types)["amount"] == "double"
    assert plan.replaced_dates == (date(2024, 1, 1), date(2024, 3, 31))
    assert plan.table_path == project.table_path("customer_card_spend")
    assert [c.name for c in plan.output[:6]] == ["customer_id", "feature_date", "feature_ts", "spend_sum_7d", "spend_sum_30d", "spend_sum_90d"]
    assert plan.feature_columns[-2:] == ("avg_ticket_7d", "spend_trend_7d_90d")
    types = {c.name: c.type for c in plan.output}
    assert (types["spend_sum_7d"], types["txn_count_7d"], types["spend_avg_30d"], types["spend_stddev_90d"]) == ("double", "bigint", "double", "double")
    assert (types["last_channel_30d"], types["merchants_7d"], types["mccs_90d"], types["feature_date"]) == ("string", "bigint", "bigint", "date")


def test_always_on_checks_guard_keys_and_one_row_per_key_and_date(example_project: Path) -> None:
    project = load_project(example_project, "local")
    aggregation = compile_plan(project, "customer_card_spend", date(2024, 1, 1), date(2024, 1, 1))
    row = compile_plan(project, "customer_profile", date(2024, 1, 1), date(2024, 1, 1))
    always = [(c.expectation, c.arguments) for c in aggregation.checks if c.origin == KEY_CHECK]
    assert always == [("expect_column_values_to_not_be_null", {"column": "customer_id"}),
                      ("expect_compound_columns_to_be_unique", {"column_list": ("customer_id", "feature_date")})]
    assert [c.arguments for c in row.checks if c.expectation == "expect_compound_columns_to_be_unique"] == [
        {"column_list": ("customer_id", "feature_ts")}]
    declared = [c for c in aggregation.checks if c.origin != KEY_CHECK]
    assert [(c.origin, c.severity) for c in declared] == [
        ("features/cards/customer_card_spend.yaml:22", "error"),
        ("features/cards/customer_card_spend.yaml:23", "error"),
        ("features/cards/customer_card_spend.yaml:24", "warn")]


def test_row_level_plan_reads_the_snapshot_days_themselves(example_project: Path) -> None:
    project = load_project(example_project, "local")
    plan = compile_plan(project, "customer_profile", date(2024, 2, 1), date(2024, 2, 29))
    assert plan.kind == "row" and plan.ttl_days == 365
    assert (plan.source.read_start, plan.source.read_end_exclusive) == (date(2024, 2, 1), date(2024, 3, 1))
    assert [c.name for c in plan.output] == ["customer_id", "feature_date", "feature_ts", "segment", "income_band", "region", "tenure_days"]
    assert dict((c.name, c.type) for c in plan.output)["tenure_days"] == "int"
    assert dict(plan.lineage)["tenure_days"] == ("updated_at", "opened_at")


def test_lineage_of_a_derived_feature_goes_through_its_aggregations(example_project: Path) -> None:
    project = load_project(example_project, "local")
    plan = compile_plan(project, "merchant_risk", date(2024, 1, 1), date(2024, 1, 1))
    lineage = dict(plan.lineage)
    assert lineage["declines_30d"] == ("status",)
    assert lineage["merchant_txn_count_30d"] == ()
    assert lineage["decline_rate_30d"] == ("status",)
    assert lineage["merchant_customers_30d"] == ("customer_id",)


def test_types_follow_spark_rules_for_sums_and_extremes(tmp_path: Path) -> None:
    root = small_project(tmp_path, (
        "kind: source\nname: events\nformat: parquet\npath: ./raw/events\ntimestamp: ts\n"
        "columns: {customer_id: string, n: int, price: 'decimal(10,2)', ts: timestamp, day: date}\n"
        "---\nkind: feature_group\nname: g\nentity: customer\nsource: events\naggregations:\n"
        "  - {name: n_sum, expr: n, function: sum, windows: [7d]}\n"
        "  - {name: price_sum, expr: price, function: sum, windows: [7d]}\n"
        "  - {name: n_avg, expr: n, function: avg, windows: [7d]}\n"
        "  - {name: first_day, expr: day, function: min, windows: [7d]}\n"
        "  - {name: odd, expr: \"bit_count(n)\", function: max, windows: [7d]}\n"
        "derived:\n  - {name: n_ratio, expr: \"n_sum_7d / 7\"}\n"
    ))
    types = {c.name: c.type for c in compile_plan(load_project(root, "local"), "g", date(2024, 1, 8), date(2024, 1, 8)).output}
    assert types == {"customer_id": "string", "feature_date": "date", "feature_ts": "timestamp", "n_sum_7d": "bigint",
                     "price_sum_7d": "decimal(20,2)", "n_avg_7d": "double", "first_day_7d": "date", "odd_7d": "?",
                     "n_ratio": "double"}


def test_definition_hash_ignores_where_a_definition_is_written_but_not_what_it_says(tmp_path: Path) -> None:
    group = ("kind: feature_group\nname: g\nentity: customer\nsource: txns\naggregations:\n"
             "  - {name: s, expr: amount, function: sum, windows: [7d]}\n")
    first = compile_group(load_project(small_project(tmp_path / "a", group), "local"), "g").data_hash
    moved = compile_group(load_project(small_project(tmp_path / "b", "# moved down\n\n" + group), "local"), "g").data_hash
    changed = compile_group(load_project(small_project(tmp_path / "c", group.replace("7d", "14d")), "local"), "g").data_hash
    assert first == moved != changed
    assert len(first) == 16 and int(first, 16) >= 0


def test_run_order_puts_a_group_after_the_groups_it_reads(tmp_path: Path) -> None:
    root = small_project(tmp_path, (
        "kind: source\nname: a_table\ngroup: a_spend\ntimestamp: feature_ts\n"
        "---\nkind: feature_group\nname: a_trend\nentity: customer\nsource: a_table\n"
        "aggregations:\n  - {name: peak, expr: spend_7d, function: max, windows: [30d]}\n"
        "---\nkind: feature_group\nname: a_spend\nentity: customer\nsource: txns\n"
        "aggregations:\n  - {name: spend, expr: amount, function: sum, windows: [7d]}\n"
        "---\nkind: feature_group\nname: b_count\nentity: customer\nsource: txns\n"
        "aggregations:\n  - {name: n, function: count, windows: [7d]}\n"
    ))
    assert run_order(load_project(root, "local")) == ["a_spend", "b_count", "a_trend"]


def test_unknown_group_is_a_usage_error_with_a_suggestion(example_project: Path) -> None:
    project = load_project(example_project, "local")
    with pytest.raises(UsageError, match="did you mean 'merchant_risk'"):
        compile_plan(project, "merchant_risks", date(2024, 1, 1), date(2024, 1, 1))
    code, out, err = run_cli("plan", "merchant_risks", "--date", "2024-01-01", "--project", str(example_project))
    assert (code, out) == (2, "")
    assert "did you mean 'merchant_risk'?" in err and "Traceback" not in err


def test_plan_defaults_to_today_in_the_project_time_zone(example_project: Path) -> None:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    code, out, _ = run_cli("plan", "account_activity", "--project", str(example_project))
    today = datetime.now(ZoneInfo("UTC")).date()
    assert code == 0
    assert f"snapshot dates: {today} .. {today} (1 date)" in out
