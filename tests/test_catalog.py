"""The catalog side: `list`, `describe`, semantics in words, lineage, status, table metadata.

Lineage and semantics are checked against hand-written expectations for the shipped example
catalog; status against hand-made run records; table metadata against a real Delta table.
"""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from featurebank.catalog.lineage import feature_node_id as feat
from featurebank.catalog.lineage import group_lineage, project_lineage
from featurebank.catalog.lineage import source_node_id as src
from featurebank.compile.semantics import group_semantics
from featurebank.catalog.status import expected_date, group_status
from featurebank.io.table_metadata import (
    column_comments,
    metadata_statements,
    sql_string,
    group_properties,
    table_reference,
)
from featurebank.cli import main
from featurebank.definitions import load_project
from featurebank.compile.run import compile_plan
from featurebank.io.runlog import RunRecord

D = date(2024, 3, 1)
TS = "training_set:card_fraud_v1"


@pytest.fixture()
def project(example_project: Path):  # noqa: ANN201
    return load_project(example_project, "local")


def _plan(project, group: str):  # noqa: ANN001, ANN202
    return compile_plan(project, group, D, D)


# --- semantics ------------------------------------------------------------------------------


def test_aggregation_meaning_names_function_window_half_open_interval_filter_and_empty_value(project) -> None:  # noqa: ANN001
    meaning = group_semantics(_plan(project, "customer_card_spend"))
    assert meaning["spend_sum_30d"].sentence == (
        "Sum of amount over card_transactions events in the 30 days before the snapshot date D "
        "(event_ts in [D - 30 days, D), D itself excluded), only rows where status = 'SETTLED'; "
        "NULL when there is none.")
    assert meaning["txn_count_7d"].sentence == (
        "Number of card_transactions events in the 7 days before the snapshot date D "
        "(event_ts in [D - 7 days, D), D itself excluded), only rows where status = 'SETTLED'; 0 when there is none.")
    assert meaning["merchants_30d"].sentence.startswith(
        "Exact number of distinct non-NULL values of merchant_id over card_transactions events in the 30 days")
    assert "(within 5% relative error)" in meaning["mccs_90d"].sentence
    assert meaning["last_channel_30d"].sentence.startswith(
        "Latest non-NULL value of channel (ties on time go to the greatest value)")
    assert meaning["spend_stddev_90d"].sentence.startswith("Sample standard deviation of amount")
    assert (meaning["spend_sum_30d"].window_days, meaning["spend_sum_30d"].function) == (30, "sum")


def test_unfiltered_group_meaning_has_no_filter_clause(project) -> None:  # noqa: ANN001
    meaning = group_semantics(_plan(project, "merchant_risk"))
    assert meaning["declines_30d"].sentence == (
        "Sum of case when status = 'DECLINED' then 1 else 0 end over card_transactions events in the 30 days "
        "before the snapshot date D (event_ts in [D - 30 days, D), D itself excluded); NULL when there is none.")


def test_derived_and_row_level_meanings_give_their_sql_and_the_columns_they_use(project) -> None:  # noqa: ANN001
    derived = group_semantics(_plan(project, "merchant_risk"))["chargeback_rate_90d"]
    assert derived.kind == "derived"
    assert derived.inputs == ("chargebacks_90d", "merchant_txn_count_90d", "declines_90d")
    assert derived.source_columns == ("status",)
    assert derived.sentence == (
        "Computed on each snapshot row as chargebacks_90d / nullif(merchant_txn_count_90d - chargebacks_90d - "
        "declines_90d, 0), from this group's chargebacks_90d, merchant_txn_count_90d, declines_90d "
        "(source columns: status).")
    tenure = group_semantics(_plan(project, "customer_profile"))["tenure_days"]
    assert (tenure.kind, tenure.expression, tenure.inputs) == ("row", "datediff(updated_at, opened_at)",
                                                              ("updated_at", "opened_at"))
    assert tenure.sentence == (
        "The value of datediff(updated_at, opened_at) on each customers row (reads updated_at, opened_at), valid "
        "from that row's updated_at. A training set takes the latest row at or before the spine time and ignores "
        "rows older than 365 days.")


def test_every_feature_of_every_group_has_a_meaning_in_table_order(project) -> None:  # noqa: ANN001
    for name, group in project.groups.items():
        assert tuple(group_semantics(_plan(project, name))) == group.feature_names(), name


# --- lineage --------------------------------------------------------------------------------


def test_lineage_of_customer_card_spend_matches_the_definition(project) -> None:  # noqa: ANN001
    graph = group_lineage(project, _plan(project, "customer_card_spend"))
    g = "customer_card_spend"
    assert {n for n in graph.nodes if n.startswith("source:")} == {
        src("card_transactions", c) for c in ("amount", "*", "merchant_id", "mcc", "channel")}
    assert graph.upstream_of(feat(g, "spend_sum_7d")) == {src("card_transactions", "amount")}
    assert graph.upstream_of(feat(g, "txn_count_30d")) == {src("card_transactions", "*")}
    assert graph.upstream_of(feat(g, "merchants_90d")) == {src("card_transactions", "merchant_id")}
    assert graph.upstream_of(feat(g, "avg_ticket_7d")) == {feat(g, "spend_sum_7d"), feat(g, "txn_count_7d")}
    assert graph.upstream_of(feat(g, "spend_trend_7d_90d")) == {feat(g, "spend_sum_7d"), feat(g, "spend_sum_90d")}
    # card_fraud_v1 takes customer_card_spend:* — every feature feeds it
    assert graph.upstream_of(TS) == {feat(g, f) for f in project.groups[g].feature_names()}
    assert graph.downstream_of(src("card_transactions", "channel")) == {feat(g, "last_channel_30d")}
    assert {n.layer for n in graph.nodes.values() if n.kind == "derived"} == {2}
    assert graph.filters == {g: "status = 'SETTLED'"}


def test_lineage_reaches_training_sets_only_through_selected_features(project) -> None:  # noqa: ANN001
    profile = group_lineage(project, _plan(project, "customer_profile"))
    assert profile.upstream_of(TS) == {feat("customer_profile", f) for f in ("segment", "income_band", "tenure_days")}
    assert TS not in profile.downstream_of(feat("customer_profile", "region"))
    assert profile.upstream_of(feat("customer_profile", "tenure_days")) == {
        src("customers", "updated_at"), src("customers", "opened_at")}
    risk = group_lineage(project, _plan(project, "merchant_risk"))
    assert risk.upstream_of(TS) == {feat("merchant_risk", f) for f in
                                    ("decline_rate_30d", "chargeback_rate_90d", "merchant_customers_30d")}
    assert risk.upstream_of(feat("merchant_risk", "merchant_customers_30d")) == {src("card_transactions", "customer_id")}
    activity = group_lineage(project, _plan(project, "account_activity"))
    assert TS not in activity.nodes  # no card_fraud_v1 feature comes from account_activity


def test_project_lineage_shares_source_columns_between_groups(project) -> None:  # noqa: ANN001
    plans = {name: _plan(project, name) for name in sorted(project.groups)}
    graph = project_lineage(project, plans)
    status = src("card_transactions", "status")
    assert graph.downstream_of(status) == {
        feat("merchant_risk", "declines_30d"), feat("merchant_risk", "declines_90d"),
        feat("merchant_risk", "chargebacks_90d"), feat("account_activity", "account_spend_30d"),
        feat("account_activity", "account_declines_7d"), feat("account_activity", "account_declines_30d")}
    assert len(graph.upstream_of(TS)) == 25


# --- status ---------------------------------------------------------------------------------


def _run(group: str, day: date, status: str, hours: int, version: int | None = None) -> RunRecord:
    started = datetime(2024, 3, 10, tzinfo=timezone.utc) + timedelta(hours=hours)
    return RunRecord(f"r{hours:03d}", group, "local", day, day, status, started, started + timedelta(seconds=5),  # type: ignore[arg-type]
                     10, version, "h", "", "me")


def test_freshness_counts_days_behind_today_in_the_project_time_zone() -> None:
    late_evening_utc = datetime(2024, 3, 1, 23, 30, tzinfo=timezone.utc)
    assert expected_date("UTC", late_evening_utc) == date(2024, 3, 1)
    assert expected_date("Europe/Berlin", late_evening_utc) == date(2024, 3, 2)
    runs = [_run("g", date(2024, 3, 9), "gate_failed", 3), _run("g", date(2024, 3, 7), "published", 2, 4),
            _run("other", date(2024, 3, 10), "published", 1, 9), _run("g", date(2024, 3, 6), "published", 0, 3)]
    status = group_status("g", runs, date(2024, 3, 10))
    assert status.last_published_date == date(2024, 3, 7)  # the refused run published nothing
    assert (status.freshness_days, status.freshness) == (3, "3 days behind")
    assert status.last_status == "gate_failed" and status.delta_version == 4
    assert [r.run_id for r in status.recent_runs] == ["r003", "r002", "r000"]
    fresh = group_status("other", runs, date(2024, 3, 10))
    assert (fresh.freshness, fresh.freshness_days) == ("fresh", 0)


def test_never_run_and_never_published_are_told_apart() -> None:
    assert group_status("g", [], D).freshness == "never run" and group_status("g", [], D).last_status == "never run"
    refused = group_status("g", [_run("g", D, "gate_failed", 0)], D)
    assert refused.freshness == "never published" and refused.freshness_days is None
    assert len(group_status("g", [_run("g", D, "published", h, h) for h in range(8)], D).recent_runs) == 5


# --- list / describe ------------------------------------------------------------------------


def test_list_shows_every_group_and_training_set_as_never_run(example_project: Path, capsys) -> None:  # noqa: ANN001
    assert main(["list", "--project", str(example_project)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("Feature catalog (local): freshness against ")
    header = lines[2].split()
    assert header[:4] == ["NAME", "KIND", "ENTITY", "FEATURES"]
    rows = {line.split()[0]: line for line in lines[3:]}
    assert set(rows) == {"account_activity", "account_profile", "customer_card_spend", "customer_profile",
                         "merchant_risk", "card_fraud_v1"}
    spend = rows["customer_card_spend"].split()
    assert spend[:7] == ["customer_card_spend", "aggregation", "group", "customer", "19", "cards-analytics",
                         "domain=cards"]
    assert rows["customer_card_spend"].rstrip().endswith("never run  never run")
    assert rows["card_fraud_v1"].split()[:5] == ["card_fraud_v1", "training", "set", "customer,", "merchant"]
    assert rows["card_fraud_v1"].rstrip().endswith("never built")


def test_list_json_is_one_object_per_group_and_training_set(example_project: Path, capsys) -> None:  # noqa: ANN001
    assert main(["list", "--json", "--project", str(example_project)]) == 0
    document = json.loads(capsys.readouterr().out)
    project = load_project(example_project, "local")
    items = {i["name"]: i for i in document["items"]}
    assert set(items) == set(project.groups) | set(project.training_sets)
    for name, group in project.groups.items():
        assert items[name]["features"] == len(group.feature_names())
        assert (items[name]["owner"], items[name]["tags"]) == (group.owner, dict(group.tags))
        assert items[name]["last_published"] is None and items[name]["last_status"] == "never run"
    assert items["card_fraud_v1"]["features"] == 25 and items["card_fraud_v1"]["kind"] == "training set"
    assert date.fromisoformat(document["expected_date"])


def test_describe_gives_every_feature_in_words_with_lineage_checks_and_runs(example_project: Path, capsys) -> None:  # noqa: ANN001
    assert main(["describe", "merchant_risk", "--project", str(example_project)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("merchant_risk: Merchant risk signals")
    project = load_project(example_project, "local")
    meanings = group_semantics(_plan(project, "merchant_risk"))
    flat = " ".join(out.split())
    for name, meaning in meanings.items():
        assert f"  {name}  " in out
        assert meaning.sentence in flat, name
    assert "source columns: customer_id" in out and "source columns: (none: counts events)" in out
    assert "expect_column_values_to_be_between[decline_rate_30d](min_value=0, max_value=1) not run yet" in flat
    assert "expect_compound_columns_to_be_unique[merchant_id,feature_date]" in out
    assert out.rstrip().endswith("Last runs (newest first):\n  never run")


def test_describe_unknown_group_is_a_usage_error_with_a_suggestion(example_project: Path, capsys) -> None:  # noqa: ANN001
    assert main(["describe", "merchant_risks", "--project", str(example_project)]) == 2
    err = capsys.readouterr().err
    assert "unknown feature group 'merchant_risks'" in err and "merchant_risk" in err


def test_docs_without_any_run_writes_a_site_that_says_never_run(example_project: Path, tmp_path: Path, capsys) -> None:  # noqa: ANN001
    out = tmp_path / "site"
    assert main(["docs", "--out", str(out), "--project", str(example_project)]) == 0
    assert str((out / "index.html").resolve()) in capsys.readouterr().out
    page = (out / "groups" / "customer_card_spend.html").read_text()
    assert "Never run." in page and "not run yet" in page and "no published rows" in page


def test_site_templates_are_package_data() -> None:
    import tomllib
    from importlib.resources import files

    from conftest import REPO

    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert "templates/*" in config["tool"]["setuptools"]["package-data"]["featurebank.catalog"]
    for name in ("site.css", "site.js"):
        assert files("featurebank.catalog").joinpath("templates", name).read_text()


# --- table metadata -------------------------------------------------------------------------


def test_comments_properties_and_table_comment_never_carry_an_env_value(project) -> None:  # noqa: ANN001
    """Issue 16 finding 6: column comments and properties reach the Glue catalog; a value read
    with ${env:...} (here in a description and the owner, as an older definition could) is masked."""
    from dataclasses import replace

    from featurebank.redact import MASK, remember

    secret = "glue-visible-s3cr3t-77"
    remember([secret])
    plan = _plan(project, "customer_card_spend")
    output = tuple(replace(c, description=f"ask {secret}") if c.name == "spend_sum_30d" else c for c in plan.output)
    plan = replace(plan, output=output, owner=f"team {secret}", description=f"group of {secret}")
    assert column_comments(plan)["spend_sum_30d"].startswith(f"ask {MASK}.")
    assert group_properties(plan)["featurebank.owner"] == f"team {MASK}"
    statements = metadata_statements(plan, table_reference(plan), {}, {}, None)
    assert statements and not any(secret in s for s in statements)
    assert f"COMMENT ON TABLE {table_reference(plan)} IS 'group of {MASK}'" in statements


def test_metadata_statements_change_only_what_differs_and_escape_quotes(project) -> None:  # noqa: ANN001
    plan = _plan(project, "customer_card_spend")
    comments = column_comments(plan)
    assert comments["spend_sum_30d"].startswith("Total settled card spend. Sum of amount over card_transactions")
    assert comments["customer_id"] == "Key of entity customer."
    table = table_reference(plan)
    assert table == f"delta.`{plan.table_path}`"
    assert table_reference(plan, "glue", "features") == "`features`.`customer_card_spend`"
    current = dict(comments)
    current["txn_count_7d"] = "old words"
    statements = metadata_statements(plan, table, current, group_properties(plan), plan.description)
    assert statements == [f"ALTER TABLE {table} ALTER COLUMN `txn_count_7d` COMMENT {sql_string(comments['txn_count_7d'])}"]
    assert metadata_statements(plan, table, comments, group_properties(plan), plan.description) == []
    assert sql_string("status = 'SETTLED' \\ x") == "'status = \\'SETTLED\\' \\\\ x'"


def test_comments_and_properties_land_on_the_delta_table_and_a_second_apply_changes_nothing(
        spark, project, tmp_path: Path) -> None:  # noqa: ANN001
    from dataclasses import replace

    from delta.tables import DeltaTable

    from featurebank.io.table_metadata import apply_table_metadata, with_column_comments

    plan = replace(_plan(project, "merchant_risk"), table_path=str(tmp_path / "merchant_risk"))
    columns = ", ".join(f"cast(null as {c.type if c.type != '?' else 'string'}) as `{c.name}`"
                        for c in plan.output if c.name not in ("merchant_id", "feature_date", "feature_ts"))
    batch = spark.sql(f"select 'm1' as merchant_id, date'2024-03-01' as feature_date, "
                      f"timestamp'2024-03-01 00:00:00' as feature_ts, {columns}")
    with_column_comments(batch, plan).write.format("delta").partitionBy("feature_date").save(plan.table_path)
    schema = spark.read.format("delta").load(plan.table_path).schema
    comments = column_comments(plan)
    assert {f.name: f.metadata.get("comment") for f in schema.fields} == comments  # in the creating commit
    assert DeltaTable.forPath(spark, plan.table_path).history().count() == 1

    statements = apply_table_metadata(spark, plan)
    assert len(statements) == 2  # properties and the table comment; the column comments were there
    detail = DeltaTable.forPath(spark, plan.table_path).detail().first()
    assert detail["description"] == plan.description
    assert {k: v for k, v in detail["properties"].items() if k.startswith("featurebank.")} == group_properties(plan)
    assert json.loads(detail["properties"]["featurebank.tags"]) == {"domain": "fraud"}
    version = DeltaTable.forPath(spark, plan.table_path).history(1).first()["version"]
    assert apply_table_metadata(spark, plan) == []
    assert DeltaTable.forPath(spark, plan.table_path).history(1).first()["version"] == version


# --- training-set manifests against data_hash (issue 17) ---------------------------------------


def _manifest(root: Path, name: str, groups: list[dict]) -> None:  # type: ignore[type-arg]
    directory = root / "warehouse" / "training" / name
    directory.mkdir(parents=True)
    document = {"format": 1, "training_set": "card_fraud_v1", "created_at": f"2024-03-0{len(name)}T00:00:00+00:00",
                "groups": [{"read": {"group": g["group"]}, "version": 3, **g["hash"]} for g in groups]}
    (directory / "_manifest.json").write_text(json.dumps(document))


def test_a_manifest_stays_current_when_only_a_description_changed(example_project: Path) -> None:
    from featurebank.catalog.collect import PINNED_WORDS, collect_catalog, pinned_state
    from featurebank.compile.group import compile_group

    project = load_project(example_project, "local")
    pinned = {g: compile_group(project, g).data_hash for g in ("customer_card_spend", "customer_profile")}
    _manifest(example_project, "v1", [{"group": g, "hash": {"data_hash": h}} for g, h in pinned.items()])
    _manifest(example_project, "v22", [{"group": "customer_profile", "hash": {"definition_hash": "b8e8891a135ca7cd"}}])
    spend = example_project / "features" / "cards" / "customer_card_spend.yaml"
    spend.write_text(spend.read_text().replace("description: Total settled card spend", "description: Settled spend"))
    profile = example_project / "features" / "customers" / "profile.yaml"
    profile.write_text(profile.read_text().replace("upper(segment)", "lower(segment)"))

    catalog = collect_catalog(load_project(example_project, "local"), now=datetime(2024, 3, 2, tzinfo=timezone.utc))
    manifests = {m.path.rsplit("/", 1)[-1]: m for m in catalog.training_sets["card_fraud_v1"].manifests}
    states = {(name, g): pinned_state(catalog, g, h) for name, m in manifests.items() for g, _, h in m.groups}
    assert states == {("v1", "customer_card_spend"): "current", ("v1", "customer_profile"): "changed",
                      ("v22", "customer_profile"): "older"}
    assert PINNED_WORDS["older"] == "pinned by an older featurebank: re-pin to compare"


def test_a_training_manifest_written_before_data_hashes_still_reads() -> None:
    from featurebank.training.manifest import GroupRead, Manifest, PinnedGroup

    read = GroupRead("g", "aggregation", ("customer_id",), None, "/t/g", (("f_7d", "f_7d"),), ())
    manifest = Manifest.new(training_set="t", requested=("g:f_7d",), features=("g:f_7d",), timestamp_column="ts",
                            full_names=False, allow_missing=False, timezone="UTC", env="local",
                            groups=(PinnedGroup(read, 3, "0123456789abcdef"),))
    document = json.loads(manifest.to_json())
    assert document["groups"][0]["data_hash"] == "0123456789abcdef"
    old = dict(document["groups"][0])
    del old["data_hash"]
    old["definition_hash"] = "fedcba9876543210"
    document["groups"] = [old]
    assert Manifest.from_json(json.dumps(document)).groups[0].data_hash is None
