"""The one `group:feature` resolver: training sets in `features/`, and features asked for by name.

`resolve_references` turns `group:feature` and `group:*` references into the output columns
they select, in request order, and names every problem: a reference that is not one, an
unknown group or feature (with a "did you mean"), and a column two groups both provide.
`definitions.validate` reports its problems at each reference's line; the training-set API
raises them as one `DefinitionError` (`resolve_features`).

Rules (strictest of the two resolvers this replaced): a reference is exactly
`<group>:<feature>` or `<group>:*`, no spaces; a feature asked for twice is selected once;
without full names a column name two groups provide is refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from featurebank.definitions.loader import guess_or
from featurebank.definitions.model import Project
from featurebank.errors import DefinitionError, Problem

AD_HOC = "the feature list"  # who asks, when no training set does (features given by hand)


@dataclass(frozen=True)
class SelectedFeature:
    """One requested feature: where it comes from and the column it becomes."""

    group: str
    feature: str
    column: str

    @property
    def reference(self) -> str:
        return f"{self.group}:{self.feature}"


@dataclass(frozen=True)
class Resolution:
    """What references select, and what is wrong with them.

    `problems` pairs the index of the reference a problem is about (None: the whole list)
    with a sentence that names the reference, the cause and the fix.
    """

    selected: tuple[SelectedFeature, ...]
    problems: tuple[tuple[int | None, str], ...]


def resolve_references(project: Project, references: Sequence[str], *, full_names: bool = False,
                       asker: str = AD_HOC) -> Resolution:
    """Resolve `references` against `project`'s groups (see the module docstring).

    Columns are the feature names, or `<group>__<feature>` with `full_names`. `asker` names
    who asks in messages (`training set 'fraud'`). Never raises: problems are returned.
    """
    problems: list[tuple[int | None, str]] = []
    selected: dict[tuple[str, str], SelectedFeature] = {}
    provider: dict[str, str] = {}  # column -> the group that provides it
    if not references:
        problems.append((None, "no features requested; name a training set or give group:feature references"
                         if asker == AD_HOC else f"{asker} lists no features; list group:feature references"))
    for index, reference in enumerate(references):
        group_name, sep, feature = reference.partition(":")
        if not sep or not group_name or not feature or any(c.isspace() for c in reference):
            problems.append((index, f"'{reference}' is not a feature reference; write <group>:<feature> or <group>:*"))
            continue
        group = project.groups.get(group_name)
        if group is None:
            fix = f"fix the reference (groups: {', '.join(sorted(project.groups))})"
            problems.append((index, f"{asker} names feature group '{group_name}', which is not defined"
                                    f"{guess_or(group_name, project.groups, fix)}"))
            continue
        names = group.feature_names()
        if feature != "*" and feature not in names:
            problems.append((index, f"feature group '{group_name}' has no feature '{feature}'"
                                    f"{guess_or(feature, names, f'fix the reference (or use {group_name}:*)')}"))
            continue
        for name in names if feature == "*" else (feature,):
            column = f"{group_name}__{name}" if full_names else name
            if (group_name, name) in selected:
                continue
            other = provider.setdefault(column, group_name)
            if other != group_name:
                problems.append((index, f"{asker} gets feature '{column}' from both '{other}' and '{group_name}'; "
                                        "build it with --full-names (columns <group>__<feature>) or drop one of them"))
                continue
            selected[(group_name, name)] = SelectedFeature(group_name, name, column)
    return Resolution(tuple(selected.values()), tuple(problems))


def resolve_features(project: Project, references: Sequence[str], *, full_names: bool = False,
                     where: str = "", asker: str = AD_HOC) -> tuple[SelectedFeature, ...]:
    """The features `references` select, in request order; raises `DefinitionError` listing
    every problem (`resolve_references`), each at `where` (e.g. `features/x.yaml:3`)."""
    resolution = resolve_references(project, references, full_names=full_names, asker=asker)
    if resolution.problems:
        file, _, line = where.rpartition(":") if where.rpartition(":")[2].isdigit() else (where or AD_HOC, "", "0")
        raise DefinitionError([Problem(file, int(line), message) for _, message in resolution.problems])
    return resolution.selected
