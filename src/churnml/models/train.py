"""Train and evaluate one target: split by time, choose the model on validation, measure it on
the test part, then refit it on every labelled row for production.

1. **Split** (`time_split`): the latest labelled dates are the test part; the training span ends
   one horizon before them; inside it, time-ordered validation folds (each fits on dates one
   horizon before its validation block). Every part shrinks to what the history holds.
2. **Choose** (`select`): each candidate of `estimators.candidates` is fitted on every fold and
   judged by its mean validation ROC-AUC; LightGBM's rounds come from early stopping on one half
   of the validation accounts, judged on the other.
3. **Evaluation fit**: the chosen recipe refitted on the whole training span, calibrated on its
   out-of-fold validation scores, measured on the test part beside plain references (a logistic
   regression, the rule-based health score, the oracle when known), with a bootstrap interval.
4. **Production fit**: the same recipe and rounds on every labelled row, calibrated on all the
   out-of-sample scores above. This is the model that is registered and scored with.

Input is a feature table (one row per account_id and as_of, label columns included). Nothing here
talks to MLflow (see `registry`).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from churnml.config import Config, ModelConfig
from churnml.data.contract import BOOK
from churnml.features.catalogue import Feature
from churnml.models.artifact import Calibration, TrainedModel
from churnml.models.estimators import Recipe, candidates, fit
from churnml.models.metrics import auc_interval, evaluate_by_segment
from churnml.models.references import (
    health_baseline,
    logistic_baseline,
    rate_baselines,
    segment_of,
)
from churnml.models.splits import (
    Split,
    TrainingError,
    stratified_split,
    time_split,
)
from churnml.monitoring.drift import reference
from churnml.vocabulary import KEYS, label_names

log = logging.getLogger(__name__)



@dataclass
class Dataset:
    """Rows with a known label, the feature columns, and which of them are categorical."""

    frame: pd.DataFrame
    target: str
    features: list[str]
    categorical: list[str]
    labelled: int | None = None  # rows with a known label before sampling (None: not sampled)

    @property
    def y(self) -> np.ndarray:
        return self.frame[self.target].to_numpy(dtype=float)


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
        raise TrainingError(f"{target}: no rows with a known label")
    categorical = [c for c in features if not pd.api.types.is_numeric_dtype(df[c])]
    return Dataset(df, target, features, categorical)


def sampled(ds: Dataset, max_rows: int, seed: int) -> Dataset:
    """`ds` itself up to `max_rows` rows; past it, about `max_rows` of them: the same share of
    every (as_of, label) cell, so base rates, dates and the time split keep their shape."""
    n = len(ds.frame)
    if n <= max_rows:
        return ds
    cells = ds.frame.groupby(["as_of", ds.target], sort=False, observed=True)
    keep = cells.sample(frac=max_rows / n, random_state=seed).index.sort_values()
    return replace(ds, frame=ds.frame.loc[keep].reset_index(drop=True), labelled=n)


def trainable(ds: Dataset, min_positives: int) -> str | None:
    """Why the target cannot be trained (a single class, too few positives), or None."""
    y = ds.y
    if len(np.unique(y)) < 2:
        return f"{ds.target}: every labelled row is {int(y[0])} (a single class)"
    positives, negatives = int(y.sum()), int(len(y) - y.sum())
    if min(positives, negatives) < min_positives:
        return (f"{ds.target}: {min(positives, negatives)} rows of the rarer class, fewer than "
                f"model.min_positives = {min_positives}")  # fmt: skip
    return None


# -- choosing and fitting ------------------------------------------------------------------------
@dataclass
class Choice:
    """The chosen recipe, its rounds, every candidate's pooled validation ROC-AUC, and the
    candidates behind it (recipe and rounds, best first)."""

    recipe: Recipe
    rounds: int | None
    scores: dict[str, float]
    behind: tuple[tuple[Recipe, int | None], ...] = ()

    def next(self) -> Choice | None:
        """The next candidate by validation ROC-AUC, if any."""
        if not self.behind:
            return None
        (recipe, rounds), *rest = self.behind
        return Choice(recipe, rounds, self.scores, tuple(rest))


def _categories(ds: Dataset, rows: np.ndarray) -> dict[str, list[str]]:
    return {c: sorted(ds.frame.loc[rows, c].dropna().astype(str).unique()) for c in ds.categorical}


def _template(ds: Dataset, rows: np.ndarray) -> TrainedModel:
    """A model shell that prepares frames with the categories seen in `rows`."""
    return TrainedModel(None, ds.features, _categories(ds, rows), Calibration("platt", {}))  # type: ignore[arg-type]


def select(ds: Dataset, split: Split, cfg: ModelConfig) -> Choice:
    """Fit every candidate on every fold and judge it by its validation ROC-AUC, pooled over the
    folds (`pooled_auc`: the same weights for every candidate); keep the best. LightGBM's
    rounds are chosen on one half of a fold's validation accounts and judged on the other, each
    way round (a round chosen on the rows it is judged on flatters LightGBM over a linear model,
    most on a small book); its rounds are the mean of the rounds chosen."""
    shell = _template(ds, split.train)
    x, y = shell.frame(ds.frame), ds.y
    cuts = [halves(ds, fold.valid, cfg.seed) for fold in split.folds]
    results = []
    for recipe in candidates(cfg, int(split.train.sum())):
        scores, rounds = [], []
        for fold, parts in zip(split.folds, cuts, strict=True):
            est, best = fit(recipe, x[fold.fit], y[fold.fit], cfg, [(x[p], y[p]) for p in parts])
            for k, judged in enumerate(parts):  # at the round chosen on the other half
                scores.append(est.raw(x[judged], best[-1 - k] if best else None))
            rounds += best
        score = pooled_auc([y[judged] for parts in cuts for judged in parts], scores)
        results.append((score, recipe, _mean_rounds(rounds)))
    ranked = sorted(results, key=lambda r: -r[0])  # stable: the first of equals, the simplest
    return Choice(ranked[0][1], ranked[0][2], {r[1].label: r[0] for r in results},
                  tuple((recipe, rounds) for _, recipe, rounds in ranked[1:]))


def _mean_rounds(rounds: list[int]) -> int | None:
    """LightGBM's rounds for a refit: the mean of those chosen (None: a linear model)."""
    return round(float(np.mean(rounds))) if rounds else None


def halves(ds: Dataset, rows: np.ndarray, seed: int) -> list[np.ndarray]:
    """`rows` (a mask) cut in two by account at random, each label's accounts alternating (an
    account's label: its highest), so that each half holds about half the positives; `rows`
    whole where a half would hold a single class (too few to cut)."""
    accounts = ds.frame["account_id"].to_numpy()
    label = pd.Series(ds.y[rows]).groupby(accounts[rows]).max()
    label = label.iloc[np.random.default_rng(seed).permutation(len(label))]
    first = label.index[(label.groupby(label).cumcount() % 2 == 0).to_numpy()]
    one = rows & np.isin(accounts, first)
    two = rows & ~one
    if min(len(np.unique(ds.y[one])), len(np.unique(ds.y[two]))) < 2:
        return [rows]
    return [one, two]


def pooled_auc(labels: list[np.ndarray], scores: list[np.ndarray]) -> float:
    """The ROC-AUCs of pieces (0/1 `labels`, `scores`), each weighted by its pairs of a positive
    and a negative row: the share of all the pieces' pairs ranked right, each piece ranked on its
    own. The weights do not depend on the scores (inverse-variance weights did: they grow as the
    AUC rises, and favoured a candidate whose pieces vary most). 0.5 when no piece has both
    classes."""
    pairs = np.array([y.sum() * (len(y) - y.sum()) for y in labels], dtype=float)
    if not pairs.any():
        return 0.5
    aucs = [roc_auc_score(y, p) if n else 0.0
            for y, p, n in zip(labels, scores, pairs, strict=True)]  # fmt: skip
    return float(np.dot(pairs, aucs) / pairs.sum())


def _blocks(dates: list, gap: pd.Timedelta, k: int) -> list[tuple[list, list]]:
    """k contiguous blocks of `dates`, each with the dates at least one gap away on both sides
    (purged: no training row shares a label window with a row of the block)."""
    out = []
    for block in np.array_split(np.asarray(dates), k):
        if len(block):
            rest = [d for d in dates if d <= block[0] - gap or d >= block[-1] + gap]
            out.append((rest, list(block)))
    return out


def fit_final(ds: Dataset, rows: np.ndarray, choice: Choice, m: ModelConfig,
              horizon_days: int) -> TrainedModel:  # fmt: skip
    """The chosen recipe on `rows` with the chosen rounds, calibrated on out-of-fold raw scores
    from purged blocks of the same rows' dates (models of about the same size as the final one)."""
    model = _template(ds, rows)
    x, y, as_of = model.frame(ds.frame), ds.y, ds.frame["as_of"].to_numpy()
    dates = sorted(ds.frame.loc[rows, "as_of"].unique())
    oof = np.full(len(y), np.nan)
    for rest, block in _blocks(dates, pd.Timedelta(days=horizon_days), m.folds):
        fit_rows, block_rows = rows & np.isin(as_of, rest), rows & np.isin(as_of, block)
        if len(np.unique(y[fit_rows])) == 2:
            est, _ = fit(choice.recipe, x[fit_rows], y[fit_rows], m, rounds=choice.rounds)
            oof[block_rows] = est.raw(x[block_rows])
    model.estimator, _ = fit(choice.recipe, x[rows], y[rows], m, rounds=choice.rounds)
    known = ~np.isnan(oof)
    if len(np.unique(y[known])) < 2:  # too short a history for any purged block
        log.warning("%s: no out-of-fold scores to calibrate on; calibrated in sample", ds.target)
        known, oof = rows, model.estimator.raw(x)
    model.calibration = Calibration.choose(oof[known], y[known], m.seed)
    return model


# -- one target, end to end ----------------------------------------------------------------------
@dataclass
class Skill:
    """Whether the model predicts better than chance and than the rule-based health score."""

    roc_auc: float
    low: float
    high: float
    health_roc_auc: float | None
    no_skill: bool
    reason: str

    def as_dict(self) -> dict[str, object]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass
class TargetResult:
    """Everything learnt and measured for one target."""

    name: str
    model: TrainedModel  # the production fit: every labelled row
    evaluation: TrainedModel  # the evaluation fit: the training span only
    split: Split
    choice: Choice
    test: pd.DataFrame  # KEYS, segment, arr, y, p_<model> for each model on the test rows
    metrics: dict[str, dict[str, dict[str, float]]]  # model → segment → metric
    skill: Skill
    backtests: list[dict[str, float | str]]
    importance: pd.DataFrame  # segment × feature: mean |contribution| on test rows
    test_rows: pd.DataFrame  # the test rows as given (features included)
    predictions: pd.DataFrame  # KEYS, p: out of time, on the test and the backtests' test rows


def _arr(df: pd.DataFrame) -> pd.Series:
    return df["arr"].astype(float).fillna(0.0) if "arr" in df else pd.Series(1.0, index=df.index)


def importance_bysegment_of(model: TrainedModel, df: pd.DataFrame) -> pd.DataFrame:
    """Mean absolute contribution (log-odds) per feature, overall and per segment."""
    contrib = pd.DataFrame(
        model.contributions(df)[:, :-1], columns=model.features, index=df.index
    ).abs()
    table = contrib.groupby(segment_of(df)).mean().T
    table.insert(0, BOOK, contrib.mean())
    return table.sort_values(BOOK, ascending=False)


def judge_skill(y: np.ndarray, p: np.ndarray, accounts: pd.Series, health: np.ndarray | None,
                cfg: ModelConfig) -> Skill:  # fmt: skip
    """No skill: the lower end of the 95% bootstrap interval of the test ROC-AUC (accounts
    resampled) is at or below 0.5, or the model does not beat the rule-based health score."""
    auc = float(roc_auc_score(y, p)) if len(np.unique(y)) == 2 else float("nan")
    low, high = auc_interval(y, p, accounts.to_numpy(), cfg.bootstrap, cfg.seed)
    health_auc = (float(roc_auc_score(y, health))
                  if health is not None and len(np.unique(y)) == 2 else None)  # fmt: skip
    reasons = []
    if not low > 0.5:
        reasons.append(f"the 95% interval of its test ROC-AUC ({low:.3f}–{high:.3f}) reaches 0.5")
    if health_auc is not None and not auc > health_auc:
        reasons.append(f"its test ROC-AUC {auc:.3f} does not beat the rule-based health score's "
                       f"{health_auc:.3f}")  # fmt: skip
    return Skill(auc, low, high, health_auc, bool(reasons), "; ".join(reasons))


def suspected_leak(target: str, auc: float, importance: pd.DataFrame,
                   catalogue: dict[str, Feature], m: ModelConfig) -> str | None:  # fmt: skip
    """Why a test ROC-AUC above `model.leak_auc` is taken for a leak, naming the strongest
    inputs (`importance`: features by mean |contribution|, largest first); None below it."""
    if not auc > m.leak_auc:
        return None
    top = [f"{n} ({catalogue[n].en})" if n in catalogue else n for n in importance.index[:3]]
    return (f"{target}: test ROC-AUC {auc:.3f} is too good to be true (above model.leak_auc = "
            f"{m.leak_auc:g}); most likely an input is filled in only once the outcome is known, "
            "such as a subscription's end_date recorded when it actually ended (the contract "
            "wants the scheduled end; an early end is canceled_at). Strongest inputs: "
            f"{'; '.join(top)}. Not registered; to keep it anyway, set model.leak_auc: 1")


def train_target(
    name: str,
    ds: Dataset,
    cfg: Config,
    horizon_days: int,
    catalogue: dict[str, Feature],
    truth: pd.Series | None = None,
    split: Split | None = None,
) -> TargetResult:
    """Choose, fit, measure (beside the references and the oracle, given the truth), backtest,
    then refit on every labelled row. The split is a time split unless given."""
    m = cfg.model
    if split is None and ds.frame["as_of"].nunique() == 1:
        log.warning("only one as_of in the data: falling back to a STRATIFIED RANDOM split; "
                    "test metrics will be optimistic compared with a time split")  # fmt: skip
        split = stratified_split(ds.y, m.seed)
    elif split is None:
        split = time_split(ds.frame["as_of"], horizon_days, m)
    if len(np.unique(ds.y[split.train])) < 2:
        raise TrainingError(f"{ds.target}: the training span holds a single class")
    choice = select(ds, split, m)
    evaluation = fit_final(ds, split.train, choice, m, horizon_days)
    flat = []
    while evaluation.calibration.flat and (after := choice.next()):
        flat.append(choice.recipe.label)
        choice, evaluation = after, fit_final(ds, split.train, after, m, horizon_days)
    if flat:
        log.warning("%s: %s ranked out-of-fold rows no better than chance, or backwards (a "
                    "calibration that gives every row the base rate); taking the next candidate "
                    "by validation, %s%s", ds.target, "; ".join(flat), choice.recipe.label,
                    ", which does too" if evaluation.calibration.flat else "")  # fmt: skip
    test_df = ds.frame[split.test]
    evaluation.meta = {"target": ds.target, "fit": "evaluation"}
    preds = {"churnml": evaluation.predict(test_df),
             "logistic_regression": logistic_baseline(ds, split), **rate_baselines(ds, split)}
    churns = {label_names(horizon_days)[role] for role in ("churn", "involuntary")}
    health = health_baseline(ds, split, cfg, catalogue, risk=ds.target in churns)
    if health is not None:
        preds["health_score"] = health
    if truth is not None:
        preds["oracle"] = truth[split.test].to_numpy()
    test = test_df[KEYS].assign(segment=segment_of(test_df), arr=_arr(test_df), y=ds.y[split.test])
    for key, p in preds.items():
        test[f"p_{key}"] = p
    metrics = {key: evaluate_by_segment(test.y.to_numpy(), p, test.arr.to_numpy(), test.segment)
               for key, p in preds.items() if not np.isnan(p).any()}  # fmt: skip
    skill = judge_skill(test.y.to_numpy(), preds["churnml"], test.account_id, health, m)
    importance = importance_bysegment_of(evaluation, test_df)
    leak = suspected_leak(ds.target, skill.roc_auc, importance, catalogue, m)
    if leak:
        raise TrainingError(leak)
    backtests, predictions = (_backtest(ds, split, choice, cfg, horizon_days, truth)
                              if split.kind != "stratified" else ([], []))  # fmt: skip
    predictions = pd.concat([test[KEYS].assign(p=preds["churnml"]), *predictions],
                            ignore_index=True)  # fmt: skip
    model = fit_final(ds, np.ones(len(ds.frame), bool), choice, m, horizon_days)
    model.meta = _facts(ds, split, choice, evaluation, metrics, skill)
    latest = ds.frame[ds.frame["as_of"] == ds.frame["as_of"].max()]  # the book as scoring sees it
    model.meta["reference"] = reference(latest, model.features, model.predict(latest),
                                        model.contributions(latest))
    return TargetResult(name, model, evaluation, split, choice, test, metrics, skill, backtests,
                        importance, test_df, predictions)  # fmt: skip


def _facts(ds: Dataset, split: Split, choice: Choice, evaluation: TrainedModel,
           metrics: dict, skill: Skill) -> dict[str, object]:  # fmt: skip
    """What model.json records about the production fit and the evaluation behind it."""
    test_dates = sorted(ds.frame.loc[split.test, "as_of"].dt.date.unique())
    return {
        "target": ds.target,
        "fit": "production",
        "recipe": choice.recipe.params,
        "rounds": choice.rounds,
        "base_rate": float(ds.y.mean()),
        "training_rows": len(ds.frame),
        "labelled_rows": ds.labelled or len(ds.frame),  # more: a sample (model.max_rows)
        "trained_through": str(ds.frame["as_of"].max().date()),
        "evaluation": {
            "family": evaluation.family,
            "roc_auc": metrics["churnml"][BOOK]["roc_auc"],
            "log_loss": metrics["churnml"][BOOK]["log_loss"],
            "test_dates": [str(d) for d in test_dates],
        },
        "skill": skill.as_dict(),
        "references": {name: {k: by_seg[BOOK][k] for k in ("roc_auc", "log_loss")}
                       for name, by_seg in metrics.items() if name != "churnml"},
        "trained_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def _backtest(ds: Dataset, first: Split, choice: Choice, cfg: Config, horizon_days: int,
              truth: pd.Series | None) -> tuple[list[dict], list[pd.DataFrame]]:  # fmt: skip
    """The chosen recipe measured at earlier cut-offs (each test window moved back by its
    length), with rounds from the last validation fold before each cut-off; and its
    predictions there (KEYS, p)."""
    out, predictions = [], []
    m = cfg.model
    test_len = ds.frame.loc[first.test, "as_of"].nunique()
    for k in range(1, m.backtests + 1):
        try:
            split = time_split(ds.frame["as_of"], horizon_days, m, end=k * test_len)
        except TrainingError as exc:
            log.info("backtest %d skipped: %s", k, exc)
            break
        last = split.folds[-1]
        shell = _template(ds, split.train)
        x, y = shell.frame(ds.frame), ds.y
        valid = [(x[half], y[half]) for half in halves(ds, last.valid, m.seed)]
        _, best = fit(choice.recipe, x[last.fit], y[last.fit], m, valid)
        chosen = Choice(choice.recipe, _mean_rounds(best), {})
        model = fit_final(ds, split.train, chosen, m, horizon_days)
        test = ds.frame[split.test]
        predictions.append(test[KEYS].assign(p=model.predict(test)))
        evaluated = evaluate_by_segment(y[split.test], predictions[-1].p.to_numpy(),
                                        _arr(test).to_numpy(), segment_of(test))[BOOK]  # fmt: skip
        row = {"cutoff": split.dates["test"],
               **{key: evaluated[key] for key in ("roc_auc", "log_loss", "ece")}}  # fmt: skip
        known = None if truth is None else truth[split.test].to_numpy()
        if known is not None and not np.isnan(known).any():  # the truth's dates are monthly
            oracle = evaluate_by_segment(y[split.test], known, _arr(test).to_numpy(),
                                         segment_of(test))[BOOK]  # fmt: skip
            row["oracle_roc_auc"] = oracle["roc_auc"]
        out.append(row)
    return out, predictions
