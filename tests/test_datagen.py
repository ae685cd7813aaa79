"""The synthetic bank: deterministic, shaped like features/sources.yaml, and fraud that depends
on behaviour. Facts are checked with DuckDB queries over the written files, not the generator."""

from __future__ import annotations

from datetime import date, datetime, timezone
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from featurebank_demo.datagen import GENERATOR_VERSION, MARKER, DatagenParams, generate, main, read_marker, yesterday

REPO = Path(__file__).resolve().parent.parent
SPARK_TO_ARROW = {
    "string": pa.string(),
    "double": pa.float64(),
    "int": pa.int32(),
    "timestamp": pa.timestamp("us", tz="UTC"),
}
SMALL = DatagenParams(customers=300, merchants=60, days=60, end_date=date(2024, 3, 31), seed=11)
# Big enough for stable rates (~1,200 fraud labels), still about a second to generate.
MEDIUM = DatagenParams(customers=3000, merchants=200, days=120, end_date=date(2024, 6, 30), seed=3)


@pytest.fixture(scope="module")
def bank(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bank")
    generate(out, MEDIUM)
    return out


@pytest.fixture(scope="module")
def db(bank: Path) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("set TimeZone = 'UTC'")
    for name in ("customers", "accounts", "card_transactions", "card_fraud_labels"):
        con.execute(f"create view {name} as select * from read_parquet('{bank}/{name}/*.parquet')")
    return con


def one(con: duckdb.DuckDBPyConnection, sql: str) -> object:
    return con.execute(sql).fetchall()[0][0]


def pair(con: duckdb.DuckDBPyConnection, sql: str) -> tuple:  # type: ignore[type-arg]
    return tuple(con.execute(sql).fetchall()[0])


def file_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_parameters_give_byte_identical_files(tmp_path: Path) -> None:
    generate(tmp_path / "a", SMALL)
    generate(tmp_path / "b", SMALL)
    first, second = file_bytes(tmp_path / "a"), file_bytes(tmp_path / "b")
    assert len(first) >= 5 and first == second


def test_another_seed_gives_other_data(tmp_path: Path) -> None:
    generate(tmp_path / "a", SMALL)
    generate(tmp_path / "b", DatagenParams(**{**SMALL.__dict__, "seed": SMALL.seed + 1}))
    a = pq.read_table(tmp_path / "a" / "card_transactions")
    b = pq.read_table(tmp_path / "b" / "card_transactions")
    assert a.column("amount").to_pylist() != b.column("amount").to_pylist()


def test_sources_have_exactly_the_declared_columns_and_types(bank: Path) -> None:
    declared = {
        doc["name"]: doc["columns"]
        for doc in yaml.safe_load_all((REPO / "features" / "sources.yaml").read_text())
        if doc and doc.get("kind") == "source"
    }
    assert set(declared) == {"card_transactions", "customers", "accounts"}
    for name, columns in declared.items():
        files = sorted((bank / name).glob("*.parquet"))
        assert files, f"no files for {name}"
        for f in files:
            schema = pq.read_schema(f)
            assert schema.names == list(columns), f"{f}: {schema.names}"
            for column, spark_type in columns.items():
                assert schema.field(column).type == SPARK_TO_ARROW[spark_type], f"{f}:{column}"


def test_labels_spine_is_one_row_per_settled_transaction(bank: Path, db: duckdb.DuckDBPyConnection) -> None:
    schema = pq.read_schema(sorted((bank / "card_fraud_labels").glob("*.parquet"))[0])
    assert schema.names == ["txn_id", "customer_id", "merchant_id", "account_id", "ts", "amount", "is_fraud"]
    assert schema.field("ts").type == SPARK_TO_ARROW["timestamp"]
    settled = one(db, "select count(*) from card_transactions where status = 'SETTLED'")
    labels = one(db, "select count(*) from card_fraud_labels")
    assert settled == labels and labels > 50_000
    mismatched = one(db, """
        select count(*) from card_fraud_labels l
        left join (select * from card_transactions where status = 'SETTLED') t using (txn_id)
        where t.txn_id is null or t.event_ts <> l.ts or t.amount <> l.amount
           or t.customer_id <> l.customer_id or t.merchant_id <> l.merchant_id or t.account_id <> l.account_id""")
    assert mismatched == 0
    assert one(db, "select count(distinct txn_id) = count(*) from card_fraud_labels")
    assert one(db, "select count(*) from card_fraud_labels where is_fraud not in (0, 1)") == 0


def test_chargebacks_reference_settled_transactions_and_come_later(db: duckdb.DuckDBPyConnection) -> None:
    chargebacks = one(db, "select count(*) from card_transactions where status = 'CHARGEBACK'")
    assert chargebacks > 100
    orphans = one(db, """
        select count(*) from card_transactions c
        left join card_transactions s on s.txn_id = c.txn_id and s.status = 'SETTLED'
        where c.status = 'CHARGEBACK'
          and (s.txn_id is null or s.event_ts >= c.event_ts or s.amount <> c.amount
               or s.customer_id <> c.customer_id or s.merchant_id <> c.merchant_id)""")
    assert orphans == 0
    assert one(db, """select count(*) from card_transactions where status = 'DECLINED'
                      and txn_id in (select txn_id from card_transactions where status = 'CHARGEBACK')""") == 0
    # Fraud is what gets charged back: most charged-back transactions were fraud.
    share = one(db, """select avg(is_fraud) from card_fraud_labels
                       where txn_id in (select txn_id from card_transactions where status = 'CHARGEBACK')""")
    assert share > 0.5


def test_fraud_rate_at_risky_merchants_is_more_than_twice_the_rest(db: duckdb.DuckDBPyConnection) -> None:
    # Risky, as a feature would see it: the merchants with the highest decline rates.
    risky, rest = pair(db, """
        with m as (select merchant_id, avg((status = 'DECLINED')::int) as decline_rate
                   from card_transactions where status <> 'CHARGEBACK' group by 1),
             r as (select merchant_id, decline_rate >= quantile_cont(decline_rate, 0.9) over () as risky from m)
        select avg(is_fraud) filter (where risky), avg(is_fraud) filter (where not risky)
        from card_fraud_labels join r using (merchant_id)""")
    assert risky > 2 * rest


def test_fraud_depends_on_night_ecommerce_ticket_tenure_and_bursts(db: duckdb.DuckDBPyConnection) -> None:
    night, day = pair(db, """select avg(is_fraud) filter (where hour(ts) < 6),
                               avg(is_fraud) filter (where hour(ts) between 9 and 20) from card_fraud_labels""")
    assert night > 2 * day
    online, present = pair(db, """
        select avg(is_fraud) filter (where channel = 'ecommerce'), avg(is_fraud) filter (where channel in ('pos', 'contactless'))
        from card_fraud_labels join card_transactions using (txn_id) where status = 'SETTLED'""")
    assert online > 2 * present
    big, usual = pair(db, """
        with c as (select customer_id, median(amount) as med from card_fraud_labels group by 1)
        select avg(is_fraud) filter (where amount > 3 * med), avg(is_fraud) filter (where amount <= 3 * med)
        from card_fraud_labels join c using (customer_id)""")
    assert big > 2 * usual
    new, old = pair(db, """
        with c as (select customer_id, min(opened_at) as opened from customers group by 1)
        select avg(is_fraud) filter (where ts - opened < interval 90 day), avg(is_fraud) filter (where ts - opened >= interval 365 day)
        from card_fraud_labels join c using (customer_id)""")
    assert new > 2 * old
    burst, calm = pair(db, """
        with e as (select txn_id, count(*) over (partition by customer_id order by event_ts
                   range between interval 24 hour preceding and current row) - 1 as recent
                   from card_transactions where status <> 'CHARGEBACK')
        select avg(is_fraud) filter (where recent >= 3), avg(is_fraud) filter (where recent = 0)
        from card_fraud_labels join e using (txn_id)""")
    assert burst > 2 * calm


def test_fraud_rate_is_stable_over_time(db: duckdb.DuckDBPyConnection) -> None:
    rates = [r[1] for r in db.execute("""select date_trunc('month', ts), avg(is_fraud) from card_fraud_labels
                                         where ts >= (select min(ts) + interval 14 day from card_fraud_labels)
                                         group by 1 order by 1""").fetchall()]
    assert len(rates) >= 3 and max(rates) < 2.5 * min(rates), rates


def test_events_follow_a_day_with_a_night_lull_and_some_exactly_at_midnight(db: duckdb.DuckDBPyConnection) -> None:
    at_three = one(db, "select count(*) from card_transactions where hour(event_ts) = 3")
    at_noon = one(db, "select count(*) from card_transactions where hour(event_ts) = 12")
    assert at_noon > 5 * at_three  # type: ignore[operator]
    midnight = one(db, "select count(*) from card_transactions where event_ts = date_trunc('day', event_ts)")
    assert midnight > 100
    saturday, tuesday = pair(db, """select count(*) filter (where dayofweek(event_ts) = 6),
                                      count(*) filter (where dayofweek(event_ts) = 2) from card_transactions""")
    assert saturday > 1.2 * tuesday
    span = one(db, "select date_diff('day', min(event_ts), max(event_ts)) from card_transactions")
    assert span >= MEDIUM.days - 2  # type: ignore[operator]
    bounds = pair(db, "select min(event_ts)::date, max(event_ts)::date from card_transactions")
    assert bounds == (MEDIUM.start_date, MEDIUM.end_date)


def test_master_data_is_a_change_history_with_increasing_updated_at(db: duckdb.DuckDBPyConnection) -> None:
    for table, key in (("customers", "customer_id"), ("accounts", "account_id")):
        rows, entities = pair(db, f"select count(*), count(distinct {key}) from {table}")
        assert rows > 1.2 * entities, table
        assert one(db, f"select count(*) - count(distinct ({key}, updated_at)) from {table}") == 0, table
        assert one(db, f"select count(*) from {table} where updated_at < opened_at") == 0, table
    assert one(db, "select count(distinct credit_limit) from accounts") > 20
    assert one(db, "select count(*) from (select account_id from accounts group by 1 having count(distinct credit_limit) > 1)") > 50
    null_share = one(db, "select avg((income is null)::int) from customers")
    assert 0.01 < null_share < 0.15  # type: ignore[operator]
    assert one(db, "select count(*) from card_transactions t anti join accounts a using (account_id, customer_id)") == 0


def test_cli_writes_a_marker_with_the_parameters(tmp_path: Path) -> None:
    code = main(["--out", str(tmp_path), "--customers", "50", "--days", "30", "--seed", "5", "--end-date", "2024-01-31"])
    assert code == 0
    marker = read_marker(tmp_path)
    assert marker is not None and (tmp_path / MARKER).exists()
    assert marker["generator"] == GENERATOR_VERSION
    assert marker["params"] == {"customers": 50, "merchants": 400, "days": 30, "end_date": "2024-01-31", "seed": 5}


# --- the end date: yesterday in the project time zone unless given --------------------------------

def test_yesterday_is_the_day_before_today_in_the_given_time_zone() -> None:
    # 2024-03-10 23:30 UTC is already 2024-03-11 in Auckland and still 2024-03-10 in New York.
    now = datetime(2024, 3, 10, 23, 30, tzinfo=timezone.utc)
    assert yesterday("UTC", now) == date(2024, 3, 9)
    assert yesterday("Pacific/Auckland", now) == date(2024, 3, 10)
    assert yesterday("America/New_York", now) == date(2024, 3, 9)
    with pytest.raises(ValueError, match="timezone-aware"):
        yesterday("UTC", datetime(2024, 3, 10))


def test_params_without_an_end_date_end_yesterday_and_a_given_one_is_kept() -> None:
    now = datetime(2024, 3, 10, 23, 30, tzinfo=timezone.utc)
    default = DatagenParams(customers=50, days=30)
    assert default.end_date is None
    with pytest.raises(ValueError, match="resolved"):
        default.start_date  # noqa: B018 - the property raises before the end date is fixed
    resolved = default.resolved("Pacific/Auckland", now)
    assert resolved.end_date == date(2024, 3, 10) and resolved.start_date == date(2024, 2, 10)
    assert SMALL.resolved("Pacific/Auckland", now) == SMALL  # an explicit end date wins


def test_cli_without_an_end_date_generates_data_ending_yesterday(tmp_path: Path) -> None:
    zone = "Pacific/Kiritimati"  # UTC+14: its "yesterday" is often UTC's today
    before = yesterday(zone)
    assert main(["--out", str(tmp_path), "--customers", "10", "--merchants", "20", "--days", "14",
                 "--timezone", zone]) == 0
    marker = read_marker(tmp_path)
    assert marker is not None
    assert marker["params"]["end_date"] in {before.isoformat(), yesterday(zone).isoformat()}  # type: ignore[index]
    con = duckdb.connect()
    con.execute("set TimeZone = 'UTC'")
    last = one(con, f"select max(event_ts)::date from read_parquet('{tmp_path}/card_transactions/*.parquet')")
    assert last.isoformat() == marker["params"]["end_date"]  # type: ignore[attr-defined, index]


def test_cli_refuses_a_bank_too_small_to_make_sense(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--out", str(tmp_path), "--customers", "2"]) == 2
    assert "at least 10 customers" in capsys.readouterr().err


def test_spark_reads_the_sources_with_the_declared_types(spark, tmp_path: Path) -> None:  # noqa: ANN001
    generate(tmp_path, SMALL)
    for doc in yaml.safe_load_all((REPO / "features" / "sources.yaml").read_text()):
        if not doc or doc.get("kind") != "source":
            continue
        frame = spark.read.parquet(str(tmp_path / doc["name"]))
        assert [(f.name, f.dataType.simpleString()) for f in frame.schema.fields] == list(doc["columns"].items())
    labels = spark.read.parquet(str(tmp_path / "card_fraud_labels"))
    assert dict(labels.dtypes)["ts"] == "timestamp"
    # Epoch seconds, not text: the shared session's time zone may have been set by an earlier test.
    first = spark.read.parquet(str(tmp_path / "customers")).selectExpr("unix_timestamp(min(updated_at))").first()[0]
    midnight = datetime.combine(SMALL.start_date, datetime.min.time(), tzinfo=timezone.utc)
    assert first == int(midnight.timestamp())  # the initial load, at midnight (UTC) of the first day


def test_a_promotion_holds_for_the_customers_later_rows(db: duckdb.DuckDBPyConnection) -> None:
    promoted = one(db, "select count(distinct customer_id) from customers where segment <> 'student' "
                       "and customer_id in (select customer_id from customers where segment = 'student')")
    assert promoted > 0
    reverted = one(db, """select count(*) from (select segment, lag(segment) over (partition by customer_id order by updated_at) prev
                          from customers) where prev = 'mass' and segment = 'student'""")
    assert reverted == 0
