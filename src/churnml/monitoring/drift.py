"""Drift against a reference profile: the population stability index (PSI) per feature and score.

A model's reference profile is the book at the last date it was trained on (one snapshot per
account, as a scoring run sees it): per feature, the deciles' edges and each bin's share, or each
category's share, plus the share missing. PSI = Σ (now − ref) · ln(now / ref) over the bins, with
"missing" as a bin of its own and every share floored at 0.0001. Usual reading: below 0.1 stable,
0.1–0.25 moving, above 0.25 shifted.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

BINS = 10
CATEGORIES = 20  # the most frequent ones; the rest count as one
FLOOR = 1e-4


def profile(values: pd.Series) -> dict[str, object]:
    """The reference distribution of one column (JSON-ready)."""
    missing = float(values.isna().mean()) if len(values) else 0.0
    present = values.dropna()
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        x = present.to_numpy(dtype=float)
        inner = np.linspace(0, 1, BINS + 1)[1:-1]
        edges = np.unique(np.quantile(x, inner)) if len(x) else np.array([])
        return {"kind": "numeric", "edges": edges.tolist(), "shares": _shares(x, edges).tolist(),
                "missing": missing}  # fmt: skip
    shares = present.astype(str).value_counts(normalize=True).head(CATEGORIES)
    return {"kind": "category", "shares": shares.to_dict(), "missing": missing}


def _shares(x: np.ndarray, edges: np.ndarray) -> np.ndarray:
    counts = np.bincount(np.searchsorted(edges, x, side="right"), minlength=len(edges) + 1)
    return counts / max(len(x), 1)


def psi(reference: dict, values: pd.Series) -> tuple[float, float]:
    """PSI of `values` against a column's reference profile, and their share missing."""
    missing = float(values.isna().mean()) if len(values) else 0.0
    present = values.dropna()
    if reference["kind"] == "numeric":
        edges = np.asarray(reference["edges"], dtype=float)
        now = _shares(pd.to_numeric(present, errors="coerce").dropna().to_numpy(float), edges)
        ref = np.asarray(reference["shares"], dtype=float)
    else:
        known = list(reference["shares"])
        counts = present.astype(str).value_counts(normalize=True)
        inside = counts.reindex(known, fill_value=0.0).to_numpy()
        now = np.append(inside, max(1 - inside.sum(), 0.0))
        shares = np.asarray(list(reference["shares"].values()), float)
        ref = np.append(shares, max(1 - shares.sum(), 0.0))
    e = np.append(ref * (1 - reference["missing"]), reference["missing"])
    a = np.append(now * (1 - missing), missing)
    e, a = np.clip(e, FLOOR, None), np.clip(a, FLOOR, None)
    return float(np.sum((a - e) * np.log(a / e))), missing


def reference(frame: pd.DataFrame, features: list[str], probability: np.ndarray,
              contributions: np.ndarray) -> dict:  # fmt: skip
    """A model's reference profile: each feature's and the probability's (see the module), and
    each feature's mean absolute contribution in log-odds (`contributions`: one column per
    feature, in `features` order)."""
    pull = np.abs(np.asarray(contributions, float)[:, : len(features)]).mean(axis=0)
    return {"features": {f: profile(frame[f]) for f in features if f in frame},
            "probability": profile(pd.Series(probability, dtype=float)),
            "contributions": dict(zip(features, pull.tolist(), strict=True)),
            "rows": len(frame)}  # fmt: skip
