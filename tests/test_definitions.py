"""Loading and validating definitions: the shipped catalog, the broken-definitions corpus, conf.

Every corpus case under tests/definitions_corpus/<case>/ is a project fragment laid over
`_base/` (a small valid project) plus `expected.txt`, the exact problems `featurebank validate`
must print, one per line; an optional `args` file adds CLI arguments.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from featurebank.cli import main
from featurebank.definitions import load_project
from featurebank.definitions.expressions import infer_type, referenced_columns
from featurebank.errors import ConfigError, DefinitionError

REPO = Path(__file__).resolve().parent.parent
CORPUS = Path(__file__).resolve().parent / "definitions_corpus"
CASES = sorted(p.name for p in CORPUS.iterdir() if p.is_dir() and not p.name.startswith("_"))


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def corpus_project(case: str, tmp_path: Path) -> Path:
    root = tmp_path / "project"
    shutil.copytree(CORPUS / "_base", root)
    for path in (CORPUS / case).rglob("*"):
        if path.is_file() and path.name not in ("args", "expected.txt"):
            target = root / path.relative_to(CORPUS / case)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, target)
    return root


def write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_corpus_has_at_least_forty_cases() -> None:
    assert len(CASES) >= 40


def test_corpus_base_project_is_valid(tmp_path: Path) -> None:
    root = tmp_path / "project"
    shutil.copytree(CORPUS / "_base", root)
    project = load_project(root, "local")
    assert set(project.sources) == {"txns", "customers"}


@pytest.mark.parametrize("case", CASES)
def test_broken_definition_is_reported_at_its_line_with_a_fix(case: str, tmp_path: Path) -> None:
    root = corpus_project(case, tmp_path)
    extra = (CORPUS / case / "args").read_text().split() if (CORPUS / case / "args").exists() else []
    code, out, err = run_cli("validate", "--project", str(root), "--env", "local", *extra)
    expected = (CORPUS / case / "expected.txt").read_text().splitlines()
    assert code == 2
    assert out == ""
    assert "Traceback" not in err
    assert err.startswith("error:")
    assert err[len("error:"):].strip("\n ").splitlines() == expected
    for line in expected:  # file:line (or a conf file for a missing environment), then a message with a fix
        where, _, message = line.partition(": ")
        assert where.startswith(("features/", "conf/")), line
        assert ";" in message or "did you mean" in message, f"no fix hint in: {line}"


def test_shipped_catalog_validates_quickly_without_spark() -> None:
    started = time.perf_counter()
    code, out, err = run_cli("validate", "--project", str(REPO), "--env", "local")
    assert (code, err) == (0, "")
    assert out.startswith("ok: 3 entities, 3 sources, 5 feature groups, 1 training set")
    assert time.perf_counter() - started < 2.0


def test_validate_in_a_fresh_process_imports_neither_spark_nor_gx() -> None:
    script = (
        "import sys; from featurebank.cli import main; code = main(['validate', '--project', sys.argv[1]]);"
        "print(code, 'pyspark' in sys.modules, 'great_expectations' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", script, str(REPO)], capture_output=True, text=True, timeout=60,
                            env={"PATH": "/usr/bin:/bin", "FEATUREBANK_ENV": "local"})
    assert result.stdout.strip().splitlines()[-1] == "0 False False", result.stderr


def test_every_problem_in_every_file_is_reported_sorted(tmp_path: Path) -> None:
    root = corpus_project("every_error_in_every_file", tmp_path)
    with pytest.raises(DefinitionError) as raised:
        load_project(root, "local")
    problems = raised.value.problems
    assert [(p.file, p.line) for p in problems] == sorted((p.file, p.line) for p in problems)
    assert {p.file for p in problems} == {"features/a.yaml", "features/b.yaml"}
    assert len(problems) == 4


def test_variables_resolve_and_relative_paths_are_against_the_project_root(tmp_path: Path) -> None:
    root = tmp_path / "project"
    shutil.copytree(CORPUS / "_base", root)
    write(root, "features/more.yaml", (
        "kind: source\nname: remote\nformat: delta\npath: s3a://${env:FB_TEST_BUCKET}/events\ntimestamp: ts\n"
        "---\nkind: source\nname: landed\nformat: table\ntable: ${env:FB_TEST_DB}.landed\n"
    ))
    project = load_project(root, "local", environ={"FB_TEST_BUCKET": "bank-raw", "FB_TEST_DB": "raw_db"})
    assert project.sources["txns"].location == str(root.resolve() / "raw" / "txns")
    assert project.sources["remote"].location == "s3a://bank-raw/events"
    assert project.sources["landed"].location == "raw_db.landed"
    assert project.sources["landed"].format == "table"
    assert project.config.feature_root == str(root.resolve() / "warehouse" / "features")
    assert project.table_path("spend") == str(root.resolve() / "warehouse" / "features" / "spend")


def test_env_defaults_to_featurebank_env_then_local(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "project"
    shutil.copytree(CORPUS / "_base", root)
    write(root, "conf/qa.yaml", "feature_root: s3://qa-bucket/features\nvariables: {raw_root: s3://qa-raw}\ntimezone: Europe/London\n"
                                "catalog: {type: glue, database: features_qa}\nspark: {conf: {spark.sql.shuffle.partitions: 4}}\n")
    monkeypatch.delenv("FEATUREBANK_ENV", raising=False)
    assert load_project(root).config.env == "local"
    monkeypatch.setenv("FEATUREBANK_ENV", "qa")
    config = load_project(root).config
    assert (config.env, config.feature_root, config.timezone) == ("qa", "s3://qa-bucket/features", "Europe/London")
    assert (config.catalog_type, config.catalog_database) == ("glue", "features_qa")
    assert dict(config.spark.conf) == {"spark.sql.shuffle.partitions": "4"}
    assert load_project(root).sources["txns"].location == "s3://qa-raw/txns"


def test_missing_conf_lists_the_environments_that_exist(tmp_path: Path) -> None:
    root = tmp_path / "project"
    shutil.copytree(CORPUS / "_base", root)
    write(root, "conf/prod.yaml", "feature_root: s3://b/f\n")
    with pytest.raises(ConfigError) as raised:
        load_project(root, "prd")
    message = str(raised.value)
    assert message.startswith("conf/prd.yaml: ")
    assert "did you mean 'prod'?" in message and "local, prod" in message


def test_conf_is_read_once_into_typed_sections() -> None:
    config = load_project(REPO, "prod").config
    assert config.aws is not None and config.aws.glue is not None
    assert (config.aws.region, config.aws.artifacts.uri("x.whl")) == ("eu-west-1", "s3://acme-featurebank-prod-123456789012/artifacts/x.whl")
    assert (config.aws.glue.worker_type, config.aws.glue.number_of_workers, config.aws.glue.max_retries) == ("G.2X", 10, 1)
    assert config.aws.require_schedule().cron == "cron(0 2 * * ? *)" and config.aws.require_schedule().timezone == "UTC"
    assert dict(config.aws.tags) == {"cost-center": "data-platform", "environment": "prod"}
    assert config.governance.lake_formation and config.governance.lf_tags == ("domain", "pii")
    assert [c.principal for c in config.governance.grants_of("arn:aws:iam::444455556666:role/marketing-analytics")] == [
        "arn:aws:iam::444455556666:role/marketing-analytics"]
    assert dict(config.spark.conf) == {"spark.sql.shuffle.partitions": "200"}


def test_an_environment_without_aws_loads_and_refuses_to_deploy_with_a_sentence() -> None:
    config = load_project(REPO, "local").config
    assert config.aws is None and not config.governance.consumers
    with pytest.raises(ConfigError, match=r"^conf/local\.yaml: no `aws:` section; add aws\.region and aws\.artifacts"):
        config.require_aws()


def test_a_missing_aws_key_is_reported_at_its_section_and_a_schedule_defaults_to_the_conf_time_zone(tmp_path: Path) -> None:
    root = tmp_path / "project"
    shutil.copytree(CORPUS / "_base", root)
    write(root, "conf/local.yaml", (CORPUS / "_base" / "conf" / "local.yaml").read_text().replace("timezone: UTC", "timezone: Europe/London")
          + "aws:\n  region: eu-west-1\n  artifacts: s3://bkt/a\n  schedule:\n    state_machine_role_arn: arn:aws:iam::123456789012:role/s\n")
    with pytest.raises(ConfigError) as raised:
        load_project(root, "local")
    assert str(raised.value) == "conf/local.yaml:8: aws.schedule.cron: is missing; add it"
    write(root, "conf/local.yaml", (root / "conf" / "local.yaml").read_text() + "    cron: 0 2 * * ? *\n")
    schedule = load_project(root, "local").config.require_aws().require_schedule()
    assert (schedule.cron, schedule.timezone, schedule.scheduler_role_arn) == (
        "cron(0 2 * * ? *)", "Europe/London", "arn:aws:iam::123456789012:role/s")
    with pytest.raises(ConfigError, match=r"aws\.glue is missing; add aws\.glue\.role_arn"):
        load_project(root, "local").config.require_aws().require_glue()


def test_governance_conf_reads_the_environment_passed_in_not_the_process_environment(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from featurebank.governance import access_principal

    root = tmp_path / "project"
    shutil.copytree(CORPUS / "_base", root)
    write(root, "conf/local.yaml", (CORPUS / "_base" / "conf" / "local.yaml").read_text().replace(
        "catalog: {type: none}", "catalog: {type: glue, database: features}")
          + "governance:\n  tags: {pii: [true, false]}\n  lake_formation: true\n  identity: ${env:FB_TEST_IDENTITY}\n")
    monkeypatch.delenv("FB_TEST_IDENTITY", raising=False)
    identity = "arn:aws:iam::999988887777:role/conf-test-identity"  # read from the environment: masked process-wide from now on
    project = load_project(root, "local", environ={"FB_TEST_IDENTITY": identity})
    assert project.config.governance.identity == identity
    assert access_principal(project, None) == identity  # once read a second time, from os.environ (where it is unset)
    with pytest.raises(ConfigError, match="environment variable FB_TEST_IDENTITY is not set"):
        load_project(root, "local", environ={})


def test_a_group_may_read_another_groups_table(tmp_path: Path) -> None:
    root = tmp_path / "project"
    shutil.copytree(CORPUS / "_base", root)
    write(root, "features/g.yaml", (
        "kind: feature_group\nname: spend\nentity: customer\nsource: txns\n"
        "aggregations:\n  - {name: spend_sum, expr: amount, function: sum, windows: [7d]}\n"
        "---\nkind: source\nname: spend_snapshots\ngroup: spend\ntimestamp: feature_ts\n"
        "---\nkind: feature_group\nname: spend_trend\nentity: customer\nsource: spend_snapshots\n"
        "aggregations:\n  - {name: peak, expr: spend_sum_7d, function: max, windows: [30d]}\n"
    ))
    project = load_project(root, "local")
    source = project.sources["spend_snapshots"]
    assert (source.format, source.group, source.location) == ("delta", "spend", project.table_path("spend"))


def test_expressions_are_read_from_the_parse_tree() -> None:
    assert referenced_columns("case when status = 'x' then amount else amount_fee end") == ("status", "amount", "amount_fee")
    assert referenced_columns("'amount' || upper(segment)") == ("segment",)
    assert infer_type("datediff(updated_at, opened_at)", {"updated_at": "timestamp", "opened_at": "timestamp"}) == "int"
    assert infer_type("amount * 2", {"amount": "double"}) == "double"
    assert infer_type("amount * 2", {}) == "?"


def test_expectation_catalogue_matches_installed_great_expectations() -> None:
    from featurebank.definitions import expectations

    assert expectations.main(["--check"]) == 0, "run python -m featurebank.definitions.expectations"
    assert "expect_column_values_to_be_between" in expectations.catalogue()
    assert "min_value" in expectations.catalogue()["expect_column_values_to_be_between"].arguments


def test_spark_function_catalogue_matches_the_pinned_spark(spark) -> None:  # type: ignore[no-untyped-def]
    from featurebank.definitions import spark_functions

    stored = json.loads(spark_functions.CATALOGUE.read_text())
    current = spark_functions.generate(spark)
    if current["spark"].split(".")[:2] != stored["spark"].split(".")[:2]:
        # the Spark 4.1 lane (issue 24): the catalogue stays the 3.5 lane's, so validate accepts only
        # functions both lanes run (4.1's 89 new ones, try_mod among them, are refused as unknown)
        assert set(stored["functions"]) - set(current["functions"]) == set(), "a 3.5 function is gone in Spark 4"
        return
    assert current["spark"] == stored["spark"]
    missing, extra = set(current["functions"]) - set(stored["functions"]), set(stored["functions"]) - set(current["functions"])
    assert (missing, extra) == (set(), set()), "rewrite it: spark_functions.write_catalogue(spark)"


# --- messages that help (issue 18) -----------------------------------------------------------

@pytest.mark.parametrize("written, hint", [
    (30, "'30d'"), ("30 days", "'30d'"), ("30days", "'30d'"), ("1 day", "'1d'"), ("2w", "'14d'"),
    ("2 weeks", "'14d'"), ("48h", "'2d'"), ("3 months", "'90d' (3 months of 30 days)"), ("1y", "'365d'"),
    ("a week", "'7d'"), (True, "'7d'"), (7.5, "'7d'"),
])
def test_the_window_hint_writes_the_user_s_own_number_as_days(written: object, hint: str) -> None:
    from featurebank.definitions.build import as_days

    assert as_days(written) == hint


def test_yaml_merge_keys_share_a_block_and_keys_written_in_place_win(tmp_path: Path) -> None:
    root = corpus_project("window_in_weeks", tmp_path)  # replaced below: any case's layout will do
    write(root, "features/case.yaml", (
        "kind: feature_group\nname: spend\nentity: customer\nsource: txns\naggregations:\n"
        "  - &sum {name: spend_sum, expr: amount, function: sum, windows: [7d, 30d]}\n"
        "  - <<: *sum\n    name: spend_max\n    function: max\n"
        "  - {<<: [*sum], name: spend_min, function: min, windows: [90d]}\n"
    ))
    group = load_project(root, "local").groups["spend"]
    assert [(a.name, a.function, a.expr, a.windows) for a in group.aggregations] == [
        ("spend_sum", "sum", "amount", (7, 30)), ("spend_max", "max", "amount", (7, 30)),
        ("spend_min", "min", "amount", (90,))]

    # a problem in a merged value points at the line it was written on (the anchored block)
    text = (root / "features/case.yaml").read_text().replace("windows: [7d, 30d]", "windows: [7d, 30 days]")
    write(root, "features/case.yaml", text)
    with pytest.raises(DefinitionError) as raised:
        load_project(root, "local")
    assert {(p.line, p.message) for p in raised.value.problems} == {
        (6, "window '30 days' is not a whole number of days; write it as '30d'")}
