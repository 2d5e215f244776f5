"""The report in a real browser (Debian's Chromium): both languages, no console errors, no
requests leaving the page, and the numbers on the page equal those in scores.parquet."""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import pytest

from churnml.config import Config
from churnml.reports.messages import money
from churnml.reports.site import build_report, safe_name
from churnml.scoring.plays import load_library
from churnml.scoring.score import score

if TYPE_CHECKING:
    from playwright.sync_api import Page

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(), reason="needs Debian's chromium (.ci/run installs it)"
    ),
]


@pytest.fixture(scope="module")
def scored(small_world: Path, trained_config: Config,
           tmp_path_factory: pytest.TempPathFactory) -> Path:  # fmt: skip
    out = tmp_path_factory.mktemp("browser") / "scores"
    score(trained_config, data_dir=small_world, as_of=dt.date(2024, 9, 1), out=out)
    return out


@pytest.mark.parametrize("lang", ["en", "ja"])
def test_report_renders_offline_without_errors(scored: Path, small_world: Path, tmp_path: Path,
                                               lang: str) -> None:  # fmt: skip
    from playwright.sync_api import sync_playwright

    index = build_report(scored, tmp_path / "site", Config(), lang)  # type: ignore[arg-type]
    scores = pd.read_parquet(scored / "scores.parquet")
    top = scores.sort_values("arr_at_risk", ascending=False).iloc[0]
    pages = {
        "summary": index,
        "portfolio": index.parent / "csm" / safe_name(top.csm_owner),
        "account": index.parent / "account" / safe_name(top.account_id),
    }
    shots = Path(os.environ.get("CHURNML_SCREENSHOTS", tmp_path / "shots"))
    shots.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    outside: list[str] = []
    with sync_playwright() as p:
        flags = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update"]  # fmt: skip
        browser = p.chromium.launch(executable_path=CHROMIUM, args=flags)
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("request", lambda r: None if r.url.startswith("file://") else outside.append(r.url))
        texts = {}
        for name, path in pages.items():
            page.goto(path.resolve().as_uri())
            page.screenshot(path=str(shots / f"{lang}_{name}.png"), full_page=True)
            texts[name] = page
            if name == "summary":
                assert page.text_content('[data-metric="arr_at_risk"]') == money(
                    scores.arr_at_risk.sum(), lang, "USD"
                )
                assert page.text_content('[data-metric="accounts"]') == f"{len(scores):,}"
                assert (
                    page.text_content('[data-action="save"]')
                    == f"{(scores.next_best_action == 'save').sum():,}"
                )
                _act_today_lists_the_largest_stake(page, scores, lang)
                _the_forecast_gives_each_group_a_range(page, scores)
                _root_causes_and_stated_reasons_are_tables(page, index.parent, scored)
            if name == "portfolio":
                _sorting_by_a_column_header_orders_the_rows(page)
            if name == "account":
                shown = page.text_content('[data-metric="churn_probability"]')
                assert shown == f"{top.churn_probability * 100:.1f}%"
        browser.close()
    assert errors == []
    assert outside == []


def _the_forecast_gives_each_group_a_range(page: Page, scores: pd.DataFrame) -> None:
    """The forecast tables: the whole book, each segment (if several) and (folded) each CSM,
    every GRR and NRR a central value (the mean) and an ordered 80% range, the whole book's
    central value inside it (a small group's mean may not be: most often none of its few accounts
    churns); the headline GRR is the whole book's."""
    rows = page.locator("#forecast-book tr[data-level], #forecast-owners tr[data-level]")
    levels = [rows.nth(i).get_attribute("data-level") for i in range(rows.count())]
    assert levels.count("all") == 1
    segments = scores.segment.nunique()
    assert levels.count("segment") == (segments if segments > 1 else 0)
    assert levels.count("owner") == scores.csm_owner.fillna("").nunique()
    for i in range(rows.count()):
        for metric in ("grr", "nrr"):
            text = rows.nth(i).locator(f'[data-metric="{metric}"]').text_content()
            central, low, high = (float(v) for v in re.findall(r"(\d+\.\d)%", text))
            assert low <= high and (low <= central <= high or levels[i] != "all"), text
    whole = page.locator('#forecast-book tr[data-level="all"] [data-metric="grr"]').text_content()
    assert page.text_content('.kpi [data-metric="grr"]') == whole


def _root_causes_and_stated_reasons_are_tables(page: Page, site: Path, scored: Path) -> None:
    """The root causes show the groups of segments.csv with the most ARR at risk (up to 12),
    each flagged group also as a sentence; the stated reasons count each churn of the
    history once, as training recorded them."""
    from churnml.scoring.outputs import STATED, read_meta

    cells = pd.read_csv(site / "segments.csv")
    shown = page.locator("#root-causes tr").count() - 1  # the header row
    assert shown == min(12, len(cells)) > 0
    flags = page.locator("#root-cause-flags li.flag").count()
    assert flags == cells.flagged.astype(str).str.lower().eq("true").sum()
    stated = read_meta(scored / "scores.parquet", STATED) or {}
    counts = page.eval_on_selector_all("#stated-reasons td.num", "cs => cs.map(c => c.textContent)")
    assert sum(int(t.replace(",", "")) for t in counts) == sum(
        n for row in stated.values() for n in row.values())


def _act_today_lists_the_largest_stake(page: Page, scores: pd.DataFrame, lang: str) -> None:
    """The today list opens with the highest priority and holds the largest ARR at stake, each
    with its play."""
    library = load_library()
    stake = scores.arr_at_risk.fillna(0) + scores.expected_expansion_arr.fillna(0)
    first = scores.loc[scores.priority.idxmax()]
    largest = scores.loc[stake.idxmax()]
    script = "rs => rs.map(r => [r.dataset.account, r.querySelector('[data-play]').textContent])"
    listed = page.eval_on_selector_all("#today tr[data-account]", script)
    plays = {a: p for a, p in listed}
    assert listed[0][0] == first.account_id
    for row in (first, largest):
        words = getattr(library.play(row.play), lang)
        assert plays[row.account_id] == words.title


def _sorting_by_a_column_header_orders_the_rows(page: Page) -> None:
    """A click on 'ARR' sorts the portfolio by ARR, largest first; a second, smallest first."""
    def arr() -> list[float]:
        return page.eval_on_selector_all(
            "#accounts tbody tr", "rows => rows.map(r => parseFloat(r.children[2].dataset.sort))")

    header = page.locator("#accounts thead th").nth(2)
    header.click()
    assert arr() == sorted(arr(), reverse=True) and len(arr()) > 1
    header.click()
    assert arr() == sorted(arr())
    page.fill("input[data-filter]", "no account is called this")
    assert page.locator("#accounts tbody tr:visible").count() == 0


def test_the_monitoring_page_renders_offline_without_errors(
    scored: Path, small_world: Path, trained_config: Config, tmp_path: Path
) -> None:
    from playwright.sync_api import sync_playwright

    from churnml.monitoring.monitor import monitor, write_page

    result = monitor(trained_config, small_world, [scored])
    page_path = write_page(result, tmp_path)
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page()
        page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(page_path.resolve().as_uri())
        assert page.text_content('[data-metric="verdict"]') == result.verdict
        rows = page.locator("#features tbody tr").count()
        page.locator("#features thead th").nth(2).click()  # PSI, largest first
        shown = page.eval_on_selector_all(
            "#features tbody tr", "rs => rs.map(r => parseFloat(r.children[2].dataset.sort))")
        browser.close()
    assert rows == len(result.features) and shown == sorted(shown, reverse=True)
    assert errors == []


@pytest.mark.parametrize("lang", ["en", "ja"])
def test_the_fit_page_renders_offline_without_errors(
    small_world: Path, trained_config: Config, tmp_path: Path, lang: str
) -> None:
    """The Fit page of the data's signings in a real browser: every deal's probability as in
    deals.parquet, riskiest first, sortable, no errors and no requests leaving the page."""
    from playwright.sync_api import sync_playwright

    from churnml.reports.fit import write_fit
    from churnml.reports.messages import MESSAGES
    from churnml.scoring.deals import fit_model, score_deals, signed_since

    cfg = trained_config
    model = fit_model(cfg).model
    deals = score_deals(model, signed_since(small_world, cfg, dt.date(2024, 3, 1)))
    path = write_fit(deals, model, cfg, tmp_path / "fit", lang)  # type: ignore[arg-type]
    errors: list[str] = []
    outside: list[str] = []
    shots = Path(os.environ.get("CHURNML_SCREENSHOTS", tmp_path / "shots"))
    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("request", lambda r: None if r.url.startswith("file://") else outside.append(r.url))
        page.goto(path.resolve().as_uri())
        page.screenshot(path=str(shots / f"{lang}_fit.png"), full_page=True)
        listed = page.eval_on_selector_all(
            "#deals tbody tr", "rs => rs.map(r => [r.dataset.deal, "
            "r.querySelector('[data-metric=fit_probability]').textContent])")  # fmt: skip
        header = page.locator("#deals thead th", has_text=MESSAGES[lang]["fit_probability"])
        header.click()  # largest first, then
        header.click()  # smallest first
        resorted = page.eval_on_selector_all(
            "#deals tbody tr", "rs => rs.map(r => parseFloat(r.querySelector("
            "'[data-metric=fit_probability]').dataset.sort))")  # fmt: skip
        profiles = page.locator("#profiles_good tr, #profiles_poor tr").count()
        browser.close()
    assert [d for d, _ in listed] == deals.iloc[:, 0].astype(str).tolist()
    assert [s for _, s in listed] == [f"{p * 100:.1f}%" for p in deals.fit_probability]
    assert resorted == sorted(resorted)
    assert profiles > 0 and errors == [] and outside == []
