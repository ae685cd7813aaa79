"""A synthetic retail bank: customers, card accounts, card transactions and fraud labels.

`generate(out, params)` writes the example catalog's raw sources as Parquet under `out`
(the project's `${raw_root}`), with exactly the columns and types `features/sources.yaml`
declares, plus the `card_fraud_labels` spine of the `card_fraud_v1` training set:

    out/customers/part-0.parquet             change history, updated_at increasing per customer
    out/accounts/part-0.parquet              change history, credit limits change over time
    out/card_transactions/part-YYYY-MM.parquet   SETTLED / DECLINED / CHARGEBACK events
    out/card_fraud_labels/part-YYYY-MM.parquet   one row per SETTLED transaction, is_fraud 0/1
    out/_datagen.json                        the parameters and row counts (written last)

The data ends on `end_date` (default: yesterday in the project time zone, so the snapshot
for today is the newest one a run can publish and a fresh catalog is up to date); tests and
golden files pass an explicit `end_date`, so what they generate does not depend on the day.

It is deterministic: the same parameters give byte-identical files. Timestamps are
`timestamp[us, tz=UTC]`, which Spark reads as TIMESTAMP. Only numpy and pyarrow are used,
so 20,000 customers (about a million transactions) take seconds, not minutes.

Fraud and chargebacks depend on behaviour, so features built on this data carry signal:
a few risky merchants decline and charge back far more often and attract fraud; fraud is
likelier for tickets far above the customer's usual one, at night, in e-commerce, for new
customers, and after a burst of recent transactions; compromised cards see short bursts of
fraudulent attempts. Settled fraud is mostly charged back weeks later, as its own event
carrying the original `txn_id`.

    python -m featurebank_demo.datagen --out warehouse/raw --customers 5000 --days 180 --seed 7 [--end-date D]
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass, replace
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from featurebank.errors import UsageError

MARKER = "_datagen.json"
# Bump when the generated data changes for the same parameters, so a marker from an older
# generator does not make the demo reuse stale data.
GENERATOR_VERSION = 3
US_PER_SECOND = 1_000_000
US_PER_HOUR = 3600 * US_PER_SECOND
US_PER_DAY = 24 * US_PER_HOUR
TS = pa.timestamp("us", tz="UTC")

# Column order and types exactly as features/sources.yaml declares them (Spark `int` = int32).
SCHEMAS: dict[str, pa.Schema] = {
    "customers": pa.schema(
        [("customer_id", pa.string()), ("segment", pa.string()), ("income", pa.float64()),
         ("birth_year", pa.int32()), ("region", pa.string()), ("opened_at", TS), ("updated_at", TS)]
    ),
    "accounts": pa.schema(
        [("account_id", pa.string()), ("customer_id", pa.string()), ("product", pa.string()),
         ("credit_limit", pa.float64()), ("opened_at", TS), ("updated_at", TS)]
    ),
    "card_transactions": pa.schema(
        [("txn_id", pa.string()), ("customer_id", pa.string()), ("account_id", pa.string()),
         ("merchant_id", pa.string()), ("mcc", pa.string()), ("amount", pa.float64()),
         ("currency", pa.string()), ("channel", pa.string()), ("status", pa.string()), ("event_ts", TS)]
    ),
    "card_fraud_labels": pa.schema(
        [("txn_id", pa.string()), ("customer_id", pa.string()), ("merchant_id", pa.string()),
         ("account_id", pa.string()), ("ts", TS), ("amount", pa.float64()), ("is_fraud", pa.int32())]
    ),
}

# Shape of a day and a week (relative weights): night lull, lunch and evening peaks, busy weekends.
HOUR_WEIGHTS = np.array([0.6, 0.35, 0.2, 0.15, 0.15, 0.3, 0.8, 1.6, 2.6, 3.0, 3.2, 3.8,
                         5.0, 4.6, 3.4, 3.2, 3.6, 4.4, 5.2, 5.4, 4.6, 3.4, 2.2, 1.2])
FRAUD_HOUR_WEIGHTS = np.array([2.5, 3.0, 3.0, 3.0, 2.5, 2.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0,
                               1.2, 1.2, 1.0, 1.0, 1.0, 1.0, 1.2, 1.2, 1.2, 1.5, 2.0, 2.2])
WEEKDAY_WEIGHTS = np.array([0.9, 0.92, 0.95, 1.0, 1.25, 1.35, 0.85])  # Monday .. Sunday

SEGMENTS = ["mass", "affluent", "student", "private", "sme"]
SEGMENT_P = [0.6, 0.2, 0.1, 0.03, 0.07]
SEGMENT_INCOME = [2800.0, 7500.0, 900.0, 20000.0, 6000.0]  # median monthly income
SEGMENT_ACTIVITY = [1.0, 1.3, 0.8, 1.5, 1.6]
REGIONS = ["capital", "north", "south", "east", "west", "central"]
REGION_P = [0.3, 0.15, 0.18, 0.12, 0.13, 0.12]
PRODUCTS = ["debit", "classic_credit", "gold_credit", "platinum_credit"]
CHANNELS = ["pos", "contactless", "ecommerce", "recurring"]
STATUSES = ["SETTLED", "DECLINED", "CHARGEBACK"]
CURRENCIES = ["EUR", "USD", "GBP"]

# Merchant categories: (mcc, share of merchants, typical ticket, e-commerce share, risky affinity)
MCCS = [
    ("5411", 0.16, 45.0, 0.05, 0.2), ("5812", 0.16, 28.0, 0.05, 0.2), ("5541", 0.08, 55.0, 0.0, 0.2),
    ("5311", 0.06, 70.0, 0.3, 0.5), ("5691", 0.08, 80.0, 0.4, 0.8), ("5912", 0.05, 22.0, 0.1, 0.2),
    ("4121", 0.05, 18.0, 0.6, 0.5), ("4511", 0.03, 320.0, 0.9, 1.5), ("7011", 0.04, 210.0, 0.7, 1.0),
    ("5732", 0.06, 260.0, 0.6, 3.0), ("5944", 0.03, 400.0, 0.4, 3.0), ("5815", 0.07, 12.0, 1.0, 2.0),
    ("4829", 0.03, 150.0, 0.9, 4.0), ("7995", 0.03, 60.0, 0.9, 4.0), ("5999", 0.07, 35.0, 0.5, 1.5),
]
USUAL_TICKET = 40.0  # a typical customer's typical ticket across categories
SUBSCRIPTION_MCC = "5815"  # digital goods: monthly subscriptions billed at midnight
SUBSCRIPTION_PRICES = np.array([4.99, 9.99, 12.99, 17.99])


def yesterday(timezone_name: str = "UTC", now: datetime | None = None) -> date:
    """The day before today in `timezone_name`: the newest whole day a daily feed can hold.

    `now` (timezone-aware, default the current instant) fixes "today" for tests.
    """
    instant = now or datetime.now(timezone.utc)
    if instant.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return instant.astimezone(ZoneInfo(timezone_name)).date() - timedelta(days=1)


@dataclass(frozen=True)
class DatagenParams:
    """What to generate: the same parameters always give byte-identical files.

    `end_date` is the last day with data; None means yesterday in the project time zone,
    fixed by `resolved(timezone)` before anything is generated (`generate` resolves in UTC
    when nobody did).
    """

    customers: int = 5000
    merchants: int = 400
    days: int = 180
    end_date: date | None = None
    seed: int = 7

    def resolved(self, timezone_name: str = "UTC", now: datetime | None = None) -> DatagenParams:
        """These parameters with `end_date` fixed: as given, else yesterday in `timezone_name`."""
        return self if self.end_date is not None else replace(self, end_date=yesterday(timezone_name, now))

    @property
    def last_date(self) -> date:
        """The last day with data (inclusive); raises ValueError before `resolved`."""
        if self.end_date is None:
            raise ValueError("DatagenParams.end_date is not fixed yet: call resolved(timezone) first")
        return self.end_date

    @property
    def start_date(self) -> date:
        """The first day with data (inclusive): `end_date - days + 1`."""
        return self.last_date - timedelta(days=self.days - 1)

    def to_json(self) -> dict[str, object]:
        return {**asdict(self), "end_date": self.last_date.isoformat()}


def generate(out: Path, params: DatagenParams = DatagenParams()) -> dict[str, int]:
    """Write the synthetic bank under `out` and return the row count of each table.

    Existing tables under `out` are replaced. The marker `out/_datagen.json` (parameters and
    row counts) is written last, so a present marker means a complete generation.
    Raises UsageError for parameters that cannot make a bank (too few customers or days).
    """
    params = params.resolved()
    if params.customers < 10 or params.merchants < 20 or params.days < 14:
        raise UsageError("datagen needs at least 10 customers, 20 merchants and 14 days; raise the flags")
    if params.customers * (params.days + 2) * US_PER_DAY >= 2**62:
        raise UsageError("datagen supports up to about 100,000 customers over 730 days; lower --customers or --days")
    tables = build_tables(params)
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).unlink(missing_ok=True)
    for name, table in tables.items():
        _write_table(out / name, table, by_month=name in ("card_transactions", "card_fraud_labels"))
    counts = {name: table.num_rows for name, table in tables.items()}
    marker = {"generator": GENERATOR_VERSION, "params": params.to_json(), "rows": counts}
    (out / MARKER).write_text(json.dumps(marker, indent=2, sort_keys=True) + "\n")
    return counts


def read_marker(out: Path) -> dict[str, object] | None:
    """The marker of a complete earlier generation under `out`, or None.

    Keys: `generator` (GENERATOR_VERSION), `params` (`DatagenParams.to_json()`), `rows`.
    """
    try:
        return json.loads((out / MARKER).read_text())  # type: ignore[no-any-return]
    except (OSError, ValueError):
        return None


def build_tables(params: DatagenParams) -> dict[str, pa.Table]:
    """Generate every table in memory (deterministic in `params`), keyed by source name."""
    params = params.resolved()
    rng = np.random.default_rng(params.seed)
    t0 = _micros(params.start_date)
    t_end = _micros(params.last_date + timedelta(days=1))
    cust = _customers(rng, params.customers, t0, t_end)
    acct = _accounts(rng, cust, t0, t_end)
    merch = _merchants(rng, params.merchants)
    attempts = _attempts(rng, cust, acct, merch, params, t0, t_end)
    _decide_outcomes(rng, attempts, cust, merch)
    return {
        "customers": cust["table"],
        "accounts": acct["table"],
        **_transaction_tables(rng, attempts, cust, acct, merch, t_end),
    }


# ---------------------------------------------------------------- customers and accounts


def _customers(rng: np.random.Generator, n: int, t0: int, t_end: int) -> dict[str, np.ndarray | pa.Table]:
    """Customers with a latent behaviour profile, and their change history table."""
    ids = np.array([f"C{i:07d}" for i in range(1, n + 1)], dtype=object)
    segment = rng.choice(len(SEGMENTS), size=n, p=SEGMENT_P)
    is_new = rng.random(n) < 0.15  # opened during the data period: low tenure, riskier
    years_back = rng.uniform(60 / 365, 15.0, size=n)
    opened = np.where(
        is_new,
        t0 + (rng.uniform(0, 1, n) * (t_end - t0 - 14 * US_PER_DAY)).astype(np.int64),
        t0 - (years_back * 365 * US_PER_DAY).astype(np.int64),
    )
    opened = opened // US_PER_SECOND * US_PER_SECOND
    income = np.round(np.array(SEGMENT_INCOME)[segment] * rng.lognormal(0.0, 0.35, n), 2)
    income_known = rng.random(n) >= 0.06
    birth_year = np.where(segment == 2, rng.integers(1998, 2007, n), rng.integers(1945, 2001, n))
    region = rng.choice(len(REGIONS), size=n, p=REGION_P)
    # Latent behaviour: how often and how much a customer spends (drives every feature).
    activity = rng.lognormal(np.log(0.3) - 0.32, 0.8, n) * np.array(SEGMENT_ACTIVITY)[segment]
    ticket = rng.lognormal(0.0, 0.35, n) * (np.array(SEGMENT_INCOME)[segment] / 2800.0) ** 0.25

    # History: the initial load (at the start of the period: exactly midnight) or the opening,
    # then a few changes; segment, income and region may change.
    first = np.maximum(opened, t0)
    n_changes = rng.poisson(0.8, n)
    owner = np.concatenate([np.arange(n), np.repeat(np.arange(n), n_changes)])
    when = np.concatenate([first, _uniform_between(rng, first[np.repeat(np.arange(n), n_changes)], t_end)])
    order = np.lexsort((when, owner))
    owner, when = owner[order], _strictly_increasing(owner[order], when[order])
    is_change = np.r_[False, owner[1:] == owner[:-1]]
    # A promotion (student → mass → affluent) or a move holds for the customer's later rows.
    promote = is_change & (rng.random(len(owner)) < 0.25)
    promoted = np.where(segment[owner] == 2, 0, np.where(segment[owner] == 0, 1, segment[owner]))
    seg_h = _carry_forward(np.where(promote, promoted, segment[owner]), promote | ~is_change)
    move = is_change & (rng.random(len(owner)) < 0.1)
    region_h = _carry_forward(np.where(move, rng.choice(len(REGIONS), len(owner), p=REGION_P), region[owner]),
                              move | ~is_change)
    income_h = np.round(income[owner] * np.where(is_change, rng.uniform(0.9, 1.3, len(owner)), 1.0), 2)
    table = pa.table(
        {
            "customer_id": pa.array(ids[owner], pa.string()),
            "segment": pa.array(np.array(SEGMENTS, dtype=object)[seg_h], pa.string()),
            "income": pa.array(income_h, pa.float64(), mask=~income_known[owner]),
            "birth_year": pa.array(birth_year[owner].astype(np.int32), pa.int32()),
            "region": pa.array(np.array(REGIONS, dtype=object)[region_h], pa.string()),
            "opened_at": pa.array(opened[owner], TS),
            "updated_at": pa.array(when, TS),
        },
        schema=SCHEMAS["customers"],
    )
    return {"ids": ids, "segment": segment, "opened": opened, "income": income, "is_new": is_new,
            "activity": activity, "ticket": ticket, "table": table}


def _accounts(rng: np.random.Generator, cust: dict, t0: int, t_end: int) -> dict[str, np.ndarray | pa.Table]:
    """One or two card accounts per customer, credit limits raised (sometimes cut) over time."""
    n = len(cust["ids"])
    second = rng.random(n) < 0.3
    owner = np.concatenate([np.arange(n), np.flatnonzero(second)])
    owner.sort(kind="stable")
    m = len(owner)
    ids = np.array([f"A{i:08d}" for i in range(1, m + 1)], dtype=object)
    is_second = np.r_[False, owner[1:] == owner[:-1]]
    c_open = cust["opened"][owner]
    opened = np.where(is_second, _uniform_between(rng, c_open, np.maximum(c_open + US_PER_DAY, t_end - 7 * US_PER_DAY)), c_open)
    opened = opened // US_PER_SECOND * US_PER_SECOND
    credit_p = np.where(np.isin(cust["segment"][owner], [1, 3, 4]), 0.75, 0.35)
    product = np.where(rng.random(m) < credit_p, rng.choice([1, 2, 3], m, p=[0.6, 0.3, 0.1]), 0)
    base_limit = np.round(cust["income"][owner] * rng.uniform(0.8, 2.5, m) * product / 100.0) * 100.0
    limit = np.where(product == 0, 0.0, np.maximum(base_limit, 500.0))

    first = np.maximum(opened, t0)
    n_changes = np.where(product > 0, rng.poisson(0.6, m), 0)
    row_acct = np.concatenate([np.arange(m), np.repeat(np.arange(m), n_changes)])
    when = np.concatenate([first, _uniform_between(rng, first[np.repeat(np.arange(m), n_changes)], t_end)])
    order = np.lexsort((when, row_acct))
    row_acct, when = row_acct[order], _strictly_increasing(row_acct[order], when[order])
    is_change = np.r_[False, row_acct[1:] == row_acct[:-1]]
    factor = np.where(is_change, np.where(rng.random(len(row_acct)) < 0.85, rng.uniform(1.1, 1.6, len(row_acct)), 0.7), 1.0)
    # Each change multiplies the previous limit: a cumulative product within the account.
    log_f = np.log(factor)
    cum = np.cumsum(log_f)
    start_idx = np.flatnonzero(~is_change)
    group_base = np.repeat(cum[start_idx] - log_f[start_idx], np.diff(np.r_[start_idx, len(row_acct)]))
    limit_h = np.round(limit[row_acct] * np.exp(cum - group_base) / 100.0) * 100.0
    table = pa.table(
        {
            "account_id": pa.array(ids[row_acct], pa.string()),
            "customer_id": pa.array(cust["ids"][owner[row_acct]], pa.string()),
            "product": pa.array(np.array(PRODUCTS, dtype=object)[product[row_acct]], pa.string()),
            "credit_limit": pa.array(limit_h, pa.float64()),
            "opened_at": pa.array(opened[row_acct], TS),
            "updated_at": pa.array(when, TS),
        },
        schema=SCHEMAS["accounts"],
    )
    # Per customer: first account (open since the customer opened) and an optional second one.
    first_acct = np.zeros(n, dtype=np.int64)
    first_acct[owner[~is_second][::-1]] = np.flatnonzero(~is_second)[::-1]
    second_acct = np.full(n, -1, dtype=np.int64)
    second_acct[owner[is_second]] = np.flatnonzero(is_second)
    return {"ids": ids, "opened": opened, "first": first_acct, "second": second_acct, "table": table}


def _merchants(rng: np.random.Generator, m: int) -> dict[str, np.ndarray]:
    """Merchants with a category, a popularity and (for a few) a risky flag."""
    share = np.array([c[1] for c in MCCS])
    cat = rng.choice(len(MCCS), size=m, p=share / share.sum())
    affinity = np.array([c[4] for c in MCCS])[cat]
    risky = rng.random(m) < 0.06 * affinity / affinity.mean()
    risky[np.argsort(-affinity * rng.random(m))[:2]] = True  # always a few risky merchants
    popularity = 1.0 / (1.0 + rng.permutation(m)) ** 0.9
    popularity = np.where(risky, popularity * 0.4, popularity)
    return {
        "ids": np.array([f"M{i:05d}" for i in range(1, m + 1)], dtype=object),
        "mcc": np.array([c[0] for c in MCCS], dtype=object)[cat],
        "ticket": np.array([c[2] for c in MCCS])[cat] * rng.lognormal(0.0, 0.25, m),
        "ecom": np.array([c[3] for c in MCCS])[cat],
        "risky": risky,
        "p": popularity / popularity.sum(),
        "subscription": np.flatnonzero(np.array([c[0] for c in MCCS])[cat] == SUBSCRIPTION_MCC),
    }


# ---------------------------------------------------------------- transactions


def _attempts(rng: np.random.Generator, cust: dict, acct: dict, merch: dict, params: DatagenParams,
              t0: int, t_end: int) -> dict[str, np.ndarray]:
    """Every card authorisation attempt: everyday spend, subscriptions and fraud bursts."""
    n = len(cust["ids"])
    days = params.days
    day_w = WEEKDAY_WEIGHTS[[(params.start_date + timedelta(days=d)).weekday() for d in range(days)]]
    day_w = day_w * (1.0 + 0.1 * np.sin(np.arange(days) / 30.4 * 2 * np.pi))  # pay-day month cycle
    first_day = np.clip((cust["opened"] - t0) // US_PER_DAY + 1, 0, days - 1)  # the day after opening
    active = days - first_day

    # Everyday spend: a Poisson count per customer, days by weekday weight, hours by daily shape.
    count = rng.poisson(cust["activity"] * active)
    c = np.repeat(np.arange(n), count)
    cdf = np.r_[0.0, np.cumsum(day_w)]
    lo, hi = cdf[first_day[c]], cdf[days]
    day = np.searchsorted(cdf, lo + rng.random(len(c)) * (hi - lo), side="right") - 1
    ts = t0 + day * US_PER_DAY + _time_of_day(rng, len(c), HOUR_WEIGHTS)
    favourites = rng.choice(len(merch["ids"]), size=(n, 10), p=merch["p"])
    merchant = np.where(rng.random(len(c)) < 0.65, favourites[c, rng.integers(0, 10, len(c))],
                        rng.choice(len(merch["ids"]), size=len(c), p=merch["p"]))
    ecom = rng.random(len(c)) < merch["ecom"][merchant]
    channel = np.where(ecom, 2, rng.integers(0, 2, len(c)))
    amount = cust["ticket"][c] * merch["ticket"][merchant] * rng.lognormal(0.0, 0.55, len(c))
    parts = [dict(c=c, ts=ts, m=merchant, ch=channel, amt=amount, fraud=np.zeros(len(c), bool))]

    # Subscriptions: a fixed price billed monthly at exactly 00:00:00 on the customer's billing day.
    subs = np.flatnonzero(rng.random(n) < 0.25) if len(merch["subscription"]) else np.array([], int)
    sub_m = rng.choice(merch["subscription"], len(subs)) if len(subs) else np.array([], int)
    sub_price = rng.choice(SUBSCRIPTION_PRICES, len(subs))
    sub_day = rng.integers(1, 29, len(subs))
    months = _month_starts(params.start_date, params.last_date)
    sc, sts, sm, samt = [], [], [], []
    for month in months:
        billed = t0 + (np.array([(date(month.year, month.month, int(d)) - params.start_date).days for d in sub_day],
                                dtype=np.int64) * US_PER_DAY) if len(subs) else np.array([], np.int64)
        ok = (billed >= np.maximum(cust["opened"][subs], t0)) & (billed < t_end)
        sc.append(subs[ok]); sts.append(billed[ok]); sm.append(sub_m[ok]); samt.append(sub_price[ok])
    sc_a = np.concatenate(sc) if sc else np.array([], int)
    parts.append(dict(c=sc_a, ts=np.concatenate(sts) if sts else np.array([], np.int64),
                      m=np.concatenate(sm) if sm else np.array([], int), ch=np.full(len(sc_a), 3),
                      amt=np.concatenate(samt) if samt else np.array([]), fraud=np.zeros(len(sc_a), bool)))

    # Fraud bursts: a compromised card sees a handful of attempts within hours to days, at
    # night, online, at risky merchants, for several times the customer's usual ticket.
    risk = np.where(cust["is_new"], 3.0, 1.0) * np.where(cust["segment"] == 2, 1.5, 1.0)
    victims = np.flatnonzero(rng.random(n) < 0.03 * risk * days / 180)
    k = 2 + rng.poisson(4, len(victims))
    fc = np.repeat(victims, k)
    start_day = first_day[victims] + (rng.random(len(victims)) * active[victims]).astype(np.int64)
    start = t0 + start_day * US_PER_DAY + _time_of_day(rng, len(victims), FRAUD_HOUR_WEIGHTS)
    span = rng.uniform(2, 72, len(victims)) * US_PER_HOUR
    offset = rng.random(len(fc)) * np.repeat(span / k, k) * rng.exponential(1.0, len(fc))
    within = np.arange(len(fc)) - np.repeat(np.cumsum(k) - k, k)
    fts = (np.repeat(start, k) + np.repeat(span / k, k) * within + offset).astype(np.int64)
    risky_ids = np.flatnonzero(merch["risky"])
    fm = np.where(rng.random(len(fc)) < 0.6, rng.choice(risky_ids, len(fc)),
                  rng.choice(len(merch["ids"]), len(fc), p=merch["p"]))
    fch = np.where(rng.random(len(fc)) < 0.75, 2, rng.integers(0, 2, len(fc)))
    famt = cust["ticket"][fc] * merch["ticket"][fm] * rng.lognormal(np.log(4.0), 0.6, len(fc))
    keep = fts < t_end
    parts.append(dict(c=fc[keep], ts=fts[keep], m=fm[keep], ch=fch[keep], amt=famt[keep],
                      fraud=np.ones(int(keep.sum()), bool)))

    a = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
    a["ts"] = a["ts"].astype(np.int64) // US_PER_SECOND * US_PER_SECOND  # whole seconds, as processors send
    a["amt"] = np.maximum(np.round(a["amt"], 2), 0.5)
    # The card used: the second account when it exists and was open, else the first.
    use_second = (acct["second"][a["c"]] >= 0) & (rng.random(len(a["c"])) < 0.4)
    second_open = acct["opened"][np.maximum(acct["second"][a["c"]], 0)] <= a["ts"]
    a["acct"] = np.where(use_second & second_open, acct["second"][a["c"]], acct["first"][a["c"]])
    order = np.lexsort((a["m"], a["c"], a["ts"]))
    return {key: value[order] for key, value in a.items()}


def _decide_outcomes(rng: np.random.Generator, a: dict[str, np.ndarray], cust: dict, merch: dict) -> None:
    """Add `fraud` for everyday attempts, then `declined`, from the attempt's behaviour."""
    n = len(a["c"])
    usual = cust["ticket"][a["c"]] * USUAL_TICKET  # the customer's usual ticket, whatever the merchant
    ratio = np.log(np.maximum(a["amt"] / usual, 1.0))
    hour = (a["ts"] // US_PER_HOUR) % 24
    night = hour < 6
    ecom = a["ch"] == 2
    risky = merch["risky"][a["m"]]
    new = (a["ts"] - cust["opened"][a["c"]]) < 90 * US_PER_DAY
    # A burst: how many attempts the same customer made in the 24 hours before this one.
    by_cust = np.lexsort((a["ts"], a["c"]))
    since = a["ts"] - a["ts"].min() if n else a["ts"]
    span = int(since.max()) + 48 * US_PER_HOUR if n else 1  # customer c owns keys [c*span, (c+1)*span)
    key = a["c"][by_cust] * span + since[by_cust]  # sorted: by customer, then time
    burst = np.empty(n, np.int64)
    burst[by_cust] = np.arange(n) - np.searchsorted(key, key - 24 * US_PER_HOUR, side="right")
    logit = (-7.6 + 2.2 * risky + 1.0 * ecom + 1.5 * night + 1.3 * new + 0.9 * ratio
             + 0.45 * np.minimum(burst, 6))
    everyday = a["ch"] != 3
    a["fraud"] = a["fraud"] | (everyday & (rng.random(n) < _sigmoid(logit)))
    d_logit = -3.7 + 2.3 * risky + 2.0 * a["fraud"] + 0.9 * (ratio > np.log(3.0)) + 0.4 * ecom
    a["declined"] = rng.random(n) < _sigmoid(d_logit)


def _transaction_tables(rng: np.random.Generator, a: dict[str, np.ndarray], cust: dict, acct: dict,
                        merch: dict, t_end: int) -> dict[str, pa.Table]:
    """card_transactions (attempts + later chargebacks) and the card_fraud_labels spine."""
    n = len(a["c"])
    txn_ids = np.array([f"T{i:010d}" for i in range(1, n + 1)], dtype=object)
    currency = np.where(rng.random(n) < 0.03 * (1 + 5 * (a["ch"] == 2)), rng.integers(1, 3, n), 0)
    settled = ~a["declined"]
    p_cb = np.where(a["fraud"], 0.75, np.where(merch["risky"][a["m"]], 0.04, 0.002))
    cb = np.flatnonzero(settled & (rng.random(n) < p_cb))
    cb_ts = a["ts"][cb] + ((3 + rng.gamma(2.0, 10.0, len(cb))) * US_PER_DAY).astype(np.int64)
    cb_ts = cb_ts // US_PER_SECOND * US_PER_SECOND
    cb, cb_ts = cb[cb_ts < t_end], cb_ts[cb_ts < t_end]  # not yet posted at the end of the data

    rows = np.concatenate([np.arange(n), cb])
    status = np.concatenate([np.where(settled, 0, 1), np.full(len(cb), 2)])
    event_ts = np.concatenate([a["ts"], cb_ts])
    order = np.lexsort((status, rows, event_ts))
    rows, status, event_ts = rows[order], status[order], event_ts[order]
    events = pa.table(
        {
            "txn_id": pa.array(txn_ids[rows], pa.string()),
            "customer_id": pa.array(cust["ids"][a["c"][rows]], pa.string()),
            "account_id": pa.array(acct["ids"][a["acct"][rows]], pa.string()),
            "merchant_id": pa.array(merch["ids"][a["m"][rows]], pa.string()),
            "mcc": pa.array(merch["mcc"][a["m"][rows]], pa.string()),
            "amount": pa.array(a["amt"][rows], pa.float64()),
            "currency": pa.array(np.array(CURRENCIES, dtype=object)[currency[rows]], pa.string()),
            "channel": pa.array(np.array(CHANNELS, dtype=object)[a["ch"][rows]], pa.string()),
            "status": pa.array(np.array(STATUSES, dtype=object)[status], pa.string()),
            "event_ts": pa.array(event_ts, TS),
        },
        schema=SCHEMAS["card_transactions"],
    )
    s = np.flatnonzero(settled)
    labels = pa.table(
        {
            "txn_id": pa.array(txn_ids[s], pa.string()),
            "customer_id": pa.array(cust["ids"][a["c"][s]], pa.string()),
            "merchant_id": pa.array(merch["ids"][a["m"][s]], pa.string()),
            "account_id": pa.array(acct["ids"][a["acct"][s]], pa.string()),
            "ts": pa.array(a["ts"][s], TS),
            "amount": pa.array(a["amt"][s], pa.float64()),
            "is_fraud": pa.array(a["fraud"][s].astype(np.int32), pa.int32()),
        },
        schema=SCHEMAS["card_fraud_labels"],
    )
    return {"card_transactions": events, "card_fraud_labels": labels}


# ---------------------------------------------------------------- helpers


def _write_table(directory: Path, table: pa.Table, *, by_month: bool) -> None:
    """Replace `directory` with the table as Parquet: one file, or one file per month."""
    if directory.exists():
        for old in directory.glob("*.parquet"):
            old.unlink()
    directory.mkdir(parents=True, exist_ok=True)
    if not by_month:
        pq.write_table(table, directory / "part-0.parquet", compression="snappy")
        return
    ts_col = "event_ts" if "event_ts" in table.column_names else "ts"
    micros = table.column(ts_col).cast(pa.int64()).to_numpy()
    month = micros.astype("datetime64[us]").astype("datetime64[M]")
    for value in np.unique(month):
        part = table.filter(pa.array(month == value))
        pq.write_table(part, directory / f"part-{str(value)}.parquet", compression="snappy")


def _micros(day: date) -> int:
    """Microseconds since the epoch of `day` 00:00 UTC."""
    return int(datetime(day.year, day.month, day.day, tzinfo=timezone.utc).timestamp()) * US_PER_SECOND


def _time_of_day(rng: np.random.Generator, size: int, weights: np.ndarray) -> np.ndarray:
    """Microseconds after midnight, with hours drawn from `weights` and seconds uniform."""
    hour = rng.choice(24, size=size, p=weights / weights.sum())
    return hour * US_PER_HOUR + rng.integers(0, 3600, size) * US_PER_SECOND


def _uniform_between(rng: np.random.Generator, lo: np.ndarray, hi: np.ndarray | int) -> np.ndarray:
    """A uniform instant in `[lo, hi)` per element, in whole seconds."""
    width = np.maximum(np.asarray(hi) - lo, US_PER_SECOND)
    return (lo + (rng.random(len(lo)) * width).astype(np.int64)) // US_PER_SECOND * US_PER_SECOND


def _carry_forward(values: np.ndarray, is_set: np.ndarray) -> np.ndarray:
    """Each row takes the value of the latest row at or before it where `is_set` is True."""
    source = np.maximum.accumulate(np.where(is_set, np.arange(len(values)), 0))
    return values[source]


def _strictly_increasing(group: np.ndarray, when: np.ndarray) -> np.ndarray:
    """Nudge equal instants within a group (sorted by group, when) a second apart."""
    when = when.copy()
    for _ in range(5):
        clash = np.flatnonzero((group[1:] == group[:-1]) & (when[1:] <= when[:-1])) + 1
        if not len(clash):
            break
        when[clash] = when[clash - 1] + US_PER_SECOND
    return when


def _month_starts(start: date, end: date) -> list[date]:
    months, d = [], date(start.year, start.month, 1)
    while d <= end:
        months.append(d)
        d = date(d.year + (d.month == 12), d.month % 12 + 1, 1)
    return months


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def main(argv: list[str] | None = None) -> int:
    """`python -m featurebank_demo.datagen`: generate the synthetic bank and print row counts."""
    parser = argparse.ArgumentParser(prog="python -m featurebank_demo.datagen", description=__doc__.splitlines()[0])
    defaults = DatagenParams()
    parser.add_argument("--out", type=Path, required=True, help="raw root to write the sources under")
    parser.add_argument("--customers", type=int, default=defaults.customers)
    parser.add_argument("--merchants", type=int, default=defaults.merchants)
    parser.add_argument("--days", type=int, default=defaults.days)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--end-date", type=date.fromisoformat, default=None,
                        help="last day with data, YYYY-MM-DD (default: yesterday in --timezone)")
    parser.add_argument("--timezone", default="UTC", help="the project time zone --end-date defaults in (default: UTC)")
    args = parser.parse_args(argv)
    params = DatagenParams(customers=args.customers, merchants=args.merchants, days=args.days,
                           end_date=args.end_date, seed=args.seed).resolved(args.timezone)
    try:
        counts = generate(args.out, params)
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for name, rows in counts.items():
        print(f"{name:>20}: {rows:>9,} rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
