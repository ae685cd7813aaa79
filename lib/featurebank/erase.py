"""Right to erasure (LGPD/GDPR, issue 23): every copy of an entity's rows under the feature root
and in registered training sets, listed, then removed, with a record that holds no key.

Each kind of copy is a *place* (`Place`: `find` lists what it holds, `erase` removes it, and
what `erase` removes is exactly what `find` listed, so `--dry-run` shows the real run's
changes). Today's places, in the order a run erases them:

- `TablePlace`: every group table with the entity's key column (its own groups, and groups
  whose source is another group and kept the key): one Delta DELETE commit (tagged with the
  erasure id in `userMetadata`), then a purge of exactly the files that commit removed plus
  the files older versions still reference that hold a key (a VACUUM limited to them,
  overriding retention: those old versions can no longer be time-travelled to), then the key's
  min/max statistics dropped from the Delta log's commit files, and, where older checkpoints
  name a key in theirs, a fresh checkpoint written and those deleted (refused when log cleanup
  already removed the commits they summarise). A table with deletion vectors is refused (a
  DELETE there keeps the rows in the files).
- `ArtifactPlace`: quarantined batches (Parquet rewritten without the rows) and gate reports
  or stored profiles naming a key (removed).
- `TrainingSetPlace`: every registered training set's files rewritten without the rows; its
  manifest (registry copy and `<out>/_manifest.json`) records the erasure under
  `output.erasures` and is re-pinned to the erasure's commit where no commit since the version
  it read changed rows (property changes and compactions do not), so a rebuild reads the same rows less exactly the erased ones.
- `DerivedPlace`: aggregates of other entities computed from the same source (a merchant's
  distinct customers): reported, kept (they identify nobody; README "Right to erasure").

Crash safety: the id is derived from the salt, entity, keys and reason, so a rerun of the same
command finds its own earlier DELETE commits (`io.retention.commit_removes`) and completes the
purge; every file write is atomic. Stored partials and knowledge-time history (issues 20/22)
plug in as further `Place`s.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Protocol

from featurebank.errors import ConfigError, UsageError
from featurebank.faults import fault_point

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from featurebank.definitions.model import Project


@dataclass(frozen=True)
class Finding:
    """One place holding the entity's data, and what erasing it does (did)."""

    kind: str  # table | history | quarantine | report | training set | derived
    where: str  # a table name or a file/directory location
    rows: int  # rows holding a key (0 for a file removed whole or a derived aggregate)
    action: str  # what erase does there, in words
    files: tuple[str, ...] = ()  # files purged, rewritten or removed

    def line(self) -> str:
        rows = f"{self.rows} row(s); " if self.rows else ""
        return f"{self.kind} {self.where}: {rows}{self.action}"


@dataclass(frozen=True)
class Erasure:
    """One erasure's identity and inputs (the keys themselves are never written anywhere)."""

    id: str
    entity: str
    column: str
    keys: tuple[str, ...]
    key_hashes: tuple[str, ...]
    reason: str
    principal: str
    at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))

    @property
    def marker(self) -> str:
        return f'"erasure": "{self.id}"'

    def commit_metadata(self) -> str:
        return '{' + self.marker + ', "entity": "' + self.entity + '"}'


@dataclass(frozen=True)
class ErasureResult:
    """What `erase` found and (unless a dry run) removed, and where its record is."""

    erasure: Erasure
    findings: tuple[Finding, ...]
    dry_run: bool
    record: str | None = None


class Place(Protocol):
    """A kind of copy of an entity's rows: list what it holds; remove exactly that."""

    def find(self, spark: SparkSession, project: Project, erasure: Erasure) -> list[Finding]: ...

    def erase(self, spark: SparkSession, project: Project, erasure: Erasure, finding: Finding) -> Finding: ...


def prepare(project: Project, entity: str, keys: list[str], reason: str, principal: str) -> Erasure:
    """Check the request and who makes it; raises `UsageError`/`ConfigError` (exit 2), touching nothing."""
    governance = project.config.governance
    if principal not in governance.erasers:
        allowed = ", ".join(governance.erasers) or "nobody"
        raise UsageError(f"{principal} may not erase data in this environment: governance.erasers of "
                         f"{governance.conf_file or 'conf'} lists {allowed}; nothing was touched. Ask the data "
                         "protection officer to add the principal there, or run as one that is listed (--as)")
    if not governance.erasure_salt:
        raise ConfigError(f"governance.erasure_salt is not set in {governance.conf_file or 'conf'}: the erasure log "
                          "keeps a salted hash of each key, never the key; set erasure_salt: "
                          "${env:FEATUREBANK_ERASURE_SALT}; nothing was touched")
    if entity not in project.entities:
        raise UsageError(f"--entity {entity} is not an entity of this project (entities: "
                         f"{', '.join(sorted(project.entities))}); nothing was touched")
    columns = project.entities[entity].keys
    if len(columns) != 1:
        raise UsageError(f"entity {entity} has keys {', '.join(columns)}; erase takes entities with one key column")
    keys = sorted({k.strip() for k in keys if k.strip()})
    if not keys or not reason.strip():
        raise UsageError("erase needs at least one --key and a --reason (the ticket that asks for it); nothing was touched")
    salt = governance.erasure_salt.encode("utf-8")
    hashes = tuple(hmac.new(salt, k.encode("utf-8"), hashlib.sha256).hexdigest() for k in keys)
    ident = hmac.new(salt, "\n".join([entity, *keys, reason]).encode("utf-8"), hashlib.sha256).hexdigest()[:16]
    return Erasure(ident, entity, columns[0], tuple(keys), hashes, reason.strip(), principal)


def places() -> list[Place]:
    """Every place, in erasure order (tables first: the DELETE commits are what a kill must not split)."""
    return [TablePlace(), HistoryPlace(), ArtifactPlace(), TrainingSetPlace(), DerivedPlace()]


def erase(spark: SparkSession, project: Project, erasure: Erasure, *, dry_run: bool = False) -> ErasureResult:
    """List every place holding `erasure.keys`; unless `dry_run`, remove them and write the
    `_erasures` record (last: a killed erasure has none, and its rerun writes it)."""
    from featurebank.io.erasure import record_erasure

    done: list[Finding] = []
    for place in places():
        for finding in place.find(spark, project, erasure):
            done.append(finding if dry_run else place.erase(spark, project, erasure, finding))
    if dry_run:
        return ErasureResult(erasure, tuple(done), True)
    record = {"id": erasure.id, "at": erasure.at, "entity": erasure.entity, "key_hashes": list(erasure.key_hashes),
              "hash": "hmac-sha256(governance.erasure_salt, key)", "reason": erasure.reason, "by": erasure.principal,
              "places": [{"kind": f.kind, "where": f.where, "rows": f.rows, "action": f.action, "files": len(f.files)}
                         for f in done]}
    return ErasureResult(erasure, tuple(done), False, record_erasure(project.config.feature_root, record))


# --- places ---------------------------------------------------------------------------------

class TablePlace:
    """Group tables holding the key column: DELETE in one commit, purge the files, scrub the log
    and replace the checkpoints that name a key."""

    kind = "table"

    def path_of(self, project: Project, group: str) -> str:
        return project.table_path(group)

    def find(self, spark: SparkSession, project: Project, erasure: Erasure) -> list[Finding]:
        from featurebank.io.erasure import parquet_rows_holding
        from featurebank.io.retention import commit_removes, unreferenced_files
        from featurebank.io.tables import table_schema

        found = []
        for name in sorted(project.groups):
            path = self.path_of(project, name)
            schema = table_schema(spark, path)
            if schema is None or erasure.column not in schema.names:
                continue
            _refuse_deletion_vectors(spark, name, path)
            rows, current = _current_holding(spark, path, erasure)
            old = {f for f in unreferenced_files(path)
                   if parquet_rows_holding(f"{path}/{f}", erasure.column, erasure.keys)}
            earlier = set(commit_removes(path, erasure.marker)) & set(unreferenced_files(path))
            purge = tuple(sorted(set(current) | old | earlier))
            checkpoints = _stale_checkpoints(name, path, erasure)
            if rows or purge or checkpoints:
                action = (f"delete in one commit, then purge {len(purge)} file(s) "
                          f"({len(old)} only older versions read)") if rows else f"purge {len(purge)} file(s) older versions read"
                if checkpoints:
                    action += (f"; write a fresh checkpoint and delete {len(checkpoints)} older checkpoint file(s) "
                               "whose statistics name a key")
                found.append(Finding(self.kind, name, rows, action, tuple(sorted(purge + checkpoints))))
        return found

    def erase(self, spark: SparkSession, project: Project, erasure: Erasure, finding: Finding) -> Finding:
        from featurebank.io.erasure import scrub_log_stats
        from featurebank.io.retention import commit_removes, purge_files
        from featurebank.io.tables import delete_rows

        path = self.path_of(project, finding.where)
        checkpoints = tuple(f for f in finding.files if f.startswith(_LOG))
        data = set(finding.files) - set(checkpoints)
        fault_point("erase_delete")
        if finding.rows:
            delete_rows(spark, path, erasure.column, erasure.keys, erasure.commit_metadata())
        fault_point("erase_purge")
        # Exactly the files the erasure's commits removed, and the old files found holding a key.
        wanted = tuple(sorted(set(commit_removes(path, erasure.marker)) | data))
        purged = purge_files(path, wanted)
        scrub_log_stats(path, erasure.column, erasure.keys)
        dropped = _replace_checkpoints(spark, finding.where, path, erasure, checkpoints) if checkpoints else ()
        return replace(finding, files=tuple(sorted(purged + dropped)))


class HistoryPlace(TablePlace):
    """Groups' history tables (superseded values, `io.history`): erased exactly as the tables are."""

    kind = "history"

    def path_of(self, project: Project, group: str) -> str:
        from featurebank.io.history import history_path

        return history_path(project.config.feature_root, group)


class ArtifactPlace:
    """Quarantined batches (rewritten without the rows) and reports or profiles naming a key (removed)."""

    def find(self, spark: SparkSession, project: Project, erasure: Erasure) -> list[Finding]:
        from featurebank.io.erasure import holds_bytes, list_under, parquet_rows_holding

        root = project.config.feature_root.rstrip("/")
        found = []
        for area in ("_quarantine", "_reports"):
            for location in list_under(f"{root}/{area}"):
                if location.endswith(".parquet"):
                    rows = parquet_rows_holding(location, erasure.column, erasure.keys)
                    if rows:
                        found.append(Finding("quarantine", location, rows, "rewritten without the rows", (location,)))
                elif not location.rpartition("/")[2].startswith(".") and holds_bytes(location, erasure.keys):
                    kind = "profile" if "/profiles/" in location else "report"
                    found.append(Finding(kind, location, 0, "removed (it names a key)", (location,)))
        return found

    def erase(self, spark: SparkSession, project: Project, erasure: Erasure, finding: Finding) -> Finding:
        from featurebank.io.erasure import delete_file, rewrite_parquet_without

        if finding.kind == "quarantine":
            rewrite_parquet_without(finding.where, erasure.column, erasure.keys)
        else:
            delete_file(finding.where)
        return finding


class TrainingSetPlace:
    """Registered training sets: files rewritten without the rows, manifests recording it."""

    def find(self, spark: SparkSession, project: Project, erasure: Erasure) -> list[Finding]:
        from featurebank.io.erasure import parquet_files, parquet_rows_holding
        from featurebank.training.manifest import registered_manifests

        found = []
        for location, manifest in registered_manifests(project.config.feature_root):
            out = manifest.output.get("path")
            holding = {f: parquet_rows_holding(f, erasure.column, erasure.keys) for f in parquet_files(out)} if out else {}
            rows = sum(holding.values())
            if rows:
                found.append(Finding("training set", location, rows,
                                     f"{out} rewritten without the rows; the manifest records the erasure",
                                     tuple(sorted(f for f, n in holding.items() if n))))
        return found

    def erase(self, spark: SparkSession, project: Project, erasure: Erasure, finding: Finding) -> Finding:
        from featurebank.io.erasure import rewrite_parquet_without
        from featurebank.training.manifest import read_manifest

        # The manifest first: a kill before the files are rewritten leaves rows a rerun finds
        # (and the record it keeps); the other order would leave rewritten files unrecorded.
        _write_erased_manifest(spark, read_manifest(finding.where), finding, erasure)
        for location in finding.files:
            rewrite_parquet_without(location, erasure.column, erasure.keys)
        return finding


class DerivedPlace:
    """Aggregates of other entities over a source the entity's groups read: reported, kept."""

    def find(self, spark: SparkSession, project: Project, erasure: Erasure) -> list[Finding]:
        from featurebank.io.tables import table_schema

        sources = {g.source for g in project.groups.values() if g.entity == erasure.entity}
        found = []
        for name, group in sorted(project.groups.items()):
            if group.entity == erasure.entity or group.source not in sources:
                continue
            schema = table_schema(spark, project.table_path(name))
            if schema is not None and erasure.column not in schema.names:
                found.append(Finding("derived", name, 0,
                                     f"kept: {group.entity} aggregates over {group.source} counted the entity's events "
                                     "but hold no key and identify no one (README: Right to erasure)"))
        return found

    def erase(self, spark: SparkSession, project: Project, erasure: Erasure, finding: Finding) -> Finding:
        return finding


# --- helpers --------------------------------------------------------------------------------

_LOG = "_delta_log/"


def _refuse_deletion_vectors(spark: SparkSession, name: str, path: str) -> None:
    """Refuse (exit 2, nothing touched) a table whose DELETE would only hide rows: with Delta
    deletion vectors the file keeps the erased rows, and so may files that already carry one."""
    from featurebank.io.erasure import deletion_vectors

    enabled, with_vectors = deletion_vectors(spark, path)
    if enabled or with_vectors:
        why = "enables Delta deletion vectors (delta.enableDeletionVectors)" if enabled else \
            f"has {with_vectors} file(s) carrying Delta deletion vectors"
        raise UsageError(f"table {name} ({path}) {why}: a DELETE there only marks rows deleted and the files keep "
                         "them, so erase could not remove the key; nothing was touched. Run ALTER TABLE "
                         f"delta.`{path}` SET TBLPROPERTIES ('delta.enableDeletionVectors' = false), then REORG TABLE "
                         f"delta.`{path}` APPLY (PURGE), and rerun erase (it purges the files REORG replaced)")


def _stale_checkpoints(name: str, path: str, erasure: Erasure) -> tuple[str, ...]:
    """The checkpoint files (`_delta_log/...`, every part of each version) whose statistics
    name a key. Deleting one is safe only while the versions it summarises can be rebuilt
    without it: every JSON commit from 0, or from a checkpoint that stays, up to its version;
    otherwise refuse (exit 2, nothing touched)."""
    from featurebank.io.erasure import checkpoint_files, checkpoint_version, log_checkpoints_holding, \
        log_commit_versions

    holding = log_checkpoints_holding(path, erasure.keys)
    if not holding:
        return ()
    if any(f.startswith("_sidecars/") or not f.endswith(".parquet") for f in holding):
        raise UsageError(f"table {name} ({path}) has V2 checkpoints (_delta_log/_sidecars) naming a key, which erase "
                         "does not rewrite; nothing was touched. Drop the v2Checkpoint table feature "
                         "(ALTER TABLE ... DROP FEATURE v2Checkpoint) and rerun erase")
    every = [f for f in checkpoint_files(path) if not f.startswith("_sidecars/")]
    stale = {checkpoint_version(f) for f in holding}
    bases = {checkpoint_version(f) for f in every} - stale
    commits = log_commit_versions(path)
    for version in sorted(stale):
        rebuildable = [b for b in (-1, *bases) if b < version and set(range(b + 1, version + 1)) <= commits]
        if not rebuildable:
            raise UsageError(f"table {name} ({path}): Delta checkpoint {version} names a key in its statistics, and "
                             "log cleanup already removed JSON commits it summarises, so deleting it would lose "
                             "those versions; nothing was touched. Recover the table's history to a copy (or accept "
                             "losing time travel before the erasure: delete the checkpoint by hand after a fresh one "
                             "is written) and rerun erase")
    return tuple(_LOG + f for f in sorted(every) if checkpoint_version(f) in stale)


def _replace_checkpoints(spark: SparkSession, name: str, path: str, erasure: Erasure,
                         checkpoints: tuple[str, ...]) -> tuple[str, ...]:
    """Write a fresh checkpoint of the erased table, then delete `checkpoints` (older ones
    whose statistics name a key); returns those deleted (as `_delta_log/...`). The fresh one
    first: a kill in between leaves a readable table whose rerun deletes the rest."""
    from featurebank.errors import RuntimeFailure
    from featurebank.io.erasure import checkpoint_version, delete_log_files, log_checkpoints_holding, write_checkpoint

    fresh = write_checkpoint(spark, path)
    stale = tuple(f for f in checkpoints if checkpoint_version(f) < fresh)
    delete_log_files(path, [f[len(_LOG):] for f in stale])
    left = log_checkpoints_holding(path, erasure.keys)
    if left:
        raise RuntimeFailure(f"table {name} ({path}): checkpoint(s) {', '.join(left)} still name a key after the "
                             "fresh checkpoint was written; the rows are deleted and purged, only these statistics "
                             "remain. Rerun erase; if it persists, delete those checkpoint files by hand")
    return stale

def _current_holding(spark: SparkSession, path: str, erasure: Erasure) -> tuple[int, tuple[str, ...]]:
    """Rows of the table's current version holding a key, and the data files they are in
    (relative to the table): the files a DELETE will remove."""
    from pyspark.sql import functions as F

    from featurebank.io.retention import relative_file

    rows = (spark.read.format("delta").load(path).where(F.col(erasure.column).isin(list(erasure.keys)))
            .groupBy(F.input_file_name().alias("file")).count().collect())
    return sum(int(r["count"]) for r in rows), tuple(sorted(relative_file(path, r["file"]) for r in rows))


def _write_erased_manifest(spark: SparkSession, manifest: Any, finding: Finding, erasure: Erasure) -> None:
    """The manifest (registry copy, and `<out>/_manifest.json` when it is the same build)
    with the erasure recorded, its rows less the removed ones, and each group re-pinned to the
    erasure's commit where no commit between the version it read and that one changed rows
    (property changes and `dataChange=false` compactions do not)."""
    from featurebank.io.erasure import changes_data_between, write_text
    from featurebank.io.files import exists
    from featurebank.io.tables import landed_erasure_version
    from featurebank.training.manifest import manifest_location, read_manifest

    groups, repinned, unrebuildable = [], [], []
    for pinned in manifest.groups:
        version = landed_erasure_version(spark, pinned.read.table_path, erasure.marker)
        if version is None:
            groups.append(pinned)
        elif version > pinned.version and not changes_data_between(pinned.read.table_path, pinned.version, version):
            groups.append(replace(pinned, version=version))
            repinned.append(f"{pinned.read.group}@{version}")
        else:
            groups.append(pinned)
            if version > pinned.version:
                unrebuildable.append(pinned.read.group)
    entry = {"id": erasure.id, "at": erasure.at, "entity": erasure.entity, "key_hashes": list(erasure.key_hashes),
             "rows_removed": finding.rows, "repinned": repinned, "unrebuildable": unrebuildable}
    output = dict(manifest.output)
    if any(e.get("id") == erasure.id for e in output.get("erasures", [])):
        return  # recorded by an earlier, killed run of this erasure
    output["erasures"] = [*output.get("erasures", []), entry]
    output["rows"] = int(output.get("rows", 0)) - finding.rows
    erased = replace(manifest, groups=tuple(groups), output=output)
    out_manifest = manifest_location(manifest.output["path"])
    if exists(out_manifest) and read_manifest(out_manifest).created_at == manifest.created_at:
        write_text(out_manifest, erased.to_json())
    write_text(finding.where, erased.to_json())
