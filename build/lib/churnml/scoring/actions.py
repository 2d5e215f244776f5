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
    churn_tier: np.ndarray, expansion_tier: np.ndarray, adoption: np.ndarray, cfg: ScoringConfig
) -> np.ndarray:
    """save (high risk) · fix_then_expand (high risk, high propensity: no upsell pitch yet) ·
    expand (low risk, high propensity, healthy adoption) · nurture (the rest). Without an
    expansion model nothing is pitched; without a churn model an expansion is proposed on
    propensity alone."""
    risky, keen = churn_tier == "high", expansion_tier == "high"
    healthy = np.nan_to_num(np.asarray(adoption, dtype=float), nan=0.0) >= cfg.healthy_adoption
    calm = np.where(pd.notna(churn_tier), (churn_tier == "low") & healthy, True)
    return np.select(
        [risky & keen, risky, keen & calm], ["fix_then_expand", "save", "expand"], "nurture"
    ).astype(object)
