"""Tiers and the next best action, from calibrated probabilities (missing when a target has no
model: its tier is then missing too, and no action relies on it)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from churnml.config import ScoringConfig


def tier(p: np.ndarray, high: float, medium: float) -> np.ndarray:
    """high / medium / low by thresholds; None where the probability is missing."""
    p = np.asarray(p, dtype=float)
    out = np.where(p >= high, "high", np.where(p >= medium, "medium", "low")).astype(object)
    out[np.isnan(p)] = None
    return out


def next_best_action(
    churn_tier: np.ndarray,
    expansion_tier: np.ndarray,
    adoption: np.ndarray,
    cfg: ScoringConfig,
    arr_at_risk: np.ndarray | None = None,
    days_to_renewal: np.ndarray | None = None,
) -> np.ndarray:
    """The play, first rule that holds:

    * save: high churn risk, or a short runway (renewal within `save_runway_days`) with material
      ARR at risk (≥ `save_arr_at_risk`, which a low risk on a large ARR can reach), whatever
      the expansion score;
    * fix_then_expand: expansion likely (high tier) but one lever weak (medium risk, or adoption
      below `healthy_adoption`);
    * expand: expansion likely, low risk, healthy adoption;
    * nurture: the rest.

    A target without a model has no tier and no rule relies on it."""
    n = len(churn_tier)
    adoption = np.asarray(adoption, dtype=float)
    at_risk = np.zeros(n) if arr_at_risk is None else np.nan_to_num(np.asarray(arr_at_risk, float))
    runway = (np.full(n, np.nan) if days_to_renewal is None
              else np.asarray(days_to_renewal, dtype=float))  # fmt: skip
    medium, keen = churn_tier == "medium", expansion_tier == "high"
    short = np.nan_to_num(runway, nan=np.inf) <= cfg.save_runway_days
    save = (churn_tier == "high") | (short & (at_risk >= cfg.save_arr_at_risk))
    weak = medium | (np.nan_to_num(adoption, nan=0.0) < cfg.healthy_adoption)
    return np.select(
        [save, keen & weak & pd.notna(churn_tier), keen], ["save", "fix_then_expand", "expand"],
        "nurture",
    ).astype(object)  # fmt: skip
