"""The notebook API (issue 18): `import featurebank` shows `FeatureStore` and starts no Spark;
`groups()` / `describe()` need no JVM; `read()` gives a group's rows; a training set's spine
columns come back exactly as they went in (types, zones, integers) through `to_pandas()` and the
Parquet `--out` writes alike; CSV spines are typed; the README's notebook example runs.

Reuses the training-set tests' small published world (three groups, project zone Europe/Berlin).
"""

from __future__ import annotations

import io
import json
import random
import re
import subprocess
import sys
from contextlib import redirect_stdout
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from featurebank.errors import UsageError
from test_training import DAYS, TZ, _spine, copied_world

REPO = Path(__file__).resolve().parents[1]
FEATURES = ["customer_profile:segment", "customer_card_spend:spend_sum_7d", "customer_card_spend:txn_count_7d"]


@pytest.fixture(scope="module")
def world(spark, tmp_path_factory):
    return copied_world(spark, tmp_path_factory, "notebook")


@pytest.fixture(scope="module")
def store(world):
    from featurebank import FeatureStore

    return FeatureStore(world.project, spark=world.spark)


def _python(code: str, cwd: Path | None = None) -> str:
    """Run `code` in a fresh interpreter (this one's path) and return its stdout."""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd,
                            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": ":".join(sys.path)}, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


# --- 1. the package and the JVM-free look-ups ---------------------------------------------------

def test_feature_store_is_in_dir_and_importing_it_starts_no_spark():
    out = json.loads(_python(
        "import json, sys, featurebank\n"
        "names = [n for n in dir(featurebank) if not n.startswith('_')]\n"
        "from featurebank import FeatureStore\n"
        "print(json.dumps({'dir': names, 'all': featurebank.__all__, 'pyspark': 'pyspark' in sys.modules,\n"
        "                  'store': FeatureStore.__module__}))"))
    assert out["dir"] == ["FeatureStore"] == out["all"]  # was ['Any']
    assert out["store"] == "featurebank.training.api" and out["pyspark"] is False


def test_groups_and_describe_read_no_jvm(world):
    code = f"""
import json, sys
from featurebank import FeatureStore
store = FeatureStore({str(world.project.root)!r}, env="local")
card = store.describe("customer_card_spend")
print(json.dumps({{"groups": store.groups(), "version": card.delta_version, "last": str(card.last_published),
                  "text": str(card), "pyspark": "pyspark" in sys.modules,
                  "gx": "great_expectations" in sys.modules}}))
"""
    out = json.loads(_python(code))
    assert out["groups"] == sorted(world.project.groups)
    assert out["pyspark"] is False and out["gx"] is False
    assert out["version"] == 0 and out["last"] == str(DAYS[7])
    assert "customer_card_spend" in out["text"] and "spend_sum_7d" in out["text"]


def test_describe_names_every_feature_with_its_type_and_meaning(store, world):
    card = store.describe("customer_card_spend")
    from featurebank.compile.group import compile_group

    compiled = compile_group(world.project, "customer_card_spend")
    assert [f.name for f in card.features] == list(compiled.feature_columns)
    spend = next(f for f in card.features if f.name == "spend_sum_7d")
    assert spend.type == "double" and spend.kind == "aggregation" and "7" in spend.meaning
    assert card.keys == ("customer_id",) and card.timezone == TZ and card.kind == "aggregation"
    assert card.table_path == world.project.table_path("customer_card_spend")
    text = str(card)
    assert all(f.name in text for f in card.features) and "Delta version 0" in text
    assert list(card.to_pandas().columns) == ["name", "type", "kind", "meaning", "description"]


def test_describe_of_an_unknown_group_says_which_groups_there_are(store):
    with pytest.raises(UsageError, match="did you mean 'customer_card_spend'.*groups: "):
        store.describe("customer_card_spnd")


# --- read: a group's rows for some dates --------------------------------------------------------

def test_read_gives_the_published_rows_of_the_dates_asked(store, world):
    rows = store.read("customer_card_spend", DAYS[1], DAYS[2].isoformat())
    expected = sorted((r["feature_date"], r["customer_id"], r["spend_sum_7d"])
                      for r in world.rows["customer_card_spend"] if DAYS[1] <= r["feature_date"] <= DAYS[2])
    got = [(d, c, None if pd.isna(v) else v) for d, c, v in rows[["feature_date", "customer_id", "spend_sum_7d"]]
           .itertuples(index=False)]
    assert got == expected and len(got) > 0  # ordered by date, then keys
    assert list(rows.columns[:3]) == ["customer_id", "feature_date", "feature_ts"]
    assert str(rows["feature_ts"].dtype) == f"datetime64[ns, {TZ}]"
    assert str(rows["txn_count_7d"].dtype) == "Int64"


def test_read_one_date_some_features_or_as_a_spark_frame(store):
    one = store.read("customer_card_spend", DAYS[0], features=["txn_count_7d"])
    assert list(one.columns) == ["customer_id", "feature_date", "feature_ts", "txn_count_7d"]
    assert set(one["feature_date"]) == {DAYS[0]}
    frame = store.read("customer_card_spend", DAYS[0], as_pandas=False)
    assert type(frame).__name__ == "DataFrame" and frame.count() == len(one)
    assert dict(frame.dtypes)["txn_count_7d"] == "bigint"


def test_read_refuses_unknown_features_bad_dates_and_unpublished_groups(store):
    with pytest.raises(UsageError, match="no feature 'spend_sum_7'.*did you mean"):
        store.read("customer_card_spend", DAYS[0], features=["spend_sum_7"])
    with pytest.raises(UsageError, match="not a date"):
        store.read("customer_card_spend", "yesterday")
    with pytest.raises(UsageError, match="before start"):
        store.read("customer_card_spend", DAYS[2], DAYS[1])
    with pytest.raises(UsageError, match="has no table .*`featurebank run account_activity"):
        store.read("account_activity", DAYS[0])


# --- 2. spine columns come back as they went in -------------------------------------------------

def _base(world, n=16):
    _, pdf = _spine(random.Random(41), world, DAYS[:8], n=n)
    return pdf.drop(columns=["merchant_id"])


def _zone(series: pd.Series) -> str | None:
    tz = getattr(series.dtype, "tz", None)
    return None if tz is None else str(tz)


def _spines(world, spark, tmp_path):
    """(label, spine, the zone `ts` should come back in: None = naive) for every kind of spine."""
    from pyspark.sql import functions as F

    pdf = _base(world)
    instants = pdf["ts"].dt.tz_localize(TZ)
    pdf.assign(ts=instants.dt.tz_convert("UTC")).to_parquet(tmp_path / "utc.parquet")
    pdf.to_parquet(tmp_path / "naive.parquet")
    spark_instants = spark.createDataFrame(pdf.assign(ts=instants.dt.tz_convert("UTC")))  # TIMESTAMP
    spark_instants.write.format("delta").save(str(tmp_path / "delta"))
    spark_instants.write.parquet(str(tmp_path / "spark.parquet"))
    pdf.to_csv(tmp_path / "naive.csv", index=False)
    pdf.assign(ts=instants.map(lambda t: t.isoformat())).to_csv(tmp_path / "offset.csv", index=False)
    return [
        ("pandas naive", pdf, None),
        ("pandas Sao Paulo", pdf.assign(ts=instants.dt.tz_convert("America/Sao_Paulo")), "America/Sao_Paulo"),
        ("Parquet naive (pandas)", str(tmp_path / "naive.parquet"), None),
        ("Parquet UTC (pandas)", str(tmp_path / "utc.parquet"), "UTC"),
        ("Parquet (Spark: INT96)", str(tmp_path / "spark.parquet"), TZ),  # Spark's instants, no zone recorded
        ("Spark TIMESTAMP", spark_instants, TZ),
        ("Spark TIMESTAMP_NTZ", spark_instants.withColumn("ts", F.col("ts").cast("timestamp_ntz")), None),  # UTC wall clock
        ("Delta", str(tmp_path / "delta"), TZ),
        ("CSV naive", str(tmp_path / "naive.csv"), None),
        ("CSV with offsets", str(tmp_path / "offset.csv"), "UTC"),
    ]


def test_spine_timestamps_and_labels_come_back_as_they_went_in_and_the_parquet_agrees(store, world, spark, tmp_path):
    instants = sorted(_base(world)["ts"].dt.tz_localize(TZ))
    for label, spine, zone in _spines(world, spark, tmp_path):
        if label == "Spark TIMESTAMP_NTZ":
            instants_seen = sorted(pd.Series(instants).dt.tz_convert("UTC").dt.tz_localize(None).dt.tz_localize(TZ))
        else:
            instants_seen = instants
        got = store.to_pandas(store.training_set(features=FEATURES, spine=spine))
        out = tmp_path / f"out_{label.replace(' ', '_')}"
        store.write_training_set(features=FEATURES, spine=spine, out=out)
        written = pd.read_parquet(out)
        for how, frame in (("to_pandas", got), ("Parquet", written)):
            assert _zone(frame["ts"]) == zone, (label, how, frame["ts"].dtype)
            assert str(frame["is_fraud"].dtype) == "int64", (label, how)  # a CSV label is an integer too
            assert str(frame["customer_id"].dtype) == "object", (label, how)  # keys stay text
            stamps = frame["ts"] if zone else frame["ts"].dt.tz_localize(TZ)
            assert sorted(stamps.dt.tz_convert(TZ)) == instants_seen, (label, how)
        assert _zone(got["spend_sum_7d"]) is None and str(got["txn_count_7d"].dtype) == "Int64", label


def test_a_pandas_spine_gets_its_own_dtypes_back(store, world):
    pdf = _base(world).assign(
        score=lambda d: (d["row_id"] / 2).astype("float32"),
        flag=lambda d: pd.array([True, None] * (len(d) // 2), dtype="boolean"),
        grade=lambda d: pd.array([1, None] * (len(d) // 2), dtype="Int64"),
        small=lambda d: d["row_id"].astype("int32"),
    )
    got = store.to_pandas(store.training_set(features=FEATURES, spine=pdf))
    for column in pdf.columns:
        assert got[column].dtype == pdf[column].dtype, column
    restored = got.sort_values("row_id", kind="stable").reset_index(drop=True)
    expected = pdf.sort_values("row_id", kind="stable").reset_index(drop=True)
    pd.testing.assert_frame_equal(restored[list(pdf.columns)], expected)


def test_with_allow_missing_counts_stay_integers(store, world, tmp_path):
    """Spine dates the card group never published (DAYS[8:]) give NULL counts: bigint in Spark,
    nullable Int64 in pandas (today: float64 with NaN), int64 in the Parquet."""
    pdf = _base(world).assign(ts=lambda d: d["ts"] + pd.Timedelta(days=4))  # some dates past DAYS[7]
    frame = store.training_set(features=FEATURES, spine=pdf, allow_missing=True)
    assert dict(frame.dtypes)["txn_count_7d"] == "bigint"
    got = store.to_pandas(frame)
    assert str(got["txn_count_7d"].dtype) == "Int64"
    uncovered = got["ts"].dt.date > DAYS[7]
    assert uncovered.any() and got.loc[uncovered, "txn_count_7d"].isna().all()
    covered = ~uncovered & got["customer_id"].notna()
    assert (got.loc[covered, "txn_count_7d"].notna()).all()  # published dates: a count, 0 where no row
    store.write_training_set(features=FEATURES, spine=pdf, out=tmp_path / "missing", allow_missing=True)
    assert str(pq.read_table(tmp_path / "missing").schema.field("txn_count_7d").type) == "int64"


def test_csv_spine_columns_are_typed_by_the_documented_rules(spark, tmp_path):
    from featurebank.training.spine import csv_types

    path = tmp_path / "typed.csv"
    path.write_text(
        "customer_id,label,amount,code,big_id,flag,day,naive,zoned,mixed,empty\n"
        "123,1,1.5,007,12345678901234567890,true,2024-03-01,2024-03-01 10:00:00,2024-03-01T10:00:00+01:00,1,\n"
        "124,0,2,010,12345678901234567891,FALSE,2024-03-02,2024-03-02T11:30,2024-03-02 11:30:00Z,a,\n"
        "125,,1e3,,,,,,,,\n")
    frame = spark.read.option("header", "true").csv(str(path))
    assert csv_types(frame, {"customer_id": "string"}) == {
        "customer_id": "string", "label": "bigint", "amount": "double", "code": "string", "big_id": "string",
        "flag": "boolean", "day": "date", "naive": "timestamp_ntz", "zoned": "timestamp", "mixed": "string",
        "empty": "string"}


def test_a_csv_spine_joins_its_keys_as_the_tables_hold_them_and_the_cli_agrees(store, world, tmp_path):
    from featurebank.cli import main

    pdf = _base(world)
    pdf.to_csv(tmp_path / "spine.csv", index=False)
    out = tmp_path / "cli"
    assert main(["training-set", "--features", ",".join(FEATURES), "--project", str(world.project.root),
                 "--spine", str(tmp_path / "spine.csv"), "--out", str(out)]) == 0
    written = pd.read_parquet(out).sort_values("row_id", kind="stable").reset_index(drop=True)
    api = store.to_pandas(store.training_set(features=FEATURES, spine=pdf)).sort_values("row_id", kind="stable")
    api = api.reset_index(drop=True)
    assert str(written["row_id"].dtype) == "int64" and written["ts"].dt.tz is None
    assert written["spend_sum_7d"].equals(api["spend_sum_7d"])  # same features as the pandas spine gives
    assert list(written["ts"]) == list(api["ts"].astype(written["ts"].dtype))


# --- 3. the README's notebook example -----------------------------------------------------------

def test_the_readme_notebook_example_runs(world, spark, monkeypatch):
    readme = (REPO / "README.md").read_text()
    section = readme.split("## In a notebook", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    monkeypatch.chdir(world.project.root)
    namespace: dict = {}
    printed = io.StringIO()
    zone = spark.conf.get("spark.sql.session.timeZone")  # the example's store sets the project's on the shared session
    try:
        with redirect_stdout(printed):
            exec(compile(code, "README.md (In a notebook)", "exec"), namespace)  # noqa: S102 - our own README
    finally:
        spark.conf.set("spark.sql.session.timeZone", zone)
    train = namespace["train"]
    assert len(train) == len(namespace["spine"]) > 0 and str(train["txn_count_7d"].dtype) == "Int64"
    assert str(train["label"].dtype) == "int64" and train["ts"].dt.tz is None
    assert "customer_card_spend" in printed.getvalue() and "spend_sum_7d" in printed.getvalue()
