"""Evaluation metrics for a probability against a 0/1 label, overall and per segment."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

from churnml.data.contract import BOOK

TOP_SHARE = 0.1


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """Mean |predicted − observed| over equal-count bins, weighted by bin size."""
    order = np.argsort(p, kind="stable")
    groups = np.array_split(order, min(bins, len(p)))
    return float(sum(len(g) * abs(p[g].mean() - y[g].mean()) for g in groups if len(g)) / len(p))


def _top(p: np.ndarray) -> np.ndarray:
    """Indices of the top 10% by probability (ties broken by position, deterministically)."""
    k = max(1, round(TOP_SHARE * len(p)))
    return np.argsort(-p, kind="stable")[:k]


def lift_top_decile(y: np.ndarray, p: np.ndarray) -> float:
    rate = y.mean()
    return float(y[_top(p)].mean() / rate) if rate > 0 else float("nan")


def arr_captured_top_decile(y: np.ndarray, p: np.ndarray, arr: np.ndarray) -> float:
    """Share of the ARR of positive accounts that sits in the top 10% by probability."""
    total = (arr * y).sum()
    top = _top(p)
    return float((arr[top] * y[top]).sum() / total) if total > 0 else float("nan")


def evaluate(y: np.ndarray, p: np.ndarray, arr: np.ndarray) -> dict[str, float]:
    """ROC-AUC, PR-AUC, log loss, Brier, ECE, top-decile lift and ARR captured in the top 10%."""
    y = np.asarray(y, dtype=float)
    p = np.clip(np.asarray(p, dtype=float), 1e-6, 1 - 1e-6)
    arr = np.asarray(arr, dtype=float)
    both = 0 < y.sum() < len(y)
    return {
        "roc_auc": roc_auc_score(y, p) if both else float("nan"),
        "pr_auc": average_precision_score(y, p) if both else float("nan"),
        "log_loss": log_loss(y, p, labels=[0, 1]),
        "brier": brier_score_loss(y, p),
        "ece": expected_calibration_error(y, p),
        "lift_top10": lift_top_decile(y, p),
        "arr_captured_top10": arr_captured_top_decile(y, p, arr),
        "positive_rate": float(y.mean()),
        "rows": float(len(y)),
    }


def evaluate_by_segment(
    y: np.ndarray, p: np.ndarray, arr: np.ndarray, segment: pd.Series
) -> dict[str, dict[str, float]]:
    """`evaluate` overall (`BOOK`) and within each segment."""
    seg = np.asarray(segment.astype(str))
    out = {BOOK: evaluate(y, p, arr)}
    for name in sorted(set(seg)):
        mask = seg == name
        out[name] = evaluate(np.asarray(y)[mask], np.asarray(p)[mask], np.asarray(arr)[mask])
    return out


def weighted_auc(y: np.ndarray, p: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """ROC-AUC of `p` against 0/1 `y` under each row of `weights` (resamples × rows) at once;
    ties count half, as in `roc_auc_score` with `sample_weight`."""
    _, level = np.unique(np.asarray(p, dtype=float), return_inverse=True)  # tie groups, by score
    pos = np.zeros((len(weights), level.max() + 1))
    neg = np.zeros_like(pos)
    for sums, rows in ((pos, y == 1), (neg, y == 0)):
        np.add.at(sums.T, level[rows], weights[:, rows].T)
    below = np.cumsum(neg, axis=1) - neg  # negatives scored strictly lower
    with np.errstate(invalid="ignore", divide="ignore"):
        return (pos * (below + 0.5 * neg)).sum(axis=1) / (pos.sum(axis=1) * neg.sum(axis=1))


def auc_interval(
    y: np.ndarray, p: np.ndarray, groups: np.ndarray, resamples: int = 500, seed: int = 0
) -> tuple[float, float]:
    """95% bootstrap interval of ROC-AUC, resampling whole groups (accounts: an account's rows
    at several dates are not independent)."""
    y = np.asarray(y, dtype=float)
    if len(np.unique(y)) < 2:
        return float("nan"), float("nan")
    _, group = np.unique(groups, return_inverse=True)
    n_groups = group.max() + 1
    picks = np.random.default_rng(seed).integers(0, n_groups, (resamples, n_groups))
    counts = np.stack([np.bincount(row, minlength=n_groups) for row in picks])
    auc = weighted_auc(y, p, counts[:, group].astype(float))
    auc = auc[np.isfinite(auc)]
    return float(np.quantile(auc, 0.025)), float(np.quantile(auc, 0.975))
