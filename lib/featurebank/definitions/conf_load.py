"""`conf/<env>.yaml` → `Config` (definitions/config.py): read once, every section checked.

The file is read once, with line numbers (`loader.read_yaml`); `${name}` and `${env:NAME}` are
resolved; then each section is checked here, `aws:` by `conf_aws` and `governance:` by
`conf_governance`. Every problem of every section is reported together as one `ConfigError`
at `conf/<env>.yaml:line`, before any definition is read (definitions depend on conf
variables, so reading them against a broken conf would only add noise).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from featurebank.definitions.conf_aws import parse_aws
from featurebank.definitions.conf_governance import parse_governance
from featurebank.definitions.config import CATALOG_TYPES, CatalogType, Config, SparkSettings
from featurebank.definitions.loader import VARIABLE, Resolver, YList, YMap, definition_files, did_you_mean, read_yaml, resolve_path
from featurebank.definitions.model import Location
from featurebank.errors import ConfigError, Problem
from featurebank.redact import remember

CONF_KEYS = ("feature_root", "variables", "timezone", "catalog", "spark", "aws", "governance", "expressions", "retention")


def _resolve_deep(value: Any, resolver: Resolver, file: str, line: int, problems: list[Problem]) -> Any:
    if isinstance(value, str) and "${" in value:
        return resolver.resolve(value, file, line, problems)
    if isinstance(value, YMap):
        out = YMap(value.line)
        for key, item in value.items():
            out[key] = _resolve_deep(item, resolver, file, value.line_of(key), problems)
            out.key_lines[key] = value.line_of(key)
        return out
    if isinstance(value, YList):
        items = YList(value.line)
        for index, item in enumerate(value):
            items.append(_resolve_deep(item, resolver, file, value.line_of(index), problems))
            items.item_lines.append(value.line_of(index))
        return items
    return value


def available_envs(root: Path) -> list[str]:
    """The environments a project defines: the stems of `conf/*.yaml`."""
    return sorted(p.stem for p in (root / "conf").glob("*.yaml"))


def load_config(root: Path, env: str, environ: Mapping[str, str]) -> Config:
    """Read and check `conf/<env>.yaml`; raises `ConfigError` with every problem found."""
    secrets = env_secrets(root, environ)
    remember(secrets)  # before anything is read: even a conf error is printed masked
    rel = f"conf/{env}.yaml"
    path = root / rel
    if not path.is_file():
        envs = available_envs(root)
        listed = ", ".join(envs) if envs else "none (there is no conf/*.yaml)"
        raise ConfigError(
            Problem(rel, 0, f"no configuration for environment '{env}'{did_you_mean(env, envs)} "
                    f"(environments: {listed}); create {rel} or pass --env with one of those")
        )
    problems: list[Problem] = []
    documents = read_yaml(path, rel, problems, None)
    if problems:
        raise ConfigError(problems)
    if len(documents) != 1 or not isinstance(documents[0].data, YMap):
        raise ConfigError(Problem(rel, documents[0].line if documents else 0,
                                  "the configuration must be one YAML mapping (feature_root:, variables:, ...); rewrite it as one"))
    data: YMap = documents[0].data
    for key in data:
        if key not in CONF_KEYS:
            hint = did_you_mean(key, CONF_KEYS) or f"; remove it (allowed: {', '.join(CONF_KEYS)})"
            problems.append(Problem(rel, data.line_of(key), f"unknown configuration key '{key}'{hint}"))

    env_only = Resolver({}, environ, rel)
    variables: dict[str, str] = {}
    raw_vars = data.get("variables", YMap(data.line))
    if not isinstance(raw_vars, YMap):
        problems.append(Problem(rel, data.line_of("variables"), "'variables' must be a mapping of name: value; write e.g. variables: {raw_root: ./warehouse/raw}"))
    else:
        for name, value in raw_vars.items():
            if isinstance(value, (YMap, YList)) or value is None:
                problems.append(Problem(rel, raw_vars.line_of(name), f"variable '{name}' must be a single value (text or number); give it one"))
                continue
            variables[name] = env_only.resolve(str(value), rel, raw_vars.line_of(name), problems)
    resolver = Resolver(variables, environ, rel)
    data = _resolve_deep(data, resolver, rel, data.line, problems)

    feature_root = data.get("feature_root")
    if feature_root is None:
        problems.append(Problem(rel, data.line, "'feature_root' is missing; add feature_root: ./warehouse/features (or an s3:// URI)"))
        feature_root = ""
    elif not isinstance(feature_root, str) or not feature_root:
        problems.append(Problem(rel, data.line_of("feature_root"), "'feature_root' must be a path or URI; write e.g. feature_root: ./warehouse/features"))
        feature_root = ""
    else:
        feature_root = resolve_path(feature_root, root)

    timezone = data.get("timezone", "UTC")
    if not isinstance(timezone, str):
        problems.append(Problem(rel, data.line_of("timezone"), f"'timezone' must be an IANA time zone name like Europe/London, not {timezone!r}"))
        timezone = "UTC"
    else:
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            problems.append(Problem(rel, data.line_of("timezone"), f"unknown time zone '{timezone}'; use an IANA name such as UTC or Europe/London"))
            timezone = "UTC"

    retention_days = _retention(data, rel, problems)
    catalog_type, database = _catalog(data, rel, problems)
    spark = _spark(data, rel, problems)
    allow_functions = _allow_functions(data, rel, problems)
    sections: dict[str, YMap | None] = {}
    for key in ("aws", "governance"):
        value = data.get(key)
        if value is not None and not isinstance(value, YMap):
            problems.append(Problem(rel, data.line_of(key), f"'{key}' must be a mapping; write it as {key}: {{...}}"))
            value = None
        sections[key] = value or None  # an empty mapping says nothing
    aws = parse_aws(sections["aws"], env, rel, data.line_of("aws"), timezone, problems)
    governance = parse_governance(sections["governance"], rel, catalog_type, problems)
    if problems:
        raise ConfigError(problems)
    return Config(
        secrets=secrets,
        env=env,
        feature_root=str(feature_root),
        variables=tuple(variables.items()),
        timezone=timezone,
        catalog_type=catalog_type,
        catalog_database=database,
        spark=spark,
        aws=aws,
        governance=governance,
        retention_days=retention_days,
        loc=Location(rel, data.line),
        allow_functions=allow_functions,
    )


def _retention(data: YMap, rel: str, problems: list[Problem]) -> int:
    """`retention: <N>d` (days, N >= 1); absent: 3650 days, so manifests rebuild for years."""
    value = data.get("retention", "3650d")
    text = str(value).strip().lower()
    days = text[:-1] if text.endswith("d") else ""
    if isinstance(value, bool) or not days.isdigit() or int(days) < 1:
        problems.append(Problem(rel, data.line_of("retention"), f"'retention' must be a number of days like 3650d, "
                                                                f"not {value!r}; write e.g. retention: 3650d"))
        return 3650
    return int(days)


def env_secrets(root: Path, environ: Mapping[str, str]) -> tuple[str, ...]:
    """The values of the environment variables the project reads with `${env:NAME}` (in conf or
    definitions; unset ones skipped): what `featurebank.redact` masks wherever text leaves.

    Read from the files' text rather than from what was resolved, so a value is known as a
    secret before any of it is parsed (a mention in a YAML comment only masks more).
    """
    names: set[str] = set()
    for path in [*sorted((root / "conf").rglob("*.y*ml")), *definition_files(root)]:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue  # reading it properly reports the problem
        names.update(m.group(1).strip()[4:].strip() for m in VARIABLE.finditer(text) if m.group(1).strip().startswith("env:"))
    return tuple(sorted({environ[name] for name in names if name in environ}))


def _catalog(data: YMap, rel: str, problems: list[Problem]) -> tuple[CatalogType, str | None]:
    catalog = data.get("catalog", YMap(data.line))
    if not isinstance(catalog, YMap):
        problems.append(Problem(rel, data.line_of("catalog"), "'catalog' must be a mapping; write catalog: {type: none} or {type: glue, database: features}"))
        return "none", None
    for key in catalog:
        if key not in ("type", "database"):
            hint = did_you_mean(key, ("type", "database")) or "; remove it (allowed: type, database)"
            problems.append(Problem(rel, catalog.line_of(key), f"unknown catalog key '{key}'{hint}"))
    kind = next((t for t in CATALOG_TYPES if t == catalog.get("type", "none")), None)
    if kind is None:
        problems.append(Problem(rel, catalog.line_of("type"), f"unknown catalog type '{catalog.get('type')}'"
                                                             f"{did_you_mean(str(catalog.get('type')), CATALOG_TYPES)} (one of: none, glue, hive)"))
        return "none", None
    database = catalog.get("database")
    if kind != "none" and (not isinstance(database, str) or not database):
        problems.append(Problem(rel, catalog.line, f"catalog type '{kind}' needs a database; add database: <name>"))
        return "none", None
    return kind, (str(database) if database is not None else None)


def _spark(data: YMap, rel: str, problems: list[Problem]) -> SparkSettings:
    spark = data.get("spark", YMap(data.line))
    if not isinstance(spark, YMap):
        problems.append(Problem(rel, data.line_of("spark"), "'spark' must be a mapping; write spark: {conf: {key: value}}"))
        return SparkSettings()
    for key in spark:
        if key != "conf":
            problems.append(Problem(rel, spark.line_of(key), f"unknown spark key '{key}'{did_you_mean(key, ['conf']) or '; remove it (allowed: conf)'}"))
    conf = spark.get("conf", YMap(spark.line))
    if not isinstance(conf, YMap):
        problems.append(Problem(rel, spark.line_of("conf"), "'spark.conf' must be a mapping of Spark settings; write conf: {spark.sql.shuffle.partitions: \"8\"}"))
        return SparkSettings()
    pairs: list[tuple[str, str]] = []
    for key, value in conf.items():
        if isinstance(value, (YMap, YList)) or value is None:
            problems.append(Problem(rel, conf.line_of(key), f"Spark setting '{key}' must be a single value; quote it as text"))
            continue
        text = str(value).lower() if isinstance(value, bool) else str(value)
        pairs.append((key, text))
    return SparkSettings(tuple(pairs))


def _allow_functions(data: YMap, rel: str, problems: list[Problem]) -> tuple[str, ...]:
    """`expressions: {allow_functions: [current_date]}`: refused functions conf allows by name."""
    from featurebank.definitions.policy import ALLOWABLE, REFUSED

    expressions = data.get("expressions", YMap(data.line))
    if not isinstance(expressions, YMap):
        problems.append(Problem(rel, data.line_of("expressions"), "'expressions' must be a mapping; write expressions: {allow_functions: [current_date]}"))
        return ()
    for key in expressions:
        if key != "allow_functions":
            problems.append(Problem(rel, expressions.line_of(key), f"unknown expressions key '{key}'"
                                    f"{did_you_mean(key, ['allow_functions']) or '; remove it (allowed: allow_functions)'}"))
    names = expressions.get("allow_functions", YList(expressions.line))
    line = expressions.line_of("allow_functions")
    if not isinstance(names, YList) or not all(isinstance(n, str) for n in names):
        problems.append(Problem(rel, line, "'expressions.allow_functions' must be a list of function names; write allow_functions: [current_date]"))
        return ()
    for name in names:
        if name not in ALLOWABLE:
            why = f"it is never allowed ({REFUSED[name]})" if name in REFUSED else \
                f"it is not a refused function{did_you_mean(name, ALLOWABLE)}"
            problems.append(Problem(rel, line, f"expressions.allow_functions names {name}, but {why}; remove it"))
    return tuple(n for n in names if n in ALLOWABLE)
