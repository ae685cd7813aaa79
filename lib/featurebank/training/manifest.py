"""The training-set manifest (`<out>/_manifest.json`) and the point-in-time summary.

A manifest records everything needed to rebuild the same rows: the resolved features and
flags, and per group the table path, the Delta version read, the data hash, how to
join it (kind, keys, ttl, count columns) and the snapshot dates it had published at that
version. A rebuild reads nothing else (not the definitions, not the run log).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from featurebank.compile.known import KnownVersion
from featurebank.errors import UsageError

if TYPE_CHECKING:
    from featurebank.definitions.model import Project
    from featurebank.training.spine import SpineProfile

MANIFEST_FILE = "_manifest.json"
REGISTRY = "_training_sets"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class GroupRead:
    """How one group takes part: which columns to read from its table and how to join them."""

    group: str
    kind: str  # aggregation | row
    keys: tuple[str, ...]
    ttl_days: int | None
    table_path: str
    features: tuple[tuple[str, str], ...]  # (feature in the table, output column)
    count_columns: tuple[str, ...]  # output columns that are 0 on a published date without a row


@dataclass(frozen=True)
class PinnedGroup:
    """A group read at one Delta version, with the snapshot dates published as of it."""

    read: GroupRead
    version: int
    data_hash: str | None  # None: pinned by an older featurebank, which recorded only definition_hash
    published: tuple[date, ...] = ()
    # Knowledge time (`as_known_at: publish`): the source's lag, the history table's version
    # read (None: nothing superseded yet) and every (date, run) version with its known interval.
    lag_days: int | None = None
    history_version: int | None = None
    known: tuple[KnownVersion, ...] = ()


@dataclass(frozen=True)
class Manifest:
    """What a training set was built from; `to_json()` is the file's content."""

    training_set: str | None
    requested: tuple[str, ...]
    features: tuple[str, ...]  # resolved group:feature references
    timestamp_column: str
    full_names: bool
    allow_missing: bool
    timezone: str
    env: str
    groups: tuple[PinnedGroup, ...]
    created_at: str = ""
    spine: dict[str, Any] = field(default_factory=dict)
    output: dict[str, Any] = field(default_factory=dict)
    rebuilt_from: str | None = None
    as_known_at: str = "event"  # event (event-time correct) | publish (values as published then)

    @classmethod
    def new(cls, **values: Any) -> Manifest:
        return cls(created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"), **values)

    @property
    def spine_fingerprint(self) -> str | None:
        return self.spine.get("fingerprint")

    def with_spine(self, source: str, profile: SpineProfile) -> Manifest:
        return replace(self, spine={"source": source, "rows": profile.rows, "fingerprint": profile.fingerprint,
                                    "schema": [list(c) for c in profile.schema]})

    def with_output(self, path: str, rows: int) -> Manifest:
        return replace(self, output={"path": path, "rows": rows, "format": "parquet"})

    def for_rebuild(self) -> Manifest:
        """This manifest as the recipe of a rebuild: same everything, new times and output."""
        return replace(self, created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"), output={},
                       rebuilt_from=self.created_at)

    def to_json(self) -> str:
        document = asdict(self)
        document["format"] = FORMAT_VERSION
        for group in document["groups"]:
            group["published"] = _date_ranges(group["published"])
            group["known"] = [[v["feature_date"], v["run_id"], v["known_from"], v["known_until"], v["superseded_by"]]
                              for v in group["known"]]
        return json.dumps(document, indent=2, sort_keys=True, default=str) + "\n"

    @classmethod
    def from_json(cls, text: str, where: str = "manifest") -> Manifest:
        """Parse a manifest; raises `UsageError` naming `where` if it is not one."""
        try:
            doc = json.loads(text)
            if doc.get("format") != FORMAT_VERSION:
                raise ValueError(f"format {doc.get('format')!r}, expected {FORMAT_VERSION}")
            groups = tuple(
                PinnedGroup(
                    read=GroupRead(**{**g["read"], "keys": tuple(g["read"]["keys"]),
                                      "features": tuple(tuple(f) for f in g["read"]["features"]),
                                      "count_columns": tuple(g["read"]["count_columns"])}),
                    version=int(g["version"]),
                    data_hash=g.get("data_hash"),
                    published=_expand_ranges(g["published"]),
                    lag_days=g.get("lag_days"),
                    history_version=g.get("history_version"),
                    known=tuple(_known_version(v) for v in g.get("known", ())),
                )
                for g in doc["groups"]
            )
            fields_ = {k: doc[k] for k in ("training_set", "timestamp_column", "full_names", "allow_missing",
                                          "timezone", "env", "created_at", "spine", "output", "rebuilt_from")}
            return cls(requested=tuple(doc["requested"]), features=tuple(doc["features"]), groups=groups,
                       as_known_at=doc.get("as_known_at", "event"), **fields_)
        except (ValueError, KeyError, TypeError) as error:
            raise UsageError(f"{where} is not a featurebank training-set manifest ({error}); "
                             "point --from-manifest at a _manifest.json a training set wrote") from None


@dataclass(frozen=True)
class PitStatistics:
    """The point-in-time summary of a training set.

    `null_share`: per feature column, the share of rows where it is NULL. `status_share`:
    per group, the share of rows by join outcome (`engine.pit.STATUS_*`: matched, filled,
    uncovered for aggregation groups; matched, expired, no_row for row-level ones; null_input
    where a key or the timestamp is NULL). Shares are 0..1 of `rows`.
    """

    rows: int
    null_share: dict[str, float]
    status_share: dict[str, dict[str, float]]
    kinds: dict[str, str]


def manifest_location(path: str | Path) -> str:
    """The manifest file for a training-set directory, or the file itself."""
    text = str(path)
    return text if text.endswith(".json") else f"{text.rstrip('/')}/{MANIFEST_FILE}"


def write_manifest(manifest: Manifest, out: str) -> str:
    """Write `out/_manifest.json` (local path or s3://) atomically; return its location."""
    from featurebank.io.files import write_text

    location = manifest_location(out)
    write_text(location, manifest.to_json())
    return location


def read_manifest(path: str | Path) -> Manifest:
    """Read a manifest file (or a training-set directory's); raises `UsageError` if unreadable."""
    from featurebank.io.files import read_text

    location = manifest_location(path)
    try:
        text = read_text(location)
    except (OSError, ValueError) as error:
        raise UsageError(f"cannot read the manifest {location}: {error}") from None
    return Manifest.from_json(text, location)


def register_manifest(manifest: Manifest, feature_root: str) -> str:
    """Copy `manifest` into the registry, `<feature_root>/_training_sets/<name>/<build id>.json`.

    `<name>` is the training set's name, or `features-<hash>` of its resolved features for an
    ad hoc one; the build id is the build's UTC time and a random suffix. `featurebank
    vacuum` keeps every file a registered manifest needs. Returns the entry's location.
    """
    import hashlib
    import secrets

    name = manifest.training_set or "features-" + hashlib.sha256(
        "\n".join(manifest.features).encode()).hexdigest()[:12]
    build = f"{datetime.now(timezone.utc):%Y%m%dT%H%M%S%fZ}-{secrets.token_hex(4)}"
    return write_manifest(manifest, f"{registry_path(feature_root)}/{name}/{build}.json")


def stale_reasons(manifest: Manifest, project: Project) -> tuple[str, ...]:
    """Why building `manifest`'s training set again on the same spine would give other rows.

    Empty when every group it pinned is still at the Delta version it read and its definitions
    still compile to the data hash recorded, and the definition of the named training set still
    asks for the same features. JVM-free (the Delta logs through `io.metadata`), so a caller can
    decide whether to start Spark at all.
    """
    from featurebank.compile.group import compile_group
    from featurebank.io.metadata import table_version

    reasons = []
    declared = project.training_sets.get(manifest.training_set) if manifest.training_set else None
    if manifest.training_set and declared is None:
        reasons.append(f"training set '{manifest.training_set}' is no longer defined")
    elif declared is not None and tuple(declared.features) != manifest.requested:
        reasons.append(f"training set '{manifest.training_set}' now asks for other features")
    for pinned in manifest.groups:
        group = pinned.read.group
        if group not in project.groups:
            reasons.append(f"feature group '{group}' is no longer defined")
            continue
        current = table_version(pinned.read.table_path, lake_formation=project.config.governance.lake_formation)
        if current != pinned.version:
            reasons.append(f"{group} is at Delta version {current}, the manifest read version {pinned.version}")
        data_hash = compile_group(project, group).data_hash
        if data_hash != pinned.data_hash:
            reasons.append(f"{group}'s definitions now compile to data_hash {data_hash[:12]}, "
                           f"the manifest read {str(pinned.data_hash)[:12]}")
    return tuple(reasons)


def registry_path(feature_root: str) -> str:
    """Where training-set builds are registered: `<feature_root>/_training_sets`."""
    return f"{feature_root.rstrip('/')}/{REGISTRY}"


def registered_manifests(feature_root: str) -> list[tuple[str, Manifest]]:
    """Every registered manifest as (location, manifest), oldest build first.

    Raises `UsageError` naming an entry that is not a manifest (nothing it pins could be
    kept safe).
    """
    from featurebank.io.files import join, list_files

    registry = registry_path(feature_root)
    entries = [f for f in list_files(registry) if f.endswith(".json")]
    found = []
    for entry in sorted(entries, key=lambda e: e.rpartition("/")[2]):  # build ids sort by time
        location = join(registry, entry)
        found.append((location, read_manifest(location)))
    return found


def _date_ranges(days: Any) -> list[list[str]]:
    """Sorted dates as inclusive [first, last] runs of consecutive days."""
    from featurebank.days import date_runs

    return [[a.isoformat(), b.isoformat()] for a, b in date_runs(days)]


def _known_version(values: list[Any]) -> KnownVersion:
    day, run, known_from, known_until, superseded_by = values
    instant = (lambda text: None if text is None else datetime.fromisoformat(text))
    return KnownVersion(date.fromisoformat(day), run, datetime.fromisoformat(known_from), instant(known_until),
                        superseded_by)


def _expand_ranges(ranges: list[list[str]]) -> tuple[date, ...]:
    days: list[date] = []
    for first, last in ranges:
        start, end = date.fromisoformat(first), date.fromisoformat(last)
        days += [start + timedelta(days=i) for i in range((end - start).days + 1)]
    return tuple(days)
