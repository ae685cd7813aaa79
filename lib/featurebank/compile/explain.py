"""`featurebank explain`'s core: one entity's values on one snapshot date, recomputed and explained.

Pure Python (no Spark, no I/O). Given the compiled group, one entity's source rows, the
snapshot date D and the published row, `explain_entity` says for each feature: the window as
instants in the project time zone, which events fall in it (those the filter removed marked,
with the condition that removed them), the value recomputed in plain Python by the numeric
contract (`aggregators.reference`: the same bytes as the published value), whether they
agree, and a sentence saying why the value is what it is — above all NULL, 0 and "no row".

What needs Spark SQL stays with Spark: the group's filter, its aggregation inputs and its
row-level features are Spark SQL, so the I/O edge (featurebank/explain.py) evaluates them on
the entity's few rows and hands them over in reserved columns of each row:

- `KEEP`: the row passes the group's filter (True when there is none);
- `condition_column(j)`: the j-th condition of the filter (`filter_conditions`: its
  top-level AND terms), True, False or None; the first that is not True is why a row was removed;
- `value_column(i)` (aggregators): aggregation i's input value on the row (kept rows);
- `feature_column(name)`: a row-level feature's value on the row (kept rows).

The event-time column holds tz-aware datetimes (instants). Windows, row existence, the
arithmetic, the row-level version choice and every sentence are decided here. Derived
features are Spark SQL over the row too: `derive(values)` (from the edge) computes them from
the recomputed aggregation values, in definition order.

Meaning (SPEC): the row for D aggregates the filtered events whose local day is in
`[D - w, D)`; it exists when one such event is in `[D - max window, D)`; counts give 0 and
everything else NULL over an empty window. A row-level group's value "at D" is the version in
force at the end of D: the latest filtered row with `feature_ts < (D + 1) 00:00`, and
`feature_ts > (D + 1) 00:00 - ttl` when the group has a ttl (the training-set join's rule at
the last instant of D).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from featurebank.aggregators import value_column
from featurebank.aggregators.reference import window_value
from featurebank.compile.group import CompiledGroup
from featurebank.days import day_start_instant

KEEP = "_keep"


def condition_column(index: int) -> str:
    """The reserved column holding the filter's `index`-th condition on a row."""
    return f"_cond{index}"


def feature_column(name: str) -> str:
    """The reserved column holding row-level feature `name` on a row."""
    return f"_f_{name}"


def filter_conditions(text: str | None) -> tuple[str, ...]:
    """The filter's top-level AND terms as Spark SQL (the filter itself when it is one term)."""
    if not text:
        return ()
    from sqlglot import exp

    from featurebank.definitions.expressions import parse_expression

    tree = parse_expression(text)
    while isinstance(tree, exp.Paren):
        tree = tree.this
    if not isinstance(tree, exp.And):
        return (text,)
    return tuple(term.sql(dialect="spark") for term in tree.flatten())


def same_value(a: Any, b: Any) -> bool:
    """The same published bytes: both NULL, or one type and one value (floats bit for bit, NaN equal to NaN)."""
    if a is None or b is None:
        return a is None and b is None
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or a.hex() == b.hex()
    if isinstance(a, Decimal):
        return bool(a == b and a.as_tuple().exponent == b.as_tuple().exponent)
    return bool(a == b)


@dataclass(frozen=True)
class Event:
    """One source row of the entity, as explained: when, which local day, kept or why removed."""

    ts: datetime | None  # the event time, an instant
    day: date | None  # its local day in the project time zone
    kept: bool
    removed_by: str | None  # "status = 'SETTLED' is false", or None when kept
    columns: tuple[tuple[str, Any], ...]  # the source columns the group reads, as read


@dataclass(frozen=True)
class FeatureExplanation:
    """One feature's value at D: where it comes from, recomputed, published, and why."""

    feature: str
    kind: str  # "aggregation" | "derived" | "row"
    function: str | None  # the aggregation function; None for derived and row-level features
    expr: str | None
    window_days: int | None
    window: tuple[datetime, datetime] | None  # [start, end) instants in the project time zone
    events: tuple[int, ...]  # indices (Explanation.events) of the rows in the window, or the version chosen
    value: Any  # recomputed; None for NULL or no row
    published: Any  # None for NULL or no published row
    agree: bool
    why: str


@dataclass(frozen=True)
class Explanation:
    """Everything `featurebank explain` prints for one entity and snapshot date."""

    group: str
    kind: str
    keys: tuple[tuple[str, Any], ...]  # (key column, value)
    date: date
    timezone: str
    events: tuple[Event, ...]  # the entity's rows read, by time
    row: bool  # the recomputation gives a row for (keys, D)
    published_row: bool  # the table holds one
    row_why: str
    features: tuple[FeatureExplanation, ...]
    published_hash: str | None = None  # the data_hash of the run that published D (the edge fills it in)
    definition_hash: str | None = None  # the group's data_hash now

    @property
    def stale(self) -> bool:
        """The definition changed what it computes since D was published: values may disagree."""
        return self.published_hash is not None and self.published_hash != self.definition_hash

    @property
    def agree(self) -> bool:
        return self.row == self.published_row and all(f.agree for f in self.features)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: instants and dates as ISO text, decimals as text, NaN as null."""
        document: dict[str, Any] = _jsonable({**asdict(self), "agree": self.agree})
        return document


def explain_entity(
    compiled: CompiledGroup,
    rows: Sequence[Mapping[str, Any]],
    day: date,
    published: Mapping[str, Any] | None,
    *,
    features: Sequence[str] | None = None,
    input_types: Mapping[int, str] | None = None,
    last_before: datetime | None = None,
    derive: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    at: datetime | None = None,
) -> Explanation:
    """Explain the entity of `rows` on snapshot date `day` (see the module docstring).

    `rows`: the entity's source rows with the reserved columns; for an aggregation group those
    with an event time in `[D - max window, D)`, for a row-level group its versions before
    (D + 1) 00:00 (within the ttl). `published`: the table's row for (keys, D) (row-level: for
    (keys, the chosen version's feature_ts)), None if it holds none. `input_types`: aggregation
    index → its input's Spark type (how sums are typed). `last_before`: the entity's latest
    filtered event time before the rows read, if any (for "last event N days before D").
    `features`: which to explain (default all, in table order). `at` (row-level groups): explain
    the version in force at that instant (a training-set row's time: the latest version with
    `feature_ts <= at`, within the ttl) instead of at the end of D; `rows` then hold the
    versions up to it.
    """
    zone = compiled.timezone
    ts_column = compiled.source.timestamp or ""
    raw = sorted(rows, key=lambda r: (r.get(ts_column) is None, r.get(ts_column) or _FIRST))
    events = tuple(_event(r, ts_column, zone, compiled) for r in raw)
    keys = tuple((k, raw[0].get(k) if raw else None) for k in compiled.keys)
    wanted = tuple(features) if features else compiled.feature_columns
    if compiled.kind == "row":
        return _explain_version(compiled, events, raw, keys, day, published, wanted, at)
    context = _Context(compiled, events, raw, day, input_types or {}, last_before, published)
    explained = {f.feature: f for f in context.aggregations()}
    explained.update({f.feature: f for f in context.derived(explained, derive)})
    return Explanation(compiled.group, compiled.kind, keys, day, zone, events, context.row, published is not None,
                       context.row_why(), tuple(explained[name] for name in wanted))


_FIRST = datetime(1, 1, 2, tzinfo=ZoneInfo("UTC"))


def _event(row: Mapping[str, Any], ts_column: str, zone: str, compiled: CompiledGroup) -> Event:
    ts = row.get(ts_column)
    kept = bool(row.get(KEEP, True))
    removed_by = None
    if not kept:
        conditions = filter_conditions(compiled.filter)
        for j, condition in enumerate(conditions):
            verdict = row.get(condition_column(j))
            if verdict is not True:
                removed_by = f"{condition} is {'NULL' if verdict is None else 'false'}"
                break
        else:
            removed_by = f"{compiled.filter} is not true"
    shown = tuple((c, row.get(c)) for c in compiled.source.columns if c in row)
    return Event(ts, None if ts is None else ts.astimezone(ZoneInfo(zone)).date(), kept, removed_by, shown)


def _when(instant: datetime, zone: str) -> str:
    return instant.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


class _Context:
    """One aggregation group's explanation in the making (windows over `events`)."""

    def __init__(self, compiled: CompiledGroup, events: tuple[Event, ...], raw: list[Mapping[str, Any]], day: date,
                 input_types: Mapping[int, str], last_before: datetime | None, published: Mapping[str, Any] | None):
        self.compiled, self.events, self.raw, self.day = compiled, events, raw, day
        self.input_types, self.last_before, self.published = input_types, last_before, published
        self.zone = compiled.timezone
        longest = self.inside(compiled.max_window)
        self.row = any(events[i].kept for i in longest)

    def inside(self, window: int) -> list[int]:
        """Indices of the events whose local day is in [D - window, D)."""
        first = self.day - timedelta(days=window)
        return [i for i, e in enumerate(self.events) if e.day is not None and first <= e.day < self.day]

    def span(self, window: int) -> str:
        start = day_start_instant(self.day - timedelta(days=window), self.zone)
        end = day_start_instant(self.day, self.zone)
        return f"[D-{window}d, D) = [{_when(start, self.zone)}, {_when(end, self.zone)}) {self.zone}"

    def last_event(self) -> str:
        """When the entity's latest filtered event before D was, in days before D."""
        kept = [e for e in self.events if e.kept and e.day is not None and e.day < self.day]
        latest = kept[-1].ts if kept else self.last_before
        if latest is None:
            return "no earlier event passes the filter either" if self.compiled.filter else "no earlier event either"
        days = (self.day - latest.astimezone(ZoneInfo(self.zone)).date()).days
        return f"last event {_plural(days, 'day')} before D ({_when(latest, self.zone)})"

    def none_passes(self, window: int, indices: list[int]) -> str:
        removed = sum(1 for i in indices if not self.events[i].kept)
        if not indices:
            return f"no event in {self.span(window)}: {self.last_event()}"
        return (f"no event in {self.span(window)} passes the filter ({_plural(removed, 'event')} removed by it): "
                f"{self.last_event()}")

    def aggregations(self) -> list[FeatureExplanation]:
        out = []
        for i, spec in enumerate(self.compiled.aggregates):
            for window, name in zip(spec.windows, spec.output_names()):
                indices = self.inside(window)
                kept = [self.raw_row(j) for j in indices if self.events[j].kept]
                pairs = [(r[self.compiled.source.timestamp or ""], 1 if spec.expr is None else r.get(value_column(i)))
                         for r in kept]
                pairs = [(t, v) for t, v in pairs if v is not None]
                value = window_value(spec.function, pairs, self.input_types.get(i)) if self.row else None
                published = self.published.get(name) if self.published is not None else None
                if not self.row:
                    why = "no row: " + self.none_passes(self.compiled.max_window, self.inside(self.compiled.max_window))
                elif not kept:
                    why = f"{'NULL' if value is None else value}: " + self.none_passes(window, indices)
                elif not pairs:
                    why = (f"{'NULL' if value is None else value}: {_plural(len(kept), 'event')} in {self.span(window)}, "
                           f"but {spec.expr} is NULL on every one")
                elif value is None and spec.function == "stddev":
                    why = f"NULL: a sample standard deviation needs 2 values, and {self.span(window)} has 1"
                else:
                    removed = len(indices) - len(kept)
                    why = f"{spec.function}({spec.expr or '*'}) over {_plural(len(pairs), 'value')} of {_plural(len(kept), 'event')} in {self.span(window)}"
                    if removed:
                        why += f"; {_plural(removed, 'event')} in the window removed by the filter"
                why += self.disagreement(value, published)
                start = day_start_instant(self.day - timedelta(days=window), self.zone)
                out.append(FeatureExplanation(name, "aggregation", spec.function, spec.expr, window,
                                              (start, day_start_instant(self.day, self.zone)), tuple(indices), value,
                                              published, self.agrees(value, published), why))
        return out

    def raw_row(self, index: int) -> Mapping[str, Any]:
        return self.raw[index]

    def agrees(self, value: Any, published: Any) -> bool:
        return self.row == (self.published is not None) and same_value(value, published)

    def disagreement(self, value: Any, published: Any) -> str:
        if self.row and self.published is None:
            return "; but the table holds no row for this entity on D"
        if not self.row and self.published is not None:
            return "; but the table holds a row for this entity on D"
        if not same_value(value, published):
            return f"; the published value differs: {_shown(published)}"
        return ""

    def derived(self, done: dict[str, FeatureExplanation],
                derive: Callable[[dict[str, Any]], dict[str, Any]] | None) -> list[FeatureExplanation]:
        values = {name: f.value for name, f in done.items()}
        computed = derive(dict(values)) if derive is not None and self.row else {}
        out = []
        for spec in self.compiled.derived:
            value = computed.get(spec.name)
            published = self.published.get(spec.name) if self.published is not None else None
            inputs = [c for c in values if c in _words(spec.expr)]
            given = ", ".join(f"{c} = {_shown(values[c])}" for c in inputs)
            if not self.row:
                why = "no row: " + self.none_passes(self.compiled.max_window, self.inside(self.compiled.max_window))
            elif derive is None:
                why = f"{spec.expr} with {given}: not recomputed (no evaluator given)"
            elif value is None:
                nulls = [c for c in inputs if values[c] is None]
                cause = f"{', '.join(nulls)} {'is' if len(nulls) == 1 else 'are'} NULL" if nulls else \
                    "the expression gives NULL for these inputs (a nullif of 0, a division by 0)"
                why = f"NULL: {spec.expr} with {given}; {cause}"
            else:
                why = f"{spec.expr} with {given}"
            why += self.disagreement(value, published)
            values[spec.name] = value
            out.append(FeatureExplanation(spec.name, "derived", None, spec.expr, None, None, (), value, published,
                                          self.agrees(value, published), why))
        return out

    def row_why(self) -> str:
        longest = self.compiled.max_window
        if not self.row:
            why = (f"no row for this entity on {self.day}: " + self.none_passes(longest, self.inside(longest)) +
                   "; a training set gets 0 for its count features and NULL for the rest on a published date")
        else:
            kept = sum(1 for i in self.inside(longest) if self.events[i].kept)
            why = f"a row: {_plural(kept, 'event')} in the longest window {self.span(longest)} pass the filter"
        if self.row != (self.published is not None):
            why += "; but the table " + ("holds no row" if self.row else "holds a row") + " for this entity on D"
        return why


def _explain_version(compiled: CompiledGroup, events: tuple[Event, ...], raw: list[Mapping[str, Any]],
                     keys: tuple[tuple[str, Any], ...], day: date, published: Mapping[str, Any] | None,
                     wanted: tuple[str, ...], at: datetime | None = None) -> Explanation:
    """A row-level group: the version in force at the end of D (or at the instant `at`), and why that one."""
    zone = compiled.timezone
    # The ttl is whole 24-hour days of instants, as the training-set join counts it (UTC arithmetic).
    asof = (at or day_start_instant(day + timedelta(days=1), zone)).astimezone(timezone.utc)
    horizon = asof - timedelta(days=compiled.ttl_days) if compiled.ttl_days is not None else None
    stamped = [(i, e.ts) for i, e in enumerate(events) if e.ts is not None]
    before = [(i, ts) for i, ts in stamped if (ts <= asof if at is not None else ts < asof)]
    kept = [(i, ts) for i, ts in before if events[i].kept]
    end_of_d = (f"the end of {day} ({_when(asof, zone)} {zone})" if at is None
                else f"{asof.astimezone(ZoneInfo(zone)).strftime('%Y-%m-%d %H:%M:%S')} {zone}")
    chosen, chosen_ts = kept[-1] if kept else (None, None)
    removed = "".join(f"; the version of {_when(ts, zone)} was removed by the filter ({events[i].removed_by})"
                      for i, ts in before if not events[i].kept and (chosen_ts is None or ts > chosen_ts))
    if chosen_ts is None:
        why = f"NULL: no version of this entity {'before' if at is None else 'at or before'} {end_of_d}" + (" passes the filter" if before else "") + removed
        row = False
    elif horizon is not None and chosen_ts <= horizon:
        age = (asof - chosen_ts).days
        why = (f"NULL: the latest version, of {_when(chosen_ts, zone)}, is {_plural(age, 'day')} older than "
               f"{end_of_d}, beyond the {compiled.ttl_days}d ttl") + removed
        row = False
    else:
        ttl = f", within the {compiled.ttl_days}d ttl" if compiled.ttl_days is not None else ""
        why = (f"the version of {_when(chosen_ts, zone)} {zone}: the latest of {_plural(len(kept), 'version')} "
               f"{'before' if at is None else 'at or before'} {end_of_d}{ttl}") + removed
        row = True
    out = []
    for name in wanted:
        spec = next((f for f in compiled.features if f.name == name), None)
        value = raw[chosen].get(feature_column(name)) if row and chosen is not None else None
        shown = published.get(name) if published is not None else None
        agree = row == (published is not None) and same_value(value, shown)
        note = "" if agree else (f"; the published value differs: {_shown(shown)}" if published is not None and row
                                 else "; but the table " + ("holds no row" if row else "holds a row") + " for it")
        out.append(FeatureExplanation(name, "row", None, spec.expr if spec else None, None, None,
                                      () if chosen is None else (chosen,), value, shown, agree,
                                      f"{'NULL: ' if row and value is None else ''}{why}{note}"))
    return Explanation(compiled.group, compiled.kind, keys, day, zone, events, row, published is not None, why,
                       tuple(out))


def _words(expr: str) -> set[str]:
    from featurebank.definitions.expressions import referenced_columns

    return set(referenced_columns(expr))


def _shown(value: Any) -> str:
    return "NULL" if value is None else repr(value) if isinstance(value, str) else str(value)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value
