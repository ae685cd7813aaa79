"""The order groups run in: each after the groups whose published tables its source reads."""

from __future__ import annotations

from featurebank.definitions.model import Project
from featurebank.definitions.validate import dependencies
from featurebank.errors import DefinitionError


def run_order(project: Project) -> list[str]:
    """Every feature group, each after the groups whose tables its source reads (ties by name).

    Raises `DefinitionError` when groups read each other in a cycle (`validate` says where).
    """
    edges = dependencies(project)
    remaining = {name: set(upstream) for name, upstream in edges.items()}
    order: list[str] = []
    while remaining:
        ready = sorted(name for name, upstream in remaining.items() if not upstream)
        if not ready:
            raise DefinitionError(f"feature groups {', '.join(sorted(remaining))} read each other in a cycle; "
                                  "run featurebank validate to see where")
        for name in ready:
            order.append(name)
            del remaining[name]
        for upstream in remaining.values():
            upstream.difference_update(ready)
    return order
