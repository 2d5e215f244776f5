"""`churnml train` as a function: features → one model per target → MLflow, with the gate."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import ibis.expr.types as ir
import pandas as pd
from mlflow.exceptions import MlflowException

from churnml.config import Config
from churnml.data import load
from churnml.data.sources import read_frame
from churnml.features.build import build_features, with_key_events
from churnml.features.catalogue import Feature, by_name
from churnml.features.labels import default_as_of, label_columns
from churnml.features.signing import SIGNING_FEATURES, profiles, signing_table
from churnml.features.truth import load_signing_truth, load_truth
from churnml.forecast.revenue import backtest, learn, levels, summary
from churnml.models.registry import (
    Promotion,
    TrackingUnavailableError,
    check_tracking,
    log_training,
    save_unregistered,
)
from churnml.models.splits import TrainingError, cohort_split
from churnml.models.train import (
    KEYS,
    TargetResult,
    make_dataset,
    sampled,
    train_target,
    trainable,
)
from churnml.scoring.explain import stated_reasons
from churnml.vocabulary import FIRST_YEAR_DAYS, FIT, LOST_FIRST_YEAR, SIGNING_ORACLE, oracle_column

log = logging.getLogger(__name__)
SIGNING_GAP_DAYS = 1  # the fit model's time split keeps cohorts in order (see `train_fit`)


@dataclass
class TrainReport:
    run_id: str
    results: list[TargetResult]
    promotions: list[Promotion]
    skipped: dict[str, str]  # target → why it was not trained
    rows: int
    seconds: float


def fingerprint(frame: pd.DataFrame) -> str:
    """A short hash of the training table's content."""
    digest = hashlib.sha256(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()[:16]


Tables = dict[str, ir.Table]


def training_data(data_dir: Path | str, cfg: Config,
                  check: bool = True) -> tuple[pd.DataFrame, Config, Tables]:  # fmt: skip
    """Features and labels at every observation date of the data (a DataFrame), `cfg` with its
    key events fixed on the data (see `with_key_events`), and the tables, loaded once."""
    tables = load(data_dir, cfg.data, check=check)
    dates = default_as_of(tables, cfg.labels.snapshot_every)
    cfg = with_key_events(cfg, tables, max(dates))
    frame = build_features(tables, as_of=dates, cfg=cfg).execute()
    frame["as_of"] = pd.to_datetime(frame["as_of"])
    return frame, cfg, tables


def training_table(data_dir: Path | str, cfg: Config, check: bool = True) -> pd.DataFrame:
    """Features and labels at every observation date of the data, as a DataFrame."""
    return training_data(data_dir, cfg, check)[0]


def keyed_config(data_dir: Path | str, cfg: Config) -> Config:
    """`cfg` with its key events fixed on the training data (see `with_key_events`)."""
    tables = load(data_dir, cfg.data, check=False)
    return with_key_events(cfg, tables, max(default_as_of(tables, cfg.labels.snapshot_every)))


def _known_by(frame: pd.DataFrame, until: dt.date, days: int) -> pd.Series:
    return frame["as_of"] + pd.Timedelta(days=days) <= pd.Timestamp(until)


def train(
    cfg: Config,
    *,
    data_dir: Path | str | None = None,
    features_path: Path | str | None = None,
    target: str | None = None,
    train_until: dt.date | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> TrainReport:
    """Train, evaluate and register. Give a data folder (features are built, every target
    trained), or a feature table and the one label column to train on."""
    began = time.perf_counter()
    check_tracking(cfg.registry)  # before any work: a server that is down loses nothing
    labels = cfg.labels
    names = label_columns(labels)
    if features_path is not None:
        if not target:
            raise TrainingError("--features needs --target COLUMN (the label to learn)")
        try:
            frame = read_frame(features_path)
        except (ValueError, OSError, UnicodeDecodeError) as exc:
            raise TrainingError(f"{features_path}: not a readable Parquet, CSV or Excel file "
                                f"({exc})") from None  # fmt: skip
        missing = {*KEYS, target} - set(frame.columns)
        if missing:
            raise TrainingError(f"{features_path}: columns missing: {sorted(missing)}")
        frame["as_of"] = pd.to_datetime(frame["as_of"])
        cat = by_name(cfg.features)
        features = [c for c in frame.columns if c not in {*KEYS, target, *names.values()}]
        jobs = {target: (target, None, labels.horizon_days)}
    else:
        if data_dir is None:
            raise TrainingError("train needs --data DIR or --features FILE")
        progress("building features")
        frame, cfg, tables = training_data(data_dir, cfg)
        cat = by_name(cfg.features)
        features = [f for f in cat if f in frame.columns]
        involuntary = frame[names["involuntary"]] == 1 if labels.exclude_involuntary else None
        jobs = {
            "churn": (names["churn"], involuntary, labels.horizon_days + labels.grace_days),
            "expansion": (names["expansion"], None, labels.horizon_days),
        }
    truth = load_truth(data_dir) if data_dir is not None else None
    if truth is not None:
        frame = frame.merge(truth, on=KEYS, how="left")
    results, skipped = [], {}
    for name, (column, drop, reach) in jobs.items():
        progress(f"training {name}")
        rows = frame if train_until is None else frame[_known_by(frame, train_until, reach)]
        try:
            dropped = None if drop is None else drop.loc[rows.index]
            ds = sampled(make_dataset(rows, column, features, dropped), cfg.model.max_rows,
                         cfg.model.seed)  # fmt: skip
        except TrainingError as exc:
            skipped[name] = str(exc)
            continue
        why = trainable(ds, cfg.model.min_positives)
        if why:
            skipped[name] = why
            log.info("%s is not trained: %s", name, why)
            continue
        if ds.labelled:
            progress(f"training {name} on a sample of {len(ds.frame):,} of {ds.labelled:,} rows")
            log.warning("%s: %s labelled rows, more than model.max_rows: fitted and judged on %s "
                        "of them, the same share of every (as_of, label) cell", name,
                        f"{ds.labelled:,}", f"{len(ds.frame):,}")  # fmt: skip
        oracle = ds.frame.get(oracle_column(column)) if truth is not None else None
        try:
            result = train_target(name, ds, cfg, labels.horizon_days, cat, oracle)
        except TrainingError as exc:
            skipped[name] = str(exc)
            log.info("%s is not trained: %s", name, exc)
            continue
        for model in (result.model, result.evaluation):  # scoring builds the same columns
            model.meta["key_events"] = list(cfg.features.key_events or ())
        results.append(result)
    if features_path is None:
        progress("training fit (at signing)")
        fit = train_fit(data_dir, cfg, tables, train_until)
        if isinstance(fit, str):
            skipped[FIT] = fit
            log.info("fit is not trained: %s", fit)
        else:
            results.append(fit)
    if not results:
        raise TrainingError("no target can be trained: " + "; ".join(skipped.values()))
    revenue = None
    if features_path is None and any(r.name == "churn" for r in results):
        progress("backtesting the revenue forecast")
        revenue = _revenue(frame, results, cfg)
        churn = next(r for r in results if r.name == "churn")
        churn.model.meta["forecast"] = revenue[0]
        churn.model.meta["stated_reasons"] = _stated(frame, churn, cfg)
    progress("logging to MLflow")
    params = {
        "data": str(data_dir or features_path),
        "data_fingerprint": fingerprint(frame[[*KEYS, *features]]),
        "rows": len(frame),
        "features": len(features),
        "train_until": str(train_until or ""),
        **{f"{r.name}_label_rate": round(float(r.test.y.mean()), 5) for r in results},
    }
    params |= {f"{name}_skipped": why[:250] for name, why in skipped.items()}
    try:
        run_id, promotions = log_training(results, cfg, _used(cat, features), params,
                                          revenue and revenue[1],
                                          built=features_path is None)  # fmt: skip
    except (MlflowException, OSError) as exc:  # the server went down: keep the work
        kept = save_unregistered(results, Path(time.strftime("churnml-unregistered-%Y%m%d-%H%M%S")))
        reason = str(exc).splitlines()[0][:200]
        raise TrackingUnavailableError(
            f"training finished, but MLflow failed while logging it ({reason}); the models are "
            f"kept in {kept.resolve()}: register them when the tracking server is back, with "
            f"`churnml register {kept}`"
        ) from None
    return TrainReport(
        run_id, results, promotions, skipped, len(frame), time.perf_counter() - began
    )


def train_fit(data_dir: Path | str, cfg: Config, tables: Tables | None = None,
              train_until: dt.date | None = None) -> TargetResult | str:  # fmt: skip
    """The fit model on what is known at signing (`features.signing`), or why it cannot be
    trained. Each account is one row: the test part is the latest labelled signing months
    (`fit.test_months`), fitted on the months before them (whose first years may end after the
    test months signed: no horizon between the parts), chosen in random folds (`cohort_split`)."""
    tables = tables or load(data_dir, cfg.data, check=False)
    frame = signing_table(tables, cfg.labels)
    reach = pd.Timedelta(days=FIRST_YEAR_DAYS + cfg.labels.grace_days)
    if train_until is not None:
        frame = frame[frame["signed_at"] + reach <= pd.Timestamp(train_until)]
    if frame[LOST_FIRST_YEAR].notna().sum() == 0:
        return (f"{LOST_FIRST_YEAR}: no account's first {FIRST_YEAR_DAYS} days (and the "
                f"{cfg.labels.grace_days}-day grace) end inside the data yet")  # fmt: skip
    features = [c for c in SIGNING_FEATURES if c in frame]
    ds = make_dataset(frame, LOST_FIRST_YEAR, features, frame["involuntary"] == 1)
    why = trainable(ds, cfg.model.min_positives)
    if why:
        return why
    truth = load_signing_truth(data_dir)
    oracle = None if truth is None else ds.frame[["account_id"]].merge(
        truth, on="account_id", how="left")[SIGNING_ORACLE]  # fmt: skip
    model = cfg.model.model_copy(update={"test_dates": cfg.fit.test_months})
    try:
        one = ds.frame["as_of"].nunique() == 1  # one signing month: a stratified split
        split = None if one else cohort_split(ds.frame["as_of"], ds.y, model)
        result = train_target(FIT, ds, cfg.model_copy(update={"model": model}),
                              SIGNING_GAP_DAYS, {}, oracle, split)  # fmt: skip
    except TrainingError as exc:
        return f"{LOST_FIRST_YEAR}: {exc}"
    result.model.meta["profiles"] = profiles(frame, cfg.fit.min_profile_accounts)
    return result


def _revenue(frame: pd.DataFrame, results: list[TargetResult],
             cfg: Config) -> tuple[dict[str, object], pd.DataFrame]:  # fmt: skip
    """The revenue forecast's history (for scoring) and its backtest at the cut-offs where both
    models made out-of-time predictions: (meta["forecast"] of the churn model, the backtest)."""
    names, reach = label_columns(cfg.labels), cfg.labels.horizon_days + cfg.labels.grace_days
    preds = {r.name: r.predictions.rename(columns={"p": f"{r.name}_probability"}) for r in results}
    both = preds["churn"]
    if "expansion" in preds:
        dates = set(preds["expansion"]["as_of"])
        both = both[both["as_of"].isin(dates)].merge(preds["expansion"], on=KEYS, how="left")
    else:
        both = both.assign(expansion_probability=float("nan"))
    backtested = backtest(frame, both, names, reach, cfg.forecast.draws, cfg.model.seed)
    history = learn(frame, names)
    if len(backtested):
        history = replace(history, levels=levels(backtested))
    return {"history": history.as_dict(), "backtest": summary(backtested)}, backtested


def _stated(frame: pd.DataFrame, churn: TargetResult, cfg: Config) -> dict[str, dict[str, int]]:
    """Cancel reasons stated by churned accounts beside the model's main family in the months
    before (each churn once: the mean of its snapshots' contributions)."""
    names = label_columns(cfg.labels)
    rows = frame[(frame[names["churn"]] == 1) & frame[names["reason"]].notna()]
    if rows.empty:
        return {}
    model = churn.model
    logodds = pd.DataFrame(model.contributions(rows)[:, : len(model.features)],
                           columns=model.features, index=rows.index)  # fmt: skip
    per_churn = logodds.groupby([rows["account_id"], rows[names["reason"]]]).mean()
    reasons = per_churn.index.get_level_values(1).to_series(index=per_churn.index)
    return stated_reasons(reasons, per_churn, by_name(cfg.features))


def _used(cat: dict[str, Feature], features: list[str]) -> dict[str, Feature]:
    return {name: f for name, f in cat.items() if name in features}
