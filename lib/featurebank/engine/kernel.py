"""The backfill's window kernel: an entity's daily tiles → every snapshot row's window reads, vectorised.

engine/aggregate.py's backfill path hands this module the daily tiles (one row per (keys, day),
the partials each aggregation's [update] and [annotate] phases made), hash-partitioned by the
keys and sorted by (keys, day) within each partition, through `DataFrame.mapInArrow`. Here,
per block of a few hundred thousand tiles (whole entities only; an entity never spans two
partitions), numpy computes what each aggregation declares it reads (`aggregators.Read`):

- the snapshot rows: an entity has a row on day D exactly when one of its tiles lies in
  `[D - max_window, D)` (SPEC), clipped to the run's dates;
- per row and window w, the tiles inside `[D - w, D)` are an index range `[lo, hi)` of the
  sorted tiles (`searchsorted`), so a window total is a difference of prefix sums over the
  tiles: BIGINT counts in int64, and exact decimal day totals as four 32-bit limbs in int64
  (exact: a limb sum stays below 2^63 for any block under 2^31 tiles), recombined into the
  128-bit `decimal(37, s)` Spark reads, NULL when it does not fit (finalize then fails the run
  with the contract's sentence). No running total is ever rounded or bounded: a window's total
  is the exact sum of its days, whatever came before it;
- the window's largest / smallest value: range maxima over the tiles' ranks (Arrow's dense
  rank, ascending, NaN above every number as in Spark), by a sparse table, the value taken
  from the tile that holds it, so its bytes are the tile's;
- the latest non-NULL tile before D (`last`), and distinct counts from the occurrence counts
  `CountDistinct.annotate` put on each tile.

Everything runs in the Python worker of each task (numpy and pyarrow are featurebank's own
dependencies, shipped to executors in the packed environment). Pure numpy/pyarrow: nothing
here imports pyspark, so a worker does not pay for it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Context, Decimal
from typing import TYPE_CHECKING, Any

from featurebank.aggregators.base import EVENT_DAY, SNAPSHOT_DAY, TOTAL_PRECISION, Read

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

BLOCK_TILES = 262_144  # tiles per vectorised block (whole entities; a block of one entity may be larger)
OUT_ROWS = 131_072  # rows per Arrow batch handed back to Spark
_NONE = -(2**62)  # a rank no value has: a NULL tile, an empty window
_EXACT = Context(prec=80)  # wide enough for any 128-bit total
_POWERS = tuple(float(10**k) for k in range(23))  # 10^k, exact doubles up to 10^22


@dataclass(frozen=True)
class Spec:
    """What a partition's kernel needs: the keys, the window bounds and every read, in output order."""

    keys: tuple[str, ...]
    max_window: int
    start_day: int
    end_day: int
    reads: tuple[Read, ...]


def roll_partition(spec: Spec, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """mapInArrow's function: one partition's sorted tiles in, its snapshot rows out, block by block.

    Batches are gathered until a block holds `BLOCK_TILES` tiles; the block is cut before its
    last entity (whose tiles may go on in the next batch), which starts the next block.
    """
    import pyarrow as pa

    pending: list[pa.RecordBatch] = []
    held = 0
    for batch in batches:
        if batch.num_rows == 0:
            continue
        pending.append(batch)
        held += batch.num_rows
        if held < BLOCK_TILES:
            continue
        block = pa.Table.from_batches(pending).combine_chunks()
        cut = last_entity_start(block, spec.keys)
        if cut == 0:
            continue  # one entity so far: keep gathering
        yield from roll_block(block.slice(0, cut), spec)
        rest = block.slice(cut).combine_chunks()
        pending, held = rest.to_batches(), rest.num_rows
    if held:
        yield from roll_block(pa.Table.from_batches(pending).combine_chunks(), spec)


def entity_starts(table: pa.Table, keys: tuple[str, ...]) -> np.ndarray:
    """True on the first tile of each entity: where any key differs from the tile before
    (NULL equals NULL, as in the group-by that made the tiles)."""
    import numpy as np
    import pyarrow.compute as pc

    n = table.num_rows
    change = np.zeros(n, dtype=bool)
    if n == 0:
        return change
    change[0] = True
    for key in keys:
        column = _array(table, key)
        after, before = column.slice(1), column.slice(0, n - 1)
        same = pc.fill_null(pc.equal(after, before), False)
        both_null = pc.and_(pc.is_null(after), pc.is_null(before))
        change[1:] |= ~np.asarray(pc.or_(same, both_null).to_numpy(zero_copy_only=False), dtype=bool)
    return change


def last_entity_start(table: pa.Table, keys: tuple[str, ...]) -> int:
    """The index of the last entity's first tile."""
    import numpy as np

    return int(np.flatnonzero(entity_starts(table, keys))[-1])


class Block:
    """One block of sorted tiles, its snapshot rows, and the window queries over them."""

    def __init__(self, tiles: pa.Table, spec: Spec) -> None:
        import numpy as np

        self.tiles = tiles
        n = tiles.num_rows
        day = np.asarray(tiles.column(EVENT_DAY).to_numpy(), dtype=np.int64)
        first = entity_starts(tiles, spec.keys)
        entity = np.cumsum(first) - 1
        new_segment = first.copy()
        new_segment[1:] |= (day[1:] - day[:-1]) > spec.max_window
        seg_first = np.flatnonzero(new_segment)
        seg_last = np.append(seg_first[1:], n) - 1
        # a segment's snapshot days: [first tile + 1, last tile + max_window], clipped to the run
        low = np.maximum(day[seg_first] + 1, spec.start_day)
        high = np.minimum(day[seg_last] + spec.max_window, spec.end_day)
        count = np.clip(high - low + 1, 0, None)
        rows = int(count.sum())
        segment_of_row = np.repeat(np.arange(len(seg_first)), count)
        offset = np.arange(rows, dtype=np.int64) - np.repeat(np.cumsum(count) - count, count)
        self.rows = rows
        self.day = np.repeat(low, count) + offset  # D of each snapshot row
        self.tile = seg_first[segment_of_row]  # a tile of the row's entity (its keys)
        entity_first = np.flatnonzero(first)
        row_entity = entity[self.tile]
        self.first = entity_first[row_entity]  # the entity's first tile
        # tiles and rows on one int64 axis: entity-major, then day; a window is a searchsorted range
        base = int(day.min()) - spec.max_window - 2 if n else 0
        stride = max(spec.end_day, int(day.max()) if n else 0) - base + 2
        self._axis = entity * stride + (day - base)
        self._row_axis = row_entity * stride - base
        self.hi = self.before(0)  # tiles with day < D
        self._prefix: dict[str, np.ndarray] = {}
        self._limbs: dict[str, np.ndarray] = {}
        self._lo: dict[int, np.ndarray] = {0: self.hi}

    def before(self, back: int) -> np.ndarray:
        """Per row: the index past the entity's last tile with day < D - back."""
        import numpy as np

        return np.searchsorted(self._axis, self._row_axis + self.day - back, side="left")

    def lo(self, window: int) -> np.ndarray:
        """Per row: the first tile inside `[D - window, D)`."""
        if window not in self._lo:
            self._lo[window] = self.before(window)
        return self._lo[window]

    def column(self, name: str) -> pa.Array:
        return _array(self.tiles, name)

    def prefix(self, name: str) -> np.ndarray:
        """Prefix sums of a BIGINT tile column (NULL adds nothing), one leading 0."""
        import numpy as np

        if name not in self._prefix:
            values = np.asarray(self.column(name).fill_null(0).to_numpy(), dtype=np.int64)
            out = np.zeros(len(values) + 1, dtype=np.int64)
            np.cumsum(values, out=out[1:])
            self._prefix[name] = out
        return self._prefix[name]

    def count(self, read: Read) -> pa.Array:
        import pyarrow as pa

        p = self.prefix(read.tiles[0])
        return pa.array(p[self.hi] - p[self.lo(read.window)], type=pa.int64())

    def distinct(self, read: Read) -> pa.Array:
        """Distinct values in the window: P(D-1) - F_w(D-1) - E_w(D-w-1) over the entity's tiles
        (aggregators/distinct.py `CountDistinct.annotate` says why)."""
        import pyarrow as pa

        seen, renewed, expired = (self.prefix(c) for c in read.tiles)
        first, hi, lo = self.first, self.hi, self.lo(read.window)
        value = (seen[hi] - seen[first]) - (renewed[hi] - renewed[first]) - (expired[lo] - expired[first])
        return pa.array(value, type=pa.int64())

    def limbs(self, name: str) -> np.ndarray:
        """Prefix sums of a decimal tile column's unscaled 128-bit values as four 32-bit limbs
        (low limbs unsigned, the top one signed), each summed in int64: shape (tiles + 1, 4)."""
        import numpy as np

        if name not in self._limbs:
            column = self.column(name)
            n = len(column)
            words = np.frombuffer(column.buffers()[1], dtype=np.uint32)[column.offset * 4:(column.offset + n) * 4]
            words = words.reshape(n, 4)
            limbs = words.astype(np.int64)
            limbs[:, 3] = words[:, 3].view(np.int32)
            if column.null_count:
                limbs[~np.asarray(column.is_valid().to_numpy(zero_copy_only=False), dtype=bool)] = 0
            out = np.zeros((n + 1, 4), dtype=np.int64)
            np.cumsum(limbs, axis=0, out=out[1:])
            self._limbs[name] = out
        return self._limbs[name]

    def window_limbs(self, read: Read) -> tuple[np.ndarray, np.ndarray]:
        """The window's exact unscaled total as normalised limbs (rows, 4): limbs 0..2 in
        [0, 2^32), the top one signed; and where it fits decimal(37, scale) (|total| < 10^37)."""
        p = self.limbs(read.tiles[0])
        d = p[self.hi] - p[self.lo(read.window)]  # each limb exact, not yet normalised
        _carry(d)
        limit = 10**TOTAL_PRECISION
        fits = _above(d, _limbs_of(-limit), or_equal=False) & ~_above(d, _limbs_of(limit), or_equal=True)
        d[~fits] = 0
        return d, fits

    def total(self, read: Read) -> pa.Array:
        """The window's exact decimal total as decimal(37, scale); NULL when |total| >= 10^37
        (unscaled), which finalize turns into the contract's failure."""
        import numpy as np
        import pyarrow as pa

        d, fits = self.window_limbs(read)
        words = np.empty((self.rows, 2), dtype=np.uint64)
        words[:, 0] = d[:, 0].astype(np.uint64) | (d[:, 1].astype(np.uint64) << np.uint64(32))
        words[:, 1] = (d[:, 2].astype(np.uint64)) | (d[:, 3].astype(np.uint64) << np.uint64(32))
        validity = None if fits.all() else pa.array(fits).buffers()[1]
        return pa.Array.from_buffers(pa.decimal128(TOTAL_PRECISION, read.scale), self.rows,
                                     [validity, pa.py_buffer(words.tobytes())], null_count=int((~fits).sum()))

    def double(self, read: Read) -> pa.Array:
        """The window's exact total rounded once to the nearest double (ties to even), as Spark's
        `CAST(decimal(37, scale) AS DOUBLE)` rounds it (java.math.BigDecimal.doubleValue is
        correctly rounded); NULL when it does not fit decimal(37, scale).

        Exact and fast for every total with at most 15 significant digits once its trailing
        zeros are gone (money: cents): the total is U' * 10^-k with |U'| < 2^53 and k <= 18,
        both exact doubles, so one IEEE division rounds it exactly once. Any other total
        goes through Python's correctly rounded `float(Decimal)`.
        """
        import numpy as np
        import pyarrow as pa

        d, fits = self.window_limbs(read)
        negative = d[:, 3] < 0
        d[negative] = -d[negative]
        _carry(d)  # |total|, limbs normalised and non-negative
        high, r1 = _divmod_limbs(d, 10**9)  # |total| = high * 10^9 + r1
        top, r2 = _divmod_limbs(high, 10**9)  # high = top * 10^9 + r2
        zeros = np.where(r1 == 0, 9 + _trailing_zeros(r2), _trailing_zeros(r1))
        # U' = |total| / 10^zeros, built in int64 only where it stays below 2^53
        low_part = np.where(zeros >= 9, r2, r1)
        upper = np.where(zeros >= 9, _small(top), _small(high))  # -1: does not fit 63 bits
        shift = np.where(zeros >= 9, zeros - 9, zeros)
        lift = 9 - shift  # upper * 10^lift + low_part // 10^shift
        bound = (2**53) // (10**lift)
        scale = read.scale - zeros
        exact = fits & (upper >= 0) & (upper < bound) & (np.abs(scale) < len(_POWERS))
        mantissa = np.where(exact, upper * 10**lift + low_part // 10**shift, 0)
        value = np.zeros(self.rows, dtype=np.float64)
        powers = np.array(_POWERS)
        up = exact & (scale <= 0)
        value[up] = mantissa[up].astype(np.float64) * powers[-scale[up]]  # one rounding of an exact product
        down = exact & (scale > 0)
        value[down] = mantissa[down].astype(np.float64) / powers[scale[down]]
        for i in np.flatnonzero(fits & ~exact):  # more than 15 significant digits: Python, exactly
            unscaled = int(d[i, 3]) << 96 | int(d[i, 2]) << 64 | int(d[i, 1]) << 32 | int(d[i, 0])
            value[i] = float(Decimal(unscaled).scaleb(-read.scale, context=_EXACT))
        value = np.where(negative, -value, value)
        return pa.array(value, type=pa.float64(), mask=~fits)

    def extreme(self, read: Read, largest: bool) -> pa.Array:
        """The window's largest (smallest) non-NULL tile value, by Spark's ordering; NULL when
        the window holds none. A sparse table of range maxima over the tiles' dense ranks."""
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        values = self.column(read.tiles[0])
        n = len(values)
        rank = np.asarray(pc.rank(values, sort_keys="ascending", null_placement="at_end", tiebreaker="dense")
                          .to_numpy(), dtype=np.int64)
        valid = np.asarray(values.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
        score = np.where(valid, rank if largest else -rank, _NONE)
        holder = np.zeros(int(rank.max(initial=0)) + 1, dtype=np.int64)
        holder[rank[valid]] = np.flatnonzero(valid)  # a tile holding each rank (Arrow ranks NULL with NaN)
        lo, hi = self.lo(read.window), self.hi
        length = hi - lo
        levels = max(int(length.max(initial=1)).bit_length(), 1)
        table = np.full((levels, n + 1), _NONE, dtype=np.int64)
        table[0, :n] = score
        for j in range(1, levels):
            half = 1 << (j - 1)
            table[j, : n + 1 - half] = np.maximum(table[j - 1, : n + 1 - half], table[j - 1, half:])
        level = np.zeros(self.rows, dtype=np.int64)
        nonempty = length > 0
        level[nonempty] = np.floor(np.log2(length[nonempty])).astype(np.int64)
        right = np.maximum(hi - (np.int64(1) << level), 0)
        best = np.maximum(table[level, lo], table[level, right])
        best[~nonempty] = _NONE
        found = best != _NONE
        index = holder[np.abs(np.where(found, best, 0))]
        return pc.take(values, pa.array(index, mask=~found))

    def latest(self, read: Read) -> pa.Array:
        """The entity's latest non-NULL tile before D (its struct), NULL when there is none."""
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        values = self.column(read.tiles[0])
        valid = np.asarray(values.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
        last_valid = np.maximum.accumulate(np.where(valid, np.arange(len(values)), -1)) if len(values) else valid
        at = np.where(self.hi > 0, last_valid[np.maximum(self.hi - 1, 0)], -1)
        found = at >= self.first
        return pc.take(values, pa.array(np.where(found, at, 0), mask=~found))

    def read(self, read: Read) -> pa.Array:
        if read.op == "count":
            return self.count(read)
        if read.op == "total":
            return self.total(read)
        if read.op == "double":
            return self.double(read)
        if read.op in ("largest", "smallest"):
            return self.extreme(read, read.op == "largest")
        if read.op == "latest":
            return self.latest(read)
        if read.op == "distinct":
            return self.distinct(read)
        raise ValueError(f"unknown window read '{read.op}' of column {read.name}")


def roll_block(tiles: pa.Table, spec: Spec) -> Iterator[pa.RecordBatch]:
    """One block's snapshot rows: keys, D, then every read, in Arrow batches of `OUT_ROWS`."""
    import numpy as np
    import pyarrow as pa

    block = Block(tiles, spec)
    if block.rows == 0:
        return
    take = pa.array(block.tile)
    columns: dict[str, Any] = {k: block.column(k).take(take) for k in spec.keys}
    columns[SNAPSHOT_DAY] = pa.array(block.day.astype(np.int32), type=pa.int32())
    for read in spec.reads:
        columns[read.name] = block.read(read)
    out = pa.RecordBatch.from_arrays(list(columns.values()), names=list(columns))
    for start in range(0, out.num_rows, OUT_ROWS):
        yield out.slice(start, OUT_ROWS)


def _array(table: pa.Table, name: str) -> pa.Array:
    """A table's column as one Arrow array."""
    column = table.column(name)
    return column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()


def _carry(d: np.ndarray) -> None:
    """Normalise limbs in place: limbs 0..2 into [0, 2^32), the carries into the next; the top
    limb keeps the sign."""
    for k in range(3):
        carry = d[:, k] >> 32
        d[:, k] -= carry << 32
        d[:, k + 1] += carry


def _divmod_limbs(d: np.ndarray, divisor: int) -> tuple[np.ndarray, np.ndarray]:
    """Non-negative normalised limbs divided by `divisor` < 2^31: the quotient's limbs, the remainder."""
    import numpy as np

    quotient = np.empty_like(d)
    remainder = np.zeros(len(d), dtype=np.int64)
    for k in (3, 2, 1, 0):
        current = (remainder << 32) | d[:, k]  # < divisor * 2^32 < 2^63
        quotient[:, k], remainder = np.divmod(current, divisor)
    return quotient, remainder


def _trailing_zeros(r: np.ndarray) -> np.ndarray:
    """Trailing decimal zeros of r in [0, 10^9), at most 9 (r = 0 gives 9)."""
    import numpy as np

    zeros = np.zeros(len(r), dtype=np.int64)
    for j in range(1, 10):
        zeros += (r % 10**j == 0)
    return zeros


def _small(d: np.ndarray) -> np.ndarray:
    """Non-negative normalised limbs as int64 where the value is below 2^53, else -1."""
    import numpy as np

    small = (d[:, 3] == 0) & (d[:, 2] == 0) & (d[:, 1] < 2**21)
    return np.where(small, (d[:, 1] << 32) | d[:, 0], -1)


def _limbs_of(value: int) -> tuple[int, int, int, int]:
    """A Python integer as the normalised limbs `window_limbs` compares with (low three in [0, 2^32))."""
    mask = (1 << 32) - 1
    return (value & mask, (value >> 32) & mask, (value >> 64) & mask, value >> 96)


def _above(d: np.ndarray, limbs: tuple[int, int, int, int], or_equal: bool) -> np.ndarray:
    """Row-wise (d3, d2, d1, d0) > limbs (>= with `or_equal`), lexicographically (= numerically,
    once normalised)."""
    result = d[:, 0] >= limbs[0] if or_equal else d[:, 0] > limbs[0]
    for k in (1, 2, 3):
        result = (d[:, k] > limbs[k]) | ((d[:, k] == limbs[k]) & result)
    return result
