"""Root causes by segment: where a group of accounts shares one problem (`segments.csv`).

Cells: each value of segment, acquisition channel and industry (the columns the book has with
more than one value: a one-segment book has no segment cells), and each combination of two or
three of them, kept when it holds at least `min_accounts` accounts.
Per cell: accounts, ARR, expected churn and expansion (mean probability), expected GRR and NRR
(ARR at risk and expected expansion over ARR), support tickets per account in 90 days, mean NPS,
onboarding milestones done on time by day 90, and each family's mean churn contribution in
points beside the whole book's (levers only: see `family_points`).

A cell's driving family is the one whose churn contribution exceeds most what its accounts'
segments would have (each account's segment mean): its lift, in points. A cell is flagged when
that lift is at least MIN_LIFT points and significant (a one-sided t-test on its accounts'
excesses, at 5% over all the cells and families tested), the family hits most of the cell's
accounts harder than their segment's median, and the cell's expected churn is above its
segments': a segment problem, not an account problem. Leading indicators differ by segment, so a
segment is only compared with itself and is never flagged on its own.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
from scipy.stats import ttest_1samp

from churnml.features.catalogue import Feature
from churnml.scoring.explain import levers_by_family

DIMENSIONS = ("segment", "acquisition_channel", "industry")
FACTS = {"tickets_per_account": "tickets_90d", "nps": "nps_last",
         "onboarding_on_time": "onboarding_done_by_day_90"}  # fmt: skip
ALPHA = 0.05  # over all the cells tested
MIN_LIFT = 0.5  # points of churn risk a driving family must add, on average, to flag a cell


def family_points(contributions: pd.DataFrame, catalogue: dict[str, Feature]) -> pd.DataFrame:
    """Per account (index), the churn contribution of each family's levers, in points."""
    churn = contributions[contributions.target == "churn"].set_index("account_id")
    return levers_by_family(churn, catalogue) * 100


def root_causes(scores: pd.DataFrame, contributions: pd.DataFrame,
                features: pd.DataFrame | None, catalogue: dict[str, Feature],
                min_accounts: int = 30) -> pd.DataFrame:  # fmt: skip
    """A row per cell (see the module docstring), flagged cells first, then by ARR at risk."""
    book = scores.set_index("account_id")
    points = family_points(contributions, catalogue).reindex(book.index).fillna(0.0)
    values = (features.set_index("account_id") if features is not None
              else pd.DataFrame(index=book.index)).reindex(book.index)  # fmt: skip
    for fact, column in FACTS.items():
        book[fact] = values.get(column, np.nan)
    segment = book["segment"].astype(str) if "segment" in book else pd.Series("", book.index)
    typical = points.groupby(segment).transform("mean").assign(
        churn=book.churn_probability.groupby(segment).transform("mean"))
    above = points > points.groupby(segment).transform("median")
    dims = [d for d in DIMENSIONS if d in book and book[d].nunique() > 1]
    cells = []
    for depth in range(1, len(dims) + 1):
        for combo in itertools.combinations(dims, depth):
            for key, rows in book.groupby(list(combo), dropna=True):
                if len(rows) >= min_accounts:
                    named = dict(zip(combo, np.atleast_1d(key), strict=True))
                    at = rows.index
                    cells.append(_cell(named, rows, points.loc[at], typical.loc[at],
                                       above.loc[at]))  # fmt: skip
    out = pd.DataFrame(cells)
    if out.empty:
        return out
    tests = len(out) * points.shape[1]
    material = (out.driver_lift_pts >= MIN_LIFT) & (out.driver_share > 0.5)
    out["flagged"] = (out.p_value < ALPHA / tests) & material & (
        out.churn_expected > out.churn_baseline)
    for name, value in points.mean().items():
        out[f"book_{name}_pts"] = value
    return out.sort_values(["flagged", "arr_at_risk"], ascending=False, ignore_index=True)


def _cell(key: dict[str, object], rows: pd.DataFrame, points: pd.DataFrame,
          typical: pd.DataFrame, above: pd.DataFrame) -> dict[str, object]:  # fmt: skip
    """One cell's facts, its driving family (largest lift over `typical`, each account's
    segment means) with the t-test of that lift, and the share of its accounts that family hits
    harder than their segment's median (`above`)."""
    arr, at_risk = rows.arr.sum(), rows.arr_at_risk.sum()
    excess = points - typical[points.columns]
    driver = str(excess.mean().idxmax())
    test = ttest_1samp(excess[driver], 0.0, alternative="greater")
    expansion = rows.get("expected_expansion_arr", pd.Series(dtype=float))
    return {
        **{d: key.get(d) for d in DIMENSIONS},
        "accounts": len(rows),
        "arr": arr,
        "arr_at_risk": at_risk,
        "churn_expected": rows.churn_probability.mean(),
        "churn_baseline": typical["churn"].mean(),  # what its segments would give
        "expansion_expected": rows.get("expansion_probability", pd.Series(dtype=float)).mean(),
        "grr_expected": 1 - at_risk / arr if arr else np.nan,
        "nrr_expected": (1 - (at_risk - expansion.sum()) / arr
                         if arr and expansion.notna().any() else np.nan),
        **{fact: rows[fact].mean() for fact in FACTS},
        **{f"{name}_pts": points[name].mean() for name in points.columns},
        "driver": driver,
        "driver_lift_pts": excess[driver].mean(),
        "driver_share": above[driver].mean(),
        "p_value": float(test.pvalue) if np.isfinite(test.pvalue) else 1.0,
    }
