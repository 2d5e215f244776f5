"""Reasons that add up: TreeSHAP contributions in probability points, and the families' pulls.

LightGBM's exact TreeSHAP contributions are in log-odds and sum, with the bias, to the raw score.
They are rescaled so that, per row, they sum exactly to (calibrated probability − base rate),
where the base rate is the calibrated probability of the bias (the model's average raw score).
Calibration is monotone, so the rescaling keeps every contribution's sign.

The scorecard starts here: a family's pull is the sum of its features' log-odds contributions to
churn risk, negated (`churnml.scoring.book` ranks it within the segment). What churned accounts
said is set beside their main lever family (`stated_reasons`, kept with the churn model).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from churnml.features.catalogue import FAMILIES, Feature, family
from churnml.models.artifact import TrainedModel


@dataclass(frozen=True)
class Explanation:
    """Calibrated probabilities, the raw scores they come from (log-odds: calibration's steps
    tie what these rank), the base rate, and contributions per feature (one column each): in
    probability points (each row sums to probability − base) and in log-odds."""

    probability: np.ndarray
    raw: np.ndarray
    base: np.ndarray
    points: pd.DataFrame
    logodds: pd.DataFrame


def explain(model: TrainedModel, df: pd.DataFrame) -> Explanation:
    """Probabilities with contributions that add up to them (see the module docstring)."""
    raw = model.contributions(df)
    logodds = pd.DataFrame(raw[:, :-1], columns=model.features, index=df.index)
    bias, score = raw[:, -1], raw.sum(axis=1)
    p = model.calibration.apply(score)
    base = model.calibration.apply(bias)
    delta_raw = logodds.sum(axis=1).to_numpy()
    scale = np.divide(p - base, delta_raw, out=np.zeros_like(p), where=np.abs(delta_raw) > 1e-12)
    return Explanation(p, score, base, logodds.mul(scale, axis=0), logodds)


def family_pulls(logodds: pd.DataFrame, values: pd.DataFrame,
                 catalogue: dict[str, Feature]) -> pd.DataFrame:  # fmt: skip
    """score_<family>, raw: how much each family lowers churn risk (its log-odds contributions,
    negated); missing where the account has no value in any of the family's features, or the
    model uses none. `churnml.scoring.book` turns them into percentiles."""
    out = {}
    for name in FAMILIES:
        cols = [c for c in logodds.columns if c in catalogue and family(catalogue[c]) == name]
        seen = values.reindex(columns=cols).notna().any(axis=1).to_numpy()
        pull = -logodds[cols].sum(axis=1).to_numpy() if cols else np.zeros(len(logodds))
        out[f"score_{name}"] = np.where(seen, pull, np.nan)
    return pd.DataFrame(out, index=logodds.index)


def levers_by_family(values: pd.DataFrame, catalogue: dict[str, Feature]) -> pd.DataFrame:
    """Per row, the sum of each family's levers (what CS can act on: not the contract's clock,
    such as days to renewal) among `values`' feature columns; a column per family that has
    levers."""
    names = [c for c in values.columns if c in catalogue and catalogue[c].lever]
    by_family = values[names].T.groupby([family(catalogue[c]) for c in names]).sum().T
    levers = {family(f) for f in catalogue.values() if f.lever}
    return by_family.reindex(columns=[f for f in FAMILIES if f in levers], fill_value=0.0)


def stated_reasons(reasons: pd.Series, logodds: pd.DataFrame,
                   catalogue: dict[str, Feature]) -> dict[str, dict[str, int]]:  # fmt: skip
    """Stated cancel reason × the model's main lever family before the churn: `reasons` and
    `logodds` (contributions, a column per feature) share an index, one row per churn (its
    snapshots averaged); the family whose levers raise its risk most ("none" if none does)."""
    if reasons.empty or not any(c in catalogue and catalogue[c].lever for c in logodds):
        return {}
    by_family = levers_by_family(logodds, catalogue)
    main = by_family.idxmax(axis=1).where(by_family.max(axis=1) > 0, "none")
    table = pd.crosstab(reasons, main)
    return {str(r): {str(f): int(n) for f, n in row.items() if n} for r, row in table.iterrows()}
