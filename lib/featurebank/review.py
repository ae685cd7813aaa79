"""`featurebank plan` as a change review: what a definition change costs and breaks, before a run.

For one group (`review_group`), without Spark (delta-rs and small files; Spark only where Lake
Formation governs the tables): how the definition differs from what its table was published
with (`compile.change.change_of`), which published dates a run must recompute, what it would read
(the source's files and bytes, from a listing or the Delta log: no data is read), how long that
took before (the run log's past runs of the group), and which registered training sets
(`<feature_root>/_training_sets`, newest build per name) read a feature the change makes stale.

`refuse_breaking` is the guard `run` applies: a breaking change to a group whose features a
registered training set reads is refused unless the caller accepts it (`--accept-breaking`).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

from featurebank.days import date_runs
from featurebank.errors import BreakingChangeRefused

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from featurebank.compile.change import Change
    from featurebank.compile.missing import DateSpan
    from featurebank.compile.group import CompiledGroup
    from featurebank.definitions.model import Project
    from featurebank.io.runlog import RunRecord

ESTIMATE_RUNS = 5  # the newest published runs a duration estimate is taken from


@dataclass(frozen=True)
class Footprint:
    """What a run reads from its source: files and bytes (an upper bound: Spark skips row groups
    outside the read range by their statistics), or why it cannot be told."""

    files: int | None = None
    bytes: int | None = None
    note: str = ""


@dataclass(frozen=True)
class TrainingSetImpact:
    """A registered training set that reads the group: its newest build, the features it reads
    from the group, and those the change makes stale."""

    name: str
    built: str
    location: str
    reads: tuple[str, ...]
    stale: tuple[str, ...]


@dataclass(frozen=True)
class InputChanges:
    """The published dates whose source changed since they were published (`run --restate`
    recomputes them), each span with its reason; or why that cannot be told."""

    restate: tuple[DateSpan, ...] = ()
    untracked: int = 0  # published dates whose run recorded no fingerprint
    note: str = ""
    tracked: bool = True  # some published date recorded a fingerprint (else the group predates them: said in JSON only)


@dataclass(frozen=True)
class Review:
    """The change review of one group (see the module docstring)."""

    change: Change
    published: tuple[date, ...]  # snapshot dates the table holds, per the run log
    recompute: tuple[date, ...]  # of those, the dates a run must recompute
    footprint: Footprint
    seconds_per_date: float | None  # from the newest published runs; None without any
    estimate_runs: int
    training_sets: tuple[TrainingSetImpact, ...]
    inputs: InputChanges | None = None  # published dates whose source changed since (None: not looked at)

    @property
    def estimate_seconds(self) -> float | None:
        if self.seconds_per_date is None or not self.recompute:
            return None
        return self.seconds_per_date * len(self.recompute)

    @property
    def stale_training_sets(self) -> tuple[TrainingSetImpact, ...]:
        return tuple(t for t in self.training_sets if t.stale)


def review_group(project: Project, group: str, *, spark: Callable[[], SparkSession] | None = None,
                 footprint: bool = True) -> Review:
    """The change review of `group` (see the module docstring); `footprint=False` skips listing
    the source. Raises `UsageError` for an unknown group; a storage read that fails raises its
    own error."""
    from featurebank.compile.change import change_of
    from featurebank.compile.group import compile_group
    from featurebank.io.metadata import published_hashes, table_schema
    from featurebank.io.runlog import read_run_log

    compiled = compile_group(project, group)
    governed = project.config.governance.lake_formation
    session = spark or _no_spark
    published_props = published_hashes(compiled.table_path, lake_formation=governed)
    schema = table_schema(compiled.table_path, lake_formation=governed) if published_props is not None else None
    fixed = set(compiled.keys) | {"feature_date", "feature_ts"}
    held = tuple(c.name for c in schema or () if c.name not in fixed)
    change = change_of(compiled, published_props, held)
    runs = [r for r in read_run_log(project.config.feature_root, group, spark=session, lake_formation=governed)
            if r.status == "published" and r.delta_version is not None]
    published = tuple(sorted({d for r in runs for d in r.dates()}))
    recompute = published if change.kind in ("additive", "breaking") else ()
    per_date, basis = _seconds_per_date(runs)
    read = _footprint(compiled, governed) if recompute and footprint else Footprint()
    return Review(change, published, recompute, read, per_date, basis, _training_sets(project, compiled, change),
                  _input_changes(project, group) if footprint and published else None)


def refuse_breaking(project: Project, group: str, *, accept: bool,
                    spark: Callable[[], SparkSession] | None = None) -> bool:
    """Refuse a run of `group` whose definition breaks what a registered training set reads.

    Returns True when the change is breaking and was accepted (the run log records it), False
    when there is nothing to accept. Raises `BreakingChangeRefused` naming the training sets
    and features, and the way to accept, when it is breaking and not accepted.
    """
    review = review_group(project, group, spark=spark, footprint=False)
    stale = review.stale_training_sets
    if review.change.kind != "breaking" or not stale:
        return False
    if accept:
        return True
    names = "; ".join(f"{t.name} (reads {', '.join(t.stale)})" for t in stale)
    raise BreakingChangeRefused(
        f"{group}: the definition changed what published features mean, and registered training sets read "
        f"them: {names}. A run would replace their values under those training sets' feet. Review it with "
        f"`featurebank plan {group}`, then run again with --accept-breaking (the run log records who accepted), "
        f"or revert the change")


def _input_changes(project: Project, group: str) -> InputChanges:
    """What `run --restate` would recompute for the group (`runner.decide_restate`); a source
    that cannot be fingerprinted gives a note instead (the rest of the review still stands)."""
    from featurebank.runner import decide_restate

    try:
        [decision] = decide_restate(project, group)
    except Exception as error:  # noqa: BLE001 - see the docstring
        return InputChanges(note=f"cannot tell: {str(error).splitlines()[0] if str(error) else type(error).__name__}")
    untracked = sum((s.end - s.start).days + 1 for s in decision.skipped if "recorded no fingerprint" in s.reason)
    tracked = bool(decision.run) or any("recorded no fingerprint" not in s.reason for s in decision.skipped)
    return InputChanges(decision.run, untracked, tracked=tracked)


def _no_spark() -> SparkSession:
    """Plan and review never start Spark themselves; only Lake Formation makes a reader ask."""
    from featurebank.io.spark import get_spark

    return get_spark(None)


def _seconds_per_date(runs: list[RunRecord]) -> tuple[float | None, int]:
    """Median seconds per snapshot date of the newest published runs, and how many there were."""
    newest = sorted(runs, key=lambda r: r.finished_at, reverse=True)[:ESTIMATE_RUNS]
    rates = [r.duration_seconds / len(r.dates()) for r in newest if r.dates()]
    return (statistics.median(rates) if rates else None), len(rates)


def _footprint(compiled: CompiledGroup, governed: bool) -> Footprint:
    """The source's files and bytes (see `Footprint`); a listing that fails says why."""
    source = compiled.source
    try:
        if source.format == "table":
            return Footprint(note=f"{source.location} is a catalog table: its files are not listed")
        if source.format == "delta":
            from featurebank.io.metadata import table_files

            files = table_files(source.location, lake_formation=governed) or []
        else:
            from featurebank.io.files import list_sizes

            files = [(name, size) for name, size in list_sizes(source.location)
                     if not any(part.startswith(("_", ".")) for part in name.split("/"))]
    except Exception as error:  # noqa: BLE001 - the review still stands; this line says what it could not see
        return Footprint(note=f"cannot list {source.location}: {str(error).splitlines()[0] if str(error) else error}")
    if not files:
        return Footprint(0, 0, note=f"no source files at {source.location}")
    return Footprint(len(files), sum(size for _, size in files))


def _training_sets(project: Project, compiled: CompiledGroup, change: Change) -> tuple[TrainingSetImpact, ...]:
    """The newest registered build of every training set that reads `compiled`'s group."""
    from featurebank.training.manifest import registered_manifests

    newest: dict[str, tuple[str, Any]] = {}
    for location, manifest in registered_manifests(project.config.feature_root):  # oldest first
        name = manifest.training_set or location.rsplit("/", 2)[-2]
        newest[name] = (location, manifest)
    stale_features = change.stale_features
    impacts = []
    for name, (location, manifest) in sorted(newest.items()):
        pinned = [p for p in manifest.groups if p.read.group == compiled.group]
        if not pinned:
            continue
        reads = tuple(feature for feature, _ in pinned[0].read.features)
        impacts.append(TrainingSetImpact(name, manifest.created_at, location, reads,
                                         tuple(f for f in reads if f in stale_features)))
    return tuple(impacts)


# ------------------------------------------------------------------------------- rendering


def render_review(review: Review) -> str:
    """The review as `plan` prints it: the change line, then what a run costs and breaks."""
    from featurebank.redact import redact

    change = review.change
    lines = [f"Change: {change.group}: {_headline(change)}"]
    if review.recompute:
        spans = ", ".join(f"{a}..{b}" if a != b else str(a) for a, b in date_runs(review.recompute))
        why = ", to fill the new features" if change.kind == "additive" else ""
        lines.append(f"  recompute:     {spans} (all {len(review.recompute)} published dates{why})")
        lines.append(f"  reads:         {_footprint_text(review)}")
        estimate = review.estimate_seconds
        basis = "the newest run" if review.estimate_runs == 1 else f"the newest {review.estimate_runs} runs"
        lines.append(f"  estimate:      ~{_duration(estimate)} of compute ({review.seconds_per_date:.2f} s per date over "
                     f"{basis}), plus Spark's start" if estimate is not None else
                     "  estimate:      none (no published run of this group to learn from)")
    elif change.kind in ("additive", "breaking"):
        lines.append("  recompute:     nothing published yet")
    lines += _inputs_text(review.inputs)
    for t in review.training_sets:
        if t.stale:
            verdict = f"stale: reads {_names(t.stale)} — `run` refuses without --accept-breaking"
        else:
            verdict = f"reads {len(t.reads)} feature{'s' if len(t.reads) != 1 else ''} of this group, none changed"
        lines.append(f"  training set:  {t.name} (built {t.built}): {verdict}")
    return redact("\n".join(lines) + "\n")


def review_dict(review: Review) -> dict[str, Any]:
    """The review as one JSON-ready dict (`plan --json`)."""
    change = review.change
    return {
        "group": change.group, "change": change.kind, "added": list(change.added), "changed": list(change.changed),
        "removed": list(change.removed), "kept": list(change.kept), "hashes_recorded": change.recorded,
        "per_feature_hashes_recorded": change.per_feature,
        "published_dates": len(review.published),
        "recompute": [[a.isoformat(), b.isoformat()] for a, b in date_runs(review.recompute)],
        "recompute_dates": len(review.recompute),
        "reads": {"files": review.footprint.files, "bytes": review.footprint.bytes, "note": review.footprint.note},
        "estimate_seconds": review.estimate_seconds, "estimate_runs": review.estimate_runs,
        "training_sets": [{"name": t.name, "built": t.built, "manifest": t.location, "reads": list(t.reads),
                           "stale": list(t.stale)} for t in review.training_sets],
        "refused_without_accept": change.kind == "breaking" and bool(review.stale_training_sets),
        "source_changed": None if review.inputs is None else {
            "restate": [s.to_dict() for s in review.inputs.restate], "untracked_dates": review.inputs.untracked,
            "note": review.inputs.note},
    }


def _inputs_text(inputs: InputChanges | None) -> list[str]:
    """The `source changed:` lines of the review: what `run --restate` would recompute, and why."""
    if inputs is None:
        return []
    if inputs.note:
        return [f"  source changed: {inputs.note}"]
    lines = [f"  source changed: {span.dates}: {span.reason}" for span in inputs.restate]
    if lines:
        count = sum((s.end - s.start).days + 1 for s in inputs.restate)
        lines.append(f"  restate:        {count} published date{'s' if count != 1 else ''} (`featurebank run "
                     "--restate` recomputes exactly these)")
    if inputs.untracked and inputs.tracked:
        lines.append(f"  untracked:      {inputs.untracked} published dates recorded no fingerprint of their source "
                     "(published before fingerprints were recorded); a run of them starts tracking")
    return lines


def _headline(change: Change) -> str:
    if change.kind == "new":
        return f"new (no table at {change.table_path} yet; the first run creates it)"
    if change.kind == "unchanged":
        return "none (the published table was computed by this definition)"
    if change.kind == "metadata":
        return ("metadata only (descriptions, owners, tags, checks or publish conditions): published values stay "
                "valid, no rerun needed")
    if change.kind == "additive":
        kept = f"; the {len(change.kept)} published features keep their values" if change.kept else ""
        return f"additive: new {_names(change.added)}{kept}"
    if not change.recorded:
        return ("breaking, as far as can be told: the table records no data hash (published by an older featurebank, "
                "or without table properties); every published date recomputes")
    if not change.per_feature:
        return ("breaking, as far as can be told: the table records no per-feature hashes (published before "
                "they were recorded), so no feature can be shown to keep its values; every published date recomputes")
    parts = [f"changed {_names(change.changed)}" if change.changed else "",
             f"removed {_names(change.removed)}" if change.removed else "",
             f"added {_names(change.added)}" if change.added else ""]
    what = "; ".join(p for p in parts if p) or "the features' order changed"
    return f"breaking: {what}; every published date recomputes"


def _names(features: tuple[str, ...]) -> str:
    return ", ".join(features) if len(features) <= 6 else f"{', '.join(features[:6])} and {len(features) - 6} more"


def _footprint_text(review: Review) -> str:
    footprint = review.footprint
    if not footprint.files:
        return footprint.note or "unknown"
    return (f"at most {footprint.files} source files, {_size(footprint.bytes or 0)} (row groups outside the read range "
            "are skipped by their statistics)")


def _size(n: int) -> str:
    if n < 1000:
        return f"{n} B"
    value = float(n)
    for unit in ("kB", "MB", "GB"):
        value /= 1000
        if value < 1000 or unit == "GB":
            break
    return f"{value:.1f} {unit}"


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
