"""Training sets end to end: published Delta tables + run log → FeatureStore / CLI → oracle."""

from __future__ import annotations

import json
import random
import shutil
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
from oracles.pit_oracle import asof_oracle, midnight, snapshot_oracle

from featurebank.errors import DefinitionError, MissingCoverage, UsageError

TZ = "Europe/Berlin"
DAYS = [date(2024, 3, 20) + timedelta(days=i) for i in range(12)]  # spans the EU DST change (03-31)
CUSTOMERS = [f"c{i}" for i in range(6)]
MERCHANTS = [f"m{i}" for i in range(4)]
PROFILE = ["segment", "income_band", "tenure_days"]
RISK = ["decline_rate_30d", "chargeback_rate_90d", "merchant_customers_30d"]


# --- publishing tables the way a run does: publish() + a run-log row --------------------------

def _project(example_project):
    from featurebank.definitions import load_project

    conf = example_project / "conf" / "local.yaml"
    conf.write_text(conf.read_text().replace("timezone: UTC", f"timezone: {TZ}"))
    return load_project(example_project, "local")


def _publish(spark, project, group, rows, start, end):
    from featurebank.compile.run import compile_plan
    from featurebank.io.tables import publish
    from featurebank.io.runlog import RunRecord, append_run

    plan = compile_plan(project, group, start, end)
    ddl = ", ".join(f"`{c.name}` {'string' if c.type == '?' else c.type}" for c in plan.output)
    batch = spark.createDataFrame([tuple(r.get(c.name) for c in plan.output) for r in rows], ddl)
    run_id = f"{group}-{datetime.now(timezone.utc):%Y%m%dT%H%M%S%f}"
    version = publish(spark, batch, plan, run_id)
    now = datetime.now(timezone.utc)
    append_run(spark, project.config.feature_root, RunRecord(run_id, group, "local", start, end, "published", now, now,
                                                             len(rows), version, plan.data_hash, "{}", "test"))
    return version


def _feature_types(project, group):
    from featurebank.compile.run import compile_plan

    plan = compile_plan(project, group, DAYS[0], DAYS[0])
    return {c.name: c.type for c in plan.output if c.role == "feature"}


def _value(rnd, type_, tag):
    if rnd.random() < 0.15:
        return None
    if type_ == "bigint" or type_ == "int":
        return rnd.randrange(1, 50)
    if type_ == "double":
        return rnd.randrange(1, 400) / 4
    return f"{tag}{rnd.randrange(3)}"


def _snapshot_rows(rnd, project, group, key, entities, days, tag=""):
    types = _feature_types(project, group)
    rows = []
    for day in days:
        for entity in entities:
            if rnd.random() < 0.6:
                row = {key: entity, "feature_date": day, "feature_ts": midnight(day, TZ)}
                row.update({n: _value(rnd, t, tag or n[:2]) for n, t in types.items()})
                rows.append(row)
    return rows


def _profile_rows(rnd, project, days, n=30, tag=""):
    types = _feature_types(project, "customer_profile")
    rows, seen = [], set()
    for _ in range(n):
        ts = datetime.combine(rnd.choice(days), datetime.min.time(), tzinfo=ZoneInfo(TZ)) + timedelta(
            hours=rnd.randrange(24), minutes=rnd.choice([0, 30]))
        cust = rnd.choice(CUSTOMERS[:5])  # c5 never has a profile
        if (cust, ts) in seen:
            continue
        seen.add((cust, ts))
        row = {"customer_id": cust, "feature_ts": ts, "feature_date": ts.astimezone(ZoneInfo(TZ)).date()}
        row.update({n: _value(rnd, t, tag or n[:2]) for n, t in types.items()})
        rows.append(row)
    return rows


class World:
    """The rows published so far, per group, for the oracle."""

    def __init__(self, spark, project, seed=11):
        self.spark, self.project, self.rnd = spark, project, random.Random(seed)
        self.rows = {"customer_card_spend": [], "customer_profile": [], "merchant_risk": []}
        self.published = {"customer_card_spend": set(), "merchant_risk": set()}

    def publish_snapshots(self, group, days, tag=""):
        key, entities = ("merchant_id", MERCHANTS[:3]) if group == "merchant_risk" else ("customer_id", CUSTOMERS[:5])
        rows = _snapshot_rows(self.rnd, self.project, group, key, entities, days, tag)
        _publish(self.spark, self.project, group, rows, days[0], days[-1])
        replaced = set(days)
        self.rows[group] = [r for r in self.rows[group] if r["feature_date"] not in replaced] + rows
        self.published[group] |= replaced

    def publish_profiles(self, rows):
        dates = sorted({r["feature_date"] for r in rows})
        _publish(self.spark, self.project, "customer_profile", rows, dates[0], dates[-1])
        self.rows["customer_profile"] = [r for r in self.rows["customer_profile"]
                                         if not dates[0] <= r["feature_date"] <= dates[-1]] + rows


def _spine(rnd, world, days, n=60):
    """pandas spine, naive wall-clock times (project zone): midnights, profile instants, NULLs, dups."""
    rows = []
    for i in range(n):
        pick = rnd.random()
        if pick < 0.25:
            ts = midnight(rnd.choice(days), TZ)
        elif pick < 0.45 and world.rows["customer_profile"]:
            ts = rnd.choice(world.rows["customer_profile"])["feature_ts"]
        else:
            ts = datetime.combine(rnd.choice(days), datetime.min.time(), tzinfo=ZoneInfo(TZ)) + timedelta(
                hours=rnd.randrange(24), minutes=rnd.randrange(60))
        rows.append({"row_id": i, "customer_id": rnd.choice(CUSTOMERS + ["unseen", None]),
                     "merchant_id": rnd.choice(MERCHANTS + [None]), "ts": ts, "is_fraud": rnd.randrange(2)})
    rows += [dict(r) for r in rnd.sample(rows, 6)]
    pdf = pd.DataFrame(rows)
    pdf["ts"] = pd.to_datetime(pdf["ts"].map(lambda t: t.astimezone(ZoneInfo(TZ)).replace(tzinfo=None)))
    return rows, pdf


def _expected(world, spine, card_features):
    parts = [
        snapshot_oracle(spine, world.rows["customer_card_spend"], ["customer_id"], "ts", card_features, TZ,
                        world.published["customer_card_spend"], _counts(world.project, "customer_card_spend")),
        asof_oracle(spine, world.rows["customer_profile"], ["customer_id"], "ts", PROFILE, 365),
        snapshot_oracle(spine, world.rows["merchant_risk"], ["merchant_id"], "ts", RISK, TZ,
                        world.published["merchant_risk"], _counts(world.project, "merchant_risk")),
    ]
    names = (*card_features, *PROFILE, *RISK)
    return [(s["row_id"], s["customer_id"], s["merchant_id"], s["is_fraud"], *({**a, **b, **c}[f] for f in names))
            for s, a, b, c in zip(spine, *parts)]


def _counts(project, group):
    from featurebank.definitions.model import COUNT_FUNCTIONS

    return {n for a in project.groups[group].aggregations if a.function in COUNT_FUNCTIONS for n in a.output_names()}


def _rows(frame, columns):
    return [tuple(r[c] for c in columns) for r in frame.collect()]


def _make_world(spark, root):
    world = World(spark, _project(root))
    world.publish_snapshots("customer_card_spend", DAYS[:8])
    world.publish_snapshots("merchant_risk", DAYS[:8])
    world.publish_profiles(_profile_rows(world.rnd, world.project, DAYS[:8]))
    return world


@pytest.fixture()
def world(spark, example_project):
    """A project with three published groups, private to one test (it may publish more)."""
    return _make_world(spark, example_project)


def copied_world(spark, tmp_path_factory, label: str):
    """A world in a fresh copy of the example project (for module-scoped fixtures)."""
    from conftest import REPO

    root = tmp_path_factory.mktemp(label) / "project"
    shutil.copytree(REPO / "features", root / "features")
    shutil.copytree(REPO / "conf", root / "conf")
    return _make_world(spark, root)


@pytest.fixture(scope="module")
def shared_world(spark, tmp_path_factory):
    """The same, shared by the tests that only read."""
    return copied_world(spark, tmp_path_factory, "shared")


def _store(world):
    from featurebank.training.api import FeatureStore

    return FeatureStore(world.project, spark=world.spark)


# --- the tests ---------------------------------------------------------------------------------

def test_training_set_matches_oracle_for_every_value(shared_world):
    store = _store(shared_world)
    spine, pdf = _spine(random.Random(3), shared_world, DAYS[:8])
    df = store.training_set("card_fraud_v1", spine=pdf)
    card = list(shared_world.project.groups["customer_card_spend"].feature_names())
    assert df.columns == ["row_id", "customer_id", "merchant_id", "ts", "is_fraud", *card, *PROFILE, *RISK]
    got = _rows(df, ["row_id", "customer_id", "merchant_id", "is_fraud", *card, *PROFILE, *RISK])
    assert got == _expected(shared_world, spine, card)  # every value, in spine order, duplicates kept
    pandas = store.to_pandas(df)
    assert len(pandas) == len(spine) and pandas["ts"].dtype == pdf["ts"].dtype  # naive in, naive out (finding 14)
    assert list(pandas["ts"]) == list(pdf["ts"])  # the same wall clock (project zone)


def test_unpublished_spine_dates_fail_naming_them_and_allow_missing_gives_nulls(shared_world):
    store = _store(shared_world)
    spine, pdf = _spine(random.Random(4), shared_world, DAYS[6:10])
    with pytest.raises(MissingCoverage) as caught:
        store.training_set("card_fraud_v1", spine=pdf)
    message = str(caught.value)
    asked = {s["ts"].astimezone(ZoneInfo(TZ)).date() for s in spine}
    missing = sorted(d for d in asked if d not in shared_world.published["customer_card_spend"])
    assert missing and all(d.isoformat() in message for d in missing)
    assert "customer_card_spend" in message and "merchant_risk" in message and "--allow-missing" in message

    df = store.training_set("card_fraud_v1", spine=pdf, allow_missing=True)
    card = list(shared_world.project.groups["customer_card_spend"].feature_names())
    assert _rows(df, ["row_id", "customer_id", "merchant_id", "is_fraud", *card, *PROFILE, *RISK]) == \
        _expected(shared_world, spine, card)  # the oracle gives NULLs (also counts) on unpublished dates


def test_later_publishes_never_leak_into_earlier_spine_rows(world):
    store = _store(world)
    spine, pdf = _spine(random.Random(5), world, DAYS[:8])
    columns = ["row_id", "customer_id", "merchant_id", "is_fraud", *PROFILE, *RISK, "spend_sum_7d", "txn_count_7d"]
    before = _rows(store.training_set("card_fraud_v1", spine=pdf), columns)

    last_spine_ts = max(s["ts"] for s in spine)
    future = [{"customer_id": c, "feature_ts": last_spine_ts + timedelta(minutes=1 + i),
               "feature_date": (last_spine_ts + timedelta(minutes=1 + i)).astimezone(ZoneInfo(TZ)).date(),
               "segment": "LEAK", "income_band": "LEAK", "tenure_days": -1} for i, c in enumerate(CUSTOMERS)]
    world.publish_profiles(future + [r for r in world.rows["customer_profile"]
                                     if r["feature_date"] >= future[0]["feature_date"]])
    world.publish_snapshots("customer_card_spend", DAYS[8:10], tag="LEAK")  # new snapshot dates
    world.publish_snapshots("merchant_risk", DAYS[8:10], tag="LEAK")

    after = _rows(store.training_set("card_fraud_v1", spine=pdf), columns)
    assert after == before
    assert not any("LEAK" in str(v) for row in after for v in row)


def test_rebuild_from_manifest_after_new_runs_gives_identical_rows(world, tmp_path):
    store = _store(world)
    spine, pdf = _spine(random.Random(6), world, DAYS[:8])
    first = store.write_training_set("card_fraud_v1", spine=pdf, out=tmp_path / "v1")
    manifest = json.loads((tmp_path / "v1" / "_manifest.json").read_text())
    assert manifest["spine"]["rows"] == len(spine) == first.statistics.rows
    assert {g["read"]["group"]: g["version"] for g in manifest["groups"]} == {
        "customer_card_spend": 0, "customer_profile": 0, "merchant_risk": 0}
    assert all(len(g["data_hash"]) == 16 for g in manifest["groups"])

    world.publish_snapshots("customer_card_spend", DAYS[2:10])  # reruns replace dates with new values
    world.publish_profiles(_profile_rows(world.rnd, world.project, DAYS[:8], n=40, tag="new"))

    rebuilt = store.write_training_set(spine=pdf, out=tmp_path / "again", from_manifest=tmp_path / "v1")
    read = lambda p: world.spark.read.parquet(str(p)).toPandas().sort_values("row_id", kind="stable").reset_index(drop=True)
    pd.testing.assert_frame_equal(read(tmp_path / "again"), read(tmp_path / "v1"))
    assert rebuilt.manifest.rebuilt_from == first.manifest.created_at
    fresh = store.training_set("card_fraud_v1", spine=pdf).toPandas().sort_values("row_id", kind="stable")
    assert not fresh.reset_index(drop=True).equals(read(tmp_path / "v1"))  # the data really changed


def test_feature_name_clash_is_an_error_unless_full_names(example_project):
    from dataclasses import replace

    from featurebank.definitions.refs import resolve_features

    project = _project(example_project)
    with pytest.raises(DefinitionError, match="names feature group 'customer_profil', which is not defined; did you mean 'customer_profile'"):
        resolve_features(project, ["customer_profil:segment"])
    cloned = replace(project, groups={**project.groups, "customer_profile_clone": project.groups["customer_profile"]})
    with pytest.raises(DefinitionError, match="gets feature 'segment' from both .*--full-names"):
        resolve_features(cloned, ["customer_profile:segment", "customer_profile_clone:*"])
    columns = [s.column for s in resolve_features(cloned, ["customer_profile:segment", "customer_profile_clone:*"],
                                                  full_names=True)]
    assert columns == ["customer_profile__segment", "customer_profile_clone__segment",
                       "customer_profile_clone__income_band", "customer_profile_clone__region",
                       "customer_profile_clone__tenure_days"]


def test_ad_hoc_features_with_full_names_and_a_spine_missing_a_key(shared_world):
    store = _store(shared_world)
    spine, pdf = _spine(random.Random(7), shared_world, DAYS[:8])
    df = store.training_set(features=["merchant_risk:decline_rate_30d", "customer_profile:segment"], spine=pdf,
                            full_names=True)
    assert df.columns[-2:] == ["merchant_risk__decline_rate_30d", "customer_profile__segment"]
    with pytest.raises(UsageError, match="no column merchant_id"):
        store.training_set(features=["merchant_risk:decline_rate_30d"], spine=pdf.drop(columns=["merchant_id"]))


def test_cli_builds_from_a_pandas_parquet_spine_and_rebuilds_from_its_manifest(shared_world, tmp_path, capsys):
    from featurebank.cli import main

    spine, pdf = _spine(random.Random(8), shared_world, DAYS[:8])
    pdf.to_parquet(tmp_path / "spine.parquet")  # nanosecond, naive timestamps
    common = ["--project", str(shared_world.project.root), "--spine", str(tmp_path / "spine.parquet")]
    assert main(["training-set", "card_fraud_v1", *common, "--out", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    assert "customer_profile" in printed and "NULL share per feature" in printed
    assert main(["training-set", *common, "--out", str(tmp_path / "re"), "--from-manifest",
                 str(tmp_path / "out" / "_manifest.json")]) == 0
    read = lambda p: shared_world.spark.read.parquet(str(p)).toPandas().sort_values("row_id", kind="stable").reset_index(drop=True)
    built = read(tmp_path / "out")
    pd.testing.assert_frame_equal(read(tmp_path / "re"), built)
    card = list(shared_world.project.groups["customer_card_spend"].feature_names())
    expected = _expected(shared_world, spine, card)
    assert len(built) == len(spine)
    by_row = {}
    for row in expected:
        by_row.setdefault(row[0], row)
    segments = [by_row[i][4 + len(card)] for i in built["row_id"]]
    assert list(built["segment"].where(built["segment"].notna(), None)) == segments

    late, late_pdf = _spine(random.Random(9), shared_world, DAYS[9:11])
    late_pdf.to_parquet(tmp_path / "late.parquet")
    assert main(["training-set", "card_fraud_v1", "--project", str(shared_world.project.root), "--spine",
                 str(tmp_path / "late.parquet"), "--out", str(tmp_path / "late")]) == 2
    assert "never published" in capsys.readouterr().err
