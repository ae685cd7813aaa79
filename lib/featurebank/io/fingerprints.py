"""What a run read, as a fingerprint: per source file its size, modification time and event days.

A run lists its source's files just before it reads the source (`record_inputs`), so a file
added while it runs shows as changed next time (the safe direction), and reads the listed
files' facts in a thread beside its compute. Parquet and CSV
sources: every data file under the location, from a listing (`io.files.list_stats`); Delta
sources: the table version and its current data files, from the Delta log (delta-rs). Each
file's event days (the project time zone) are read from its own timestamp column with pyarrow
(no JVM; a footer's min/max would not say which days of a month a file holds), and only for
files the group's previous fingerprint does not already know with the same size and
modification time: an unchanged file is never read twice.

Stored as one small JSON per run, `<feature_root>/_reports/<group>/inputs/<run_id>.json`,
beside the gate reports; the run log is unchanged (the run id finds the file). A restating run
also records there why it recomputed each date. `stale_dates` compares, JVM-free, the
fingerprint of each run that last published a date with the source now (`compile.restate`).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping
from datetime import date, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from featurebank.days import EPOCH
from featurebank.compile.restate import DayChange, FileEntry, Fingerprint, affected_dates, changed_days
from featurebank.redact import redact
from featurebank.io.files import (
    file_stat, is_s3, join, list_names, list_stats, local_path, read_bytes, read_text, write_text,
)

if TYPE_CHECKING:
    from featurebank.compile.group import CompiledGroup, SourceRead
    from featurebank.compile.missing import PublishedDate

_ZONED = r"(Z|z|[+-]\d{2}(:?\d{2})?)$"  # an ISO timestamp that names its offset (as io.sources reads CSV)


def inputs_dir(feature_root: str, group: str) -> str:
    """`<feature_root>/_reports/<group>/inputs`: one `<run_id>.json` per run."""
    return f"{feature_root.rstrip('/')}/_reports/{group}/inputs"


Listing = tuple[int | None, list[tuple[str, int, float]]]  # a Delta source's version; (path, bytes, mtime) per file


def take_fingerprint(source: SourceRead, zone: str, *, known: Mapping[str, FileEntry] | None = None,
                     lake_formation: bool = False) -> Fingerprint:
    """The fingerprint of `source` now; files `known` with the same size and modification time
    keep their recorded days (not read again). Raises `ValueError` for a catalog `table`
    source (no files to list) and the storage's own errors."""
    return read_listing(source, zone, list_source(source, lake_formation=lake_formation), known=known)


def list_source(source: SourceRead, *, lake_formation: bool = False) -> Listing:
    """The source's data files now, with their sizes and modification times (and a Delta
    source's version); raises `ValueError` for a catalog `table` source."""
    if source.format == "table":
        raise ValueError(f"source {source.name} is the catalog table {source.location}: its files are not listed")
    if source.format == "delta":
        from featurebank.io.metadata import table_file_stats

        found = table_file_stats(source.location, lake_formation=lake_formation)
        version, listed = found if found is not None else (None, [])
        return version, [(unquote(p), size, mtime) for p, size, mtime in listed]
    return None, [(p, size, mtime) for p, size, mtime in list_stats(source.location)
                  if not any(part.startswith(("_", ".")) for part in p.split("/"))]


def read_listing(source: SourceRead, zone: str, listing: Listing, *,
                 known: Mapping[str, FileEntry] | None = None) -> Fingerprint:
    """The fingerprint of the files `listing` found: each file `known` with the same size and
    modification time keeps its recorded facts, the others are read. A file that changed
    between the listing and its read records no days (so any later change to it reaches every
    date, and the next fingerprint reads it again): its rows read are not the listed file's.
    Delta data files never change in place."""
    known = known or {}
    version, listed = listing
    files: dict[str, FileEntry] = {}
    for path, size, mtime in listed:
        entry = FileEntry(path, size, mtime, None)
        old = known.get(path)
        if old is not None and old.same_file(entry) and old.days is not None:
            files[path] = old
            continue
        location = join(source.location, path)
        facts = file_facts(source, location, zone)
        if source.format == "delta" or file_stat(location) == (size, mtime):
            entry = FileEntry(path, size, mtime, *facts)
        files[path] = entry
    return Fingerprint(source.name, source.location, files, version)


def file_facts(source: SourceRead, location: str,
               zone: str) -> tuple[tuple[date, ...] | None, tuple[tuple[date, int, int], ...] | None]:
    """The event days (local to `zone`) the rows of one data file hold, from its timestamp
    column, and per day its rows and digest (see `FileEntry`); (None, None) when the source has
    no event time or the column is not a time; digests None when its rows cannot be hashed."""
    if not source.timestamp:
        return None, None
    import pyarrow as pa

    where: Any = str(local_path(location)) if not is_s3(location) else pa.BufferReader(read_bytes(location))
    if source.format == "csv":
        from pyarrow import csv

        options = dict(source.options)
        parse = csv.ParseOptions(delimiter=str(options.get("sep", options.get("delimiter", ","))))
        convert = csv.ConvertOptions(column_types={source.timestamp: pa.string()})
        table = csv.read_csv(where, parse_options=parse, convert_options=convert)
    else:
        import pyarrow.parquet as pq

        table = pq.read_table(where)
    per_row = row_days(table.column(source.timestamp), zone)
    if per_row is None:
        return None, None
    days = tuple(sorted(d for d in per_row.unique().to_pylist() if d is not None))
    return days, _digests(table, per_row)


def _digests(table: Any, per_row: Any) -> tuple[tuple[date, int, int], ...] | None:
    """Per event day: rows and the sum mod 2**64 of pandas' stable 64-bit hash of each row."""
    import numpy as np
    import pandas as pd

    try:
        hashes = pd.util.hash_pandas_object(table.to_pandas(), index=False).to_numpy(dtype=np.uint64)
    except (TypeError, ValueError):  # values pandas cannot hash (nested): days only, changes by file
        return None
    import pyarrow as pa
    import pyarrow.compute as pc

    none = np.iinfo(np.int32).min
    epoch_days = pc.fill_null(per_row.cast(pa.int32()), none).to_numpy(zero_copy_only=False)
    found = []
    for day in np.unique(epoch_days[epoch_days != none]):
        mask = epoch_days == day
        found.append((EPOCH + timedelta(days=int(day)), int(mask.sum()), int(hashes[mask].sum(dtype=np.uint64))))
    return tuple(found)


def local_days(column: Any, zone: str) -> tuple[date, ...] | None:
    """The distinct local days of a pyarrow time column (see `row_days`); None if not a time."""
    per_row = row_days(column, zone)
    return None if per_row is None else tuple(sorted(d for d in per_row.unique().to_pylist() if d is not None))


def row_days(column: Any, zone: str) -> Any:
    """Each value's local day as a date32 array (the day-cut rule of `days`: naive values are
    wall clock in `zone`, zoned ones instants; ISO text either way); None if not a time."""
    import pyarrow as pa
    import pyarrow.compute as pc

    column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    kind = column.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        text = pc.utf8_trim_whitespace(column)
        zoned = pc.match_substring_regex(text, _ZONED)
        instants = pc.if_else(zoned, text, pa.scalar(None, pa.string())).cast(pa.timestamp("us", tz="UTC"))
        naive = pc.if_else(zoned, pa.scalar(None, pa.string()), text).cast(pa.timestamp("us"))
        return pc.coalesce(_day_of(instants, zone), _day_of(naive, zone))
    if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
        return _day_of(column, zone)
    return None


def _day_of(column: Any, zone: str) -> Any:
    import pyarrow as pa

    if pa.types.is_timestamp(column.type) and column.type.tz:
        column = column.cast(pa.timestamp(column.type.unit, tz=zone))  # then to date32 cuts at local midnight
    return column.cast(pa.date32())


# ------------------------------------------------------------------------------- stored per run


def record_inputs(feature_root: str, group: str, run_id: str, source: SourceRead, zone: str, *,
                  lake_formation: bool = False, reasons: Mapping[date, str] | None = None) -> threading.Thread:
    """List the source's files now, and store the fingerprint of that listing for `run_id` (with
    `reasons`: why a restating run recomputes each date) from a thread of its own, returned, that
    reads the files the group's newest fingerprint does not already know. The run reads the
    source meanwhile (a first run's fingerprint reads every row of the source: 16-17 s at the
    bench's scale 1, notes/20-inputs.md) and joins the thread before it publishes. Never raises:
    a run is not refused for this; its dates then show as having no recorded fingerprint."""

    def warn(error: BaseException) -> None:
        text = str(error).splitlines()[0] if str(error) else type(error).__name__
        logging.getLogger(__name__).warning(
            "featurebank: run %s of %s could not record the fingerprint of source %s (%s): %s; `run --restate` will "
            "not know whether its dates' inputs change", run_id, group, source.name, source.location, text)

    def store(listing: Listing, previous: Fingerprint | None) -> None:
        try:
            taken = read_listing(source, zone, listing, known=previous.files if previous else None)
            # no ${env:...} value is stored (a location may hold one): masked like the run log's text
            write_text(f"{inputs_dir(feature_root, group)}/{run_id}.json",
                       redact(fingerprint_json(taken, run_id, group, reasons)))
        except Exception as error:  # noqa: BLE001 - see the docstring
            warn(error)

    try:
        listing, previous = list_source(source, lake_formation=lake_formation), latest_fingerprint(feature_root, group)
        thread = threading.Thread(target=store, args=(listing, previous), daemon=True,
                                  name=f"featurebank-inputs-{group}")
    except Exception as error:  # noqa: BLE001 - see the docstring
        warn(error)
        thread = threading.Thread(target=lambda: None, daemon=True)
    thread.start()
    return thread


def fingerprint_json(taken: Fingerprint, run_id: str, group: str, reasons: Mapping[date, str] | None = None) -> str:
    document = {
        "run_id": run_id, "group": group, "source": taken.source, "location": taken.location,
        "version": taken.version, "taken_at": datetime.now(timezone.utc).isoformat(),
        "files": {p: {"size": e.size, "mtime": e.mtime, "days": None if e.days is None else [str(d) for d in e.days],
                      "digests": None if e.digests is None else {str(d): [n, f"{h:016x}"] for d, n, h in e.digests}}
                  for p, e in sorted(taken.files.items())},
        "restated": {str(d): why for d, why in sorted((reasons or {}).items())},
    }
    return json.dumps(document, indent=1) + "\n"


def read_fingerprint(feature_root: str, group: str, run_id: str) -> Fingerprint | None:
    """The fingerprint run `run_id` recorded, or None when it recorded none."""
    try:
        document = json.loads(read_text(f"{inputs_dir(feature_root, group)}/{run_id}.json"))
    except FileNotFoundError:
        return None
    files = {p: FileEntry(p, int(e["size"]), float(e["mtime"]),
                          None if e["days"] is None else tuple(date.fromisoformat(d) for d in e["days"]),
                          None if e.get("digests") is None else tuple(
                              (date.fromisoformat(d), int(n), int(h, 16)) for d, (n, h) in e["digests"].items()))
             for p, e in document["files"].items()}
    return Fingerprint(document["source"], document["location"], files, document.get("version"))


def latest_fingerprint(feature_root: str, group: str) -> Fingerprint | None:
    """The group's newest recorded fingerprint (run ids sort by start time), or None."""
    names = [n for n in list_names(inputs_dir(feature_root, group)) if n.endswith(".json")]
    return read_fingerprint(feature_root, group, names[-1][:-len(".json")]) if names else None


def stale_dates(feature_root: str, compiled: CompiledGroup, published: Mapping[date, PublishedDate], zone: str, *,
                lake_formation: bool = False) -> tuple[dict[str, dict[date, str]], frozenset[str]]:
    """Per run that last published some date of `published`, the dates whose inputs changed
    since that run fingerprinted the source, with the reason; and the runs that recorded no
    fingerprint. The source is fingerprinted once now, reading only files no run recorded."""
    runs: dict[str, list[date]] = {}
    for day, last in published.items():
        runs.setdefault(last.run_id, []).append(day)
    recorded = {run: read_fingerprint(feature_root, compiled.group, run) for run in runs}
    known: dict[str, FileEntry] = {}
    for fingerprint in recorded.values():
        known.update(fingerprint.files if fingerprint is not None else {})
    unknown = frozenset(run for run, f in recorded.items() if f is None)
    if len(unknown) == len(runs):
        return {}, unknown
    now = take_fingerprint(compiled.source, zone, known=known, lake_formation=lake_formation)
    reach = compiled.max_window if compiled.kind == "aggregation" else 0
    stale: dict[str, dict[date, str]] = {}
    for run, fingerprint in recorded.items():
        if fingerprint is not None:
            changes: dict[date | None, DayChange] = changed_days(fingerprint, now)
            stale[run] = affected_dates(changes, compiled.kind, reach, runs[run])
    return stale, unknown

