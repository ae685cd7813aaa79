"""`featurebank plan` as a change review (issue 21), and `run`'s guard against breaking changes.

A "published" project is made without Spark: customer_card_spend's table is written with
delta-rs, its commit's userMetadata recording the hashes a featurebank publish records, its run
log holds one published run, and a training set that reads four of its features is registered.
Then one definition edit per change kind, and `plan --all` is compared with a golden file.
"""

from __future__ import annotations

import json
from datetime import date, datetime, timezone
from pathlib import Path

import pytest

from test_plan import check_golden, run_cli

from featurebank.compile.change import change_of
from featurebank.compile.group import compile_group
from featurebank.definitions import load_project

GROUP = "customer_card_spend"
DEFINITION = Path("features") / "cards" / "customer_card_spend.yaml"
PUBLISHED = (date(2024, 3, 1), date(2024, 3, 10))
READS = ("spend_sum_7d", "txn_count_30d", "spend_max_90d", "avg_ticket_7d")  # what the training set reads


@pytest.fixture
def published(example_project: Path) -> Path:
    """The example project with customer_card_spend published (JVM-free) and a training set
    reading four of its features registered."""
    import pyarrow as pa
    from deltalake import CommitProperties, write_deltalake

    from featurebank.io.runlog import runs_path
    from featurebank.training.manifest import GroupRead, Manifest, PinnedGroup, registry_path, write_manifest

    project = load_project(example_project, "local")
    compiled = compile_group(project, GROUP)
    recorded = {"run_id": "r1", "data_hash": compiled.data_hash, "metadata_hash": compiled.metadata_hash,
                "feature_hashes": dict(compiled.feature_hashes)}
    write_deltalake(compiled.table_path, pa.table({"customer_id": ["c1"], "feature_date": [PUBLISHED[0]]}),
                    partition_by=["feature_date"],
                    commit_properties=CommitProperties(custom_metadata={"userMetadata": json.dumps(recorded)}))
    began = datetime(2024, 3, 11, 6, 0, tzinfo=timezone.utc)
    write_deltalake(runs_path(project.config.feature_root), pa.table({
        "run_id": ["r1"], "group": [GROUP], "env": ["local"], "start_date": [PUBLISHED[0]], "end_date": [PUBLISHED[1]],
        "status": ["published"], "started_at": [began], "finished_at": [began.replace(second=40)],
        "rows_written": pa.array([1000], pa.int64()), "delta_version": pa.array([0], pa.int64()),
        "definition_hash": [compiled.data_hash], "checks_summary": [""], "user": ["analyst"], "error": [None],
        "rows_by_date": [""], "source_rows_by_day": [""]}))
    read = GroupRead(GROUP, "aggregation", ("customer_id",), None, compiled.table_path,
                     tuple((f, f) for f in READS), ())
    manifest = Manifest(training_set="card_fraud_v1", requested=tuple(f"{GROUP}:{f}" for f in READS),
                        features=tuple(f"{GROUP}:{f}" for f in READS), timestamp_column="ts", full_names=False,
                        allow_missing=False, timezone="UTC", env="local",
                        groups=(PinnedGroup(read, 0, compiled.data_hash, PUBLISHED),), created_at="2024-03-12T08:00:00+00:00")
    write_manifest(manifest, f"{registry_path(project.config.feature_root)}/card_fraud_v1/20240312T080000Z-0000.json")
    return example_project


def _edit(root: Path, old: str, new: str) -> None:
    path = root / DEFINITION
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))


EDITS = {
    "unchanged": None,
    "metadata": ("description: Total settled card spend}", "description: Total settled card spend in every channel}"),
    "additive": ("windows: [7d, 30d, 90d], description: Total settled card spend",
                 "windows: [7d, 14d, 30d, 90d], description: Total settled card spend"),
    "window": ("windows: [7d, 30d, 90d], description: Largest single transaction",
               "windows: [7d, 30d, 60d], description: Largest single transaction"),
    "expression": ("{name: spend_sum, expr: amount,", "{name: spend_sum, expr: abs(amount),"),
    "filter": ("filter: \"status = 'SETTLED'\"", "filter: \"status in ('SETTLED', 'REFUNDED')\""),
}


@pytest.mark.parametrize("edit", sorted(EDITS))
def test_plan_all_reviews_each_kind_of_change_as_the_golden_file_says(published: Path, edit: str) -> None:
    if EDITS[edit] is not None:
        _edit(published, *EDITS[edit])
    code, out, err = run_cli("plan", "--all", "--project", str(published))
    assert (code, err) == (0, "")
    check_golden(f"review_{edit}.txt", out.replace(str(published.resolve()), "<project>"))


def test_a_new_group_is_reviewed_as_new(published: Path) -> None:
    (published / "features" / "cards" / "extra.yaml").write_text(
        "kind: feature_group\nname: customer_refunds\nentity: customer\nsource: card_transactions\n"
        "description: Refunds.\nowner: cards-analytics\naggregations:\n"
        "  - {name: refunds, function: count, windows: [30d], description: Refunds posted}\n")
    code, out, _ = run_cli("plan", "--all", "--project", str(published))
    assert code == 0 and "Change: customer_refunds: new (no table at " in out


def test_the_kinds_and_the_stale_features_follow_the_per_feature_hashes(published: Path) -> None:
    project = load_project(published, "local")
    before = compile_group(project, GROUP)
    recorded = {"featurebank.data_hash": before.data_hash, "featurebank.metadata_hash": before.metadata_hash,
                "featurebank.feature_hashes": json.dumps(dict(before.feature_hashes))}
    _edit(published, *EDITS["expression"])
    after = compile_group(load_project(published, "local"), GROUP)
    change = change_of(after, recorded)
    # avg_ticket_7d and spend_trend_7d_90d read spend_sum_*: a derived feature changes with its inputs
    assert change.kind == "breaking" and set(change.changed) == {
        "spend_sum_7d", "spend_sum_30d", "spend_sum_90d", "avg_ticket_7d", "spend_trend_7d_90d"}
    assert "txn_count_30d" in change.kept and not change.added and not change.removed
    assert change.stale_features == frozenset(change.changed)


def test_spacing_and_keyword_case_change_no_feature(published: Path) -> None:
    project = load_project(published, "local")
    before = compile_group(project, GROUP)
    _edit(published, "filter: \"status = 'SETTLED'\"", "filter: \"status   =   'SETTLED'  -- settled only\"")
    after = compile_group(load_project(published, "local"), GROUP)
    assert after.feature_hashes == before.feature_hashes and after.data_hash == before.data_hash
    _edit(published, "{name: spend_max, expr: amount,", "{name: spend_max, expr: \"amount + 0\",")
    changed = dict(compile_group(load_project(published, "local"), GROUP).feature_hashes)
    assert {f for f, h in dict(before.feature_hashes).items() if changed[f] != h} == {
        "spend_max_7d", "spend_max_30d", "spend_max_90d"}


def test_plan_json_drives_a_check_that_fails_on_breaking(published: Path) -> None:
    def ci_check(root: Path) -> list[str]:
        code, out, err = run_cli("plan", "--all", "--json", "--project", str(root))
        assert (code, err) == (0, "")
        return [r["group"] for r in json.loads(out)["reviews"] if r["change"] == "breaking"]

    assert ci_check(published) == []
    _edit(published, *EDITS["additive"])
    assert ci_check(published) == []  # an added feature breaks nobody
    _edit(published, *EDITS["filter"])
    assert ci_check(published) == [GROUP]
    reviews = json.loads(run_cli("plan", "--all", "--json", "--project", str(published))[1])["reviews"]
    [card] = [r for r in reviews if r["group"] == GROUP]
    assert card["refused_without_accept"] and card["recompute"] == [["2024-03-01", "2024-03-10"]]
    assert card["training_sets"][0]["stale"] == list(READS)


def test_run_refuses_a_breaking_change_under_a_registered_training_set_before_anything_runs(published: Path) -> None:
    from deltalake import DeltaTable

    project = load_project(published, "local")
    table = project.table_path(GROUP)
    _edit(published, *EDITS["window"])
    code, out, err = run_cli("run", GROUP, "--date", "2024-03-11", "--project", str(published))
    assert code == 1 and out == ""
    assert "card_fraud_v1 (reads spend_max_90d)" in err and "--accept-breaking" in err and "featurebank plan" in err
    assert DeltaTable(table).version() == 0  # nothing written, and no Spark was needed to refuse


def test_plan_for_one_group_keeps_the_detailed_plan_then_the_review(published: Path) -> None:
    code, out, _ = run_cli("plan", GROUP, "--date", "2024-03-11", "--project", str(published))
    assert code == 0 and out.startswith(f"Plan for feature group {GROUP}")
    assert out.endswith("reads 4 features of this group, none changed\n")
    code, _, err = run_cli("plan", "--project", str(published))
    assert code == 2 and "--all" in err


def test_an_accepted_breaking_run_publishes_and_the_run_log_says_who_accepted(spark, example_project: Path) -> None:  # noqa: ANN001
    from test_runner import D1, _transactions, _write_sources

    from featurebank.errors import BreakingChangeRefused
    from featurebank.io.runlog import read_run_log
    from featurebank.runner import run_group
    from featurebank.training.manifest import GroupRead, Manifest, PinnedGroup, registry_path, write_manifest

    _write_sources(example_project, _transactions())
    project = load_project(example_project, "local")
    [first] = run_group(project, GROUP, D1, D1, spark=spark)
    compiled = compile_group(project, GROUP)
    read = GroupRead(GROUP, "aggregation", ("customer_id",), None, compiled.table_path, (("spend_sum_7d", "s7"),), ())
    write_manifest(Manifest(training_set="t", requested=(f"{GROUP}:spend_sum_7d",), features=(f"{GROUP}:spend_sum_7d",),
                            timestamp_column="ts", full_names=False, allow_missing=False, timezone="UTC", env="local",
                            groups=(PinnedGroup(read, int(first.delta_version or 0), compiled.data_hash, (D1,)),)),
                   f"{registry_path(project.config.feature_root)}/t/20240101T000000Z-0000.json")
    _edit(example_project, *EDITS["expression"])
    changed = load_project(example_project, "local")
    with pytest.raises(BreakingChangeRefused, match=r"t \(reads spend_sum_7d\)"):
        run_group(changed, GROUP, D1, D1, spark=spark)
    assert [r.run_id for r in read_run_log(project.config.feature_root, GROUP, spark=None, lake_formation=False)] == [
        first.run_id]  # refused before the run log's started row
    [accepted] = run_group(changed, GROUP, D1, D1, spark=spark, accept_breaking=True)
    assert accepted.status == "published"
    logged = {r.run_id: r for r in read_run_log(project.config.feature_root, GROUP, spark=None, lake_formation=False)}
    assert (logged[accepted.run_id].accepted, logged[first.run_id].accepted) == ("breaking", "")
    assert run_cli("plan", GROUP, "--date", str(D1), "--project", str(example_project))[1].count(
        "Change: customer_card_spend: none") == 1  # the table now records the new hashes
