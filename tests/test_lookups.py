"""Look-ups start no JVM (issue 18): `list`, `describe`, `history` and `docs` read the Delta logs,
the run log and the profiles stored at publish time directly, and import neither pyspark nor
great_expectations; where Lake Formation governs the tables they read the run log through Spark
and print the same. `--json` output is one JSON document on stdout.

The fast tests need no Spark. The tests on `published` (published_project.py) share the
session's published project with test_docs_site.py: Spark publishes it once, then each command
runs in a subprocess of its own, so its `sys.modules` is its own.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from featurebank.catalog.profile import NO_ROWS, NOT_CURRENT, NOT_RECORDED, group_profile, latest_rows_date
from featurebank.cli import main
from featurebank.engine.profile import FORMAT_VERSION, FeatureProfile, GroupProfile, profile_from_json, profile_json
from featurebank.errors import UsageError
from featurebank.gate import profile_location
from featurebank.gate.report import stored_profile
from featurebank.io.files import write_text
from featurebank.io.runlog import RunRecord
from published_project import NOW, RUN_DATES, published  # noqa: F401 - the session's published project

HEAVY = ("pyspark", "great_expectations", "py4j")
GROUP = "customer_card_spend"
LAKE_FORMATION_CONF = """
governance:
  tags: {domain: [cards, fraud, customer], pii: [true, false]}
  lake_formation: true
  lf_tags: [domain, pii]
"""


def _run(day: date, status: str = "published", *, hours: int = 0, rows: int = 10, by_date: dict[str, int] | None = None,
         end: date | None = None) -> RunRecord:
    started = datetime(2024, 3, 21, tzinfo=timezone.utc) + timedelta(hours=hours)
    return RunRecord(f"run-{hours:02d}", GROUP, "local", day, end or day, status, started,  # type: ignore[arg-type]
                     started + timedelta(seconds=5), rows, 0 if status == "published" else None, "h", "", "me",
                     rows_by_date="" if by_date is None else json.dumps(by_date))


def _profile(day: date = date(2024, 3, 20)) -> GroupProfile:
    spend = FeatureProfile("spend_sum_7d", "double", 3, 1, 0, 1.5, 2.25, 3.0, (1.5, 1.5, 3.0), None,
                           ((1.5, 2.25, 1), (2.25, 3.0, 1)))
    channel = FeatureProfile("last_channel_30d", "string", 3, 0, distinct=2, top_values=(("web", 2), ("pos", 1)))
    when = FeatureProfile("first_seen", "date", 3, 0, minimum="2024-01-01", maximum="2024-03-01", distinct=3)
    return GroupProfile(GROUP, day, 3, {p.feature: p for p in (spend, channel, when)}, 4, "run-01", "abc")


# --- the stored profile: format and choice --------------------------------------------------

def test_a_stored_profile_reads_back_as_it_was_written() -> None:
    text = profile_json(_profile())
    document = json.loads(text)
    assert document["format"] == "featurebank.profile" and document["version"] == FORMAT_VERSION == 1
    assert document["feature_date"] == "2024-03-20" and document["delta_version"] == 4
    assert profile_from_json(text) == _profile()


def test_a_non_finite_statistic_is_stored_as_null_so_the_document_stays_json() -> None:
    odd = replace(_profile(), features={"x": FeatureProfile("x", "double", 2, 0, 2, float("nan"), float("inf"))})
    document = json.loads(profile_json(odd))  # strict JSON: no NaN token
    assert document["features"]["x"]["minimum"] is None and document["features"]["x"]["mean"] is None


def test_a_profile_of_a_newer_format_or_another_kind_is_refused() -> None:
    document = json.loads(profile_json(_profile()))
    with pytest.raises(ValueError, match="newer than this featurebank reads"):
        profile_from_json(json.dumps(document | {"version": FORMAT_VERSION + 1}))
    with pytest.raises(ValueError, match="not a featurebank profile"):
        profile_from_json(json.dumps({"checks": []}))
    with pytest.raises(ValueError, match="missing or malformed"):
        profile_from_json(json.dumps(document | {"features": {"x": {"type": "double"}}}))


def test_the_profile_shown_is_of_the_newest_date_whose_latest_publish_wrote_rows() -> None:
    first = _run(date(2024, 3, 18), end=date(2024, 3, 20), hours=1,
                 by_date={"2024-03-18": 5, "2024-03-19": 4, "2024-03-20": 3})
    emptied = _run(date(2024, 3, 20), hours=2, rows=0, by_date={})  # a rerun that left 03-20 without rows
    refused = _run(date(2024, 3, 21), "gate_failed", hours=3)
    assert latest_rows_date([first]) == date(2024, 3, 20)
    assert latest_rows_date([refused, emptied, first]) == date(2024, 3, 19)
    assert latest_rows_date([refused]) is None
    older = _run(date(2024, 3, 10), end=date(2024, 3, 12), rows=7)  # logged before rows per date were recorded
    assert latest_rows_date([older]) == date(2024, 3, 12)


def test_a_group_published_before_profiles_says_so_and_a_stored_one_is_shown(tmp_path: Path) -> None:
    root = str(tmp_path / "features")
    runs = [_run(date(2024, 3, 20), hours=1, by_date={"2024-03-20": 3})]  # run-01, the profile's run
    assert group_profile(root, GROUP, []) == (None, NO_ROWS)
    assert group_profile(root, GROUP, runs) == (None, NOT_RECORDED)
    location = profile_location(root, GROUP, date(2024, 3, 20))
    assert location == f"{root}/_reports/{GROUP}/profiles/2024-03-20.json"
    write_text(location, profile_json(_profile()))
    assert group_profile(root, GROUP, runs) == (_profile(), "")
    # republished by run-02, which stored no profile (killed after its commit): run-01's is of replaced rows
    assert group_profile(root, GROUP, [_run(date(2024, 3, 20), hours=2, by_date={"2024-03-20": 4}), *runs]) \
        == (None, NOT_CURRENT)
    write_text(location, "{not json")
    profile, note = group_profile(root, GROUP, runs)
    assert profile is None and location in note and "cannot be read" in note
    assert stored_profile(root, GROUP, date(2024, 3, 19)) is None


# --- --json: one document on stdout ---------------------------------------------------------

@pytest.mark.parametrize("argv", [["list", "--json"], ["describe", GROUP, "--json"], ["history", GROUP, "--json"]])
def test_json_output_of_a_project_that_never_ran_is_one_document(example_project: Path, capsys, argv) -> None:  # noqa: ANN001
    assert main([*argv, "--project", str(example_project)]) == 0
    document = json.loads(capsys.readouterr().out)
    if argv[0] == "history":
        assert document == {"group": GROUP, "runs": []}
    elif argv[0] == "describe":
        assert document["name"] == GROUP and document["status"]["freshness"] == "never run"
        assert [f["name"] for f in document["features"]][:2] == ["spend_sum_7d", "spend_sum_30d"]
        assert document["recent_runs"] == [] and {c["result"] for c in document["checks"]} == {"not run yet"}


def test_history_json_of_an_unknown_group_is_still_a_usage_error(example_project: Path, capsys) -> None:  # noqa: ANN001
    assert main(["history", "no_such_group", "--json", "--project", str(example_project)]) == 2
    assert capsys.readouterr().out == ""


# --- Lake Formation keeps the Spark path -----------------------------------------------------

class SparkWanted(Exception):
    """Raised by a SparkSession provider that must not be called, or is expected to be."""


def _no_spark() -> object:
    raise SparkWanted("the catalog asked for Spark")


def test_the_catalog_reads_the_run_log_without_spark_unless_lake_formation_governs(example_project: Path) -> None:
    from featurebank.catalog.collect import collect_catalog
    from featurebank.definitions import load_project

    project = load_project(example_project, "local")
    catalog = collect_catalog(project, spark=_no_spark, profiles=True)  # asks for no SparkSession
    assert catalog.groups[GROUP].profile_note == NO_ROWS
    governed = replace(project, config=replace(project.config, governance=replace(
        project.config.governance, lake_formation=True)))
    with pytest.raises(SparkWanted):
        collect_catalog(governed, spark=_no_spark)
    with pytest.raises(UsageError, match="governed by Lake Formation"):
        from featurebank.io.runlog import read_runs_direct

        read_runs_direct(str(example_project / "warehouse" / "features"), lake_formation=True)


# --- on a published project: no JVM, same output ---------------------------------------------

PROBE = """
import json, sys
import featurebank.cli as cli
rc = cli.main(json.loads(sys.argv[1]))
heavy = sorted({m.split('.')[0] for m in sys.modules} & set(json.loads(sys.argv[2])))
print("LOADED " + json.dumps({"rc": rc, "heavy": heavy}), file=sys.stderr)
"""


def _cli_in_subprocess(argv: list[str]) -> tuple[int, str, list[str]]:
    """Run `featurebank argv` in a fresh interpreter: (exit code, stdout, heavy modules loaded)."""
    done = subprocess.run([sys.executable, "-c", PROBE, json.dumps(argv), json.dumps(HEAVY)],
                          capture_output=True, text=True, timeout=300)
    line = next((ln for ln in done.stderr.splitlines() if ln.startswith("LOADED ")), None)
    assert line is not None, done.stderr
    found = json.loads(line.removeprefix("LOADED "))
    return found["rc"], done.stdout, found["heavy"]


LOOKUPS = [["list"], ["list", "--json"], ["describe", GROUP], ["describe", GROUP, "--json"],
           ["history", GROUP], ["history", GROUP, "--json"]]


@pytest.mark.parametrize("argv", LOOKUPS, ids=" ".join)
def test_a_lookup_starts_no_jvm_and_prints_what_the_spark_path_prints(published, spark, argv, capsys) -> None:  # noqa: ANN001, F811
    """The oracle is the same command with Lake Formation on: the run log then comes through Spark."""
    root = Path(published.root)
    local = (root / "conf" / "local.yaml").read_text()
    assert "catalog: {type: none}" in local
    (root / "conf" / "lf.yaml").write_text(  # Lake Formation governs a Glue catalog's tables
        local.replace("catalog: {type: none}", "catalog: {type: glue, database: featurebank_test}") + LAKE_FORMATION_CONF)
    code, out, heavy = _cli_in_subprocess([*argv, "--project", str(root)])
    assert (code, heavy) == (0, [])
    if "--json" in argv:
        json.loads(out)  # stdout is exactly one JSON document
    assert main([*argv, "--project", str(root), "--env", "lf"]) == 0
    through_spark = capsys.readouterr().out
    if argv[0] == "list":  # the env's name is part of the list (header line, JSON field)
        through_spark = through_spark.replace("(lf)", "(local)").replace('"env": "lf"', '"env": "local"')
    assert out == through_spark
    if argv[0] == "history":
        assert "published" in out and str(RUN_DATES[1]) in out


def test_docs_starts_no_jvm_and_shows_the_profiles_stored_at_publish(published, tmp_path: Path) -> None:  # noqa: ANN001, F811
    out = tmp_path / "site"
    code, stdout, heavy = _cli_in_subprocess(["docs", "--project", str(published.root), "--out", str(out)])
    assert (code, heavy) == (0, [])
    assert stdout == f"catalog written: {(out / 'index.html').resolve()}\n"
    page = (out / "groups" / f"{GROUP}.html").read_text()
    assert f"profile of the latest published snapshot date of {RUN_DATES[1]}" in page
    assert "<svg class='histo'" in page and NOT_RECORDED not in page


def test_every_published_date_has_a_stored_profile_of_its_own_rows(published) -> None:  # noqa: ANN001, F811
    from featurebank.io import metadata

    feature_root = published.config.feature_root
    rows = metadata.read_rows(published.table_path(GROUP), ["feature_date"]).to_pylist()
    for offset in range((RUN_DATES[1] - RUN_DATES[0]).days + 1):
        day = RUN_DATES[0] + timedelta(days=offset)
        profile = stored_profile(feature_root, GROUP, day)
        assert profile is not None and profile.feature_date == day
        assert profile.rows == sum(1 for r in rows if r["feature_date"] == day) > 0
        assert profile.data_hash is not None and profile.run_id


def test_a_date_published_before_profiles_reads_as_not_recorded_on_the_page(published, tmp_path: Path) -> None:  # noqa: ANN001, F811
    import shutil

    from featurebank.catalog.collect import collect_catalog
    from featurebank.catalog.site import build_site
    from featurebank.definitions import load_project

    root = tmp_path / "project"
    shutil.copytree(published.root, root)
    shutil.rmtree(root / "warehouse" / "features" / "_reports" / "merchant_risk" / "profiles")
    project = load_project(root, "local")
    entry = collect_catalog(project, spark=_no_spark, now=NOW, profiles=True).groups["merchant_risk"]
    assert (entry.profile, entry.profile_note) == (None, NOT_RECORDED)
    build_site(project, tmp_path / "site", spark=_no_spark, now=NOW)
    assert NOT_RECORDED in (tmp_path / "site" / "groups" / "merchant_risk.html").read_text()


def test_a_stored_profile_keeps_only_counts_of_personal_data(published, tmp_path: Path) -> None:  # noqa: ANN001, F811
    from featurebank.definitions import load_project
    from featurebank.io.runlog import read_run_log
    from featurebank.definitions.governance import pii_columns_of

    project = load_project(published.root, "local")
    group = "customer_profile"
    personal = pii_columns_of(project, group)
    assert personal, "the example catalog derives customer_profile features from income and birth_year"
    [run] = [r for r in read_run_log(published.config.feature_root, group, spark=None, lake_formation=False)
             if r.status == "published"][:1]
    profile = stored_profile(published.config.feature_root, group, run.end_date)
    assert profile is not None
    for name, feature in profile.features.items():
        values = (feature.minimum, feature.mean, feature.maximum, feature.quartiles, feature.histogram,
                  feature.top_values)
        if name in personal:
            assert feature.masked and values == (None, None, None, None, (), ()), name
            assert feature.rows == profile.rows
        else:
            assert not feature.masked and any(v not in (None, ()) for v in values), name
    out = tmp_path / "site"
    code, _, heavy = _cli_in_subprocess(["docs", "--project", str(published.root), "--out", str(out)])
    assert (code, heavy) == (0, [])
    assert "personal data: values not profiled" in (out / "groups" / f"{group}.html").read_text()
