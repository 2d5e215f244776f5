"""A trained model as portable files: text and JSON only, nothing unpickled on load.

A model is an *estimator* (LightGBM trees, or a logistic regression) plus what it needs to score
a feature table: the feature list, the categories of each categorical feature, the calibration and
facts about training. LightGBM's trees are kept in its own text format (`booster.txt`); everything
else, a logistic regression's coefficients included, is in `model.json`.

Both estimators give a raw score in log-odds and exact contributions that add up to it: TreeSHAP
for LightGBM; for the logistic regression, coefficient × (value − training mean) per feature
(summed over a categorical feature's levels and a missing-value indicator), the bias holding the
rest. Calibration then maps the raw score to a probability.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import lightgbm as lgb
import numpy as np
import pandas as pd
from scipy.special import expit
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.model_selection import StratifiedKFold

from churnml.io import write_text

BOOSTER_FILE, META_FILE = "booster.txt", "model.json"


@dataclass(frozen=True)
class Calibration:
    """Maps the raw score (log-odds) to a calibrated probability."""

    method: str  # "platt" or "isotonic"
    params: dict[str, list[float] | float]

    @property
    def flat(self) -> bool:
        """Whether every row gets the same probability: the raw scores ranked nothing."""
        if self.method == "platt":
            return self.params["a"] == 0
        return len(set(self.params["y"])) < 2

    def apply(self, raw: np.ndarray) -> np.ndarray:
        if self.method == "platt":
            return expit(self.params["a"] * raw + self.params["b"])
        return np.interp(raw, self.params["x"], self.params["y"])

    @classmethod
    def fit(cls, raw: np.ndarray, y: np.ndarray, method: str) -> Calibration:
        """Fit on out-of-sample raw scores. Never inverts the model: where higher scores go
        with fewer positives, Platt's slope is 0 (every row gets the base rate)."""
        if method == "platt":
            lr = LogisticRegression(C=1e6).fit(raw.reshape(-1, 1), y)
            a, b = float(lr.coef_[0, 0]), float(lr.intercept_[0])
            if a < 0:
                rate = float(np.clip(y.mean(), 1e-6, 1 - 1e-6))
                a, b = 0.0, float(np.log(rate / (1 - rate)))
            return cls("platt", {"a": a, "b": b})
        iso = IsotonicRegression(out_of_bounds="clip", y_min=1e-4, y_max=1 - 1e-4).fit(raw, y)
        return cls("isotonic", {"x": iso.X_thresholds_.tolist(), "y": iso.y_thresholds_.tolist()})

    @classmethod
    def choose(cls, raw: np.ndarray, y: np.ndarray, seed: int) -> Calibration:
        """Platt or isotonic, whichever has the lower 3-fold log loss here; refit on all rows.
        Platt only below 100 rows of the rarer class: isotonic steps overfit small samples, and
        their flat stretches would erase the model's ranking."""
        if min(y.sum(), len(y) - y.sum()) < 100:
            return cls.fit(raw, y, "platt")
        folds = StratifiedKFold(3, shuffle=True, random_state=seed).split(raw, y)
        losses: dict[str, list[float]] = {"platt": [], "isotonic": []}
        for fit_idx, eval_idx in folds:
            for method in losses:
                cal = cls.fit(raw[fit_idx], y[fit_idx], method)
                p = np.clip(cal.apply(raw[eval_idx]), 1e-6, 1 - 1e-6)
                losses[method].append(log_loss(y[eval_idx], p, labels=[0, 1]))
        best = min(losses, key=lambda m: np.mean(losses[m]))
        return cls.fit(raw, y, best)


class Estimator(Protocol):
    """A fitted scorer of prepared frames (see `TrainedModel.frame`), in log-odds."""

    family: str

    def raw(self, x: pd.DataFrame, rounds: int | None = None) -> np.ndarray: ...

    def contributions(self, x: pd.DataFrame) -> np.ndarray:
        """One column per feature, then the bias; each row sums to the raw score."""
        ...

    def save(self, folder: Path) -> dict[str, Any]:
        """Write what does not fit in JSON to `folder`; return the rest for model.json."""
        ...


@dataclass
class Trees:
    """LightGBM trees (`rounds`: at most this many trees are used, None = all)."""

    booster: lgb.Booster
    family: str = "lightgbm"

    def raw(self, x: pd.DataFrame, rounds: int | None = None) -> np.ndarray:
        return self.booster.predict(x, raw_score=True, num_iteration=rounds)

    def contributions(self, x: pd.DataFrame) -> np.ndarray:
        return self.booster.predict(x, pred_contrib=True)

    def save(self, folder: Path) -> dict[str, Any]:
        write_text(self.booster.model_to_string(), folder / BOOSTER_FILE)
        return {}

    @classmethod
    def load(cls, folder: Path, _: dict[str, Any]) -> Trees:
        return cls(lgb.Booster(model_str=(folder / BOOSTER_FILE).read_text(encoding="utf-8")))


@dataclass
class Linear:
    """Logistic regression on standardised numeric features (missing → training median, plus an
    indicator where training had missing values) and one-hot categorical levels.

    `terms` holds, per feature, how its design columns are made and their coefficients:
    numeric `{"median", "mean", "scale", "coef", "missing_coef", "missing_share"}`,
    categorical `{"levels", "coefs", "shares"}` (an unknown level is all zeros).
    """

    terms: dict[str, dict[str, Any]]
    intercept: float
    family: str = "logistic_regression"

    def _columns(self, x: pd.DataFrame) -> np.ndarray:
        """Each feature's share of the raw score, before the training means are taken off."""
        out = np.zeros((len(x), len(self.terms)))
        for j, (name, t) in enumerate(self.terms.items()):
            col = x[name]
            if "levels" in t:
                codes = pd.Categorical(col.astype(object), categories=t["levels"]).codes
                coefs = np.append(np.asarray(t["coefs"], float), 0.0)  # code -1 → 0
                out[:, j] = coefs[codes]
            else:
                v = col.to_numpy(dtype=float)
                missing = np.isnan(v)
                z = (np.where(missing, t["median"], v) - t["mean"]) / t["scale"]
                out[:, j] = t["coef"] * z + t["missing_coef"] * missing
        return out

    def _centre(self) -> np.ndarray:
        """Each feature's average share over the training rows (a standardised value averages
        0 there, so only the indicator and the levels remain)."""
        return np.array([
            float(np.dot(t["coefs"], t["shares"])) if "levels" in t
            else t["missing_coef"] * t["missing_share"]
            for t in self.terms.values()
        ])  # fmt: skip

    def raw(self, x: pd.DataFrame, rounds: int | None = None) -> np.ndarray:
        return self.intercept + self._columns(x).sum(axis=1)

    def contributions(self, x: pd.DataFrame) -> np.ndarray:
        centre = self._centre()
        out = self._columns(x) - centre
        bias = np.full((len(x), 1), self.intercept + centre.sum())
        return np.hstack([out, bias])

    def save(self, folder: Path) -> dict[str, Any]:
        return {"linear": {"intercept": self.intercept, "terms": self.terms}}

    @classmethod
    def load(cls, _: Path, meta: dict[str, Any]) -> Linear:
        linear = meta.pop("linear")
        return cls(linear["terms"], float(linear["intercept"]))


ESTIMATORS: dict[str, type[Trees] | type[Linear]] = {
    "lightgbm": Trees,
    "logistic_regression": Linear,
}


@dataclass
class TrainedModel:
    """An estimator with what it needs to score a feature table: columns, categories,
    calibration, and facts about training (`meta`)."""

    estimator: Estimator
    features: list[str]
    categories: dict[str, list[str]]
    calibration: Calibration
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def family(self) -> str:
        return self.estimator.family

    def frame(self, df: pd.DataFrame) -> pd.DataFrame:
        """The model's columns in its order; categories as trained (unknown → missing). A column
        the model was trained on must be present: a missing one is an error, not a silent gap."""
        missing = [name for name in self.features if name not in df]
        if missing:
            raise ValueError(
                f"the feature table lacks {len(missing)} column(s) the model was trained on, "
                f"e.g. {', '.join(missing[:5])}"
            )
        numeric = [name for name in self.features if name not in self.categories]
        values = df[numeric]
        if not all(pd.api.types.is_numeric_dtype(t) for t in values.dtypes):
            values = values.apply(pd.to_numeric, errors="coerce")
        out = pd.DataFrame(values.to_numpy("float64", na_value=np.nan), df.index, numeric)
        for name, levels in self.categories.items():
            out[name] = pd.Categorical(df[name].astype("object"), categories=levels)
        return out[self.features]

    def raw(self, df: pd.DataFrame) -> np.ndarray:
        return self.estimator.raw(self.frame(df))

    def predict(self, df: pd.DataFrame) -> np.ndarray:
        """Calibrated probabilities, one per row."""
        return self.calibration.apply(self.raw(df))

    def contributions(self, df: pd.DataFrame) -> np.ndarray:
        """Exact contributions in log-odds: one column per feature, then the bias."""
        return self.estimator.contributions(self.frame(df))

    def save(self, folder: Path | str) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        meta = {
            "family": self.family,
            "features": self.features,
            "categories": self.categories,
            "calibration": {"method": self.calibration.method, **self.calibration.params},
            **self.estimator.save(folder),
            **self.meta,
        }
        write_text(json.dumps(meta, indent=1, default=str), folder / META_FILE)
        return folder

    @classmethod
    def load(cls, folder: Path | str) -> TrainedModel:
        folder = Path(folder)
        meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
        estimator = ESTIMATORS[meta.pop("family", "lightgbm")].load(folder, meta)
        cal = meta.pop("calibration")
        calibration = Calibration(cal.pop("method"), cal)
        return cls(estimator, meta.pop("features"), meta.pop("categories"), calibration, meta)
