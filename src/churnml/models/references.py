"""The plain references a model must beat, on the same test rows: a logistic regression, the
base and segment rates, and the configured rule-based health score."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from churnml.config import Config
from churnml.data.contract import BOOK
from churnml.features.catalogue import Feature
from churnml.models.artifact import Calibration
from churnml.models.splits import Split

if TYPE_CHECKING:
    from churnml.models.train import Dataset

log = logging.getLogger(__name__)


def segment_of(df: pd.DataFrame) -> pd.Series:
    """Each row's segment as text (`BOOK` when the table has none)."""
    return df["segment"].astype(str) if "segment" in df else pd.Series(BOOK, index=df.index)


def logistic_baseline(ds: Dataset, split: Split) -> np.ndarray:
    """Plain logistic regression on standardised numeric features (+ one-hot categoricals and
    segment), fitted on
    the training span, scored on the test rows: the simple reference churnml must beat."""
    numeric = [c for c in ds.features if c not in ds.categorical]
    x = ds.frame[numeric].astype(float)
    onehot = list(dict.fromkeys([*ds.categorical, *(["segment"] if "segment" in ds.frame else [])]))
    x = x.join(pd.get_dummies(ds.frame[onehot].astype(str), prefix=onehot, dtype=float))
    pipe = make_pipeline(
        SimpleImputer(strategy="median", keep_empty_features=True),
        StandardScaler(),
        LogisticRegression(max_iter=2000, C=1.0),
    )
    pipe.fit(x[split.train], ds.y[split.train])
    return pipe.predict_proba(x[split.test])[:, 1]


def rate_baselines(ds: Dataset, split: Split) -> dict[str, np.ndarray]:
    """The training span's label rate, overall and per segment, on the test rows: what a model
    must beat before anything it learnt counts."""
    y, segment = pd.Series(ds.y[split.train]), segment_of(ds.frame)
    overall = float(y.mean())
    by_segment = y.groupby(segment[split.train].to_numpy()).mean()
    test = segment[split.test].map(by_segment).fillna(overall).to_numpy(dtype=float)
    return {"base_rate": np.full(int(split.test.sum()), overall), "segment_rate": test}


def rule_health_score(ds: Dataset, split: Split, weights: dict[str, float],
                      catalogue: dict[str, Feature]) -> np.ndarray | None:  # fmt: skip
    """The configured rule-based health score (0–1, higher is healthier) for every row; None
    when none of its features is in the data."""
    total, score = 0.0, np.zeros(len(ds.frame))
    for name, weight in weights.items():
        if name not in ds.frame or name not in catalogue:
            log.info("health score: %s is not in the data, left out", name)
            continue
        values = ds.frame[name].astype(float)
        lo, hi = values[split.train].quantile([0.05, 0.95])
        scaled = ((values - lo) / (hi - lo if hi > lo else 1.0)).clip(0, 1).fillna(0.5)
        if catalogue[name].healthy == "lower":
            scaled = 1 - scaled
        score += weight * scaled.to_numpy()
        total += weight
    return score / total if total else None


def health_baseline(ds: Dataset, split: Split, cfg: Config, catalogue: dict[str, Feature],
                    risk: bool) -> np.ndarray | None:  # fmt: skip
    """Rule health as a probability on the test rows: Platt-scaled on validation (risk = 1 −
    health for churn). None when the data has none of its features."""
    h = rule_health_score(ds, split, cfg.health_score.weights, catalogue)
    if h is None:
        return None
    signal = 1 - h if risk else h
    cal = Calibration.fit(signal[split.valid], ds.y[split.valid], "platt")
    return cal.apply(signal[split.test])
