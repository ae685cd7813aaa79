"""How a group's definition differs from what its table was published with (pure).

A group's Delta table records the hashes it was published with: the table properties
`featurebank.data_hash`, `featurebank.metadata_hash` and `featurebank.feature_hashes` (JSON,
feature → hash) where a catalog shows properties (io/table_metadata.py), and the same three in
every publish commit's `userMetadata` (io/tables.py), which `io.metadata.published_hashes` falls
back to. `change_of` compares them with the compiled group's:

- `new`: no table yet;
- `unchanged`: same data and metadata hashes;
- `metadata`: only descriptions, owners, tags, PII declarations, checks or publish conditions
  changed — no published value is stale;
- `additive`: features were added and every published feature still hashes the same — the
  published dates need the new columns, the other features keep their values (a training set
  reading only them stays valid);
- `breaking`: a published feature's value may change (its expression, window, function, or the
  group's source, filter, keys, ttl, time zone), a feature was removed, or the table records no
  per-feature hashes to show otherwise — every published date recomputes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from featurebank.compile.group import CompiledGroup

ChangeKind = Literal["new", "unchanged", "metadata", "additive", "breaking"]

DATA_HASH_PROPERTY = "featurebank.data_hash"
METADATA_HASH_PROPERTY = "featurebank.metadata_hash"
FEATURE_HASHES_PROPERTY = "featurebank.feature_hashes"
OLD_HASH_PROPERTY = "featurebank.definition_hash"  # before issue 17: one hash over data and metadata


@dataclass(frozen=True)
class Change:
    """What changed between a compiled group and its published table.

    `added`, `changed`, `removed` name features (output columns); `kept` the published features
    whose values stay. `recorded` is False when the table records no data hash at all (an older
    featurebank, or no properties and no commit metadata), `per_feature` False when it records no
    per-feature hashes: then a data change cannot be shown to be additive.
    """

    group: str
    kind: ChangeKind
    added: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    kept: tuple[str, ...] = ()
    recorded: bool = True
    per_feature: bool = True
    table_path: str = ""

    @property
    def stale_features(self) -> frozenset[str]:
        """Published features whose values a run would change or drop (every one when the table
        cannot say which)."""
        if self.kind != "breaking":
            return frozenset()
        if not self.per_feature:
            return frozenset((*self.changed, *self.removed, *self.kept))
        return frozenset((*self.changed, *self.removed))


def change_of(compiled: CompiledGroup, published: dict[str, str] | None,
              published_features: tuple[str, ...] = ()) -> Change:
    """How `compiled` differs from its table, given the table's properties (`published`, None when
    there is no table) and, for tables without per-feature hashes, the feature columns it holds."""
    features = compiled.feature_columns
    if published is None:
        return Change(compiled.group, "new", added=features, table_path=compiled.table_path)
    recorded_hash = published.get(DATA_HASH_PROPERTY)
    hashes = _feature_hashes(published.get(FEATURE_HASHES_PROPERTY))
    if recorded_hash == compiled.data_hash:
        kind: ChangeKind = "metadata" if published.get(METADATA_HASH_PROPERTY) != compiled.metadata_hash else "unchanged"
        return Change(compiled.group, kind, kept=features, table_path=compiled.table_path)
    if hashes is None:
        old = tuple(published_features) or features
        return Change(compiled.group, "breaking", added=tuple(f for f in features if f not in old),
                      removed=tuple(f for f in old if f not in features), kept=tuple(f for f in old if f in features),
                      recorded=recorded_hash is not None, per_feature=False, table_path=compiled.table_path)
    current = dict(compiled.feature_hashes)
    added = tuple(f for f in features if f not in hashes)
    removed = tuple(f for f in hashes if f not in current)
    changed = tuple(f for f in features if f in hashes and hashes[f] != current[f])
    kept = tuple(f for f in features if f in hashes and hashes[f] == current[f])
    kind = "breaking" if changed or removed or not added else "additive"
    return Change(compiled.group, kind, added, changed, removed, kept, table_path=compiled.table_path)


def change_kind(compiled: CompiledGroup, published: dict[str, str] | None) -> ChangeKind:
    """`change_of(compiled, published).kind`."""
    return change_of(compiled, published).kind


def _feature_hashes(text: str | None) -> dict[str, str] | None:
    """The recorded feature → hash mapping, or None when absent or unreadable."""
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if not isinstance(value, dict):
        return None
    return {str(k): str(v) for k, v in value.items()}
