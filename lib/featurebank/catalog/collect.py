"""The catalog as one value: every group and training set with its meaning, lineage and status.

`collect_catalog` is the one place `list`, `describe` and `docs` get their facts from:
definitions (`load_project`) and compiled groups (pure, date-free), the run log and gate
reports (read once), and optionally each group's profile (stored at publish time, see
`catalog.profile`). None of it starts Spark: the run log is read with delta-rs; only where
Lake Formation governs the tables is it read through the SparkSession `spark` provides.

Training-set manifests are discovered in `training_dirs`: every `<dir>/*/_manifest.json`
(and `<dir>/_manifest.json`). The default is `<project>/warehouse/training`, where the local
demo and the examples write training sets; `featurebank docs --training-dir DIR` adds others.
A manifest pins each group's `data_hash`: it stays current while only a group's metadata
(descriptions, owners, tags, checks) changes (`pinned_state`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from featurebank.catalog.status import GroupStatus, SparkProvider, collect_statuses
from featurebank.compile.group import CompiledGroup, compile_group
from featurebank.compile.semantics import FeatureSemantics, group_semantics

if TYPE_CHECKING:
    from featurebank.definitions.model import Project
    from featurebank.engine.profile import GroupProfile

DEFAULT_TRAINING_DIR = Path("warehouse") / "training"
MANIFEST_FILE = "_manifest.json"


@dataclass(frozen=True)
class GroupEntry:
    """One feature group as the catalog shows it."""

    name: str
    compiled: CompiledGroup
    semantics: dict[str, FeatureSemantics]
    status: GroupStatus
    defined_at: str
    source_description: str = ""
    profile: GroupProfile | None = None
    profile_note: str = ""  # why there is no profile (`catalog.profile`), shown in its place

    @property
    def feature_count(self) -> int:
        return len(self.compiled.feature_columns)

    @property
    def tags(self) -> dict[str, Any]:
        return dict(self.compiled.tags)


@dataclass(frozen=True)
class ManifestInfo:
    """One training set written somewhere, from its `_manifest.json`."""

    path: str
    training_set: str | None
    created_at: str
    rows: int | None
    spine: dict[str, Any]
    groups: tuple[tuple[str, int, str | None], ...]  # (group, Delta version read, data hash; None: older manifest)
    rebuilt_from: str | None = None


@dataclass(frozen=True)
class TrainingSetEntry:
    """One training set: its resolved features, the groups it reads and the manifests found."""

    name: str
    description: str
    owner: str
    defined_at: str
    features: tuple[tuple[str, str, str], ...]  # (group, feature, output column)
    manifests: tuple[ManifestInfo, ...] = ()
    error: str | None = None  # a reference that does not resolve (validate reports it)

    @property
    def groups(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(g for g, _, _ in self.features))


@dataclass(frozen=True)
class Catalog:
    """Everything the catalog commands show, for one project and environment."""

    project_root: str
    env: str
    timezone: str
    feature_root: str
    expected_date: date
    groups: dict[str, GroupEntry] = field(default_factory=dict)
    training_sets: dict[str, TrainingSetEntry] = field(default_factory=dict)
    entity_keys: dict[str, tuple[str, ...]] = field(default_factory=dict)
    entity_descriptions: dict[str, str] = field(default_factory=dict)


def lazy_spark(project: Project) -> SparkProvider:
    """A provider that starts (or reuses) the project's SparkSession on first call only."""
    session: list[Any] = []

    def provide() -> Any:
        if not session:
            from featurebank.io.spark import get_spark

            session.append(get_spark(project.config, app_name="featurebank-catalog"))
        return session[0]

    return provide


def discover_manifests(project: Project, training_dirs: Sequence[Path | str] = ()) -> tuple[ManifestInfo, ...]:
    """Every readable training-set manifest under the training directories (default
    `<project>/warehouse/training`), newest first. Unreadable files are skipped."""
    dirs = [Path(d) for d in training_dirs] or [Path(project.root) / DEFAULT_TRAINING_DIR]
    found: dict[str, ManifestInfo] = {}
    for directory in dirs:
        directory = directory if directory.is_absolute() else Path(project.root) / directory
        for path in sorted([*directory.glob(f"*/{MANIFEST_FILE}"), *directory.glob(MANIFEST_FILE)]):
            info = _read_manifest(path)
            if info is not None:
                found.setdefault(str(path.resolve()), info)
    return tuple(sorted(found.values(), key=lambda m: m.created_at, reverse=True))


def _read_manifest(path: Path) -> ManifestInfo | None:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        groups = tuple((str(g["read"]["group"]), int(g["version"]), _data_hash(g)) for g in doc["groups"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    output = doc.get("output") or {}
    return ManifestInfo(str(path.parent), doc.get("training_set"), str(doc.get("created_at", "")),
                        output.get("rows"), dict(doc.get("spine") or {}), groups, doc.get("rebuilt_from"))


def _data_hash(group: dict[str, Any]) -> str | None:
    """The data hash a manifest pinned for one group; None for a manifest written before
    issue 17, which recorded only `definition_hash` (data and metadata in one)."""
    value = group.get("data_hash")
    if value is None and "definition_hash" not in group:
        raise KeyError("data_hash")  # neither: not a manifest this catalog can read
    return None if value is None else str(value)


PinnedState = Literal["current", "changed", "older", "unknown group"]


def pinned_state(catalog: Catalog, group: str, pinned_hash: str | None) -> PinnedState:
    """Whether a manifest's pinned group still computes as the definitions say.

    "current" when the group's data_hash is the pinned one (a description, owner, tag or
    check edit keeps it current), "changed" when what it computes changed since, "older"
    when the manifest predates data hashes (re-pin to compare), "unknown group" when the
    project no longer defines the group.
    """
    entry = catalog.groups.get(group)
    if entry is None:
        return "unknown group"
    if pinned_hash is None:
        return "older"
    return "current" if entry.compiled.data_hash == pinned_hash else "changed"


PINNED_WORDS: dict[PinnedState, str] = {
    "current": "",
    "changed": "data changed since",
    "older": "pinned by an older featurebank: re-pin to compare",
    "unknown group": "group no longer defined",
}


def training_set_entries(project: Project, manifests: Sequence[ManifestInfo]) -> dict[str, TrainingSetEntry]:
    """Every training set with its resolved features and the manifests that name it."""
    from featurebank.definitions.refs import resolve_features

    entries = {}
    for name, ts in sorted(project.training_sets.items()):
        error = None
        try:
            features = tuple((s.group, s.feature, s.column)
                             for s in resolve_features(project, ts.features, where=str(ts.loc),
                                                       asker=f"training set '{name}'"))
        except Exception as problem:  # shown on the page; `validate` is where it gets fixed
            features, error = (), str(problem).splitlines()[0]
        entries[name] = TrainingSetEntry(name, ts.description, ts.owner, str(ts.loc), features,
                                         tuple(m for m in manifests if m.training_set == name), error)
    return entries


def collect_catalog(
    project: Project,
    *,
    spark: SparkProvider | None = None,
    now: datetime | None = None,
    profiles: bool = False,
    training_dirs: Sequence[Path | str] = (),
) -> Catalog:
    """Gather the catalog of `project`: definitions, semantics, statuses, manifests, and with
    `profiles=True` each group's stored profile of its latest published date with rows.

    `spark` provides the SparkSession where Lake Formation makes the run log a Spark read
    (default: `lazy_spark`, started only then);
    `now` (timezone-aware) fixes "today" for freshness. Raises what `compile_group` raises.
    """
    provider = spark or lazy_spark(project)
    statuses = collect_statuses(project, provider, now)
    expected = next(iter(statuses.values())).expected_date if statuses else date.today()
    groups = {}
    for name in sorted(project.groups):
        compiled = compile_group(project, name)
        source = project.sources.get(project.groups[name].source)
        profile, note = None, ""
        if profiles:
            from featurebank.catalog.profile import group_profile

            profile, note = group_profile(project.config.feature_root, name, statuses[name].runs)
        groups[name] = GroupEntry(name, compiled, group_semantics(compiled), statuses[name], str(project.groups[name].loc),
                                  source.description.strip() if source else "", profile, note)
    config = project.config
    return Catalog(
        project_root=str(project.root), env=config.env, timezone=config.timezone, feature_root=config.feature_root,
        expected_date=expected, groups=groups,
        training_sets=training_set_entries(project, discover_manifests(project, training_dirs)),
        entity_keys={n: e.keys for n, e in project.entities.items()},
        entity_descriptions={n: e.description for n, e in project.entities.items()},
    )
