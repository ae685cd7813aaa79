"""`featurebank explain --at`: which snapshot or version a training-set row at an instant is joined with, and why.

The answer is not re-derived: a one-row spine (the entity's keys and the instant, read by
`training.spine.read_spine` as any spine is) goes through the build's own join step
(`training.join.join_group`) against the group's table pinned as a build pins it (its latest
Delta version, the dates the run log says that version published: `training.reads`), with
two more columns naming the snapshot date or version the row got. What the join says is then
put in words (date, coverage, ttl) and the chosen date is explained as `featurebank explain
--date` explains it (`featurebank.explain`; a row-level group at the row's instant).

NULL cases explain themselves: a date the group never published (as of the version read),
a published date without a row for the entity (counts 0, the rest NULL), a row-level version
beyond the ttl, no version at or before the instant.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from featurebank.errors import UsageError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from featurebank.compile.explain import Explanation
    from featurebank.compile.group import CompiledGroup
    from featurebank.definitions.model import Project
    from featurebank.training.manifest import PinnedGroup

_AT = "__fb_explain_at"  # the one-row spine's time column (text, read as a spine's text times are)
_STATUS = "__fb_explain_status"


@dataclass(frozen=True)
class Joined:
    """What a training-set row of one entity at instant `at` gets from one group, and why."""

    group: str
    kind: str  # "aggregation" | "row"
    keys: tuple[tuple[str, Any], ...]
    text: str  # the instant as given
    at: datetime  # the instant, as the spine reader read it (UTC)
    timezone: str
    snapshot: date  # the instant's local date (the spine date of the row)
    version: int  # the Delta version of the group's table joined
    status: str  # engine.pit.STATUS_*
    joined_date: date | None  # the snapshot date joined (aggregation; None: none)
    joined_ts: datetime | None  # the version's feature_ts joined (row-level; None: none)
    values: tuple[tuple[str, Any], ...]  # (feature, the value the training set gets)
    why: str
    explanation: Explanation | None  # the chosen date explained (None: nothing was published for it)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the explanation as `Explanation.to_dict`)."""
        from featurebank.compile.explain import _jsonable

        document = {k: v for k, v in asdict(self).items() if k != "explanation"}
        return {**_jsonable(document),
                "explanation": None if self.explanation is None else self.explanation.to_dict()}


def parse_instant(text: str, zone: str) -> datetime:
    """`--at`: an ISO instant with an offset (`Z`, `+01:00`), or wall-clock time in the project
    zone without one; `UsageError` for anything else. (The instant used is the spine reader's,
    which follows the same rule; this check only refuses bad text before anything is read.)"""
    cleaned = text.strip()
    try:
        parsed = datetime.fromisoformat(cleaned.replace("z", "Z"))
    except ValueError:
        parsed = None
    if parsed is None or len(cleaned) < 10 or not 1900 <= parsed.year <= 2199:
        raise UsageError(f"--at {text!r} is not an instant; write it as YYYY-MM-DDTHH:MM[:SS] with an offset "
                         f"(2024-03-05T10:00+01:00, or Z for UTC), or without one for wall-clock time in {zone}")
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=ZoneInfo(zone))


def explain_at(project: Project, group: str, keys: Sequence[str], text: str, *,
               features: Sequence[str] | None = None, principal: str | None = None,
               spark: SparkSession | None = None) -> Joined:
    """Which snapshot (aggregation group) or version (row-level group) of `group` a training-set
    row of the entity `keys` at instant `text` is joined with, why, the values it gets, and the
    chosen date explained. Raises `UsageError` before any read for bad input (as `explain`
    does, and a bad instant) and for a group with no table; `AccessDenied` as `explain`."""
    from pyspark.sql import functions as F

    from featurebank.definitions.refs import resolve_features
    from featurebank.explain import checked_request, typed_keys
    from featurebank.io.runlog import read_run_log
    from featurebank.io.tables import current_version
    from featurebank.training.api import INSTANT, ROW_ID
    from featurebank.training.join import JOINED_DATE, JOINED_TS, join_group
    from featurebank.training.manifest import PinnedGroup
    from featurebank.training.reads import group_reads, published_dates
    from featurebank.training.spine import profile_spine, read_spine

    compiled, wanted, given = checked_request(project, group, keys, features, principal)
    zone = compiled.timezone
    parse_instant(text, zone)
    if spark is None:
        from featurebank.io.spark import get_spark

        spark = get_spark(project.config)
    typed = typed_keys(spark, compiled, given)

    # Pinned as a build pins it: the table's latest version, the dates that version published.
    [read] = group_reads(project, resolve_features(project, [f"{group}:{f}" for f in wanted], asker="explain --at"))
    session = spark
    governed = project.config.governance.lake_formation
    version = current_version(read.table_path, spark=lambda: session, lake_formation=governed)
    if version is None:
        raise UsageError(f"feature group '{group}' has no table at {read.table_path}, so no training set can join it; "
                         f"run it first: featurebank run {group}")
    runs = (read_run_log(project.config.feature_root, group, spark=lambda: session, lake_formation=governed)
            if read.kind == "aggregation" else [])
    pinned = PinnedGroup(read, version, compiled.data_hash, published_dates(runs, group, version))
    table = spark.read.format("delta").option("versionAsOf", version).load(read.table_path)
    types = dict(table.dtypes)

    rows = [(*(typed[k] for k in compiled.keys), text.strip())]
    schema = ", ".join([*(f"`{k}` {types[k]}" for k in compiled.keys), f"`{_AT}` string"])
    spine, _ = read_spine(spark, spark.createDataFrame(rows, schema=schema), _AT, zone,
                          internal_id=ROW_ID, internal_ts=INSTANT)
    profile = profile_spine(spine, [*compiled.keys, _AT], INSTANT, zone)
    if not profile.dates:
        raise UsageError(f"--at {text!r} is not an instant a spine can hold (Spark reads it as NULL); write it as "
                         f"YYYY-MM-DDTHH:MM[:SS] with an offset, or without one for wall-clock time in {zone}")
    [snapshot] = profile.dates
    match = F.lit(True)
    for k in compiled.keys:
        match = match & (F.col(f"`{k}`") == F.lit(typed[k]))
    joined = join_group(spine, table.where(match), pinned, profile, instant=INSTANT, timezone=zone,
                        status_column=_STATUS, small_spine=True, chosen=True)
    names = [column for _, column in read.features]
    row = joined.select(F.unix_micros(INSTANT).alias("at"), F.col(_STATUS).alias("status"),
                        *([F.col(JOINED_DATE).alias("date")] if read.kind == "aggregation" else [F.lit(None).alias("date")]),
                        F.unix_micros(JOINED_TS).alias("ts"), *(F.col(f"`{c}`") for c in names)).first()
    assert row is not None  # the join keeps every spine row
    at, status = _instant(row["at"]), str(row["status"])
    chosen_ts = None if row["ts"] is None else _instant(row["ts"])
    values = tuple((c, row[c]) for c in names)

    explanation = None
    if read.kind == "row":
        from featurebank.explain import explain

        explanation = explain(project, group, keys, snapshot, features=wanted, principal=principal, spark=spark, at=at)
    elif snapshot in pinned.published:
        from featurebank.explain import explain

        explanation = explain(project, group, keys, snapshot, features=wanted, principal=principal, spark=spark)
    latest = chosen_ts
    if latest is None and explanation is not None:  # expired: the join hides the version; the explanation names it
        latest = next((explanation.events[f.events[0]].ts for f in explanation.features if f.events), None)
    why = _why(compiled, pinned, at, snapshot, status, latest)
    return Joined(group, read.kind, tuple(typed.items()), text, at, zone, snapshot, version, status,
                  row["date"], chosen_ts, values, why, explanation)


def _instant(micros: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(microseconds=int(micros))


def _local(instant: datetime, zone: str) -> str:
    return f"{instant.astimezone(ZoneInfo(zone)).strftime('%Y-%m-%d %H:%M:%S')} {zone}"


def _age(span: timedelta) -> str:
    """A duration in words: `3 days`, `3 days 04:00:00`."""
    whole = f"{span.days} day{'' if span.days == 1 else 's'}"
    rest = span - timedelta(days=span.days)
    return whole if not rest else f"{whole} {str(rest).split('.')[0].zfill(8)}"


def _why(compiled: CompiledGroup, pinned: PinnedGroup, at: datetime, snapshot: date, status: str,
         chosen_ts: datetime | None) -> str:
    """The join's choice in one sentence (`engine.pit` statuses)."""
    from featurebank.days import day_start_instant
    from featurebank.engine import pit

    zone, version, published = compiled.timezone, pinned.version, pinned.published
    head = f"ts {_local(at, zone)} ->"
    if compiled.kind == "aggregation":
        covers = f"covers events before {_local(day_start_instant(snapshot, zone), zone)}"
        if status == pit.STATUS_MATCHED:
            return (f"{head} snapshot {snapshot} ({covers}; the snapshot of the row's local date); Delta version "
                    f"{version}; no ttl applies: a snapshot serves its own day")
        if status == pit.STATUS_FILLED:
            counts = pinned.read.count_columns
            gets = (f"0 for its count features ({', '.join(counts)}) and NULL for the rest" if counts
                    else "NULL for every feature asked (none is a count)")
            return (f"{head} snapshot {snapshot} ({covers}), published (Delta version {version}) but without a row "
                    f"for this entity: the training set gets {gets}")
        earlier = [d for d in published if d < snapshot]
        last = f"the latest published before it is {earlier[-1]}" if earlier else "no earlier date was published"
        return (f"{head} snapshot {snapshot} ({covers}), which {compiled.group} had not published as of Delta "
                f"version {version} ({last}): every feature NULL, and a training set refuses such a row unless "
                "built with --allow-missing")
    ttl = compiled.ttl_days
    if status == pit.STATUS_MATCHED and chosen_ts is not None:
        limit = f"ttl {ttl}d ok" if ttl is not None else "no ttl"
        return (f"{head} the version of {_local(chosen_ts, zone)} (the entity's latest at or before ts, Delta version "
                f"{version}); {_age(at - chosen_ts)} old, {limit}")
    if status == pit.STATUS_EXPIRED and chosen_ts is not None:
        return (f"{head} no version in force: the latest at or before ts, of {_local(chosen_ts, zone)}, is "
                f"{_age(at - chosen_ts)} old, beyond the {ttl}d ttl (Delta version {version}): every feature NULL")
    return (f"{head} no version: the table (Delta version {version}) holds none of this entity at or before ts "
            "(the entity is absent, or its first version is later): every feature NULL")
