"""Table metadata read without a JVM: the Delta log, read directly by delta-rs (`deltalake`).

`featurebank plan` needs a table's properties to say whether a change is to its data or
only to its metadata; starting Spark for that would cost seconds and a JVM.
"""

from __future__ import annotations


def table_properties(location: str) -> dict[str, str] | None:
    """The Delta table properties (`configuration`) of the table at `location`, or None when
    no Delta table is there yet."""
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    location = location.removeprefix("file://")
    try:
        if not DeltaTable.is_deltatable(location):
            return None
        return {str(k): str(v) for k, v in DeltaTable(location).metadata().configuration.items()}
    except TableNotFoundError:
        return None
