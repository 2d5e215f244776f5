"""Train and evaluate one target: time split, LightGBM + calibration, baselines, backtests, oracle.

Input is a feature table (one row per account_id and as_of, label columns included), as written
by `churnml features` or brought by the user. Nothing here talks to MLflow (see `registry`).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from churnml.config import Config
from churnml.features.catalogue import Feature
from churnml.models.artifact import Calibration, TrainedModel
from churnml.models.metrics import evaluate_by_segment

log = logging.getLogger(__name__)

KEYS = ["account_id", "as_of"]


class TrainingError(ValueError):
    """The data cannot support the requested training (too few dates, one class, …)."""


@dataclass
class Dataset:
    """Rows with a known label, the feature columns, and which of them are categorical."""

    frame: pd.DataFrame
    target: str
    features: list[str]
    categorical: list[str]

    @property
    def y(self) -> np.ndarray:
        return self.frame[self.target].to_numpy(dtype=float)


@dataclass
class Split:
    """Boolean row masks for the three parts, and what they cover."""

    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray
    kind: str  # "time" or "stratified"
    dates: dict[str, str] = field(default_factory=dict)


def make_dataset(
    frame: pd.DataFrame,
    target: str,
    features: list[str],
    drop: pd.Series | None = None,
) -> Dataset:
    """Rows whose `target` is known (and not in `drop`), with string columns as categoricals."""
    keep = frame[target].notna()
    if drop is not None:
        keep &= ~drop.fillna(False).astype(bool)
    df = frame.loc[keep].reset_index(drop=True)
    df["as_of"] = pd.to_datetime(df["as_of"])
    if df.empty:
        raise TrainingError(f"no rows with a known {target}")
    categorical = [c for c in features if not pd.api.types.is_numeric_dtype(df[c])]
    return Dataset(df, target, features, categorical)


# -- splits --------------------------------------------------------------------------------------
def time_split(
    as_of: pd.Series, horizon_days: int, test_dates: int, valid_dates: int, end: int = 0
) -> Split:
    """Train → gap → validation → gap → test, cut by as_of. Each gap is one horizon, so no label
    window of one part reaches into the next. `end` drops that many latest dates (backtests)."""
    dates = sorted(as_of.unique())
    if end:
        dates = dates[:-end]
    gap = pd.Timedelta(days=horizon_days)
    test = dates[-test_dates:]
    valid = [d for d in dates if d <= test[0] - gap][-valid_dates:]
    train = [d for d in dates if valid and d <= valid[0] - gap]
    if not valid or not train:
        raise TrainingError(
            f"{len(dates)} labelled as_of dates cannot hold train, validation and test parts "
            f"with {horizon_days}-day gaps; need about {test_dates + valid_dates + 2} months "
            "of labelled snapshots plus two horizons"
        )
    span = {name: f"{part[0]:%Y-%m-%d} … {part[-1]:%Y-%m-%d}"
            for name, part in (("train", train), ("valid", valid), ("test", test))}  # fmt: skip
    values = as_of.to_numpy()
    return Split(
        np.isin(values, train), np.isin(values, valid), np.isin(values, test), "time", span
    )


def stratified_split(y: np.ndarray, seed: int) -> Split:
    """60/20/20 by label: only for a table with a single as_of (no time to cut by)."""
    idx = np.arange(len(y))
    train, rest = train_test_split(idx, test_size=0.4, stratify=y, random_state=seed)
    valid, test = train_test_split(rest, test_size=0.5, stratify=y[rest], random_state=seed)
    masks = [np.isin(idx, part) for part in (train, valid, test)]
    return Split(*masks, kind="stratified")


# -- estimators ------------------------------------------------------------------------------------
def _lgb_params(cfg: Config, y: np.ndarray) -> dict:
    m = cfg.model
    pos = max(y.sum(), 1.0)
    return {
        "objective": "binary",
        "metric": "auc",
        "learning_rate": m.learning_rate,
        "num_leaves": m.num_leaves,
        "min_data_in_leaf": m.min_data_in_leaf,
        "feature_fraction": m.feature_fraction,
        "bagging_fraction": m.bagging_fraction,
        "bagging_freq": 1,
        "lambda_l2": m.lambda_l2,
        # Rare positives weigh more (square root of the imbalance); calibration undoes the shift.
        "scale_pos_weight": float(np.sqrt((len(y) - pos) / pos)),
        "seed": m.seed,
        "deterministic": True,
        "force_row_wise": True,
        "num_threads": 2,
        "verbosity": -1,
    }


def fit_model(ds: Dataset, split: Split, cfg: Config) -> TrainedModel:
    """LightGBM on train, early-stopped and calibrated on validation."""
    df, y = ds.frame, ds.y
    cats = {c: sorted(df.loc[split.train, c].dropna().astype(str).unique()) for c in ds.categorical}
    template = TrainedModel(None, ds.features, cats, Calibration("platt", {"a": 1.0, "b": 0.0}))  # type: ignore[arg-type]
    x_train, x_valid = template.frame(df[split.train]), template.frame(df[split.valid])
    train_set = lgb.Dataset(x_train, y[split.train], free_raw_data=False)
    valid_set = lgb.Dataset(x_valid, y[split.valid], reference=train_set)
    booster = lgb.train(
        _lgb_params(cfg, y[split.train]),
        train_set,
        num_boost_round=cfg.model.max_rounds,
        valid_sets=[valid_set],
        callbacks=[lgb.early_stopping(cfg.model.early_stopping_rounds, verbose=False)],
    )
    template.booster = booster
    raw_valid = template.raw(df[split.valid])
    template.calibration = Calibration.choose(raw_valid, y[split.valid], cfg.model.seed)
    template.meta = {
        "target": ds.target,
        "best_iteration": booster.best_iteration,
        "base_rate": float(y[split.train].mean()),
        "trained_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    return template


def logistic_baseline(ds: Dataset, split: Split) -> np.ndarray:
    """Logistic regression on standardised numeric features (+ one-hot segment), on test rows."""
    numeric = [c for c in ds.features if c not in ds.categorical]
    x = ds.frame[numeric].astype(float)
    if "segment" in ds.frame:
        x = x.join(pd.get_dummies(ds.frame["segment"].astype(str), prefix="segment", dtype=float))
    pipe = make_pipeline(
        SimpleImputer(strategy="median", keep_empty_features=True),
        StandardScaler(),
        LogisticRegression(max_iter=2000, C=1.0),
    )
    pipe.fit(x[split.train], ds.y[split.train])
    return pipe.predict_proba(x[split.test])[:, 1]


def health_score(ds: Dataset, split: Split, weights: dict[str, float],
                 catalogue: dict[str, Feature]) -> np.ndarray:  # fmt: skip
    """The configured rule-based health score (0–1, higher is healthier) for every row."""
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
    if not total:
        raise TrainingError("none of the health-score features is in the data")
    return score / total


def health_baseline(ds: Dataset, split: Split, cfg: Config, catalogue: dict[str, Feature],
                    risk: bool) -> np.ndarray:  # fmt: skip
    """Health score as a probability: Platt-scaled on validation (risk = 1 − health for churn)."""
    h = health_score(ds, split, cfg.health_score.weights, catalogue)
    signal = 1 - h if risk else h
    cal = Calibration.fit(signal[split.valid], ds.y[split.valid], "platt")
    return cal.apply(signal[split.test])


# -- one target, end to end ----------------------------------------------------------------------
@dataclass
class TargetResult:
    """Everything learnt and measured for one target."""

    name: str
    model: TrainedModel
    split: Split
    test: pd.DataFrame  # KEYS, segment, arr, y, p_<model> for each model on the test rows
    metrics: dict[str, dict[str, dict[str, float]]]  # model → segment → metric
    backtests: list[dict[str, float | str]]
    importance: pd.DataFrame  # segment × feature: mean |SHAP| on test rows
    test_rows: pd.DataFrame  # the test rows as given (features included)


def _segment(df: pd.DataFrame) -> pd.Series:
    return df["segment"].astype(str) if "segment" in df else pd.Series("all", index=df.index)


def _arr(df: pd.DataFrame) -> pd.Series:
    return df["arr"].astype(float).fillna(0.0) if "arr" in df else pd.Series(1.0, index=df.index)


def importance_by_segment(model: TrainedModel, df: pd.DataFrame) -> pd.DataFrame:
    """Mean absolute TreeSHAP contribution (log-odds) per feature, overall and per segment."""
    contrib = pd.DataFrame(
        model.contributions(df)[:, :-1], columns=model.features, index=df.index
    ).abs()
    table = contrib.groupby(_segment(df)).mean().T
    table.insert(0, "all", contrib.mean())
    return table.sort_values("all", ascending=False)


def train_target(
    name: str,
    ds: Dataset,
    cfg: Config,
    horizon_days: int,
    catalogue: dict[str, Feature],
    truth: pd.Series | None = None,
) -> TargetResult:
    """Fit, calibrate, compare with baselines (and the oracle, given the truth), and backtest."""
    single_date = ds.frame["as_of"].nunique() == 1
    if single_date:
        log.warning("only one as_of in the data: falling back to a STRATIFIED RANDOM split; "
                    "test metrics will be optimistic compared with a time split")  # fmt: skip
        split = stratified_split(ds.y, cfg.model.seed)
    else:
        split = time_split(
            ds.frame["as_of"], horizon_days, cfg.model.test_dates, cfg.model.valid_dates
        )
    if len(np.unique(ds.y[split.train])) < 2:
        raise TrainingError(f"{ds.target}: the training rows hold a single class")
    model = fit_model(ds, split, cfg)
    test_df = ds.frame[split.test]
    preds = {
        "lightgbm": model.predict(test_df),
        "logistic_regression": logistic_baseline(ds, split),
        "health_score": health_baseline(ds, split, cfg, catalogue, risk=name == "churn"),
    }
    if truth is not None:
        preds["oracle"] = truth[split.test].to_numpy()
    test = test_df[KEYS].assign(segment=_segment(test_df), arr=_arr(test_df), y=ds.y[split.test])
    for key, p in preds.items():
        test[f"p_{key}"] = p
    metrics = {key: evaluate_by_segment(test.y.to_numpy(), p, test.arr.to_numpy(), test.segment)
               for key, p in preds.items() if not np.isnan(p).any()}  # fmt: skip
    backtests = [] if single_date else _backtest(ds, cfg, horizon_days, truth)
    importance = importance_by_segment(model, test_df)
    return TargetResult(name, model, split, test, metrics, backtests, importance, test_df)


def _backtest(ds: Dataset, cfg: Config, horizon_days: int, truth: pd.Series | None) -> list[dict]:
    """Repeat train → test at earlier cut-offs (each test window moved back by its length)."""
    out = []
    for k in range(1, cfg.model.backtests + 1):
        try:
            split = time_split(ds.frame["as_of"], horizon_days, cfg.model.test_dates,
                               cfg.model.valid_dates, end=k * cfg.model.test_dates)  # fmt: skip
        except TrainingError as exc:
            log.warning("backtest %d skipped: %s", k, exc)
            break
        model = fit_model(ds, split, cfg)
        test = ds.frame[split.test]
        m = evaluate_by_segment(ds.y[split.test], model.predict(test), _arr(test).to_numpy(),
                                _segment(test))["all"]  # fmt: skip
        row = {
            "cutoff": split.dates["test"],
            **{k2: m[k2] for k2 in ("roc_auc", "log_loss", "ece")},
        }
        if truth is not None:
            oracle = evaluate_by_segment(ds.y[split.test], truth[split.test].to_numpy(),
                                         _arr(test).to_numpy(), _segment(test))["all"]  # fmt: skip
            row["oracle_roc_auc"] = oracle["roc_auc"]
        out.append(row)
    return out
