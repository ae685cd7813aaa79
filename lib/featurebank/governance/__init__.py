"""Governance: PII and domain tags from definitions become Lake Formation LF-tags and grants.

    >>> from featurebank.definitions import load_project
    >>> from featurebank.governance import effective_tags, check_access
    >>> project = load_project(".", env="dev")
    >>> effective_tags(project)["customer_profile"].column("income_band")
    {'domain': 'customer', 'pii': 'true'}
    >>> check_access(project, [("customer_profile", "segment")], "arn:aws:iam::444455556666:role/marketing-analytics")

- `tags`: the effective LF-tags of each group table and column (definitions + lineage; pure).
- `featurebank.training.access`: the local check a training set runs before reading anything
  (`AccessDenied`), re-exported here; it reads the same per-column tags
  (`definitions.governance.column_tags`), so it sits below training sets, not up here.
- `lakeformation`: `featurebank grants` — LF-tags, table registration, tag assignments and
  SELECT grants made equal to conf, printed as create/update/grant/revoke/unchanged.
Conf (`governance:`) is `Config.governance` (`featurebank.definitions.config`); PII lineage and
per-column tags live in `featurebank.definitions.governance`.
"""

from __future__ import annotations

from featurebank.governance.tags import TableTags, effective_tags, table_tags
from featurebank.training.access import access_principal, check_access

__all__ = ["TableTags", "access_principal", "check_access", "effective_tags", "table_tags"]
