"""Governance: tags and PII in definitions, `featurebank grants` against a real moto server on
127.0.0.1, and the `training-set --as` access check. No Spark anywhere in this file.

What `grants` leaves behind is read back through boto3 (`lakeformation`, `glue`) and compared
with an independent expectation: PII columns from the plan's lineage and the sources'
`pii_columns` as the YAML writes them, domains from the groups' YAML tags.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import boto3
import pandas as pd
import pytest
import yaml

from aws_fixtures import REGION, aws, frozen_library, library_snapshot, moto_endpoint  # noqa: F401  (fixtures)
from featurebank.cli import main
from featurebank.definitions import load_project
from featurebank.definitions.governance import column_pii
from featurebank.errors import AccessDenied, ConfigError, DefinitionError, UsageError
from featurebank.governance import check_access, effective_tags
from featurebank.compile.run import compile_plan

DATABASE = "features_dev"  # conf/dev.yaml catalog.database
FRAUD_DS = "arn:aws:iam::111122223333:role/fraud-ds"
MARKETING = "arn:aws:iam::444455556666:role/marketing-analytics"


def _cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _lf():
    return boto3.client("lakeformation", region_name=REGION)


def _edit_yaml(path: Path, edit) -> None:
    data = yaml.safe_load(path.read_text())
    edit(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def _replace(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


# --- the independent expectation -------------------------------------------------------------


def expected_column_tags(project_root: Path) -> dict[str, dict[str, dict[str, str]]]:
    """Group → column → LF-tags, from the raw YAML and the plan lineage (not from governance code)."""
    documents = [d for f in sorted((project_root / "features").rglob("*.yaml"))
                 for d in yaml.safe_load_all(f.read_text()) if d]
    pii_sources = {d["name"]: set(d.get("pii_columns", [])) for d in documents if d["kind"] == "source"}
    groups = {d["name"]: d for d in documents if d["kind"] == "feature_group"}
    project = load_project(project_root, "dev")
    expected: dict[str, dict[str, dict[str, str]]] = {}
    for name, document in groups.items():
        plan = compile_plan(project, name, date(2024, 1, 1), date(2024, 1, 1))
        lineage = dict(plan.lineage)
        pii_inputs = pii_sources[document["source"]]
        declassified = {f["name"] for f in document.get("features", []) + document.get("derived", []) if f.get("declassified")}
        expected[name] = {
            column.name: {"domain": document["tags"]["domain"],
                          "pii": "true" if set(lineage.get(column.name, ())) & pii_inputs and column.name not in declassified
                          else "false"}
            for column in plan.output
        }
    return expected


def live_column_tags(group: str, columns: list[str]) -> dict[str, dict[str, str]]:
    answer = _lf().get_resource_lf_tags(
        Resource={"TableWithColumns": {"DatabaseName": DATABASE, "Name": group, "ColumnNames": columns}})
    return {c["Name"]: {t["TagKey"]: ",".join(t["TagValues"]) for t in c["LFTags"]} for c in answer.get("LFTagsOnColumns", [])}


def live_grants() -> set[tuple[str, frozenset]]:
    permissions = _lf().list_permissions()["PrincipalResourcePermissions"]
    return {(p["Principal"]["DataLakePrincipalIdentifier"],
             frozenset((e["TagKey"], frozenset(e["TagValues"])) for e in p["Resource"]["LFTagPolicy"]["Expression"]))
            for p in permissions if "LFTagPolicy" in p["Resource"] and "SELECT" in p["Permissions"]}


def grant(principal: str, **expression: list[str]) -> tuple[str, frozenset]:
    return principal, frozenset((k, frozenset(v)) for k, v in expression.items())


# --- definitions: tags and PII -----------------------------------------------------------------


def test_example_catalog_marks_income_band_pii_through_the_lineage(example_project: Path) -> None:
    project = load_project(example_project, "dev")
    expected = expected_column_tags(example_project)
    tags = effective_tags(project)
    assert {g: dict((c, dict(t)) for c, t in tables.columns) for g, tables in tags.items()} == expected
    pii = {(g, c) for g, columns in expected.items() for c, t in columns.items() if t["pii"] == "true"}
    assert pii == {("customer_profile", "income_band")}
    assert column_pii(project, "customer_profile")["income_band"].why == "reads customers.income"


SMALL_SOURCE = """\
kind: entity
name: customer
keys: [customer_id]
---
kind: source
name: people
format: parquet
path: ./raw/people
timestamp: ts
columns: {customer_id: string, ts: timestamp, income: double, city: string}
pii_columns: [income]
---
kind: feature_group
name: spend
entity: customer
source: people
tags: {domain: cards}
aggregations:
  - {name: income_avg, expr: income, function: avg, windows: [30d]}
  - {name: visits, function: count, windows: [30d]}
derived:
  - {name: income_per_visit, expr: "income_avg_30d / nullif(visits_30d, 0)"}
  - {name: income_high, expr: "income_avg_30d > 5000", declassified: "one bit: above or below 5000"}
  - {name: visits_twice, expr: "visits_30d * 2"}
"""


def small_project(tmp_path: Path, definitions: str, conf_extra: str = "") -> Path:
    root = tmp_path / "small"
    (root / "features").mkdir(parents=True)
    (root / "conf").mkdir()
    (root / "conf" / "local.yaml").write_text("feature_root: ./warehouse/features\n" + conf_extra)
    (root / "features" / "defs.yaml").write_text(definitions)
    return root


def test_derived_feature_over_a_pii_column_is_pii_and_a_declassified_one_is_not(tmp_path: Path) -> None:
    project = load_project(small_project(tmp_path, SMALL_SOURCE), "local")
    pii = column_pii(project, "spend")
    plan = compile_plan(project, "spend", date(2024, 1, 1), date(2024, 1, 1))
    from_lineage = {c for c, reads in plan.lineage if "income" in reads}  # the oracle: plan lineage
    assert from_lineage == {"income_avg_30d", "income_per_visit", "income_high"}
    assert {c for c, p in pii.items() if p.pii} == from_lineage - {"income_high"}
    assert pii["income_per_visit"].inputs == ("people.income",)
    assert pii["income_high"].declassified == "one bit: above or below 5000"
    tags = effective_tags(project)["spend"]
    assert tags.column("income_per_visit")["pii"] == "true" and tags.column("visits_twice")["pii"] == "false"


def test_a_group_filtered_on_a_pii_column_makes_every_feature_pii(tmp_path: Path) -> None:
    # The filter decides which rows each feature counts: `visits` of people earning > 5000 is about income.
    filtered = SMALL_SOURCE.replace("tags: {domain: cards}\n", "tags: {domain: cards}\nfilter: \"income > 5000\"\n")
    project = load_project(small_project(tmp_path, filtered), "local")
    pii = column_pii(project, "spend")
    assert pii["visits_30d"].pii and pii["visits_30d"].inputs == ("people.income",)
    assert pii["visits_twice"].pii and pii["visits_twice"].why == "reads people.income"
    assert not pii["income_high"].pii  # declassified on purpose stays declassified
    assert not pii["customer_id"].pii


COPY_OF_PEOPLE = """\
---
kind: source
name: people_copy
format: parquet
path: ./raw/./people/
timestamp: ts
columns: {customer_id: string, ts: timestamp, income: double, city: string}
---
kind: feature_group
name: copied
entity: customer
source: people_copy
tags: {domain: cards}
features:
  - {name: income_copy, expr: income}
"""


def test_a_second_source_over_the_same_path_has_the_first_ones_pii_columns(tmp_path: Path) -> None:
    consumer = "arn:aws:iam::444455556666:role/no-pii"
    conf = f"governance:\n  consumers:\n    - {{principal: {consumer}, tag_expression: {{pii: [false]}}}}\n"
    project = load_project(small_project(tmp_path, SMALL_SOURCE + COPY_OF_PEOPLE, conf), "local")
    assert column_pii(project, "copied")["income_copy"].why == "reads people.income"
    with pytest.raises(AccessDenied, match="may not read copied.income_copy"):
        check_access(project, [("copied", "income_copy")], consumer)


def _line_of(path: Path, needle: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


def test_declassifying_without_a_reason_is_a_definition_error_at_file_line(tmp_path: Path) -> None:
    root = small_project(tmp_path, SMALL_SOURCE.replace('declassified: "one bit: above or below 5000"', 'declassified: ""'))
    with pytest.raises(DefinitionError) as error:
        load_project(root, "local")
    line = _line_of(root / "features" / "defs.yaml", "income_high")
    assert f"features/defs.yaml:{line}: derived feature 'income_high' is declassified without a reason" in str(error.value)


def test_declassifying_a_feature_without_pii_input_or_silencing_pii_with_a_tag_are_errors(tmp_path: Path) -> None:
    text = SMALL_SOURCE.replace('{name: visits_twice, expr: "visits_30d * 2"}',
                                '{name: visits_twice, expr: "visits_30d * 2", declassified: "no reason needed"}')
    text = text.replace('{name: income_per_visit, expr: "income_avg_30d / nullif(visits_30d, 0)"}',
                        '{name: income_per_visit, expr: "income_avg_30d / nullif(visits_30d, 0)", tags: {pii: false}}')
    root = small_project(tmp_path, text)
    with pytest.raises(DefinitionError) as error:
        load_project(root, "local")
    path = root / "features" / "defs.yaml"
    messages = str(error.value).splitlines()
    assert messages == [
        f"features/defs.yaml:{_line_of(path, 'income_per_visit')}: derived feature 'income_per_visit' reads people.income, "
        "so it is PII and pii: false cannot say otherwise; to declassify it on purpose, write declassified: \"<reason>\" instead",
        f"features/defs.yaml:{_line_of(path, 'visits_twice')}: derived feature 'visits_twice' is declassified, but it reads "
        "no PII column, so there is nothing to declassify; remove declassified",
    ]


def test_unknown_tag_key_or_value_is_a_definition_error_with_did_you_mean(tmp_path: Path) -> None:
    text = SMALL_SOURCE.replace("tags: {domain: cards}", "tags: {domian: cards}").replace(
        "{name: visits, function: count, windows: [30d]}", "{name: visits, function: count, windows: [30d], tags: {domain: crads}}")
    root = small_project(tmp_path, text, "governance:\n  tags: {domain: [cards, fraud], pii: [true, false]}\n")
    with pytest.raises(DefinitionError) as error:
        load_project(root, "local")
    path = root / "features" / "defs.yaml"
    text_error = str(error.value)
    assert (f"features/defs.yaml:{_line_of(path, 'domian')}: unknown tag 'domian' on feature group 'spend'; "
            "did you mean 'domain'?") in text_error
    assert (f"features/defs.yaml:{_line_of(path, 'crads')}: tag domain: crads on aggregation 'visits' is not an allowed "
            "value; did you mean 'cards'?") in text_error


def test_pii_column_that_the_source_does_not_have_is_an_error(tmp_path: Path) -> None:
    root = small_project(tmp_path, SMALL_SOURCE.replace("pii_columns: [income]", "pii_columns: [incom]"))
    with pytest.raises(DefinitionError, match=r"defs.yaml:11: PII column 'incom' of source 'people' is not one of its "
                                              r"columns; did you mean 'income'\?"):
        load_project(root, "local")


def test_governance_conf_mistakes_are_config_errors_with_file_line(example_project: Path) -> None:
    conf = example_project / "conf" / "dev.yaml"
    _replace(conf, "  lf_tags: [domain, pii]", "  lf_tags: [domain]\n  consumer: []")
    _replace(conf, "tag_expression: {domain: [cards, customer], pii: [false]}", "tag_expression: {domain: [cards, custmer]}")
    _replace(conf, "principal: arn:aws:iam::111122223333:role/fraud-ds\n      description: Fraud data science, customer PII",
             "principal: fraud-ds\n      description: Fraud data science, customer PII")
    with pytest.raises(ConfigError) as error:
        load_project(example_project, "dev")
    at = lambda needle: f"conf/dev.yaml:{_line_of(conf, needle)}"  # noqa: E731
    assert str(error.value).splitlines() == [
        f"{at('lf_tags: [domain]')}: governance.lf_tags must include pii when lake_formation is on, or PII columns are "
        "not protected; add pii to lf_tags",
        f"{at('consumer: []')}: unknown governance key 'consumer'; did you mean 'consumers'?",
        f"{at('domain: [cards, fraud, customer], pii: [false]')}: consumer {FRAUD_DS} grants by tag 'pii', which is not "
        "an LF-tag (LF-tags: domain)",
        f"{at('principal: fraud-ds')}: consumer principal 'fraud-ds' is not an IAM role or user ARN "
        "(arn:aws:iam::<account>:role/<name>) nor a 12-digit account id; fix it",
        f"{at('domain: [customer], pii: [true]')}: consumer fraud-ds grants by tag 'pii', which is not an LF-tag (LF-tags: domain)",
        f"{at('custmer')}: consumer {MARKETING} allows domain=custmer, which governance.tags does not list; "
        "did you mean 'customer'?",
    ]


# --- featurebank grants against moto -------------------------------------------------------------


def test_grants_registers_tables_tags_columns_and_grants_and_a_second_run_changes_nothing(aws, example_project, capsys):
    code, out, err = _cli(capsys, "grants", "--env", "dev", "--project", str(example_project))
    assert (code, err) == (0, "")
    assert "create     glue table features_dev.customer_profile" in out
    assert f"grant      select to {FRAUD_DS} on tables where {{domain: [customer], pii: [true]}}" in out

    project = load_project(example_project, "dev")
    expected = expected_column_tags(example_project)
    glue = boto3.client("glue", region_name=REGION)
    tables = {t["Name"]: t for t in glue.get_tables(DatabaseName=DATABASE)["TableList"]}
    assert set(tables) == set(project.groups)
    for name, table in tables.items():
        columns = [c["Name"] for c in table["StorageDescriptor"]["Columns"]] + [c["Name"] for c in table["PartitionKeys"]]
        assert sorted(columns) == sorted(expected[name])
        assert table["StorageDescriptor"]["Location"] == project.table_path(name)
        assert table["PartitionKeys"] == [{"Name": "feature_date", "Type": "date"}]
        assert live_column_tags(name, list(expected[name])) == expected[name]
        table_tags = _lf().get_resource_lf_tags(Resource={"Table": {"DatabaseName": DATABASE, "Name": name}})["LFTagsOnTable"]
        assert {t["TagKey"]: t["TagValues"] for t in table_tags} == {"domain": [expected[name]["feature_ts"]["domain"]],
                                                                     "pii": ["true"]}
    assert {t["TagKey"]: sorted(t["TagValues"]) for t in _lf().list_lf_tags()["LFTags"]} == {
        "domain": ["cards", "customer", "fraud"], "pii": ["false", "true"]}
    assert live_grants() == {
        grant(FRAUD_DS, domain=["cards", "fraud", "customer"], pii=["false"]),
        grant(FRAUD_DS, domain=["customer"], pii=["true"]),
        grant(MARKETING, domain=["cards", "customer"], pii=["false"]),
    }

    code, out, _ = _cli(capsys, "grants", "--env", "dev", "--project", str(example_project))
    lines = out.strip().splitlines()
    assert code == 0 and all(line.startswith("unchanged") for line in lines[:-1]), out
    assert lines[-1] == f"nothing to change ({len(lines) - 1} unchanged)"


def test_grants_tags_a_table_registered_before_and_never_tagged(aws, example_project, capsys):
    from featurebank.governance.lakeformation import table_input

    glue = boto3.client("glue", region_name=REGION)
    glue.create_database(DatabaseInput={"Name": DATABASE})
    glue.create_table(DatabaseName=DATABASE, TableInput=table_input(effective_tags(load_project(example_project, "dev"))["customer_profile"]))
    code, out, err = _cli(capsys, "grants", "--env", "dev", "--project", str(example_project))
    assert (code, err) == (0, "")
    assert f"unchanged  glue table {DATABASE}.customer_profile" in out
    assert f"create     lf-tags table {DATABASE}.customer_profile [domain=customer, pii=true]" in out
    expected = expected_column_tags(example_project)["customer_profile"]
    assert live_column_tags("customer_profile", list(expected)) == expected


def test_dropping_a_consumers_pii_grant_revokes_exactly_that_grant(aws, example_project, capsys):
    assert _cli(capsys, "grants", "--env", "dev", "--project", str(example_project))[0] == 0
    project = load_project(example_project, "dev")
    before_tags = {g: live_column_tags(g, [c for c, _ in t.columns]) for g, t in effective_tags(project).items()}
    before_grants = live_grants()

    def drop_pii_grant(data: dict) -> None:
        data["governance"]["consumers"] = [c for c in data["governance"]["consumers"]
                                           if not (c["principal"] == FRAUD_DS and c["tag_expression"]["pii"] == [True])]

    _edit_yaml(example_project / "conf" / "dev.yaml", drop_pii_grant)
    code, out, _ = _cli(capsys, "grants", "--env", "dev", "--project", str(example_project))
    changed = [line for line in out.splitlines() if not line.startswith(("unchanged", "done"))]
    assert code == 0
    assert changed == [f"revoke     select to {FRAUD_DS} on tables where {{domain: [customer], pii: [true]}}",
                       f"0 to create, 0 to update, 1 to revoke, {len(out.splitlines()) - 3} unchanged"]
    assert live_grants() == before_grants - {grant(FRAUD_DS, domain=["customer"], pii=["true"])}
    assert {g: live_column_tags(g, [c for c, _ in t.columns]) for g, t in effective_tags(project).items()} == before_tags


def test_grants_dry_run_prints_the_calls_and_changes_nothing(aws, example_project, capsys):
    code, out, _ = _cli(capsys, "grants", "--env", "dev", "--project", str(example_project), "--dry-run")
    assert code == 0 and "would call lakeformation.GrantPermissions" in out and out.strip().endswith("(dry run: nothing was changed)")
    assert _lf().list_lf_tags()["LFTags"] == [] and live_grants() == set()
    assert boto3.client("glue", region_name=REGION).get_databases()["DatabaseList"] == []


def test_a_declassified_income_band_is_tagged_not_pii_and_readable_without_a_pii_grant(aws, example_project, capsys):
    profile = example_project / "features" / "customers" / "profile.yaml"
    _replace(profile, "description: Monthly income band}",
             'description: Monthly income band, declassified: "banded into 3 coarse bands; income not recoverable"}')
    assert _cli(capsys, "grants", "--env", "dev", "--project", str(example_project))[0] == 0
    assert live_column_tags("customer_profile", ["income_band"]) == {"income_band": {"domain": "customer", "pii": "false"}}
    project = load_project(example_project, "dev")
    assert check_access(project, [("customer_profile", "income_band")], MARKETING) == MARKETING


def test_grants_where_lake_formation_is_off_is_a_usage_error(example_project, capsys):
    code, _, err = _cli(capsys, "grants", "--env", "local", "--project", str(example_project))
    assert code == 2 and "does not turn on governance.lake_formation" in err


# --- training-set --as ----------------------------------------------------------------------------


def test_training_set_as_a_consumer_without_the_pii_grant_is_refused_with_exit_2_and_nothing_written(example_project, tmp_path, capsys):
    spine = tmp_path / "spine.parquet"
    pd.DataFrame({"customer_id": ["c1"], "merchant_id": ["m1"], "account_id": ["a1"],
                  "ts": pd.to_datetime(["2024-03-01 10:00"])}).to_parquet(spine)
    out = tmp_path / "training"
    code, stdout, err = _cli(capsys, "training-set", "card_fraud_v1", "--spine", str(spine), "--out", str(out),
                             "--env", "dev", "--project", str(example_project), "--as", MARKETING)
    assert code == 2 and not out.exists()
    assert (f"principal {MARKETING} may not read customer_profile.income_band (domain=customer, pii=true): "
            "its grant allows pii in [false]") in err
    assert f"principal {MARKETING} may not read merchant_risk.decline_rate_30d (domain=fraud, pii=false)" in err
    assert "ask the data owner for a grant (governance.consumers in conf/dev.yaml) or drop the feature" in err


def test_access_check_uses_the_configured_identity_and_names_every_refused_column(example_project):
    project = load_project(example_project, "dev")
    features = [("customer_profile", "income_band"), ("customer_card_spend", "spend_sum_7d")]
    assert check_access(project, features, None) == FRAUD_DS  # governance.identity holds both grants
    with pytest.raises(AccessDenied) as error:
        check_access(project, features, "arn:aws:iam::999999999999:role/stranger")
    assert str(error.value).splitlines()[0] == (
        "principal arn:aws:iam::999999999999:role/stranger may not read customer_profile.income_band "
        "(domain=customer, pii=true): it has no grant in conf/dev.yaml governance.consumers")
    assert check_access(load_project(example_project, "local"), features, None) is None  # no governance: no check
    with pytest.raises(UsageError, match="configures no governance.consumers"):
        check_access(load_project(example_project, "local"), features, MARKETING)


# --- who ran it -------------------------------------------------------------------------------------


def test_run_user_is_the_aws_caller_identity_when_the_feature_root_is_on_s3(aws, monkeypatch):
    import getpass

    from featurebank.io.runlog import current_user

    monkeypatch.delenv("FEATUREBANK_USER", raising=False)
    caller = boto3.client("sts", region_name=REGION).get_caller_identity()["Arn"]
    assert current_user("local", "s3://acme-featurebank-dev-123456789012/feature-layer") == caller
    assert current_user("local", "/tmp/warehouse/features") == getpass.getuser()


def test_preview_checks_access_like_a_training_set_before_anything_is_read(example_project, capsys):
    # marketing may not read customer_profile's PII features (income_band): refused, exit 2, no Spark
    code, out, err = _cli(capsys, "preview", "customer_profile", "--date", "2024-03-01", "--as", MARKETING,
                          "--project", str(example_project), "--env", "dev")
    assert (code, out) == (2, "")
    assert f"principal {MARKETING} may not read customer_profile.income_band (domain=customer, pii=true)" in err
