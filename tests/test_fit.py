"""Fit at signing: labels from the first year only, a model that beats the base rate and the
segments' own rates on later signings, and deals scored with reasons that add up, safely."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score
from tests.helpers import accounts, day, subscription, tables

from churnml.config import Config
from churnml.data.sources import connect, load_tables
from churnml.data.synthetic import generate_world, shape_of
from churnml.features.signing import profiles, signing_table
from churnml.features.truth import load_signing_truth
from churnml.models.pipeline import train_fit
from churnml.models.train import TargetResult
from churnml.reports.fit import write_fit
from churnml.scoring.deals import DealsError, read_deals, score_deals
from churnml.scoring.explain import explain
from churnml.vocabulary import FIRST_YEAR_DAYS, LOST_FIRST_YEAR, SIGNING_ORACLE


@pytest.fixture(scope="module")
def fit_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1,200 accounts over 30 months whose fit at signing sets how well they adopt."""
    out = tmp_path_factory.mktemp("fit") / "world"
    generate_world(out, n_accounts=1200, months=30, seed=5, truth_paths=8, shape=shape_of(fit=1.0))
    return out


@pytest.fixture(scope="module")
def signings(fit_world: Path) -> pd.DataFrame:
    return signing_table(load_tables(fit_world, Config().data, connect()), Config().labels)


@pytest.fixture(scope="module")
def fitted(fit_world: Path) -> TargetResult:
    result = train_fit(fit_world, Config())
    assert isinstance(result, TargetResult), result
    return result


def test_first_year_labels_see_only_the_first_year() -> None:
    """Churned within the year (1), shrank at renewal (1), renewed late within the grace (0),
    upsold after signing (0, and its ARR at signing is the first contract's), involuntary churn
    (marked), signed too recently (unknown)."""
    subs = pd.DataFrame([
        subscription("churned", -500, -300),
        subscription("shrank", -500, -135), subscription("shrank", -135, None, arr=600.0),
        subscription("late", -500, -135), subscription("late", -120, None),
        subscription("upsold", -500, None), subscription("upsold", -400, None, arr=900.0),
        subscription("bankrupt", -500, -300, canceled_at=day(-300), cancel_reason="bankruptcy"),
        subscription("recent", -100, None),
    ])  # fmt: skip
    t = tables(accounts=accounts(*subs.account_id.unique()), subscriptions=subs)
    frame = signing_table(t, Config().labels, end=day(0).date()).set_index("account_id")
    lost = frame[LOST_FIRST_YEAR]
    assert lost["churned"] == 1 and lost["shrank"] == 1
    assert lost["late"] == 0 and lost["upsold"] == 0
    assert pd.isna(lost["recent"])
    assert frame.loc["bankrupt", "involuntary"] == 1
    assert frame.loc["upsold", "arr"] == 1200.0  # the upsell came after signing
    assert frame.loc["shrank", "arr_after"] == 600.0
    assert (frame.loc["churned", "signed_at"] - frame.loc["churned", "as_of"]).days < 31


def test_the_signing_truth_is_an_oracle_of_first_year_losses(
    fit_world: Path, signings: pd.DataFrame
) -> None:
    """The oracle ranks and matches the realised losses; the visible part of the fit ranks them
    too (what the fit model can find)."""
    truth = load_signing_truth(fit_world)
    rows = signings[signings[LOST_FIRST_YEAR].notna() & (signings.involuntary == 0)]
    rows = rows.merge(truth, on="account_id")
    y = rows[LOST_FIRST_YEAR].astype(int)
    assert roc_auc_score(y, rows[SIGNING_ORACLE]) > 0.75
    assert abs(rows[SIGNING_ORACLE].mean() - y.mean()) < 0.05
    assert roc_auc_score(y, -rows.fit_visible) > 0.58


def test_the_fit_model_beats_the_base_rate_and_the_segments_on_later_signings(
    fitted: TargetResult, signings: pd.DataFrame
) -> None:
    """On the latest signing months (never trained on), the fit model ranks and predicts better
    than each segment's own rate and the base rate; its gap to the oracle (which also sees the
    hidden state) is reported, and bounded."""
    rows = signings[signings[LOST_FIRST_YEAR].notna() & (signings.involuntary == 0)]
    as_of = rows.as_of.reset_index(drop=True)
    assert fitted.split.kind == "cohort"
    assert as_of[fitted.split.train].max() < as_of[fitted.split.test].min()
    m = {name: by_seg["all"] for name, by_seg in fitted.metrics.items()}
    assert m["churnml"]["roc_auc"] > m["segment_rate"]["roc_auc"] + 0.03
    assert m["churnml"]["log_loss"] < min(m["base_rate"]["log_loss"], m["segment_rate"]["log_loss"])
    assert not fitted.skill.no_skill
    assert 0 < m["oracle"]["roc_auc"] - m["churnml"]["roc_auc"] < 0.25
    assert set(fitted.model.features) >= {"industry", "acquisition_channel", "employees", "arr"}


def test_profiles_are_arr_weighted_and_best_first(signings: pd.DataFrame) -> None:
    table = profiles(signings, 20)
    assert [p["nrr"] for p in table] == sorted((p["nrr"] for p in table), reverse=True)
    known = signings[signings[LOST_FIRST_YEAR].notna() & (signings.involuntary == 0)]
    inbound = next(p for p in table if p["profile"] == {"acquisition_channel": "inbound"})
    rows = known[known.acquisition_channel == "inbound"]
    assert inbound["accounts"] == len(rows)
    assert inbound["nrr"] == pytest.approx(rows.arr_after.sum() / rows.arr.sum())
    lost = rows.arr[rows[LOST_FIRST_YEAR] == 1].sum() / rows.arr.sum()
    assert inbound["lost_arr_rate"] == pytest.approx(lost)
    assert all(p["accounts"] >= 20 for p in table)


def test_deals_get_reasons_that_add_up(fitted: TargetResult, signings: pd.DataFrame) -> None:
    deals = signings.tail(40).drop(columns=[LOST_FIRST_YEAR, "arr_after"])
    scored = score_deals(fitted.model, deals)
    ex = explain(fitted.model, deals[fitted.model.features])
    gap = ex.points.sum(axis=1).to_numpy() - (ex.probability - ex.base)
    assert np.abs(gap).max() < 1e-9
    assert scored.fit_probability.is_monotonic_decreasing
    assert set(scored.fit) <= {"good", "average", "poor"}
    for reasons in scored.reasons:
        points = [abs(r["points"]) for r in reasons]
        assert points == sorted(points, reverse=True) and all(p >= 0.01 for p in points)


def test_bad_deals_are_clear_errors(fitted: TargetResult, signings: pd.DataFrame) -> None:
    deals = signings.head(5).drop(columns=[LOST_FIRST_YEAR])
    with pytest.raises(DealsError, match="industry missing"):
        score_deals(fitted.model, deals.drop(columns="industry"))
    with pytest.raises(DealsError, match="no id column"):
        score_deals(fitted.model, deals.drop(columns="account_id"))
    bad = deals.astype({"employees": object})
    bad.loc[bad.index[:2], "employees"] = "lots"
    with pytest.raises(DealsError, match=r"employees must be numbers; 2 row\(s\).*'lots'"):
        score_deals(fitted.model, bad)


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_deals_from_a_file_read_as_written(
    fitted: TargetResult, signings: pd.DataFrame, tmp_path: Path, suffix: str
) -> None:
    """A region "NA" (North America) is text, not a missing value, in a CSV or a workbook."""
    deals = signings.tail(6).drop(columns=[LOST_FIRST_YEAR, "arr_after"]).assign(region="NA")
    path = tmp_path / f"deals{suffix}"
    deals.to_csv(path, index=False) if suffix == ".csv" else deals.to_excel(path, index=False)
    read = read_deals(path)
    assert list(read.region) == ["NA"] * 6
    assert "region" in fitted.model.features
    expected = score_deals(fitted.model, deals).fit_probability
    assert score_deals(fitted.model, read).fit_probability.tolist() == pytest.approx(
        expected.tolist())


def test_deals_numbers_as_a_spreadsheet_writes_them(fitted: TargetResult, signings: pd.DataFrame,
                                                   tmp_path: Path) -> None:  # fmt: skip
    """Thousands separators, a decimal comma, a currency: read as written; two readings alike,
    or two currencies, are errors that say so."""
    deals = signings.tail(6).drop(columns=[LOST_FIRST_YEAR, "arr_after"])
    deals["employees"] = [1200, 15, 40, 2500, 7, 310]
    expected = score_deals(fitted.model, deals).fit_probability.tolist()
    for written in ("{:,.1f}", "${:,.2f}", "{:_.1f} €"):
        text = deals.assign(employees=deals.employees.map(
            lambda n, w=written: w.format(n).replace("_", ".").replace(".0 €", ",0 €")))
        text.to_csv(tmp_path / "deals.csv", index=False)
        read = read_deals(tmp_path / "deals.csv")
        assert score_deals(fitted.model, read).fit_probability.tolist() == pytest.approx(expected)
    text = deals.assign(employees=deals.employees.map("{:,}".format))  # 1,200: or 1.2?
    with pytest.raises(DealsError, match=r"employees: .* alike \(e.g. '1,200'\); write them"):
        score_deals(fitted.model, text)
    text = deals.assign(employees=["$1", "€2", "$3", "$4", "$5", "$6"])
    with pytest.raises(DealsError, match=r"employees: .* more than one currency \(\$, €\)"):
        score_deals(fitted.model, text)


def test_the_fit_page_and_feed_keep_untrusted_text_as_text(
    fitted: TargetResult, signings: pd.DataFrame, tmp_path: Path
) -> None:
    deals = signings.head(3).drop(columns=[LOST_FIRST_YEAR])
    deals = deals.rename(columns={"account_id": "deal_id"})
    deals["deal_id"] = ["<script>alert(1)</script>", '=HYPERLINK("http://x","y")', "株式会社さくら"]
    scored = score_deals(fitted.model, deals)
    for lang in ("en", "ja"):
        page = write_fit(scored, fitted.model, Config(), tmp_path / lang, lang).read_text()
        assert "<script>alert" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
        assert "株式会社さくら" in page
    feed = pd.read_csv(tmp_path / "en" / "deals.csv", dtype=str, keep_default_na=False)
    assert feed.deal_id.str.startswith(("=", "+", "-", "@")).sum() == 0
    assert "'=HYPERLINK" in set(feed.deal_id.str[:11])
    assert list(feed.columns[-3:]) == ["reason_1", "reason_2", "reason_3"]
    back = pd.read_parquet(tmp_path / "en" / "deals.parquet")
    assert back.fit_probability.tolist() == pytest.approx(scored.fit_probability.tolist())


def test_a_history_shorter_than_a_first_year_skips_the_fit_model(tmp_path: Path) -> None:
    generate_world(tmp_path / "w", n_accounts=150, months=12, seed=2, truth_paths=2)
    why = train_fit(tmp_path / "w", Config())
    assert isinstance(why, str) and f"first {FIRST_YEAR_DAYS} days" in why
