"""The revenue forecast: exact where the outcome is certain, calibrated where the probabilities
are right, wider where the book moves as one, and separate about involuntary churn."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from churnml.config import LabelConfig
from churnml.features.labels import label_columns
from churnml.forecast.revenue import History, backtest, forecast, learn, levels, summary

NAMES = label_columns(LabelConfig())
FLAT = History(involuntary={"*": 0.0}, expanded=[1.5], stayed=[1.0])


def _book(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "account_id": [f"a{i}" for i in range(n)],
        "segment": rng.choice(["smb", "enterprise"], n),
        "owner": rng.choice(["kim", "lee"], n),
        "arr": rng.lognormal(9, 1, n).round(),
        "churn_probability": rng.beta(1, 12, n),
        "expansion_probability": rng.beta(1, 8, n),
    })  # fmt: skip


def test_a_certain_outcome_is_forecast_exactly() -> None:
    """One account sure to churn, one sure to expand by half: GRR 300/400, NRR 450/400."""
    book = pd.DataFrame({"arr": [100.0, 300.0], "segment": "smb", "churn_probability": [1.0, 0.0],
                         "expansion_probability": [0.0, 1.0]})  # fmt: skip
    row = forecast(book, FLAT, draws=200).iloc[0]
    certain = {"grr": 0.75, "nrr": 1.125, "churned_arr": 100, "expanded_arr": 150}
    for measure, value in certain.items():
        assert row[measure] == row[f"{measure}_low"] == row[f"{measure}_high"]
        assert row[measure] == pytest.approx(value)
    assert row.involuntary_arr == 0


def test_the_central_value_is_the_expected_one_and_groups_add_up() -> None:
    book = _book(400)
    out = forecast(book, FLAT, by=("segment", "owner"), draws=2000, seed=1)
    whole = out.iloc[0]
    expected = (book.arr * book.churn_probability).sum()
    assert whole.churned_arr == pytest.approx(expected, rel=0.02)
    assert whole.churned_arr_low < expected < whole.churned_arr_high
    for level in ("segment", "owner"):
        part = out[out.level == level]
        assert part.arr.sum() == pytest.approx(whole.arr)
        assert part.churned_arr.sum() == pytest.approx(whole.churned_arr)
    again = forecast(book, FLAT, by=("segment", "owner"), draws=2000, seed=1)
    pd.testing.assert_frame_equal(out, again)  # seeded


def test_involuntary_churn_is_a_segment_base_rate_weighted_by_arr() -> None:
    """History: in smb, 1 of 4 accounts churned involuntarily, holding 100 of 1,000 ARR."""
    history = pd.DataFrame({
        "segment": ["smb"] * 4 + ["enterprise"] * 2, "arr": [100.0, 300, 300, 300, 5000, 5000],
        NAMES["churn"]: [1, 0, 0, 1, 0, 0], NAMES["involuntary"]: [1, 0, 0, 0, 0, 0],
        NAMES["expansion"]: [0, 0, 1, 0, 0, 0],
        NAMES["arr_after"]: [0.0, 300, 450, 0, 5000, 4500],
    })  # fmt: skip
    learnt = learn(history, NAMES)
    assert learnt.involuntary["smb"] == pytest.approx(0.1)
    assert learnt.involuntary["enterprise"] == 0
    assert learnt.expanded == [1.5] * 101 and min(learnt.stayed) == 0.9 and max(learnt.stayed) == 1
    book = pd.DataFrame({"arr": [1000.0] * 2000, "segment": "smb", "churn_probability": 0.0,
                         "expansion_probability": 0.0})  # fmt: skip
    row = forecast(book, learnt, draws=400).iloc[0]
    assert row.churned_arr == 0
    assert row.involuntary_arr == pytest.approx(0.1 * book.arr.sum(), rel=0.05)


def _world(cutoffs: int, shock: float, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Labelled snapshots at `cutoffs` quarterly dates of a 600-account book whose churn
    follows its probabilities × a book-wide factor (e^N(0, shock)) per quarter."""
    rng = np.random.default_rng(seed)
    frames, preds = [], []
    for k, as_of in enumerate(pd.date_range("2020-01-01", periods=cutoffs, freq="QS")):
        book = _book(600, seed=k)
        factor = np.exp(rng.normal(0, shock))
        churned = rng.random(600) < np.minimum(1, book.churn_probability * factor)
        grew = ~churned & (rng.random(600) < book.expansion_probability)
        frames.append(book.assign(as_of=as_of, **{
            NAMES["churn"]: churned.astype(int), NAMES["involuntary"]: 0,
            NAMES["expansion"]: grew.astype(int),
            NAMES["arr_after"]: np.where(churned, 0.0, book.arr * np.where(grew, 1.3, 1.0))}))
        preds.append(book[["account_id", "churn_probability", "expansion_probability"]]
                     .assign(as_of=as_of))  # fmt: skip
    frame = pd.concat(frames, ignore_index=True)
    return frame.drop(columns=["churn_probability", "expansion_probability"]), pd.concat(preds)


def test_with_right_probabilities_the_interval_holds_about_80_percent() -> None:
    frame, preds = _world(24, shock=0.0)
    out = backtest(frame, preds, NAMES, reach_days=120, draws=500)
    assert len(out) == 22  # the first two: no label known 120 days before them
    assert 0.6 <= out.grr_covered.mean() <= 0.97
    assert levels(out)["churn"] < 0.05


def test_a_book_that_moves_as_one_widens_the_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    """Churn doubled or halved quarter by quarter for the whole book: independent draws alone
    miss many quarters; the level learnt from the other quarters keeps the coverage."""
    from churnml.forecast import revenue

    frame, preds = _world(24, shock=0.7)
    out = backtest(frame, preds, NAMES, reach_days=120, draws=500)
    assert levels(out)["churn"] > 0.1  # the level's variance
    assert out.grr_covered.mean() >= 0.7
    assert summary(out)["forecast_grr_coverage"] == out.grr_covered.mean()
    monkeypatch.setattr(revenue, "levels", lambda _: {})
    plain = backtest(frame, preds, NAMES, reach_days=120, draws=500)
    assert plain.grr_covered.mean() < out.grr_covered.mean() - 0.15
    assert (plain.grr_high - plain.grr_low).mean() < (out.grr_high - out.grr_low).mean()
