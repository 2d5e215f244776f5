"""Evaluation metrics for a probability against a 0/1 label, overall and per segment."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

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
    """`evaluate` overall ("all") and within each segment."""
    seg = np.asarray(segment.astype(str))
    out = {"all": evaluate(y, p, arr)}
    for name in sorted(set(seg)):
        mask = seg == name
        out[name] = evaluate(np.asarray(y)[mask], np.asarray(p)[mask], np.asarray(arr)[mask])
    return out
