"""Definitions: `features/**/*.yaml` + `conf/<env>.yaml` → a checked, frozen `Project`.

    >>> from featurebank.definitions import load_project
    >>> project = load_project(".", env="local")
    >>> project.groups["customer_card_spend"].max_window
    90

Pure Python: nothing here imports Spark or Great Expectations.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from featurebank.definitions.build import Builder
from featurebank.definitions.conf_load import load_config
from featurebank.definitions.governance import check_governance
from featurebank.definitions.loader import Resolver, read_definitions
from featurebank.definitions.model import Project
from featurebank.definitions.validate import assemble
from featurebank.errors import DefinitionError, Problem

__all__ = ["load_project", "default_env"]


def default_env() -> str:
    """The environment commands use when none is given: `$FEATUREBANK_ENV`, else `local`."""
    return os.environ.get("FEATUREBANK_ENV") or "local"


def load_project(root: Path | str, env: str | None = None, environ: Mapping[str, str] | None = None) -> Project:
    """Read, resolve and check every definition and the conf of one environment.

    `root` is a project directory (holding `features/` and `conf/`); `env` defaults to
    `$FEATUREBANK_ENV`, else `local`; `environ` (default `os.environ`) is what `${env:NAME}`
    reads. Raises `ConfigError` with every conf problem (every section: `aws:` and
    `governance:` too), else
    `DefinitionError` carrying every problem found in every file (including tags and PII
    declassification, see `definitions.governance`), sorted by file and line.
    """
    root = Path(root).resolve()
    env = env or default_env()
    environ = os.environ if environ is None else environ
    if not (root / "features").is_dir():
        raise DefinitionError(Problem(str(root), 0, "this is not a featurebank project (no features/ directory); "
                                                    "pass --project DIR pointing at one"))
    config = load_config(root, env, environ)
    problems: list[Problem] = []
    resolver = Resolver(dict(config.variables), environ, f"conf/{env}.yaml")
    documents = read_definitions(root, resolver, problems)
    built = Builder(root, config.feature_root, problems).build(documents)
    project = assemble(root, config, built, problems)
    check_governance(project, config.governance, built.lines, problems)
    if problems:
        raise DefinitionError(problems)
    return project
