"""A trained model as portable files: LightGBM's own text format plus one JSON of metadata.

`booster.txt` holds the trees; `model.json` holds the feature list, the categories of each
categorical feature, the calibration and facts about training. Loading reads text and JSON only:
nothing is unpickled.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.model_selection import StratifiedKFold

from churnml.io import write_text

BOOSTER_FILE, META_FILE = "booster.txt", "model.json"


@dataclass(frozen=True)
class Calibration:
    """Maps LightGBM's raw score (log-odds) to a calibrated probability."""

    method: str  # "platt" or "isotonic"
    params: dict[str, list[float] | float]

    def apply(self, raw: np.ndarray) -> np.ndarray:
        if self.method == "platt":
            return 1.0 / (1.0 + np.exp(-(self.params["a"] * raw + self.params["b"])))
        return np.interp(raw, self.params["x"], self.params["y"])

    @classmethod
    def fit(cls, raw: np.ndarray, y: np.ndarray, method: str) -> Calibration:
        if method == "platt":
            lr = LogisticRegression(C=1e6).fit(raw.reshape(-1, 1), y)
            return cls("platt", {"a": float(lr.coef_[0, 0]), "b": float(lr.intercept_[0])})
        iso = IsotonicRegression(out_of_bounds="clip", y_min=1e-4, y_max=1 - 1e-4).fit(raw, y)
        return cls("isotonic", {"x": iso.X_thresholds_.tolist(), "y": iso.y_thresholds_.tolist()})

    @classmethod
    def choose(cls, raw: np.ndarray, y: np.ndarray, seed: int) -> Calibration:
        """Platt or isotonic, whichever has the lower 3-fold log loss here; refit on all rows."""
        folds = StratifiedKFold(3, shuffle=True, random_state=seed).split(raw, y)
        losses = {"platt": [], "isotonic": []}
        for fit_idx, eval_idx in folds:
            for method in losses:
                cal = cls.fit(raw[fit_idx], y[fit_idx], method)
                p = np.clip(cal.apply(raw[eval_idx]), 1e-6, 1 - 1e-6)
                losses[method].append(log_loss(y[eval_idx], p, labels=[0, 1]))
        best = min(losses, key=lambda m: np.mean(losses[m]))
        return cls.fit(raw, y, best)


@dataclass
class TrainedModel:
    """A booster with what it needs to score a feature table: columns, categories, calibration."""

    booster: lgb.Booster
    features: list[str]
    categories: dict[str, list[str]]
    calibration: Calibration
    meta: dict[str, Any] = field(default_factory=dict)

    def frame(self, df: pd.DataFrame) -> pd.DataFrame:
        """The model's columns in its order; categories as trained (unknown → missing). A column
        the model was trained on must be present: a missing one is an error, not a silent gap."""
        missing = [name for name in self.features if name not in df]
        if missing:
            raise ValueError(
                f"the feature table lacks {len(missing)} column(s) the model was trained on, "
                f"e.g. {', '.join(missing[:5])}"
            )
        out = pd.DataFrame(index=df.index)
        for name in self.features:
            col = df[name]
            if name in self.categories:
                out[name] = pd.Categorical(col.astype("object"), categories=self.categories[name])
            else:
                out[name] = pd.to_numeric(col, errors="coerce").astype("float64")
        return out

    def raw(self, df: pd.DataFrame) -> np.ndarray:
        return self.booster.predict(self.frame(df), raw_score=True)

    def predict(self, df: pd.DataFrame) -> np.ndarray:
        """Calibrated probabilities, one per row."""
        return self.calibration.apply(self.raw(df))

    def contributions(self, df: pd.DataFrame) -> np.ndarray:
        """Exact TreeSHAP contributions in log-odds: one column per feature, then the bias."""
        return self.booster.predict(self.frame(df), pred_contrib=True)

    def save(self, folder: Path | str) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        write_text(self.booster.model_to_string(), folder / BOOSTER_FILE)
        meta = {
            "features": self.features,
            "categories": self.categories,
            "calibration": {"method": self.calibration.method, **self.calibration.params},
            **self.meta,
        }
        write_text(json.dumps(meta, indent=1, default=str), folder / META_FILE)
        return folder

    @classmethod
    def load(cls, folder: Path | str) -> TrainedModel:
        folder = Path(folder)
        meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
        booster = lgb.Booster(model_str=(folder / BOOSTER_FILE).read_text(encoding="utf-8"))
        cal = meta.pop("calibration")
        calibration = Calibration(cal.pop("method"), cal)
        return cls(booster, meta.pop("features"), meta.pop("categories"), calibration, meta)
