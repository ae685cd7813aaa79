"""The benchmark's data: card transactions and a training-set spine, generated once per scale.

Deterministic (fixed seed; the same scale gives byte-identical files), numpy + pyarrow only,
so generating 10 million transactions takes seconds, not a Spark job. The columns and types
are exactly those `features/sources.yaml` declares for `card_transactions`.

Layout under `bench/data/scale-<S>/` (git-ignored):
    raw/card_transactions/part-NNN.parquet   events sorted by event_ts, ~one file per month
    spine.parquet                             row_id, customer_id, ts, label
    workload.json                             the parameters (a rerun with the same ones reuses the files)

Time: events cover the 400 days `[data_start, end_exclusive)` in UTC. The backfill computes the
365 snapshot dates `[end_exclusive - 365, end_exclusive - 1]`; the incremental run computes the
snapshot date `end_exclusive` (whose windows end at the last generated day); the spine's
timestamps fall inside the backfill's dates.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

BENCH_DIR = Path(__file__).resolve().parent
DATA_DIR = BENCH_DIR / "data"
GENERATOR_VERSION = 1  # bump when the generated data changes, so cached files are rebuilt

FULL_CUSTOMERS = 100_000
FULL_TRANSACTIONS = 10_000_000
FULL_SPINE_ROWS = 1_000_000
DAYS = 400
BACKFILL_DATES = 365
END_EXCLUSIVE = date(2025, 1, 1)
SEED = 20240607

CHANNELS = ("pos", "contactless", "ecom", "atm")
STATUSES = ("SETTLED", "DECLINED", "CHARGEBACK")
MCCS = ("5411", "5812", "5814", "5912", "5999", "4111", "5541", "5732", "7011", "4814", "5311", "5691")
DAY_US = 86_400_000_000


@dataclass(frozen=True)
class Workload:
    """One generated data set: its size, its time range and where its files are."""

    scale: float
    customers: int
    transactions: int
    merchants: int
    spine_rows: int
    data_start: date
    end_exclusive: date
    root: str

    @property
    def events_path(self) -> Path:
        return Path(self.root) / "raw" / "card_transactions"

    @property
    def spine_path(self) -> Path:
        return Path(self.root) / "spine.parquet"

    @property
    def backfill_start(self) -> date:
        return self.end_exclusive - timedelta(days=BACKFILL_DATES)

    @property
    def backfill_end(self) -> date:
        return self.end_exclusive - timedelta(days=1)

    @property
    def incremental_date(self) -> date:
        """The 'new day' of the incremental scenario: its windows end at the last event day."""
        return self.end_exclusive

    def sample_dates(self, n: int) -> list[date]:
        """`n` evenly spaced snapshot dates of the backfill range, first and last included."""
        n = max(1, min(n, BACKFILL_DATES))
        if n == 1:
            return [self.backfill_end]
        step = (BACKFILL_DATES - 1) / (n - 1)
        return sorted({self.backfill_start + timedelta(days=round(i * step)) for i in range(n)})


def workload_for(scale: float, data_dir: Path = DATA_DIR) -> Workload:
    """The workload parameters for `scale` (1.0 = 100k customers, 10M transactions, 1M spine rows)."""
    if scale <= 0:
        raise ValueError(f"--scale must be positive, got {scale}")
    customers = max(50, round(FULL_CUSTOMERS * scale))
    return Workload(
        scale=scale,
        customers=customers,
        transactions=max(5_000, round(FULL_TRANSACTIONS * scale)),
        merchants=max(200, round(10_000 * scale**0.5)),
        spine_rows=max(1_000, round(FULL_SPINE_ROWS * scale)),
        data_start=END_EXCLUSIVE - timedelta(days=DAYS),
        end_exclusive=END_EXCLUSIVE,
        root=str(data_dir / f"scale-{scale:g}"),
    )


def ensure_workload(scale: float | Workload, data_dir: Path = DATA_DIR, log=print,
                    spine_days: int = BACKFILL_DATES) -> Workload:
    """Generate the workload for `scale` (or exactly `scale` when it is a Workload, e.g.
    bench.small's) unless the same parameters are already on disk. The spine's instants fall in
    the last `spine_days` snapshot dates."""
    wl = scale if isinstance(scale, Workload) else workload_for(scale, data_dir)
    marker = Path(wl.root) / "workload.json"
    wanted = {**asdict(wl), "generator_version": GENERATOR_VERSION, "seed": SEED}
    if spine_days != BACKFILL_DATES:
        wanted["spine_days"] = spine_days
    wanted = json.loads(json.dumps(wanted, default=str))
    if marker.exists() and json.loads(marker.read_text()) == wanted:
        return wl
    log(f"generating workload: {wl.customers:,} customers, {wl.transactions:,} transactions, "
        f"{wl.spine_rows:,} spine rows -> {wl.root}")
    if Path(wl.root).exists():
        shutil.rmtree(wl.root)
    rng = np.random.default_rng(SEED)
    write_transactions(generate_transactions(wl, rng), wl.events_path)
    pq.write_table(generate_spine(wl, rng, spine_days), wl.spine_path, row_group_size=250_000)
    marker.write_text(json.dumps(wanted, indent=2) + "\n")
    return wl


def _ids(prefix: str, numbers: np.ndarray, width: int) -> pa.Array:
    """'c0000042'-style identifiers, built in Arrow (fast at 10M rows)."""
    digits = pc.utf8_lpad(pc.cast(pa.array(numbers), pa.string()), width=width, padding="0")
    return pc.binary_join_element_wise(pa.scalar(prefix), digits, "")


def generate_transactions(wl: Workload, rng: np.random.Generator) -> pa.Table:
    """Card events with skewed activity per customer, favourite merchants, a daily rhythm
    (quiet nights, lunch and evening peaks), weekly seasonality and some events exactly at
    midnight. Sorted by event_ts."""
    n = wl.transactions
    # Heavy-tailed activity: a few customers transact a lot, many rarely.
    weights = rng.lognormal(mean=0.0, sigma=1.0, size=wl.customers)
    customer = rng.choice(wl.customers, size=n, p=weights / weights.sum()).astype(np.int64)

    day_weights = np.array([1.0, 1.0, 1.05, 1.1, 1.3, 1.4, 0.8])[
        (np.arange(DAYS) + wl.data_start.weekday()) % 7
    ]
    day = rng.choice(DAYS, size=n, p=day_weights / day_weights.sum()).astype(np.int64)
    hour_weights = np.array([1, 0.5, 0.3, 0.2, 0.2, 0.4, 1, 2, 3, 3, 3, 4, 6, 6, 4, 3, 3, 4, 6, 7, 6, 4, 3, 2], float)
    hour = rng.choice(24, size=n, p=hour_weights / hour_weights.sum()).astype(np.int64)
    micros = hour * 3_600_000_000 + rng.integers(0, 3_600_000_000, size=n)
    micros[rng.random(n) < 0.005] = 0  # exactly at midnight: belongs to the next snapshot
    start_us = int(datetime(wl.data_start.year, wl.data_start.month, wl.data_start.day,
                            tzinfo=timezone.utc).timestamp() * 1_000_000)
    event_us = start_us + day * DAY_US + micros

    # Favourite merchants: a customer mostly returns to a few, sometimes tries a new one.
    rank = np.minimum(rng.geometric(p=0.12, size=n), 200).astype(np.int64)
    merchant = (customer * 7919 + rank * 104_729) % wl.merchants
    amount = np.round(rng.lognormal(mean=3.4, sigma=1.0, size=n), 2)
    status = rng.choice(3, size=n, p=[0.93, 0.05, 0.02])
    channel = rng.choice(len(CHANNELS), size=n, p=[0.45, 0.3, 0.2, 0.05])

    order = np.argsort(event_us, kind="stable")
    customer, merchant, event_us = customer[order], merchant[order], event_us[order]
    amount, status, channel = amount[order], status[order], channel[order]
    account = customer * 2 + (rank[order] % 2)

    return pa.table({
        "txn_id": _ids("t", np.arange(n, dtype=np.int64), 9),
        "customer_id": _ids("c", customer, 7),
        "account_id": _ids("a", account, 8),
        "merchant_id": _ids("m", merchant, 6),
        "mcc": pa.DictionaryArray.from_arrays(pa.array(merchant % len(MCCS)), pa.array(MCCS)).cast(pa.string()),
        "amount": pa.array(amount, pa.float64()),
        "currency": pa.array(np.full(n, "EUR")),
        "channel": pa.DictionaryArray.from_arrays(pa.array(channel), pa.array(CHANNELS)).cast(pa.string()),
        "status": pa.DictionaryArray.from_arrays(pa.array(status), pa.array(STATUSES)).cast(pa.string()),
        "event_ts": pa.array(event_us, pa.timestamp("us", tz="UTC")),
    })


def write_transactions(table: pa.Table, path: Path, files: int = 14) -> None:
    """A few Parquet files (about one per month), each with row groups small enough that a
    reader restricted to an event-time range skips the rest by their min/max statistics."""
    path.mkdir(parents=True, exist_ok=True)
    per_file = -(-table.num_rows // files)
    for i in range(files):
        part = table.slice(i * per_file, per_file)
        if part.num_rows:
            pq.write_table(part, path / f"part-{i:03d}.parquet", row_group_size=128_000)


def generate_spine(wl: Workload, rng: np.random.Generator, days: int = BACKFILL_DATES) -> pa.Table:
    """Training-set spine: row_id, customer_id, ts (instants inside the last `days` of the
    backfill's dates), label."""
    n = wl.spine_rows
    customer = rng.integers(0, wl.customers, size=n)
    first = wl.end_exclusive - timedelta(days=days)
    first_us = int(datetime(first.year, first.month, first.day, tzinfo=timezone.utc).timestamp() * 1_000_000)
    ts = first_us + rng.integers(0, days * DAY_US, size=n)
    at_midnight = rng.random(n) < 0.01  # exactly at midnight: uses that date's snapshot
    ts[at_midnight] = first_us + rng.integers(0, days, size=int(at_midnight.sum())) * DAY_US
    return pa.table({
        "row_id": pa.array(np.arange(n, dtype=np.int64)),
        "customer_id": _ids("c", customer, 7),
        "ts": pa.array(ts, pa.timestamp("us", tz="UTC")),
        "label": pa.array((rng.random(n) < 0.02).astype(np.int32)),
    })
