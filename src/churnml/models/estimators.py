"""The candidate models for a target and how each is fitted: LightGBM with settings scaled to
the size of the book, and a regularised logistic regression.

A *recipe* is a family and its settings. `candidates` lists the small, bounded search that
training judges on its validation folds; `fit` fits one recipe on prepared rows (see
`TrainedModel.frame`), early-stopped on a validation part when one is given.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from churnml.config import ModelConfig
from churnml.models.artifact import Estimator, Linear, Trees


@dataclass(frozen=True)
class Recipe:
    """A model family and its settings."""

    family: str  # "lightgbm" or "logistic_regression"
    params: dict[str, float] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.family}(" + ", ".join(f"{k}={v:g}" for k, v in self.params.items()) + ")"


def leaf_size(rows: int) -> int:
    """LightGBM's min_data_in_leaf for a book of `rows` training rows: about 1/150 of the rows,
    at least 20 and at most 1,000, so a small book still gets splits and a big one stays smooth."""
    return int(np.clip(round(rows / 150), 20, 1000))


def candidates(cfg: ModelConfig, rows: int) -> list[Recipe]:
    """The recipes to judge on validation, simplest first: three strengths of logistic
    regression, then a few LightGBM shapes around the book's leaf size (fixed settings from the
    config replace the search)."""
    out = []
    if "logistic_regression" in cfg.families:
        strengths = (0.03, 0.3, 3.0) if cfg.search else (0.3,)
        out += [Recipe("logistic_regression", {"C_per_1k_rows": c}) for c in strengths]
    if "lightgbm" in cfg.families:
        leaf = cfg.min_data_in_leaf or leaf_size(rows)
        shapes = [(4, leaf, 1.0), (8, leaf, 1.0), (16, 2 * leaf, 5.0)]
        if cfg.num_leaves or cfg.min_data_in_leaf or not cfg.search:
            shapes = [(cfg.num_leaves or 15, leaf, cfg.lambda_l2)]
        out += [Recipe("lightgbm", {"num_leaves": n, "min_data_in_leaf": m, "lambda_l2": l2})
                for n, m, l2 in shapes]  # fmt: skip
    return out


def _lgb_params(recipe: Recipe, cfg: ModelConfig, y: np.ndarray) -> dict[str, Any]:
    pos = max(float(y.sum()), 1.0)
    return {
        "objective": "binary",
        "metric": "auc",
        "learning_rate": cfg.learning_rate,
        "feature_fraction": cfg.feature_fraction,
        "bagging_fraction": cfg.bagging_fraction,
        "bagging_freq": 1,
        # Rare positives weigh more (square root of the imbalance); calibration undoes the shift.
        "scale_pos_weight": float(np.sqrt(max(len(y) - pos, 1.0) / pos)),
        "seed": cfg.seed,
        "deterministic": True,
        "force_row_wise": True,
        "num_threads": 2,
        "verbosity": -1,
        **{k: int(v) if k != "lambda_l2" else float(v) for k, v in recipe.params.items()},
    }


Rows = tuple[pd.DataFrame, np.ndarray]


def fit(
    recipe: Recipe,
    x: pd.DataFrame,
    y: np.ndarray,
    cfg: ModelConfig,
    valid: Sequence[Rows] = (),
    rounds: int | None = None,
) -> tuple[Estimator, list[int]]:
    """Fit `recipe` on prepared rows; return the estimator and, for LightGBM given validation
    sets, the best round on each (trained until none has improved for early_stopping_rounds);
    else LightGBM's rounds (`rounds`, or the configured maximum), and none for a linear model."""
    if recipe.family == "logistic_regression":
        # Strength per row, so that a value chosen on a fold means the same on a bigger refit.
        c = recipe.params["C_per_1k_rows"] * len(y) / 1000
        return fit_linear(x, y, c, cfg.seed), []
    train_set = lgb.Dataset(x, y, free_raw_data=False)
    params = _lgb_params(recipe, cfg, y)
    if not valid:
        booster = lgb.train(params, train_set, num_boost_round=rounds or cfg.max_rounds)
        return Trees(booster), [booster.current_iteration()]
    curves = _Curves(cfg.early_stopping_rounds)
    booster = lgb.train(
        params, train_set, num_boost_round=cfg.max_rounds, callbacks=[curves],
        valid_sets=[lgb.Dataset(vx, vy, reference=train_set) for vx, vy in valid],
        valid_names=[str(k) for k in range(len(valid))],
    )  # fmt: skip
    return Trees(booster), curves.best()


class _Curves:
    """A LightGBM callback: each validation set's metric by round; stops the training once none
    of them has improved for `patience` rounds (LightGBM's own stops at the first that has not)."""

    def __init__(self, patience: int) -> None:
        self.patience = patience
        self.scores: dict[str, list[float]] = {}

    def __call__(self, env: lgb.callback.CallbackEnv) -> None:
        for name, _, score, _ in env.evaluation_result_list:
            self.scores.setdefault(name, []).append(score)
        if all(len(s) - 1 - int(np.argmax(s)) >= self.patience for s in self.scores.values()):
            # Every round kept (LightGBM keeps those up to the one named here).
            raise lgb.callback.EarlyStopException(env.iteration, env.evaluation_result_list)

    def best(self) -> list[int]:
        """Each validation set's best round (the first of equals; counted from 1)."""
        return [int(np.argmax(s)) + 1 for s in self.scores.values()]


def fit_linear(x: pd.DataFrame, y: np.ndarray, c: float, seed: int) -> Linear:
    """L2-regularised logistic regression (strength 1/c) on standardised numeric values (missing →
    median, plus an indicator where any is missing) and one-hot categories."""
    blocks, terms = [], {}
    for name in x.columns:
        col = x[name]
        if isinstance(col.dtype, pd.CategoricalDtype):
            onehot = pd.get_dummies(col, dtype=float).to_numpy()
            terms[name] = {"levels": list(col.cat.categories), "shares": onehot.mean(axis=0)}
            blocks.append(onehot)
            continue
        v = col.to_numpy(dtype=float)
        missing = np.isnan(v)
        median = float(np.nanmedian(v)) if (~missing).any() else 0.0
        filled = np.where(missing, median, v)
        mean, scale = float(filled.mean()), float(filled.std()) or 1.0
        terms[name] = {"median": median, "mean": mean, "scale": scale,
                       "missing_share": float(missing.mean())}  # fmt: skip
        blocks.append(((filled - mean) / scale)[:, None])
        blocks.append(missing[:, None].astype(float))
    design = np.hstack(blocks) if blocks else np.zeros((len(x), 0))
    model = LogisticRegression(C=c, max_iter=5000, random_state=seed).fit(design, y)
    coef, at = model.coef_[0], 0
    for t in terms.values():
        if "levels" in t:
            k = len(t["levels"])
            t["coefs"], t["shares"] = coef[at : at + k].tolist(), list(map(float, t["shares"]))
            at += k
        else:
            t["coef"], t["missing_coef"] = float(coef[at]), float(coef[at + 1])
            at += 2
    return Linear(terms, float(model.intercept_[0]))
