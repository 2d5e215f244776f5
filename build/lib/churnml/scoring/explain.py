"""Reasons that add up: TreeSHAP contributions in probability points, sentences and scorecards.

LightGBM's exact TreeSHAP contributions are in log-odds and sum, with the bias, to the raw score.
They are rescaled so that, per row, they sum exactly to (calibrated probability − base rate),
where the base rate is the calibrated probability of the bias (the model's average raw score).
Calibration is monotone, so the rescaling keeps every contribution's sign.

Scorecard mapping (documented for CSMs): a family's score is 100·σ(−Σ of its features' log-odds
contributions to churn risk). 50 means "no different from the average account", above 50 healthier,
below 50 riskier. The health score applies the same mapping to all features together.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from churnml.features.catalogue import Feature
from churnml.models.artifact import TrainedModel

FAMILIES = ("adoption", "onboarding", "support", "sentiment", "relationship", "contract")


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


@dataclass(frozen=True)
class Explanation:
    """Calibrated probabilities, the base rate, and contributions per feature (one column each):
    in probability points (each row sums to probability − base) and in log-odds."""

    probability: np.ndarray
    base: np.ndarray
    points: pd.DataFrame
    logodds: pd.DataFrame


def explain(model: TrainedModel, df: pd.DataFrame) -> Explanation:
    """Probabilities with contributions that add up to them (see the module docstring)."""
    raw = model.contributions(df)
    logodds = pd.DataFrame(raw[:, :-1], columns=model.features, index=df.index)
    bias = raw[:, -1]
    p = model.calibration.apply(raw.sum(axis=1))
    base = model.calibration.apply(bias)
    delta_raw = logodds.sum(axis=1).to_numpy()
    scale = np.divide(p - base, delta_raw, out=np.zeros_like(p), where=np.abs(delta_raw) > 1e-12)
    return Explanation(p, base, logodds.mul(scale, axis=0), logodds)


def family_scores(logodds: pd.DataFrame, catalogue: dict[str, Feature]) -> pd.DataFrame:
    """score_<family> (0–100, higher is healthier) from the churn model's contributions."""
    families = pd.Series({c: catalogue[c].family for c in logodds.columns if c in catalogue})
    out = {}
    for family in FAMILIES:
        cols = list(families.index[families == family])
        if family == "adoption":
            cols += list(families.index[families == "relative"])
        total = logodds[cols].sum(axis=1) if cols else pd.Series(0.0, index=logodds.index)
        out[f"score_{family}"] = np.round(100 * _sigmoid(-total.to_numpy()), 1)
    return pd.DataFrame(out, index=logodds.index)


def health_score(logodds: pd.DataFrame) -> np.ndarray:
    return np.round(100 * _sigmoid(-logodds.sum(axis=1).to_numpy()), 1)
