"""Browsing feature groups from a notebook: their names, what they hold, and their rows.

`FeatureStore.groups()`, `.describe(group)` and `.read(group, start, end)` (`training.api`)
call these. Names, types and meanings come from the definitions (`compile.group`,
`compile.semantics`); the table's state from its Delta log and the run log, read without a
JVM (`io.metadata`, `io.runlog.read_run_log`), so `describe` starts no Spark. Where Lake
Formation governs the tables (conf `governance.lake_formation`) a direct read of the files
would bypass its grants, so those two reads go through Spark there. `read` is a Spark read of
the group's Delta table, pruned to the snapshot dates asked for.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

from featurebank.errors import UsageError

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import DataFrame, SparkSession

    from featurebank.definitions.model import Project

FEATURE_DATE = "feature_date"
FEATURE_TS = "feature_ts"


@dataclass(frozen=True)
class FeatureInfo:
    """One feature column: its Spark type, what kind of feature it is and what it means."""

    name: str
    type: str  # Spark SQL type; "?" where it cannot be known without Spark
    kind: str  # aggregation | derived | row
    meaning: str  # the exact meaning in words (compile.semantics), e.g. its window and empty value
    description: str = ""  # what the definition says


@dataclass(frozen=True)
class GroupDescription:
    """A feature group as a notebook user needs it: `print()` it, or `.features` / `.to_pandas()`.

    `delta_version` is the table's latest version and `last_published` the newest snapshot
    date a published run covered (None: never published).
    """

    group: str
    kind: str  # aggregation | row
    entity: str
    keys: tuple[str, ...]
    description: str
    owner: str
    source: str
    timezone: str
    table_path: str
    data_hash: str
    features: tuple[FeatureInfo, ...]
    delta_version: int | None
    last_published: date | None

    def __str__(self) -> str:
        from featurebank.compile.render import text_table
        from featurebank.redact import redact

        shape = ("aggregation group: one row per entity and snapshot date" if self.kind == "aggregation"
                 else "row-level group: one row per source row")
        state = ("never published" if self.delta_version is None
                 else f"Delta version {self.delta_version}, published through {self.last_published or '-'}")
        lines = [f"{self.group}: {self.description}" if self.description else self.group]
        lines += text_table([
            ("kind:", shape),
            ("entity:", f"{self.entity} (keys: {', '.join(self.keys)})"),
            ("owner:", self.owner or "-"),
            ("source:", self.source),
            ("table:", f"{self.table_path} ({state})"),
            ("time zone:", self.timezone),
        ], "  ")
        lines += ["", f"Features ({len(self.features)}):"]
        lines += text_table([(f.name, f.type, f.meaning) for f in self.features], "  ")
        return redact("\n".join(lines) + "\n")

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        """IPython / Jupyter show the description as text, not as a dataclass repr."""
        printer.text(str(self))

    def to_pandas(self) -> pd.DataFrame:
        """One row per feature: name, type, kind, meaning, description."""
        import pandas as pd

        return pd.DataFrame([vars(f) for f in self.features], columns=["name", "type", "kind", "meaning", "description"])


def group_names(project: Project) -> list[str]:
    """Every feature group the project defines, sorted by name."""
    return sorted(project.groups)


def check_group(project: Project, group: str) -> None:
    """Raise `UsageError` naming the groups (and the closest one) when `group` is not defined."""
    if group not in project.groups:
        from featurebank.definitions.loader import did_you_mean

        names = sorted(project.groups)
        raise UsageError(f"unknown feature group '{group}'{did_you_mean(group, names)} (groups: {', '.join(names)})")


def describe_group(project: Project, group: str, spark: Callable[[], SparkSession]) -> GroupDescription:
    """What `group` holds and how far it is published, without starting Spark.

    `spark()` is called only where Lake Formation governs the tables. Raises `UsageError`
    for an unknown group.
    """
    from featurebank.compile.group import compile_group
    from featurebank.compile.semantics import group_semantics
    from featurebank.io.runlog import read_run_log
    from featurebank.io.tables import current_version

    check_group(project, group)
    compiled = compile_group(project, group)
    meanings = group_semantics(compiled)
    columns = {c.name: c for c in compiled.output}
    features = tuple(FeatureInfo(name, columns[name].type, meaning.kind, meaning.sentence, columns[name].description)
                     for name, meaning in meanings.items())
    governed = project.config.governance.lake_formation
    runs = read_run_log(project.config.feature_root, group, spark=spark, lake_formation=governed)
    published = [r.end_date for r in runs if r.status == "published"]
    return GroupDescription(
        group=group, kind=compiled.kind, entity=compiled.entity, keys=compiled.keys,
        description=compiled.description, owner=compiled.owner,
        source=f"{compiled.source.name} ({compiled.source.format}: {compiled.source.location})",
        timezone=compiled.timezone, table_path=compiled.table_path, data_hash=compiled.data_hash,
        features=features, delta_version=current_version(compiled.table_path, spark=spark, lake_formation=governed),
        last_published=max(published) if published else None,
    )


def read_group(spark: SparkSession, project: Project, group: str, start: date, end: date,
               features: Sequence[str] | None = None) -> DataFrame:
    """The rows of `group`'s table for snapshot dates `start..end` (inclusive), at its latest version.

    Columns: the entity keys, `feature_date`, `feature_ts`, then `features` (default: every
    feature) in the order asked; rows ordered by date, then keys. Raises `UsageError` for an
    unknown group or feature, `end` before `start`, or a group never published (no table).
    """
    from pyspark.sql import functions as F

    from featurebank.io.tables import table_version

    check_group(project, group)
    if end < start:
        raise UsageError(f"read of '{group}': end {end} is before start {start}; give start <= end")
    path = project.table_path(group)
    if table_version(spark, path) is None:
        raise UsageError(f"feature group '{group}' has no table at {path} yet; publish it first "
                         f"(`featurebank run {group} --start {start} --end {end}`)")
    table = spark.read.format("delta").load(path)
    keys = list(project.entities[project.groups[group].entity].keys)
    fixed = [*keys, FEATURE_DATE, FEATURE_TS]
    available = [c for c in table.columns if c not in fixed]
    wanted = list(available if features is None else ([features] if isinstance(features, str) else features))
    unknown = [f for f in wanted if f not in available]
    if unknown:
        from featurebank.definitions.loader import did_you_mean

        raise UsageError(f"feature group '{group}' has no feature {unknown[0]!r}{did_you_mean(unknown[0], available)}; "
                         f"its features: {', '.join(available)}")
    rows = table.where(F.col(FEATURE_DATE).between(F.lit(start), F.lit(end)))
    return rows.select(*(F.col(f"`{c}`") for c in [*fixed, *wanted])).orderBy(FEATURE_DATE, *keys)
