"""The backfill's window kernel (engine/kernel.py) against brute force, in plain Python (no JVM).

Random sorted tiles of entities with NULL keys, gaps longer than the largest window, decimal
day totals next to the 128-bit and 10^37 limits with both signs, doubles with NaN and NULL,
and latest-value structs; the same tiles are fed in Arrow batches of 1, 3 and 7 rows and in one,
with blocks cut after every entity and never, so an entity spans batches and blocks. Every
snapshot row and read must equal the brute force's: exact window totals as Python integers
(NULL past 10^37), extremes by Spark's order (NaN above every number), the latest non-NULL
tile before D.
"""

from __future__ import annotations

import math
import random
from decimal import Context, Decimal

import pyarrow as pa
import pytest

from featurebank.aggregators.base import Read
from featurebank.engine import kernel

MAX_WINDOW = 9
START, END = 20, 60
READS = (
    Read("n_3", "count", ("n",), 3), Read("n_9", "count", ("n",), 9),
    Read("s_1", "total", ("s",), 1, 18), Read("s_9", "total", ("s",), 9, 18),
    Read("d_1", "double", ("s",), 1, 18), Read("d_9", "double", ("s",), 9, 18),
    Read("hi_4", "largest", ("x",), 4), Read("lo_4", "smallest", ("x",), 4), Read("lo_9", "smallest", ("word",), 9),
    Read("last", "latest", ("last",)),
)
LIMIT = 10**37
BIG = 10**38 - 1  # the largest unscaled decimal(38, 18) day total
EXACT = Context(prec=80)


def random_tiles(seed: int) -> list[dict]:
    rng = random.Random(seed)
    tiles = []
    for key in (None, "a", "b", "c", "d", "e"):
        day = rng.randrange(0, 15)
        for _ in range(rng.randrange(1, 25)):
            total = rng.choice([0, 1, -1, BIG, -BIG, LIMIT - 1, -(LIMIT - 1), 5 * 10**36, rng.randrange(-10**20, 10**20),
                                rng.randrange(-10**9, 10**9) * 10**16, rng.randrange(-10**12, 10**12) * 10**13,
                                (2**53 + rng.randrange(-3, 3)) * 10**rng.choice([0, 9, 18])])
            x = rng.choice([None, math.nan, -1.5, 0.0, 2.25, 1e300, -1e300, 7.0])
            word = rng.choice([None, "", "a", "ab", "b", "é"])
            last = None if x is None else {"day": day, "v": x}
            tiles.append({"k": key, "day": day, "n": rng.randrange(0, 4), "s": Decimal(f"{total}E-18"),
                          "x": x, "word": word, "last": last})
            day += rng.choice([1, 1, 2, 3, MAX_WINDOW, MAX_WINDOW + 1, MAX_WINDOW + 7])
    return tiles


SCHEMA = pa.schema([("k", pa.string()), ("day", pa.int32()), ("n", pa.int64()), ("s", pa.decimal128(38, 18)),
                    ("x", pa.float64()), ("word", pa.string()),
                    ("last", pa.struct([("day", pa.int32()), ("v", pa.float64())]))])


def spark_order(value: float) -> tuple[int, float]:
    return (1, 0.0) if math.isnan(value) else (0, value)


def brute_force(tiles: list[dict]) -> list[tuple]:
    rows = []
    for key in dict.fromkeys(t["k"] for t in tiles):
        mine = [t for t in tiles if t["k"] == key]
        for d in range(START, END + 1):
            if not any(d - MAX_WINDOW <= t["day"] < d for t in mine):
                continue

            def inside(w: int) -> list[dict]:
                return [t for t in mine if d - w <= t["day"] < d]

            row = [key, d]
            for read in READS:
                window = inside(read.window)
                if read.op == "count":
                    row.append(sum(t["n"] for t in window))
                elif read.op in ("total", "double"):
                    total = sum(int(t["s"].scaleb(18, context=EXACT)) for t in window)
                    exact = Decimal(f"{total}E-18")
                    fits = abs(total) < LIMIT
                    row.append((exact if read.op == "total" else float(exact)) if fits else None)
                elif read.op in ("largest", "smallest"):
                    column = read.tiles[0]
                    values = [t[column] for t in window if t[column] is not None]
                    pick = max if read.op == "largest" else min
                    row.append(pick(values, key=spark_order if column == "x" else None) if values else None)
                else:
                    before = [t for t in mine if t["day"] < d and t["last"] is not None]
                    row.append(before[-1]["last"] if before else None)
            rows.append(tuple(row))
    return rows


def comparable(rows: list[tuple]) -> list[tuple]:
    """NaN equal to NaN (in structs too), Decimals by value."""
    def plain(v):  # noqa: ANN001, ANN202
        if isinstance(v, dict):
            return tuple((k, plain(x)) for k, x in v.items())
        return "NaN" if isinstance(v, float) and math.isnan(v) else v

    return [tuple(plain(v) for v in r) for r in rows]


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("batch_rows", [1, 3, 7, None])
@pytest.mark.parametrize("block_tiles", [1, 10, kernel.BLOCK_TILES])
def test_every_snapshot_row_and_read_equals_brute_force_however_the_tiles_are_batched(monkeypatch, seed, batch_rows, block_tiles):
    tiles = random_tiles(seed)
    table = pa.Table.from_pylist(tiles, schema=SCHEMA)
    batches = table.to_batches(max_chunksize=batch_rows) if batch_rows else table.combine_chunks().to_batches()
    monkeypatch.setattr(kernel, "BLOCK_TILES", block_tiles)
    spec = kernel.Spec(("k",), MAX_WINDOW, START, END, READS)
    out = pa.Table.from_batches(list(kernel.roll_partition(spec, iter(batches))))
    assert out.column_names == ["k", "D", *[r.name for r in READS]]
    assert out.schema.field("s_9").type == pa.decimal128(37, 18)
    got = [tuple(r.values()) for r in out.to_pylist()]
    assert comparable(got) == comparable(brute_force(tiles))
    named = {r.name: i + 2 for i, r in enumerate(READS)}
    assert any(r[named["s_9"]] is None for r in got)  # some 9-day totals leave the range
    assert any(isinstance(r[named["hi_4"]], float) and math.isnan(r[named["hi_4"]]) for r in got)  # NaN is a largest
    doubles = [r[named["d_9"]] for r in got if r[named["d_9"]] is not None]
    assert any(d != int(d) and abs(d) > 1e6 for d in doubles)  # totals with cents, not only whole numbers


def test_no_tiles_give_no_rows() -> None:
    spec = kernel.Spec(("k",), MAX_WINDOW, START, END, READS)
    assert list(kernel.roll_partition(spec, iter([]))) == []
    empty = pa.Table.from_pylist([], schema=SCHEMA).to_batches()
    assert list(kernel.roll_partition(spec, iter(empty))) == []


def test_totals_round_to_the_nearest_double_as_sparks_decimal_cast_does() -> None:
    """`double`: every exact total rounded once (ties to even), the fast path (at most 15
    significant digits) and Python's alike, against `float(Decimal)` (correctly rounded, as
    java.math.BigDecimal.doubleValue behind Spark's cast is): ties, 2^53 neighbours, cents."""
    rng = random.Random(7)
    totals = [0, 1, -1, 5, 10**18, -(10**18), 2**53 * 10**18, (2**53 + 1) * 10**18, (2**53 + 1) * 10**17, LIMIT - 1]
    totals += [rng.randrange(-10**9, 10**9) * 10**16 for _ in range(3000)]  # money: cents
    totals += [rng.randrange(-10**15, 10**15) * 10**rng.randrange(0, 19) for _ in range(3000)]
    totals += [rng.randrange(-10**k, 10**k) for k in (17, 19, 25, 36) for _ in range(500)]  # long digit strings
    totals += [(2 * rng.randrange(2**52, 2**53) + 1) * 2**e * 10**18 // 2**19 for e in range(0, 19)]  # near ties
    totals = [t for t in totals if abs(t) < LIMIT]
    tiles = [{"k": f"e{i}", "day": START - 1, "n": 1, "s": Decimal(f"{t}E-18"), "x": None, "word": None, "last": None}
             for i, t in enumerate(totals)]
    spec = kernel.Spec(("k",), 1, START, START, (Read("d", "double", ("s",), 1, 18),))
    batches = pa.Table.from_pylist(tiles, schema=SCHEMA).to_batches()
    out = pa.Table.from_batches(list(kernel.roll_partition(spec, iter(batches))))
    got = dict(zip(out.column("k").to_pylist(), out.column("d").to_pylist()))
    wrong = [(t, got[f"e{i}"], float(Decimal(f"{t}E-18"))) for i, t in enumerate(totals)
             if got[f"e{i}"] != float(Decimal(f"{t}E-18"))]
    assert not wrong, wrong[:5]
