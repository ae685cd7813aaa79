"""`featurebank explain`: the pure core recomputes every published value bit for bit, the CLI agrees,
the "why" sentences are pinned, and hostile input is one sentence and exit 2 (issue 21).

One small project for the module: the example catalog in Europe/Amsterdam (days cut at local
midnight, a daylight-saving change inside the run) plus `terminal_use`, a group keyed by a
BIGINT with decimal sums, an AND filter and every function, over seeded random events with
midnight edges, NULLs, filtered rows and sparse entities; published by the real runner.
"""

from __future__ import annotations

import json
import random
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from featurebank.cli import main
from featurebank.compile.explain import KEEP, condition_column, explain_entity, filter_conditions, same_value
from featurebank.compile.group import compile_group
from featurebank.definitions import load_project
from featurebank.runner import run_group
from test_runner import _write_sources

ZONE = "Europe/Amsterdam"
RUN = (date(2024, 3, 28), date(2024, 4, 2))  # summer time starts 2024-03-31 in Amsterdam
DATA = (date(2023, 12, 20), date(2024, 4, 2))
PROFILE = (date(2024, 3, 1), date(2024, 3, 12))  # the customers' changes end 2024-03-05, their lag is 7d
TERMINALS = "terminal_use"
SPEND = "customer_card_spend"

TERMINAL_YAML = """
kind: entity
name: terminal
keys: [terminal_no]
description: A card terminal.
---
kind: source
name: terminal_events
description: Terminal events (test data).
format: parquet
path: ${raw_root}/terminal_events
timestamp: event_ts
columns: {terminal_no: bigint, amount: "decimal(12,2)", qty: bigint, kind: string, event_ts: timestamp}
---
kind: feature_group
name: terminal_use
entity: terminal
source: terminal_events
filter: "kind <> 'TEST' and qty >= 0"
description: Terminal use (test group).
owner: tests
aggregations:
  - {name: amount_sum, expr: amount, function: sum, windows: [1d, 7d]}
  - {name: amount_avg, expr: amount, function: avg, windows: [7d]}
  - {name: qty_sum, expr: qty, function: sum, windows: [3d]}
  - {name: qty_stddev, expr: qty, function: stddev, windows: [7d]}
  - {name: kinds, expr: kind, function: count_distinct, windows: [7d]}
  - {name: events, function: count, windows: [1d, 7d]}
  - {name: qty_min, expr: qty, function: min, windows: [3d]}
  - {name: last_kind, expr: kind, function: last, windows: [7d]}
derived:
  - {name: amount_per_event_7d, expr: "amount_sum_7d / nullif(events_7d, 0)"}
"""


def _moment(rng: random.Random, day: date) -> datetime:
    """An instant on local `day`: often exactly midnight or the last microsecond before the next one."""
    local = datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(ZONE))
    pick = rng.random()
    if pick < 0.2:
        moment = local
    elif pick < 0.35:
        nxt = day + timedelta(days=1)
        moment = datetime(nxt.year, nxt.month, nxt.day, tzinfo=ZoneInfo(ZONE)) - timedelta(microseconds=1)
    else:
        moment = local + timedelta(seconds=rng.randrange(86_400))
    return moment.astimezone(timezone.utc)


def _days(rng: random.Random, sparse: bool) -> list[date]:
    span = (DATA[1] - DATA[0]).days
    if sparse:  # a few events, long before the run or in one burst
        return [DATA[0] + timedelta(days=rng.randrange(0, span - 20)) for _ in range(rng.randrange(1, 3))]
    return [DATA[0] + timedelta(days=rng.randrange(span + 1)) for _ in range(rng.randrange(40, 90))]


def _transactions(rng: random.Random) -> pd.DataFrame:
    rows = []
    for c in range(10):
        for n, day in enumerate(_days(rng, sparse=c >= 7)):
            amount = None if rng.random() < 0.1 else round(rng.uniform(0.01, 900), 2)
            status = "DECLINED" if c == 8 else rng.choice(["SETTLED"] * 6 + ["DECLINED", "CHARGEBACK", None])
            rows.append((f"t{c}_{n}", f"c{c}", f"a{c}", rng.choice(["m1", "m2", "m3", None]), rng.choice(["5411", "5812"]),
                         amount, "EUR", rng.choice(["web", "pos", None]), status, pd.Timestamp(_moment(rng, day))))
    frame = pd.DataFrame(rows, columns=["txn_id", "customer_id", "account_id", "merchant_id", "mcc", "amount",
                                       "currency", "channel", "status", "event_ts"])
    frame["event_ts"] = frame["event_ts"].astype("datetime64[us, UTC]")
    return frame


def _terminal_events(rng: random.Random, path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows: dict[str, list[Any]] = {"terminal_no": [], "amount": [], "qty": [], "kind": [], "event_ts": []}
    for t in range(1, 9):
        for day in _days(rng, sparse=t >= 7):
            rows["terminal_no"].append(t * 1000)
            rows["amount"].append(None if rng.random() < 0.1 else Decimal(rng.randrange(-5000, 90000)) / 100)
            rows["qty"].append(rng.choice([1, 2, 3, 7, -1, None, 2**40]))
            rows["kind"].append(rng.choice(["SALE", "REFUND", "TEST", None]))
            rows["event_ts"].append(_moment(rng, day))
    schema = pa.schema([("terminal_no", pa.int64()), ("amount", pa.decimal128(12, 2)), ("qty", pa.int64()),
                        ("kind", pa.string()), ("event_ts", pa.timestamp("us", tz="UTC"))])
    path.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(rows, schema=schema), path / "part-0.parquet")


@pytest.fixture(scope="module")
def project(spark, tmp_path_factory):
    from conftest import REPO
    import shutil

    root = tmp_path_factory.mktemp("explain") / "project"
    shutil.copytree(REPO / "features", root / "features")
    shutil.copytree(REPO / "conf", root / "conf")
    conf = root / "conf" / "local.yaml"
    conf.write_text(conf.read_text().replace("timezone: UTC", f"timezone: {ZONE}"))
    (root / "features" / "terminals.yaml").write_text(TERMINAL_YAML)
    rng = random.Random(21)
    _write_sources(root, _transactions(rng))
    _terminal_events(rng, root / "warehouse" / "raw" / "terminal_events")
    stamp = lambda text: pd.Timestamp(text, tz="UTC")  # noqa: E731
    pd.DataFrame({  # a second version of c1: the later one is in force from 2024-03-05 on
        "customer_id": ["c1"], "segment": ["mass"], "income": [None], "birth_year": pd.array([1990], dtype="int32"),
        "region": ["south"], "opened_at": [stamp("2020-01-01")], "updated_at": [stamp("2024-03-05 23:30")],
    }).astype({"income": "float64"}).to_parquet(root / "warehouse" / "raw" / "customers" / "part-1.parquet", index=False)
    loaded = load_project(root, "local")
    run_group(loaded, TERMINALS, *RUN, spark=spark)  # 6 dates: the backfill kernel
    run_group(loaded, TERMINALS, RUN[1], RUN[1], spark=spark)  # the last date again: the direct path
    run_group(loaded, SPEND, *RUN, spark=spark)
    run_group(loaded, "customer_profile", PROFILE[0], PROFILE[1], spark=spark)
    return loaded


def _cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# -- (a) the pure core against every published value -------------------------------------------

@pytest.mark.parametrize("group", [TERMINALS, SPEND])
def test_the_core_recomputes_every_published_value_bit_for_bit(spark, project, group):
    from pyspark.sql import functions as F

    from featurebank.explain import collect_rows, derived_values, explained_rows
    from featurebank.io.sources import read_source
    from featurebank.compile.run import plan_for

    compiled = compile_group(project, group)
    plan = plan_for(compiled, *RUN)
    spark.conf.set("spark.sql.session.timeZone", ZONE)
    frame, input_types = explained_rows(read_source(spark, plan.source, ZONE), compiled)
    rows = collect_rows(frame, compiled)
    table = spark.read.format("delta").load(compiled.table_path)
    published = {(tuple(r[k] for k in compiled.keys), r["feature_date"]): r.asDict() for r in table.collect()}
    every = read_source(spark, compiled.source, ZONE).select(*compiled.keys).distinct().collect()
    entities = sorted(tuple(r) for r in every)  # sparse ones too: some have no row on any date
    assert len(entities) >= 8 and any(r[KEEP] is False for r in rows)
    compared = nulls = zeros = missing = 0
    day = RUN[0]
    while day <= RUN[1]:
        first = datetime.combine(day - timedelta(days=compiled.max_window), datetime.min.time(), ZoneInfo(ZONE))
        last = datetime.combine(day, datetime.min.time(), ZoneInfo(ZONE))
        for entity in entities:
            mine = [r for r in rows if tuple(r[k] for k in compiled.keys) == entity
                    and r[compiled.source.timestamp] is not None and first <= r[compiled.source.timestamp] < last]
            row = published.get((entity, day))
            typed = dict(zip(compiled.keys, entity))
            schema = ", ".join(f"`{f.name}` {f.dataType.simpleString()}" for f in table.schema.fields)
            result = explain_entity(compiled, mine, day, row, input_types=input_types,
                                    derive=lambda values: derived_values(spark, compiled, typed, values, schema))
            assert result.row == (row is not None), (entity, day, result.row_why)
            for feature in result.features:
                assert feature.agree, (entity, day, feature.feature, feature.value, feature.published, feature.why)
                assert same_value(feature.value, None if row is None else row[feature.feature])
                compared += 1
                nulls += row is not None and feature.value is None
                zeros += feature.value == 0 and feature.value is not None
            missing += row is None
        day += timedelta(days=1)
    assert compared > 300 and nulls and zeros and missing  # the data reaches NULL, 0 and no-row cases


# -- (b) the command agrees ----------------------------------------------------------------------

CALLS = [
    (TERMINALS, "terminal_no=1000", "2024-03-28"), (TERMINALS, "2000", "2024-03-31"), (TERMINALS, "3000", "2024-04-01"),
    (TERMINALS, "4000", "2024-04-02"), (TERMINALS, "5000", "2024-03-30"), (TERMINALS, "6000", "2024-03-29"),
    (TERMINALS, "7000", "2024-04-02"), (TERMINALS, "8000", "2024-03-28"),
    (SPEND, "customer_id=c0", "2024-03-28"), (SPEND, "c1", "2024-03-31"), (SPEND, "c2", "2024-04-01"),
    (SPEND, "c3", "2024-04-02"), (SPEND, "c4", "2024-03-30"), (SPEND, "c5", "2024-03-29"), (SPEND, "c6", "2024-04-02"),
    (SPEND, "c7", "2024-03-31"), (SPEND, "c8", "2024-04-01"), (SPEND, "c9", "2024-03-28"),
    ("customer_profile", "c0", "2024-03-12"), ("customer_profile", "c1", "2024-03-05"),
    ("customer_profile", "c1", "2024-03-04"), ("customer_profile", "c3", "2024-03-02"),
]


def test_about_twenty_cli_calls_agree_with_the_published_table(project, capsys):
    for group, key, day in CALLS:
        code, out, err = _cli(capsys, "explain", group, "--key", key, "--date", day, "--json", "--check",
                              "--project", str(project.root))
        assert code == 0, (group, key, day, out[-2000:], err)
        document = json.loads(out)
        assert document["agree"] is True and document["features"], (group, key, day)
        assert document["published_hash"] == document["definition_hash"]
    code, out, err = _cli(capsys, "explain", SPEND, "--key", "c0", "--date", "2024-03-28", "--feature", "spend_sum_7d",
                          "--feature", "avg_ticket_7d", "--project", str(project.root))
    assert code == 0, err
    assert "spend_sum_7d  sum(amount) over 7d" in out and "avg_ticket_7d" in out and "agree yes" in out
    assert "spend_max_30d" not in out and "explained in" in err


# -- (c) the why sentences -------------------------------------------------------------------------

def _instant(day: date, hour: int = 12) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=ZoneInfo(ZONE)).astimezone(timezone.utc)


def _row(day: date, kind: str | None, qty: int | None, amount: str | None, hour: int = 12) -> dict[str, Any]:
    conditions = (kind is not None and kind != "TEST" if kind is not None else None,
                  None if qty is None else qty >= 0)
    keep = all(c is True for c in conditions)
    return {"terminal_no": 1000, "event_ts": _instant(day, hour), "kind": kind, "qty": qty,
            "amount": None if amount is None else Decimal(amount), KEEP: keep,
            condition_column(0): conditions[0], condition_column(1): conditions[1],
            "_v0": Decimal(amount) if keep and amount else None, "_v1": Decimal(amount) if keep and amount else None,
            "_v2": qty if keep else None, "_v3": qty if keep else None, "_v4": kind if keep else None,
            "_v6": qty if keep else None, "_v7": kind if keep else None}


TYPES = {0: "decimal(12,2)", 1: "decimal(12,2)", 2: "bigint", 3: "bigint", 4: "string", 6: "bigint", 7: "string"}
D = date(2024, 4, 2)


def test_why_says_what_null_zero_and_no_row_mean(project):
    compiled = compile_group(project, TERMINALS)
    assert filter_conditions(compiled.filter) == ("kind <> 'TEST'", "qty >= 0")
    rows = [_row(D - timedelta(days=5), "SALE", 2, "10.50"), _row(D - timedelta(days=1), "TEST", 1, "3.00")]
    published = {"amount_sum_1d": None, "events_1d": 0, "amount_sum_7d": Decimal("10.50")}
    result = explain_entity(compiled, rows, D, published, input_types=TYPES,
                            features=["amount_sum_1d", "events_1d", "amount_sum_7d", "qty_stddev_7d"])
    by_name = {f.feature: f for f in result.features}
    window_1d = "[D-1d, D) = [2024-04-01 00:00, 2024-04-02 00:00) Europe/Amsterdam"
    assert by_name["amount_sum_1d"].why == (
        f"NULL: no event in {window_1d} passes the filter (1 event removed by it): "
        "last event 5 days before D (2024-03-28 12:00)")
    assert by_name["events_1d"].why == (
        f"0: no event in {window_1d} passes the filter (1 event removed by it): "
        "last event 5 days before D (2024-03-28 12:00)")
    assert by_name["amount_sum_1d"].agree and by_name["events_1d"].agree and by_name["amount_sum_7d"].agree
    assert by_name["amount_sum_7d"].why == (
        "sum(amount) over 1 value of 1 event in [D-7d, D) = [2024-03-26 00:00, 2024-04-02 00:00) Europe/Amsterdam; "
        "1 event in the window removed by the filter")
    assert by_name["qty_stddev_7d"].why.startswith("NULL: a sample standard deviation needs 2 values")
    assert result.events[1].removed_by == "kind <> 'TEST' is false"

    nothing = [_row(D - timedelta(days=41), "SALE", 1, "1.00"), _row(D - timedelta(days=2), "SALE", None, "1.00")]
    gone = explain_entity(compiled, nothing[1:], D, None, input_types=TYPES, last_before=nothing[0]["event_ts"])
    assert not gone.row and gone.agree
    assert gone.row_why == (
        "no row for this entity on 2024-04-02: no event in [D-7d, D) = [2024-03-26 00:00, 2024-04-02 00:00) "
        "Europe/Amsterdam passes the filter (1 event removed by it): last event 41 days before D (2024-02-21 12:00); "
        "a training set gets 0 for its count features and NULL for the rest on a published date")
    assert gone.events[0].removed_by == "qty >= 0 is NULL"
    assert all(f.why.startswith("no row: no event in [D-7d, D)") for f in gone.features)

    empty = explain_entity(compiled, [], D, None, input_types=TYPES, features=["events_7d"])
    assert empty.features[0].why == ("no row: no event in [D-7d, D) = [2024-03-26 00:00, 2024-04-02 00:00) "
                                     "Europe/Amsterdam: no earlier event passes the filter either")


def test_a_disagreement_is_printed_and_check_exits_1(project):
    compiled = compile_group(project, TERMINALS)
    rows = [_row(D - timedelta(days=1), "SALE", 2, "10.50")]
    result = explain_entity(compiled, rows, D, {"amount_sum_1d": Decimal("10.49")}, input_types=TYPES,
                            features=["amount_sum_1d"])
    assert not result.agree and result.features[0].why.endswith("; the published value differs: 10.49")
    assert not same_value(1.0, 1) and not same_value(0.0, -0.0) and same_value(float("nan"), float("nan"))

    from dataclasses import replace

    from featurebank.commands.explain import render

    stale = replace(result, published_hash="0" * 16, definition_hash=compiled.data_hash)
    assert stale.stale and f"was published by data_hash {'0' * 16}, and the definition now computes" in render(stale)
    assert "recomputed Decimal" not in render(stale) and "recomputed 10.50  published 10.49  agree NO" in render(stale)


# -- (d) hostile input -------------------------------------------------------------------------------

@pytest.mark.parametrize("argv, says", [
    (["explain", "no_such_group", "--key", "c1", "--date", "2024-04-01"], "unknown feature group 'no_such_group'"),
    (["explain", SPEND, "--key", "c1", "--date", "2024-04-01", "--feature", "spend_sum_8d"],
     "has no feature 'spend_sum_8d'"),
    (["explain", SPEND, "--key", "client_id=c1", "--date", "2024-04-01"], "'client_id' is not a key column"),
    (["explain", SPEND, "--key", "c1", "--date", "2024-01-01"], "never published 2024-01-01"),
    (["explain", "merchant_risk", "--key", "m1", "--date", "2024-04-01"], "has published nothing yet"),
    (["explain", TERMINALS, "--key", "twelve", "--date", "2024-04-01"], "terminal_no is bigint in source terminal_events"),
    (["explain", SPEND, "--key", "c1", "--date", "2024-04-01", "--as", "someone"], "configures no governance.consumers"),
])
def test_hostile_input_is_one_sentence_and_exit_2(project, capsys, argv, says):
    code, out, err = _cli(capsys, *argv, "--project", str(project.root))
    assert code == 2 and says in err and out == "", err
    assert err.startswith("error: ") and "Traceback" not in err


def test_a_principal_without_the_grant_is_refused_before_anything_is_read(project, capsys):
    marketing = "arn:aws:iam::444455556666:role/marketing-analytics"
    code, out, err = _cli(capsys, "explain", "customer_profile", "--key", "c1", "--date", "2024-03-05",
                          "--feature", "income_band", "--env", "dev", "--as", marketing, "--project", str(project.root))
    assert code == 2 and out == "", err
    assert f"principal {marketing} may not read customer_profile.income_band" in err and "nothing was read" in err
