"""`featurebank grants`: make Lake Formation say what definitions and conf say, and nothing else.

The changes, in the order they are applied (each `create`, `update`, `grant`, `revoke` or
`unchanged`, printed before anything is touched, with the deploy's own `Change` machinery):
1. the LF-tags of `governance.lf_tags`, with the values of `governance.tags`;
2. the feature root's S3 location, registered with Lake Formation;
3. the catalog database, and every group table not in the Glue Data Catalog yet (schema
   from the plan, location from conf), so access can be set before the first publish;
4. the LF-tags of each table and each column (`governance.tags.effective_tags`);
5. SELECT by tag expression for every consumer conf lists, and a revoke for every live
   tag-policy SELECT grant over these LF-tags that conf no longer gives.

Live state is read, never assumed, so a second run prints only `unchanged`. Lake Formation
has no call that lists tag-policy grants alone, so they are read from `ListPermissions` and
a revoke sends back exactly the resource the grant was read with. Tags are read with
`GetResourceLFTags` (assigned tags only; a table never tagged answers none).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from featurebank.compile.changes import Change
from featurebank.definitions.config import AwsSettings, Consumer, Governance, S3Uri
from featurebank.definitions.model import Project
from featurebank.errors import ConfigError, Problem, UsageError
from featurebank.governance.tags import TableTags, Tags, effective_tags
from featurebank.io.aws import client

SELECT = "SELECT"
ExpressionKey = frozenset[tuple[str, frozenset[str]]]


def grant_changes(project: Project, settings: AwsSettings | None = None) -> list[Change]:
    """Every change that makes LF-tags, tables, tag assignments and SELECT grants match conf.

    Reads live state through boto3 (the standard credential chain; `AWS_ENDPOINT_URL` is
    honoured). Raises `UsageError` when the environment does not turn Lake Formation on,
    `ConfigError` for missing conf. Nothing is changed until each `Change.apply` runs.
    """
    governance = project.config.governance
    if not governance.lake_formation:
        raise UsageError(f"{governance.conf_file} does not turn on governance.lake_formation, so there are no grants "
                         "to apply; pick an environment that does (e.g. --env dev)")
    database = project.config.catalog_database
    if not database:
        raise ConfigError(Problem(governance.conf_file, 0, "Lake Formation governs a Glue database; set catalog: "
                                                            "{type: glue, database: <name>}"))
    settings = settings or project.config.require_aws()
    lakeformation = client("lakeformation", settings.region)
    glue = client("glue", settings.region)
    changes = _lf_tag_changes(lakeformation, governance)
    changes += _location_changes(lakeformation, project.config.feature_root)
    changes += _database_changes(glue, database)
    for tables in effective_tags(project, governance).values():
        changes += _table_changes(glue, lakeformation, database, tables)
    changes += _permission_changes(lakeformation, governance)
    return changes


# --- LF-tags and the data location ------------------------------------------------------------


def _pages(call: Callable[..., dict[str, Any]], key: str, **arguments: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    token: str | None = None
    while True:
        page = call(**arguments, **({"NextToken": token} if token else {}))
        items += page.get(key, [])
        token = page.get("NextToken")
        if not token:
            return items


def _lf_tag_changes(lakeformation: Any, governance: Governance) -> list[Change]:
    live = {t["TagKey"]: list(t["TagValues"]) for t in _pages(lakeformation.list_lf_tags, "LFTags")}
    vocabulary = governance.vocabulary
    changes = []
    for key in governance.lf_tags:
        want = list(vocabulary[key])
        shown = f"{key} [{', '.join(want)}]"
        if key not in live:
            changes.append(Change("lf-tag", shown, "create", calls=("lakeformation.CreateLFTag",),
                                  apply=partial(lakeformation.create_lf_tag, TagKey=key, TagValues=want)))
            continue
        add = [v for v in want if v not in live[key]]
        drop = [v for v in live[key] if v not in want]
        if not add and not drop:
            changes.append(Change("lf-tag", shown, "unchanged"))
            continue
        delta = tuple([f"+{v}" for v in add] + [f"-{v}" for v in drop])
        arguments: dict[str, Any] = {"TagKey": key}
        if add:
            arguments["TagValuesToAdd"] = add
        if drop:
            arguments["TagValuesToDelete"] = drop
        changes.append(Change("lf-tag", shown, "update", delta, ("lakeformation.UpdateLFTag",),
                              apply=partial(lakeformation.update_lf_tag, **arguments)))
    return changes


def _location_changes(lakeformation: Any, feature_root: str) -> list[Change]:
    try:
        uri = S3Uri.parse(feature_root)
    except ValueError:  # a local feature root: nothing for Lake Formation to govern
        return []
    arn = f"arn:aws:s3:::{uri.bucket}/{uri.prefix}".rstrip("/")
    try:
        lakeformation.describe_resource(ResourceArn=arn)
        return [Change("data location", uri.uri(), "unchanged")]
    except lakeformation.exceptions.EntityNotFoundException:
        return [Change("data location", uri.uri(), "create", calls=("lakeformation.RegisterResource",),
                       apply=lambda: lakeformation.register_resource(ResourceArn=arn, UseServiceLinkedRole=True))]


# --- catalog tables ------------------------------------------------------------------------------


def _database_changes(glue: Any, database: str) -> list[Change]:
    try:
        glue.get_database(Name=database)
        return [Change("glue database", database, "unchanged")]
    except glue.exceptions.EntityNotFoundException:
        return [Change("glue database", database, "create", calls=("glue.CreateDatabase",),
                       apply=lambda: glue.create_database(DatabaseInput={"Name": database}))]


def table_input(tables: TableTags) -> dict[str, Any]:
    """The Glue `TableInput` registering a group's Delta table before its first publish.

    Spark and Athena read a Delta table's schema from its log; the columns here are what
    Lake Formation tags and grants attach to.
    """
    columns = [{"Name": n, "Type": t} for n, t in tables.column_types if n not in tables.partition]
    partition = [{"Name": n, "Type": t} for n, t in tables.column_types if n in tables.partition]
    return {
        "Name": tables.group,
        "TableType": "EXTERNAL_TABLE",
        "Parameters": {"EXTERNAL": "TRUE", "table_type": "DELTA", "spark.sql.sources.provider": "delta",
                       "featurebank.registered_by": "featurebank grants"},
        "StorageDescriptor": {"Columns": columns, "Location": tables.table_path},
        "PartitionKeys": partition,
    }


# Keys of GetTable's answer that UpdateTable's TableInput accepts.
_TABLE_INPUT_KEYS = ("Name", "Description", "Owner", "Retention", "StorageDescriptor", "PartitionKeys",
                     "ViewOriginalText", "ViewExpandedText", "TableType", "Parameters", "TargetTable")


def _table_changes(glue: Any, lakeformation: Any, database: str, tables: TableTags) -> list[Change]:
    name = f"{database}.{tables.group}"
    wanted = table_input(tables)
    try:
        live = glue.get_table(DatabaseName=database, Name=tables.group)["Table"]
    except glue.exceptions.EntityNotFoundException:
        live = None
    changes = []
    if live is None:
        changes.append(Change("glue table", name, "create", calls=("glue.CreateTable",),
                              apply=lambda: glue.create_table(DatabaseName=database, TableInput=wanted)))
    else:
        have = {c["Name"] for c in live.get("StorageDescriptor", {}).get("Columns", []) + live.get("PartitionKeys", [])}
        missing = [n for n, _ in tables.column_types if n not in have]
        if missing:
            update = {k: v for k, v in live.items() if k in _TABLE_INPUT_KEYS}
            descriptor = dict(update.get("StorageDescriptor", {}))
            descriptor["Columns"] = wanted["StorageDescriptor"]["Columns"]
            descriptor.setdefault("Location", tables.table_path)
            update.update(StorageDescriptor=descriptor, PartitionKeys=wanted["PartitionKeys"])
            changes.append(Change("glue table", name, "update", ("columns",), ("glue.UpdateTable",),
                                  apply=partial(glue.update_table, DatabaseName=database, TableInput=update)))
        else:
            changes.append(Change("glue table", name, "unchanged"))

    table_resource = {"Table": {"DatabaseName": database, "Name": tables.group}}
    live_table: dict[str, str] = {}
    live_columns: dict[str, dict[str, str]] = {}
    if live is not None:
        live_table = _tag_dict(_read_tags(lakeformation, table_resource).get("LFTagsOnTable", []))
        columns = [c for c, _ in tables.columns]
        resource = {"TableWithColumns": {"DatabaseName": database, "Name": tables.group, "ColumnNames": columns}}
        answer = _read_tags(lakeformation, resource)
        live_columns = {c["Name"]: _tag_dict(c.get("LFTags", [])) for c in answer.get("LFTagsOnColumns", [])}
    keys = {k for k, _ in tables.table} | {k for _, tags in tables.columns for k, _ in tags}
    changes.append(_tag_change(lakeformation, "lf-tags table", name, table_resource, tables.table, live_table, keys))
    for column, tags in tables.columns:
        resource = {"TableWithColumns": {"DatabaseName": database, "Name": tables.group, "ColumnNames": [column]}}
        changes.append(_tag_change(lakeformation, "lf-tags column", f"{name}.{column}", resource, tags,
                                   live_columns.get(column, {}), keys))
    return changes


def _tag_dict(tags: list[dict[str, Any]]) -> dict[str, str]:
    return {t["TagKey"]: ",".join(t["TagValues"]) for t in tags}


def _read_tags(lakeformation: Any, resource: dict[str, Any]) -> dict[str, Any]:
    """GetResourceLFTags' answer: the tags assigned to the resource (none for one never tagged)."""
    return dict(lakeformation.get_resource_lf_tags(Resource=resource, ShowAssignedLFTags=True))


def _tag_change(lakeformation: Any, kind: str, name: str, resource: dict[str, Any], want: Tags,
                live: dict[str, str], keys: set[str]) -> Change:
    """Assign `want` to one table or column; remove our LF-tag keys it should not carry."""
    desired = dict(want)
    extra = {k: v for k, v in live.items() if k in keys and k not in desired}
    changed = tuple(f"{k}={v}" for k, v in sorted(desired.items()) if live.get(k) != v) + tuple(f"-{k}" for k in sorted(extra))
    shown = f"{name} [{', '.join(f'{k}={v}' for k, v in sorted(desired.items()))}]"
    if not changed:
        return Change(kind, shown, "unchanged")

    def apply() -> None:
        if desired:
            lakeformation.add_lf_tags_to_resource(
                Resource=resource, LFTags=[{"TagKey": k, "TagValues": [v]} for k, v in sorted(desired.items())])
        if extra:
            lakeformation.remove_lf_tags_from_resource(
                Resource=resource, LFTags=[{"TagKey": k, "TagValues": v.split(",")} for k, v in sorted(extra.items())])

    calls = ("lakeformation.AddLFTagsToResource",) + (("lakeformation.RemoveLFTagsFromResource",) if extra else ())
    return Change(kind, shown, "create" if not live else "update", changed if live else (), calls, apply)


# --- grants -------------------------------------------------------------------------------------


def _principal(principal: str) -> dict[str, str]:
    return {"DataLakePrincipalIdentifier": principal}


def _expression_key(expression: list[dict[str, Any]]) -> ExpressionKey:
    return frozenset((e["TagKey"], frozenset(e["TagValues"])) for e in expression)


def _consumer_key(consumer: Consumer) -> tuple[str, ExpressionKey]:
    return consumer.principal, frozenset((k, frozenset(v)) for k, v in consumer.tag_expression)


def _shown(principal: str, expression: ExpressionKey) -> str:
    text = ", ".join(f"{k}: [{', '.join(sorted(v))}]" for k, v in sorted(expression, key=lambda p: p[0]))
    return f"to {principal} on tables where {{{text}}}"


def _permission_changes(lakeformation: Any, governance: Governance) -> list[Change]:
    """Grant each consumer's SELECT; revoke live tag-policy SELECT grants conf no longer gives.

    Only grants on table tag policies over our LF-tag keys are ours to manage; anything else
    (grants on named tables, on databases, over other tag keys) is left alone.
    """
    ours = set(governance.lf_tags)
    live: dict[tuple[str, ExpressionKey], dict[str, Any]] = {}
    for entry in _pages(lakeformation.list_permissions, "PrincipalResourcePermissions"):
        policy = entry.get("Resource", {}).get("LFTagPolicy")
        if not policy or policy.get("ResourceType") != "TABLE" or SELECT not in entry.get("Permissions", []):
            continue
        expression = policy.get("Expression", [])
        if not expression or any(e["TagKey"] not in ours for e in expression):
            continue
        principal = entry.get("Principal", {}).get("DataLakePrincipalIdentifier", "")
        live[(principal, _expression_key(expression))] = entry
    changes = []
    wanted: set[tuple[str, ExpressionKey]] = set()
    for consumer in governance.consumers:
        key = _consumer_key(consumer)
        if key in wanted:
            continue
        wanted.add(key)
        shown = _shown(*key)
        if key in live:
            changes.append(Change("select", shown, "unchanged"))
            continue
        resource = {"LFTagPolicy": {"ResourceType": "TABLE", "Expression": [
            {"TagKey": k, "TagValues": list(v)} for k, v in consumer.tag_expression]}}
        changes.append(Change("select", shown, "grant", calls=("lakeformation.GrantPermissions",),
                              apply=partial(lakeformation.grant_permissions, Principal=_principal(consumer.principal),
                                            Resource=resource, Permissions=[SELECT])))
    for key, entry in sorted(live.items(), key=lambda item: _shown(*item[0])):
        if key in wanted:
            continue
        changes.append(Change("select", _shown(*key), "revoke", calls=("lakeformation.RevokePermissions",),
                              apply=partial(lakeformation.revoke_permissions, Principal=entry["Principal"],
                                            Resource=entry["Resource"], Permissions=[SELECT])))
    return changes
