"""`featurebank docs` end to end: a tiny generated bank, real runs, the site opened in a real
headless Chromium (Debian's /usr/bin/chromium driven by Playwright; never a downloaded browser).

The site must open from the file system with no server and no network, search must filter
features, every internal link must resolve, and the profile must match a brute-force
computation of the same partition.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from urllib.parse import unquote, urldefrag, urljoin, urlparse

import duckdb
import pytest
from deltalake import DeltaTable

from featurebank.catalog.collect import collect_catalog
from featurebank.gate.report import stored_profile
from featurebank.io import metadata
from featurebank.catalog.site import build_site
from featurebank.compile.run import compile_plan
from featurebank.engine.profile import BINS
from published_project import NOW, RUN_DATES, published  # noqa: F401 - the session's published project

CHROMIUM = Path("/usr/bin/chromium")
BROWSER_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


@pytest.fixture(scope="module")
def built(published, tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN001, ANN201, F811
    """The published project (`published_project`) and its docs site, written without Spark."""
    project = published
    out = tmp_path_factory.mktemp("docs") / "site"
    index = build_site(project, out, now=NOW)
    shutil.copytree(out, ARTIFACTS / "docs-site", dirs_exist_ok=True)  # to open by hand after a run
    return project, out, index


def test_site_has_an_index_a_page_per_group_and_training_set_and_copied_reports(built) -> None:  # noqa: ANN001
    project, out, index = built
    assert index == (out / "index.html").resolve()
    assert {p.stem for p in (out / "groups").glob("*.html")} == set(project.groups)
    assert {p.stem for p in (out / "training_sets").glob("*.html")} == set(project.training_sets)
    reports = list((out / "reports").glob("*/*/report.html"))
    assert len(reports) == len(project.groups) + 1  # one run per group, two of customer_card_spend
    page = (out / "groups" / "customer_card_spend.html").read_text()
    for report in reports:
        if report.parent.parent.name == "customer_card_spend":
            assert f"../reports/customer_card_spend/{report.parent.name}/report.html" in page


def test_site_needs_no_network_every_asset_is_inline(built) -> None:  # noqa: ANN001
    _, out, _ = built
    for page in out.rglob("*.html"):
        text = page.read_text()
        assert "http://" not in text.replace("http://www.w3.org/2000/svg", ""), page
        assert "https://" not in text, page
        assert "<link" not in text and "src=" not in text, page


def test_group_page_shows_freshness_versions_and_the_last_checks(built, spark) -> None:  # noqa: ANN001
    project, out, _ = built
    catalog = collect_catalog(project, spark=lambda: spark, now=NOW)
    status = catalog.groups["customer_card_spend"].status
    assert status.last_published_date == RUN_DATES[1] and status.freshness == "2 days behind"
    assert [r.status for r in status.recent_runs] == ["published", "published"]
    assert status.delta_version == DeltaTable(project.table_path("customer_card_spend")).version()
    assert {c.expectation for c in status.last_checks} >= {"expect_column_values_to_be_between"}
    page = (out / "groups" / "customer_card_spend.html").read_text()
    assert "2 days behind" in page and "spend_sum_30d" in page and "<svg class='lineage'" in page
    assert "<svg class='chart'" in page and "<svg class='histo'" in page


def test_training_set_page_lists_its_manifest_with_pinned_versions(built) -> None:  # noqa: ANN001
    project, out, _ = built
    manifest = json.loads((project.root / "warehouse/training/card_fraud_v1/_manifest.json").read_text())
    page = (out / "training_sets" / "card_fraud_v1.html").read_text()
    assert manifest["created_at"] in page
    for group in manifest["groups"]:
        assert group["data_hash"] in page
    assert "data changed since" not in page


def test_profile_matches_a_brute_force_computation_of_the_latest_partition(built) -> None:  # noqa: ANN001
    project, _, _ = built
    plan = compile_plan(project, "customer_card_spend", RUN_DATES[1], RUN_DATES[1])
    profile = stored_profile(project.config.feature_root, plan.group, RUN_DATES[1])  # stored by the second run
    assert profile is not None and profile.feature_date == RUN_DATES[1]
    assert profile.version == DeltaTable(plan.table_path).version()
    rows = metadata.read_rows(plan.table_path)  # noqa: F841 - read by duckdb below
    where = f"feature_date = DATE '{RUN_DATES[1]}'"
    assert profile.rows == duckdb.sql(f"select count(*) from rows where {where}").fetchall()[0][0] > 0
    for name in ("spend_sum_30d", "txn_count_7d", "avg_ticket_7d", "spend_stddev_90d"):
        p = profile.features[name]
        nulls, low, mean, high = duckdb.sql(
            f"select count(*) - count({name}), min({name}), avg({name}), max({name}) from rows where {where}").fetchall()[0]
        assert p.nulls == nulls, name
        if low is None:
            assert p.minimum is None, name
            continue
        assert p.minimum == pytest.approx(low) and p.maximum == pytest.approx(high), name
        assert p.mean == pytest.approx(mean), name
        assert sum(n for _, _, n in p.histogram) == profile.rows - nulls, name
        width = (high - low) / BINS
        if width > 0:
            expected = duckdb.sql(
                f"select least(floor(({name} - {low}) / {width}), {BINS - 1})::int as b, count(*) from rows "
                f"where {where} and {name} is not null group by 1").fetchall()
            assert {b: n for b, n in expected} == {k: n for k, (_, _, n) in enumerate(p.histogram) if n}, name
    channel = profile.features["last_channel_30d"]
    expected_top = duckdb.sql(f"select last_channel_30d, count(*) from rows where {where} and last_channel_30d "
                              "is not null group by 1 order by 2 desc, 1").fetchall()
    assert list(channel.top_values) == [(v, n) for v, n in expected_top][: len(channel.top_values)]


def test_published_tables_carry_each_column_meaning_as_its_comment(built) -> None:  # noqa: ANN001
    from featurebank.io.table_metadata import column_comments

    project, _, _ = built
    for name in project.groups:
        plan = compile_plan(project, name, RUN_DATES[1], RUN_DATES[1])
        fields = DeltaTable(plan.table_path).schema().fields  # read by delta-rs, not by Spark
        assert {f.name: f.metadata.get("comment") for f in fields} == column_comments(plan), name


def _internal(href: str) -> bool:
    return not href.startswith(("http:", "https:", "mailto:", "javascript:"))


@pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is not installed (apt-get install -y chromium; "
                                                     ".ci/run installs it)")
def test_site_opens_in_a_real_browser_searches_and_every_link_resolves(built) -> None:  # noqa: ANN001
    from playwright.sync_api import sync_playwright

    _, out, index = built
    errors: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.on("console", lambda m: errors.append(f"{page.url}: {m.text}") if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(f"{page.url}: {e}"))
            page.goto(index.as_uri())
            assert errors == []
            total = page.locator("tr[data-search]").count()
            assert total > 30
            page.fill("#search", "merchants_30d")
            visible = page.locator("tr[data-search]:visible")
            assert visible.count() == 1 and "merchants_30d" in visible.first.inner_text()
            assert "1 of" in page.inner_text("#search-count")
            page.fill("#search", "chargeback")
            assert 1 <= page.locator("tr[data-search]:visible").count() < total
            page.fill("#search", "no-such-feature-anywhere")
            assert page.locator("tr[data-search]:visible").count() == 0 and page.is_visible("#search-empty")

            seen: set[str] = set()
            queue = [index.as_uri()]
            while queue:
                url = queue.pop()
                if url in seen:
                    continue
                seen.add(url)
                page.goto(url)
                # getAttribute: an SVG <a>'s .href is an SVGAnimatedString, not a URL
                hrefs = page.eval_on_selector_all("a[href]", "els => els.map(e => e.getAttribute('href'))")
                for href in (urljoin(url, h) for h in hrefs):
                    if not _internal(href):
                        continue
                    target, fragment = urldefrag(href)
                    path = Path(unquote(urlparse(target).path))
                    assert path.is_file(), f"{url} links to missing {href}"
                    if fragment:
                        assert f"id='{fragment}'" in path.read_text() or f'id="{fragment}"' in path.read_text(), href
                    if path.suffix == ".html" and target not in seen:
                        queue.append(target)
            assert len(seen) >= 1 + 5 + 1 + 6  # index, groups, training set, reports
            assert errors == [], errors

            page.goto((out / "groups" / "customer_card_spend.html").as_uri())
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "docs-group-customer_card_spend.png"), full_page=True)
            page.goto(index.as_uri())
            page.screenshot(path=str(ARTIFACTS / "docs-index.png"), full_page=True)
        finally:
            browser.close()
