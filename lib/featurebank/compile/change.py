"""Is a change to a group a change to its data, or only to its metadata? (pure)

A group's Delta table records the hashes it was published with as table properties
(`featurebank.data_hash`, `featurebank.metadata_hash`; io/table_metadata.py writes them).
`change_kind` compares them with the compiled group's, so `featurebank plan` can say whether
the published values are stale or only their descriptions are.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from featurebank.compile.group import CompiledGroup

ChangeKind = Literal["new", "unchanged", "metadata", "data"]

DATA_HASH_PROPERTY = "featurebank.data_hash"
METADATA_HASH_PROPERTY = "featurebank.metadata_hash"
OLD_HASH_PROPERTY = "featurebank.definition_hash"  # before issue 17: one hash over data and metadata


def change_kind(compiled: CompiledGroup, published: dict[str, str] | None) -> ChangeKind:
    """How `compiled` differs from the table it publishes to, given that table's properties.

    `published` is None when there is no table yet ("new"). A table whose properties hold no
    `featurebank.data_hash` (an older featurebank wrote only `definition_hash`, or nothing
    wrote properties) cannot be shown to match, so it counts as "data". Otherwise "data" when
    the data hashes differ, "metadata" when only the metadata hashes do, else "unchanged".
    """
    if published is None:
        return "new"
    if published.get(DATA_HASH_PROPERTY) != compiled.data_hash:
        return "data"
    if published.get(METADATA_HASH_PROPERTY) != compiled.metadata_hash:
        return "metadata"
    return "unchanged"
