"""The plan compiler: what a run reads, computes, checks and writes, without Spark."""

from __future__ import annotations

import contextlib
import json
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
    check_golden(f"plan_{group}.txt", out.replace(str(example_project.resolve()), "<project>"))


def check_golden(name: str, text: str) -> None:
    """`text` equals tests/golden/`name` (FEATUREBANK_UPDATE_GOLDEN=1 rewrites the file first)."""
    golden = GOLDEN / name
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


# --- data_hash / metadata_hash (issue 17) -------------------------------------------------------

HASHED_GROUP = ("kind: feature_group\nname: g\nentity: customer\nsource: txns\ndescription: spend per customer\n"
                "owner: team-a\nfilter: \"amount > 0 and status is not null\"\naggregations:\n"
                "  - {name: s, expr: \"amount * 2\", function: sum, windows: [7d], description: doubled spend}\n"
                "checks:\n  - expect_column_values_to_not_be_null: {column: s_7d}\n")


def hashes(tmp_path: Path, name: str, definitions: str) -> tuple[str, str]:
    compiled = compile_group(load_project(small_project(tmp_path / name, definitions), "local"), "g")
    return compiled.data_hash, compiled.metadata_hash


def test_editing_a_description_owner_or_check_changes_the_metadata_hash_only(tmp_path: Path) -> None:
    data, metadata = hashes(tmp_path, "base", HASHED_GROUP)
    for i, edited in enumerate([HASHED_GROUP.replace("spend per customer", "spend per customr (typo fixed)"),
                                HASHED_GROUP.replace("doubled spend", "twice the spend"),
                                HASHED_GROUP.replace("team-a", "team-b"),
                                HASHED_GROUP + "    severity: warn\n"]):
        new_data, new_metadata = hashes(tmp_path, f"edit{i}", edited)
        assert new_data == data and new_metadata != metadata, edited


def test_spacing_case_and_comments_in_an_expression_leave_the_data_hash_alone(tmp_path: Path) -> None:
    data, metadata = hashes(tmp_path, "base", HASHED_GROUP)
    respelled = HASHED_GROUP.replace('"amount * 2"', '"amount*2 /* twice */"').replace(
        '"amount > 0 and status is not null"', '"amount>0  AND status IS NOT NULL"')
    assert hashes(tmp_path, "respelled", respelled) == (data, metadata)


def test_a_window_filter_expression_or_engine_version_change_moves_the_data_hash(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import featurebank.compile.group as group_module

    data, metadata = hashes(tmp_path, "base", HASHED_GROUP)
    for i, edited in enumerate([HASHED_GROUP.replace("[7d]", "[14d]").replace("s_7d", "s_14d"),
                                HASHED_GROUP.replace('"amount > 0', '"amount >= 0'),
                                HASHED_GROUP.replace('"amount * 2"', '"amount * 3"'),
                                HASHED_GROUP.replace("function: sum", "function: max")]):
        assert hashes(tmp_path, f"edit{i}", edited)[0] != data, edited
    monkeypatch.setattr(group_module, "ENGINE_VERSION", group_module.ENGINE_VERSION + 1)
    engine_data, engine_metadata = hashes(tmp_path, "engine", HASHED_GROUP)
    assert engine_data != data and engine_metadata == metadata


def test_a_run_plan_is_its_compiled_group_plus_dates(example_project: Path) -> None:
    project = load_project(example_project, "local")
    compiled = compile_group(project, "customer_card_spend")
    plan = compile_plan(project, "customer_card_spend", date(2024, 1, 1), date(2024, 1, 31))
    assert plan.compiled == compiled
    assert (compiled.source.read_start, compiled.source.read_end_exclusive) == (None, None)
    assert (plan.data_hash, plan.metadata_hash, plan.output) == (compiled.data_hash, compiled.metadata_hash, compiled.output)


def test_change_kind_tells_new_unchanged_metadata_and_data_apart(example_project: Path) -> None:
    from featurebank.compile.change import change_kind

    compiled = compile_group(load_project(example_project, "local"), "customer_profile")
    same = {"featurebank.data_hash": compiled.data_hash, "featurebank.metadata_hash": compiled.metadata_hash}
    assert change_kind(compiled, None) == "new"
    assert change_kind(compiled, same) == "unchanged"
    assert change_kind(compiled, {**same, "featurebank.metadata_hash": "0" * 16}) == "metadata"
    assert change_kind(compiled, {**same, "featurebank.data_hash": "0" * 16}) == "breaking"  # no per-feature hashes
    assert change_kind(compiled, {"featurebank.definition_hash": "b8e8891a135ca7cd"}) == "breaking"  # older featurebank


def _table_with_properties(path: str, properties: dict[str, str]) -> None:
    """A Delta table at `path` whose properties are `properties`, written with delta-rs (no JVM)."""
    import pyarrow as pa
    from deltalake import DeltaTable, write_deltalake

    write_deltalake(path, pa.table({"customer_id": ["c1"]}))
    DeltaTable(path).alter.set_table_properties(properties, raise_if_not_exists=False)


def test_plan_says_a_description_edit_changes_only_metadata(example_project: Path) -> None:
    project = load_project(example_project, "local")
    compiled = compile_group(project, "customer_profile")
    _table_with_properties(compiled.table_path, {"featurebank.data_hash": compiled.data_hash,
                                                 "featurebank.metadata_hash": compiled.metadata_hash,
                                                 "featurebank.feature_hashes": json.dumps(dict(compiled.feature_hashes))})
    argv = ("plan", "customer_profile", "--date", "2024-01-01", "--project", str(example_project))
    code, out, _ = run_cli(*argv)
    assert code == 0 and out.endswith("Change: customer_profile: none (the published table was computed by this definition)\n")

    definitions = example_project / "features" / "customers" / "profile.yaml"
    text = definitions.read_text()
    assert "description:" in text
    definitions.write_text(text.replace("description:", "description: Edited.", 1))
    code, out, _ = run_cli(*argv)
    assert code == 0 and "Change: customer_profile: metadata only" in out
    definitions.write_text(text.replace("upper(segment)", "lower(segment)"))
    code, out, _ = run_cli(*argv)
    assert code == 0 and "Change: customer_profile: breaking: changed segment; every published date recomputes" in out


def test_plan_on_a_table_an_older_featurebank_published_says_it_cannot_tell(example_project: Path) -> None:
    compiled = compile_group(load_project(example_project, "local"), "customer_profile")
    _table_with_properties(compiled.table_path, {"featurebank.definition_hash": "b8e8891a135ca7cd"})
    code, out, _ = run_cli("plan", "customer_profile", "--date", "2024-01-01", "--project", str(example_project))
    assert code == 0 and "Change: customer_profile: breaking, as far as can be told: the table records no data hash" in out


def test_plan_reads_the_hashes_from_the_last_commit_where_no_table_properties_are_written(example_project: Path) -> None:
    # A local (catalog-less) publish writes no table properties; its commit's userMetadata
    # records both hashes (io.tables.commit_metadata), which is what `plan` compares then.
    import json

    import pyarrow as pa
    from deltalake import CommitProperties, write_deltalake

    compiled = compile_group(load_project(example_project, "local"), "customer_profile")
    recorded = {"run_id": "r1", "data_hash": compiled.data_hash, "metadata_hash": compiled.metadata_hash}
    write_deltalake(compiled.table_path, pa.table({"customer_id": ["c1"]}),
                    commit_properties=CommitProperties(custom_metadata={"userMetadata": json.dumps(recorded)}))
    code, out, _ = run_cli("plan", "customer_profile", "--date", "2024-01-01", "--project", str(example_project))
    assert code == 0 and out.endswith("Change: customer_profile: none (the published table was computed by this definition)\n")
