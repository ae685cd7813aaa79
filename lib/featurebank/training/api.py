"""Training sets: the data scientists' API. A spine in, every requested feature as known then out.

    >>> import featurebank as fb
    >>> store = fb.FeatureStore("path/to/project", env="local")
    >>> store.groups(); print(store.describe("customer_card_spend"))           # no Spark
    >>> rows = store.read("customer_card_spend", "2024-06-01", "2024-06-30")   # pandas
    >>> df = store.training_set("card_fraud_v1", spine="labels.parquet")        # a Spark DataFrame
    >>> pdf = store.to_pandas(df)                                    # the spine's own types back
    >>> store.write_training_set("card_fraud_v1", spine="labels.parquet", out="ts/v1")  # Parquet + _manifest.json

`training_set` returns a plain Spark DataFrame (not a subclass or wrapper): every Spark and
Delta API keeps working on it, `df.toPandas()` is one call, and nothing is hidden.
`store.to_pandas(df)` exists because Spark's own conversion turns instants into naive
wall-clock values of the session zone and integers holding a NULL into floats; it gives the
spine's columns back as they came (`training.output.to_pandas`).

How a build goes (each step one function below):
1. resolve `group:feature` / `group:*` references into output columns (`definitions.refs.resolve_features`);
2. read the spine, give every row an id and an instant, and profile it in one pass (rows,
   fingerprint, snapshot dates) — `training_spine.read_spine` / `profile_spine`;
3. pin each group's Delta table to its latest version (read the version number first, then
   `versionAsOf` it), and take its coverage from the run log as of that version;
4. refuse spine dates an aggregation group never published (`MissingCoverage`), unless
   `allow_missing`;
5. join each group (`training.join.join_group`: `engine.pit.snapshot_join` / `asof_join`), keep spine order.
A rebuild from a manifest skips 1, 3 and 4's lookups: everything comes from the manifest, so
the rows are the same however many runs have published since.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from featurebank.definitions.refs import AD_HOC, resolve_features
from featurebank.errors import MissingCoverage, UsageError
from featurebank.training.manifest import (
    Manifest,
    PinnedGroup,
    PitStatistics,
    read_manifest,
    register_manifest,
    write_manifest,
)
from featurebank.training.known import known_join, pin_known, refuse_row_level
from featurebank.training.reads import group_reads, held_dates, published_dates

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import DataFrame, SparkSession

    from featurebank.definitions.model import Project
    from featurebank.training.browse import GroupDescription

DEFAULT_TIMESTAMP_COLUMN = "ts"
ROW_ID = "__fb_row_id"
INSTANT = "__fb_ts"
_STATUS = "__fb_status__"
# Spines up to this many rows are broadcast to pick the asked-for snapshot rows before the
# join (pit.snapshot_join's small_spine): a few tens of MB per executor, never the whole table.
SMALL_SPINE_ROWS = 5_000_000
Progress = Callable[[str], None]


@dataclass
class TrainingSetBuild:
    """A built (not yet materialised) training set: the frame, and the manifest describing it.

    `frame` is what users get: the spine's columns, then the features, in spine order.
    `statistics()` computes the point-in-time summary in one aggregate pass.
    """

    frame: DataFrame
    manifest: Manifest
    internal: DataFrame = field(repr=False)  # frame + row id + per-group status columns

    def statistics(self) -> PitStatistics:
        """Rows, per-feature NULL share and per-group match statuses, in one aggregate pass."""
        from pyspark.sql import functions as F

        columns = [c for g in self.manifest.groups for _, c in g.read.features]
        groups = [g.read.group for g in self.manifest.groups]
        from featurebank.engine import pit

        from featurebank.engine.known import STATUS_NOT_KNOWN

        statuses = (pit.STATUS_MATCHED, pit.STATUS_FILLED, pit.STATUS_UNCOVERED, pit.STATUS_EXPIRED,
                    pit.STATUS_NO_ROW, pit.STATUS_NULL_INPUT, STATUS_NOT_KNOWN)
        aggregates = [F.count(F.lit(1)).alias("rows")]
        aggregates += [F.sum(F.col(f"`{c}`").isNull().cast("long")).alias(f"n{i}") for i, c in enumerate(columns)]
        aggregates += [
            F.sum((F.col(f"`{_STATUS}{g}`") == s).cast("long")).alias(f"g{i}_{s}")
            for i, g in enumerate(groups) for s in statuses
        ]
        row = self.internal.agg(*aggregates).first()
        values = row.asDict() if row is not None else {}
        rows = int(values.get("rows") or 0)
        share = (lambda n: (int(n or 0) / rows) if rows else 0.0)
        return PitStatistics(
            rows=rows,
            null_share={c: share(values[f"n{i}"]) for i, c in enumerate(columns)},
            status_share={g: {s: share(values[f"g{i}_{s}"]) for s in statuses if values[f"g{i}_{s}"]}
                          for i, g in enumerate(groups)},
            kinds={g.read.group: g.read.kind for g in self.manifest.groups},
        )


@dataclass(frozen=True)
class WrittenTrainingSet:
    """What `write_training_set` wrote: the directory, its manifest and the PIT summary."""

    path: str
    manifest: Manifest
    statistics: PitStatistics


class FeatureStore:
    """A project's features, for building point-in-time-correct training sets.

    `project` is a project directory (holding `features/` and `conf/`) or a loaded
    `Project`; `env` picks `conf/<env>.yaml` (default `$FEATUREBANK_ENV`, else `local`);
    `spark` is an existing session (default: the active one, or one built for the env).
    Loading raises `DefinitionError`/`ConfigError` for a broken project.
    """

    def __init__(self, project: str | Path | Project = ".", env: str | None = None,
                 spark: SparkSession | None = None, progress: Progress | None = None) -> None:
        from featurebank.definitions.model import Project as ProjectType

        if isinstance(project, ProjectType):
            self.project = project
        else:
            from featurebank.definitions import load_project

            self.project = load_project(project, env)
        self._spark = spark
        self._progress = progress or (lambda message: None)

    @property
    def spark(self) -> SparkSession:
        """The session builds run on; the project time zone is applied to it."""
        from featurebank.io.spark import get_spark

        if self._spark is None:
            self._spark = get_spark(self.project.config)
        return self._spark

    @property
    def timezone(self) -> str:
        return self.project.config.timezone

    # --- looking around (training.browse) ---------------------------------------------------

    def groups(self) -> list[str]:
        """The names of every feature group the project defines, sorted (no Spark)."""
        from featurebank.training.browse import group_names

        return group_names(self.project)

    def describe(self, group: str) -> GroupDescription:
        """What `group` holds: entity, source, every feature's type and meaning in words, its
        table's Delta version and newest published snapshot date. Reads the definitions and
        the Delta and run logs directly: no Spark (except where Lake Formation governs the
        tables). `print()` it, or `.to_pandas()` its features. Raises `UsageError` for an
        unknown group."""
        from featurebank.training.browse import describe_group

        return describe_group(self.project, group, lambda: self.spark)

    def read(self, group: str, start: date | str, end: date | str | None = None, *,
             features: Sequence[str] | None = None, as_pandas: bool = True) -> pd.DataFrame | DataFrame:
        """The published rows of `group` for snapshot dates `start..end` (inclusive; `end`
        defaults to `start`; dates or ISO strings), at the table's latest version.

        Columns: entity keys, `feature_date`, `feature_ts`, then `features` (default: all);
        ordered by date and keys. `as_pandas` (default) converts as `to_pandas` does; False
        returns the Spark DataFrame. Raises `UsageError` for an unknown group, feature or
        date, or a group with no table yet.
        """
        from featurebank.training.browse import read_group

        first = _as_date(start, "start")
        frame = read_group(self.spark, self.project, group, first, first if end is None else _as_date(end, "end"),
                           features)
        return self.to_pandas(frame) if as_pandas else frame

    def training_set(self, name: str | None = None, *, features: Sequence[str] | None = None, spine: Any,
                     timestamp_column: str = DEFAULT_TIMESTAMP_COLUMN, full_names: bool = False,
                     allow_missing: bool = False, out: str | Path | None = None,
                     principal: str | None = None, as_known_at: str | None = None) -> DataFrame:
        """Build training set `name` (or the `features` references) on `spine`; return the DataFrame.

        `spine`: a Spark DataFrame, a pandas DataFrame, or a path (Parquet, Delta or CSV)
        holding the keys of every entity involved and `timestamp_column`. One row per spine
        row, the spine's columns unchanged and in order, then the features. With `out`, also
        writes it (see `write_training_set`). `principal` (default: the environment's
        `governance.identity` where Lake Formation governs it) is checked against conf's grants
        before anything is read. Raises `DefinitionError` (unknown reference, name clash),
        `UsageError` (bad spine), `MissingCoverage` (unpublished dates), `AccessDenied`.

        `as_known_at`: "event" (event-time correct: the snapshot of date(ts) as published now) or
        "publish" (each row gets the values as published at its instant: the snapshot of
        `date(ts) - lag`, before any later restatement; aggregation groups only). None takes the
        training set's `as_known_at` (default "event"); an explicit value wins.
        """
        if out is not None:
            self.write_training_set(name, features=features, spine=spine, out=out, timestamp_column=timestamp_column,
                                    full_names=full_names, allow_missing=allow_missing, principal=principal,
                                    as_known_at=as_known_at)
            return self.spark.read.parquet(str(out))
        return self.build_training_set(name, features=features, spine=spine, timestamp_column=timestamp_column,
                                       full_names=full_names, allow_missing=allow_missing, principal=principal,
                                       as_known_at=as_known_at).frame

    def write_training_set(self, name: str | None = None, *, features: Sequence[str] | None = None, spine: Any,
                           out: str | Path, timestamp_column: str = DEFAULT_TIMESTAMP_COLUMN,
                           full_names: bool = False, allow_missing: bool = False,
                           from_manifest: str | Path | None = None, principal: str | None = None,
                           as_known_at: str | None = None) -> WrittenTrainingSet:
        """Build and write a training set: Parquet files under `out`, then `out/_manifest.json`.

        With `from_manifest` (a manifest file or a training-set directory), rebuild with the
        features, flags, Delta versions and coverage it recorded, ignoring the other
        arguments except `spine` and `out`: the same spine gives the same rows. `out` may be a
        new or empty directory or an earlier training set (replaced); anything else, and any
        path in or over the feature root or the spine, is refused (`UsageError`) before
        anything is read. The spine's columns keep their types (zones included) in the files.
        The manifest is also registered under `<feature_root>/_training_sets`, so `featurebank
        vacuum` keeps what it needs. Returns the path, the manifest and the point-in-time summary.
        """
        from pyspark import StorageLevel

        from featurebank.training.output import check_output, spine_path, write_parquet

        target = str(out)
        check_output(target, self.project.config.feature_root, spine_path(spine))
        if from_manifest is not None:
            build = self.rebuild(from_manifest, spine=spine, principal=principal)
        else:
            build = self.build_training_set(name, features=features, spine=spine, timestamp_column=timestamp_column,
                                            full_names=full_names, allow_missing=allow_missing, principal=principal,
                                            as_known_at=as_known_at)
        internal = build.internal.persist(StorageLevel.MEMORY_AND_DISK)
        try:
            build = TrainingSetBuild(internal.select(*build.frame.columns), build.manifest, internal)
            self._progress(f"writing {target}")
            write_parquet(build.frame, target, self.timezone)
            statistics = build.statistics()
        finally:
            internal.unpersist()
        manifest = build.manifest.with_output(target, statistics.rows)
        write_manifest(manifest, target)
        registered = register_manifest(manifest, self.project.config.feature_root)
        self._progress(f"wrote {statistics.rows} rows and {target}/_manifest.json (registered as {registered})")
        return WrittenTrainingSet(target, manifest, statistics)

    def build_training_set(self, name: str | None = None, *, features: Sequence[str] | None = None, spine: Any,
                           timestamp_column: str = DEFAULT_TIMESTAMP_COLUMN, full_names: bool = False,
                           allow_missing: bool = False, principal: str | None = None,
                           as_known_at: str | None = None) -> TrainingSetBuild:
        """Everything `training_set` does, also returning the manifest and the statistics hook."""
        from featurebank.compile.group import compile_group
        from featurebank.io.tables import current_version

        mode = self._mode(name, as_known_at)
        references, where = self._references(name, features)
        selected = resolve_features(self.project, references, full_names=full_names, where=where,
                                    asker=f"training set '{name}'" if name else AD_HOC)
        self._check_access([(s.group, s.feature) for s in selected], principal)
        reads = group_reads(self.project, selected)
        if mode == "publish":
            refuse_row_level(reads)
        runs = self._runs() if any(r.kind == "aggregation" for r in reads) else []
        pinned = []
        for read in reads:
            version = current_version(read.table_path, spark=lambda: self.spark,
                                      lake_formation=self.project.config.governance.lake_formation)
            if version is None:
                raise MissingCoverage(f"feature group '{read.group}' has no table at {read.table_path}; run "
                                      f"`featurebank run {read.group}` for the spine's dates first")
            published = published_dates(runs, read.group, version) if read.kind == "aggregation" else ()
            compiled = compile_group(self.project, read.group)
            group = PinnedGroup(read, version, compiled.data_hash, published)
            if mode == "publish":
                group = pin_known(self.spark, group, runs, compiled.source.lag_days, self.timezone,
                                  self.project.config.feature_root)
            pinned.append(group)
            self._progress(f"{read.group}: Delta version {version} at {read.table_path}")
        manifest = Manifest.new(training_set=name, requested=tuple(references),
                                features=tuple(s.reference for s in selected), timestamp_column=timestamp_column,
                                full_names=full_names, allow_missing=allow_missing, timezone=self.timezone,
                                env=self.project.config.env, groups=tuple(pinned), as_known_at=mode)
        return self._build(manifest, spine)

    def rebuild(self, manifest: str | Path | Manifest, *, spine: Any, principal: str | None = None) -> TrainingSetBuild:
        """Rebuild a training set exactly as a manifest recorded it (same versions, same coverage).

        Warns through the progress callback when the spine's fingerprint differs from the
        recorded one (the rows then differ as the spine does). Raises `UsageError` when the
        manifest cannot be read.
        """
        recorded = manifest if isinstance(manifest, Manifest) else read_manifest(manifest)
        self._check_access([(g.read.group, f) for g in recorded.groups for f, _ in g.read.features], principal)
        return self._build(recorded.for_rebuild(), spine, expected_fingerprint=recorded.spine_fingerprint)

    def to_pandas(self, frame: DataFrame) -> pd.DataFrame:
        """`frame` as pandas with the types it went in with: a spine column that came with a
        zone has that zone, a naive one is naive (the same wall clock), other instants
        (features, Spark spines) are in the project time zone; integers stay integers (NULL is
        `<NA>`); a pandas spine's columns get their dtypes back (`training.output.to_pandas`)."""
        from featurebank.training.output import to_pandas

        return to_pandas(frame, self.timezone)

    # --- internals -----------------------------------------------------------------------

    def _references(self, name: str | None, features: Sequence[str] | None) -> tuple[tuple[str, ...], str]:
        if name and features:
            raise UsageError("give a training set name or feature references, not both")
        if features:
            refs = [features] if isinstance(features, str) else list(features)
            return tuple(r.strip() for item in refs for r in item.split(",") if r.strip()), ""
        if not name:
            raise UsageError("name a training set (e.g. card_fraud_v1) or give --features group:feature,...")
        training_set = self.project.training_sets.get(name)
        if training_set is None:
            from featurebank.definitions.loader import did_you_mean

            known = sorted(self.project.training_sets)
            raise UsageError(f"unknown training set '{name}'{did_you_mean(name, known)}; "
                             f"defined: {', '.join(known) or 'none'} (or give --features)")
        return training_set.features, str(training_set.loc)

    def _check_access(self, features: Sequence[tuple[str, str]], principal: str | None) -> None:
        """Governance: refuse (`AccessDenied`) features the principal may not read, before any read."""
        from featurebank.training.access import check_access

        if principal is not None and not principal.strip():
            raise UsageError("--as (principal=) names no principal; give the principal to check access as "
                             "(e.g. an IAM role ARN), or drop --as to use the environment's identity")
        who = check_access(self.project, features, principal)
        if who is not None:
            self._progress(f"access checked as {who}")

    def _runs(self) -> list[Any]:
        """The run log, JVM-free unless Lake Formation governs the tables (`read_run_log`): read
        through Spark it cost ~50 s of a 94 s `training-set` process on a loaded machine."""
        from featurebank.io.runlog import read_run_log

        config = self.project.config
        return read_run_log(config.feature_root, spark=lambda: self.spark, lake_formation=config.governance.lake_formation)

    def _build(self, manifest: Manifest, spine: Any, expected_fingerprint: str | None = None) -> TrainingSetBuild:
        from pyspark.sql import functions as F

        from featurebank.training.join import broadcasts, group_columns, join_group
        from featurebank.training.spine import profile_spine, read_spine

        tables = {p.read.group: self.spark.read.format("delta").option("versionAsOf", p.version).load(p.read.table_path)
                  for p in manifest.groups}
        key_types = {k: dict(tables[p.read.group].dtypes)[k] for p in manifest.groups for k in p.read.keys
                     if k in tables[p.read.group].columns}
        self._progress("reading the spine")
        zone = manifest.timezone
        frame, source = read_spine(self.spark, spine, manifest.timestamp_column, zone,
                                   internal_id=ROW_ID, internal_ts=INSTANT, key_types=key_types)
        user_columns = [c for c in frame.columns if c not in (ROW_ID, INSTANT)]
        self._check_spine(user_columns, manifest)
        profile = profile_spine(frame, user_columns, INSTANT, zone)
        if expected_fingerprint is not None and profile.fingerprint != expected_fingerprint:
            self._progress("warning: this spine differs from the one the manifest recorded; rows will differ accordingly")
        self._progress(f"spine: {profile.rows} rows over {len(profile.dates)} dates")
        if not manifest.allow_missing and manifest.as_known_at != "publish":  # publish: unknown is NULL, counted
            self._check_coverage(manifest, profile.dates)

        result = frame
        # every group broadcast: the spine is never shuffled and keeps its order, no sort by row id
        in_order = manifest.as_known_at != "publish" and profile.rows <= SMALL_SPINE_ROWS and broadcasts(
            self.spark, [(p, tables[p.read.group]) for p in manifest.groups], profile.rows)
        for pinned in manifest.groups:
            status = f"{_STATUS}{pinned.read.group}"
            if manifest.as_known_at == "publish":
                table = tables[pinned.read.group].select(*group_columns(pinned))
                result = known_join(self.spark, result, table, pinned, profile.dates,
                                    self.project.config.feature_root, zone, INSTANT, status)
            else:
                result = join_group(result, tables[pinned.read.group], pinned, profile, instant=INSTANT, timezone=zone,
                                    status_column=status, small_spine=profile.rows <= SMALL_SPINE_ROWS,
                                    broadcast=in_order)
        if not in_order:
            result = result.orderBy(ROW_ID)
        feature_columns = [c for g in manifest.groups for _, c in g.read.features]
        spine_fields = {f.name: f for f in frame.schema.fields}  # joins may drop field metadata
        public = result.select(*(F.col(f"`{c}`").alias(c, metadata=spine_fields[c].metadata) for c in user_columns),
                               *(F.col(f"`{c}`") for c in feature_columns))
        return TrainingSetBuild(public, manifest.with_spine(source, profile), result)

    def _mode(self, name: str | None, as_known_at: str | None) -> str:
        """The time a build joins on: the argument, else the training set's `as_known_at`, else event."""
        from featurebank.definitions.model import AS_KNOWN_AT

        if as_known_at is None:
            declared = self.project.training_sets.get(name) if name else None
            return declared.as_known_at if declared is not None else "event"
        if as_known_at not in AS_KNOWN_AT:
            raise UsageError(f"--as-known-at {as_known_at!r} is not a mode; use --as-known-at publish (values as "
                             "published at each spine instant) or event (the default, event-time correct)")
        return as_known_at

    def _check_spine(self, columns: list[str], manifest: Manifest) -> None:
        problems = []
        for pinned in manifest.groups:
            missing = [k for k in pinned.read.keys if k not in columns]
            if missing:
                problems.append(f"the spine has no column {', '.join(missing)}, which feature group "
                                f"'{pinned.read.group}' is keyed by; add it to the spine")
            clash = [c for _, c in pinned.read.features if c in columns]
            if clash:
                problems.append(f"the spine already has column(s) {', '.join(clash)}, which feature group "
                                f"'{pinned.read.group}' would add; rename them in the spine or use full names")
        if problems:
            raise UsageError("; ".join(dict.fromkeys(problems)))

    def _check_coverage(self, manifest: Manifest, spine_dates: frozenset[Any]) -> None:
        lines = []
        for pinned in manifest.groups:
            if pinned.read.kind != "aggregation":
                continue
            missing = sorted(spine_dates - set(pinned.published))
            if missing:  # a date whose rows the table holds is covered, whatever the log says
                missing = sorted(set(missing) - held_dates(self.spark, pinned, missing))
            if missing:
                shown = ", ".join(d.isoformat() for d in missing[:5])
                more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
                lines.append(f"feature group '{pinned.read.group}' never published {len(missing)} snapshot date(s) "
                             f"the spine asks for: {shown}{more}; run `featurebank run {pinned.read.group} --start "
                             f"{missing[0]} --end {missing[-1]}`")
        if lines:
            raise MissingCoverage("\n".join(lines) + "\nor build with --allow-missing (allow_missing=True) to get "
                                                     "NULLs for those dates")


def _as_date(value: date | str, name: str) -> date:
    """A snapshot date given as a date or an ISO string (`UsageError` for anything else)."""
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise UsageError(f"{name} {value!r} is not a date; give a datetime.date or YYYY-MM-DD") from None
