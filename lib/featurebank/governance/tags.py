"""Effective tags: the LF-tags each group table and each of its columns carries, from definitions + lineage.

Computed once per project, with no Spark and no AWS: the compiled group gives each table's
output columns (and their types, for registering the table), `definitions.governance.column_pii`
gives each column's PII flag through the lineage, and the tags of the group, aggregation
or feature give the rest (a feature's own tag overrides its group's).

Every column carries every LF-tag key explicitly, so what a consumer may read never depends
on inheritance. The table itself is tagged `pii=true` whatever its columns say: a column
added later (before the next `featurebank grants`) is then unreadable to non-PII grants
until it is tagged, never readable by accident.
"""

from __future__ import annotations

from dataclasses import dataclass

from featurebank.definitions.governance import PII, Governance, column_pii, governance_of, tag_value
from featurebank.definitions.model import Project
from featurebank.compile.group import compile_group

TABLE_PII = "true"

Tags = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class TableTags:
    """One group table: where it lives, its columns, and the LF-tags of the table and of each column."""

    group: str
    table_path: str
    table: Tags  # LF-tags assigned to the table itself
    columns: tuple[tuple[str, Tags], ...]  # every output column, in table order → its LF-tags
    column_types: tuple[tuple[str, str], ...]  # column → Spark SQL type ("string" where unknown)
    partition: tuple[str, ...] = ("feature_date",)
    pii_reasons: tuple[tuple[str, str], ...] = ()  # PII column → why (`reads customers.income`)

    def column(self, name: str) -> dict[str, str]:
        """The LF-tags of one column (empty for a column the table does not have)."""
        return dict(dict(self.columns).get(name, ()))


def _keep(key: str, governance: Governance) -> bool:
    return not governance.lf_tags or key in governance.lf_tags


def _plain(pairs: object, governance: Governance) -> dict[str, str]:
    """Single-valued tags other than pii, limited to the LF-tag keys."""
    assert isinstance(pairs, tuple)
    return {str(k): tag_value(v) for k, v in pairs if k != PII and not isinstance(v, tuple) and _keep(str(k), governance)}


def table_tags(project: Project, group: str, governance: Governance | None = None) -> TableTags:
    """The effective LF-tags of one group's table and columns (see the module docstring)."""
    governance = governance or governance_of(project)
    definition = project.groups[group]
    compiled = compile_group(project, definition)
    pii = column_pii(project, definition)
    base = _plain(definition.tags, governance)
    own: dict[str, dict[str, str]] = {}
    for aggregation in definition.aggregations:
        for name in aggregation.output_names():
            own[name] = _plain(aggregation.tags, governance)
    for feature in (*definition.features, *definition.derived):
        own[feature.name] = _plain(feature.tags, governance)
    columns: list[tuple[str, Tags]] = []
    for column in compiled.output:
        tags = {**base, **own.get(column.name, {})}
        if _keep(PII, governance):
            flag = pii.get(column.name)
            tags[PII] = "true" if flag is not None and flag.pii else "false"
        columns.append((column.name, tuple(sorted(tags.items()))))
    table = dict(base)
    if _keep(PII, governance):
        table[PII] = TABLE_PII
    return TableTags(
        group=group,
        table_path=compiled.table_path,
        table=tuple(sorted(table.items())),
        columns=tuple(columns),
        column_types=tuple((c.name, c.type if c.type != "?" else "string") for c in compiled.output),
        pii_reasons=tuple((c, p.why) for c, p in pii.items() if p.pii),
    )


def effective_tags(project: Project, governance: Governance | None = None) -> dict[str, TableTags]:
    """Every group's table → its effective LF-tags, groups in name order."""
    governance = governance or governance_of(project)
    return {name: table_tags(project, name, governance) for name in sorted(project.groups)}
