"""The training-set access check: may this principal read these features? Decided from conf, before any read or AWS call.

It evaluates the same rule Lake Formation applies to tag-based grants: a principal may read
a column when one of its grants matches the column's LF-tags — for every key of the
grant's tag expression, the column has that key with one of the listed values. So a data
scientist learns at once, naming the columns and the grant that falls short, what Lake
Formation would refuse later (or what it should refuse, where it does not govern yet).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from featurebank.definitions.config import Consumer
from featurebank.definitions.governance import TIME_COLUMNS, column_tags
from featurebank.definitions.model import Project
from featurebank.errors import AccessDenied, UsageError


def grant_shortfall(column_tags: Mapping[str, str], grant: Consumer) -> str | None:
    """None when `grant` lets its principal read a column with these tags, else what it allows instead."""
    for key, values in grant.tag_expression:
        have = column_tags.get(key)
        if have is None:
            return f"allows {key} in [{', '.join(values)}] and the column has no {key} tag"
        if have not in values:
            return f"allows {key} in [{', '.join(values)}]"
    return None


def access_principal(project: Project, principal: str | None) -> str | None:
    """Whom to check access as: `principal` if given, else `governance.identity` where Lake
    Formation governs the environment, else nobody (None: no check)."""
    if principal:
        return principal
    governance = project.config.governance
    return governance.identity if governance.lake_formation else None


def check_access(project: Project, features: Sequence[tuple[str, str]], principal: str | None) -> str | None:
    """Refuse, before anything is read, any requested feature `principal` may not read.

    `features` are (group, feature) pairs; each group's key and time columns are checked
    too, since a training set reads them. `principal` None means the environment's
    configured identity (see `access_principal`); with no one to check as, nothing is
    checked. Returns the principal checked (or None). Raises `AccessDenied` naming every
    refused column, its tags and the grant that falls short; `UsageError` when a principal
    is given but conf configures no consumers to check against.
    """
    who = access_principal(project, principal)
    if who is None:
        return None
    governance = project.config.governance
    if not governance.consumers:
        raise UsageError(f"{governance.conf_file} configures no governance.consumers, so access as {who} cannot be "
                         "checked; use an environment that does (e.g. --env dev) or drop --as")
    grants = governance.grants_of(who)
    wanted: dict[str, list[str]] = {}
    for group, feature in features:
        columns = wanted.setdefault(group, [])
        if feature not in columns:
            columns.append(feature)
    refused: list[str] = []
    for group, names in wanted.items():
        if group not in project.groups:  # e.g. a manifest naming a group since removed: no tags known
            refused.append(f"principal {who} may not read {group}: it is no longer defined, so its tags are unknown")
            continue
        tags = column_tags(project, group, governance)
        keys = project.entities[project.groups[group].entity].keys
        denied: list[tuple[str, dict[str, str], list[str]]] = []
        for column in (*names, *keys, *TIME_COLUMNS):
            tagged = tags.get(column, {})
            shortfalls = [s for g in grants if (s := grant_shortfall(tagged, g)) is not None]
            if grants and len(shortfalls) < len(grants):
                continue
            if column in names or not any(d[0] in names for d in denied):  # keys only when no feature says it
                denied.append((column, tagged, shortfalls))
        for column, tagged, shortfalls in denied:
            shown = ", ".join(f"{k}={v}" for k, v in sorted(tagged.items()))
            if not grants:
                why = f"it has no grant in {governance.conf_file} governance.consumers"
            elif len(grants) == 1:
                why = f"its grant {shortfalls[0]}"
            else:
                why = "none of its grants covers it: " + "; ".join(
                    f"{g.expression_text()} {s}" for g, s in zip(grants, shortfalls))
            refused.append(f"principal {who} may not read {group}.{column} ({shown}): {why}")
    if refused:
        fix = "ask the data owner for a grant (governance.consumers in " + governance.conf_file + ") or drop the feature"
        if len(refused) == 1:
            raise AccessDenied(f"{refused[0]}; {fix}; nothing was built")
        raise AccessDenied("\n".join(refused) + f"\n{fix}; nothing was built")
    return who
