"""Judge the default pipeline at a cut-off, beside plain references, on the same accounts.

churnml is trained with the default config on the world *as known on the cut-off*
(`churnml.data.history.as_known_on`), scores the accounts active on the cut-off, and is judged on
the labels that the full world records after it. The references are refitted on every labelled
row known on the cut-off and scored on the same accounts:

* `logistic_regression`: churnml's own features, median-imputed, standardised, one-hot segment;
* `plain_lightgbm_counts`: LightGBM on per-event-type counts over 30 and 90 days, tenure and ARR
  (computed here with plain DuckDB SQL, independent of churnml's feature code);
* `plain_lightgbm_features`: LightGBM with fixed, ordinary settings on churnml's own features;
* `oracle`: the simulator's own probabilities (`_truth/truth.parquet`).
"""

from __future__ import annotations

import datetime as dt
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb
import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from churnml.config import Config, RegistryConfig
from churnml.data.history import as_known_on
from churnml.data.sources import connect, load_tables
from churnml.features.labels import label_columns, labelled_snapshots
from churnml.features.truth import load_truth
from churnml.models.pipeline import train, training_table
from churnml.models.train import TargetResult
from churnml.scoring.score import score

KEYS = ["account_id", "as_of"]
LABELS = {"churn": "churn_90d", "expansion": "expansion_90d"}


@dataclass
class CutoffResult:
    """AUC at the cut-off per target and model, and what the run did."""

    auc: pd.DataFrame  # index: model; columns: targets
    fits: pd.DataFrame  # per target: chosen recipe, evaluation vs production fit, backtests
    rows: dict[str, int]  # accounts judged per target
    positives: dict[str, int]
    seconds: dict[str, float]
    notes: list[str]


def _outcomes(world: Path, cutoff: dt.date) -> pd.DataFrame:
    """Labels at the cut-off from the full world, with the simulator's probabilities."""
    cfg = Config()
    tables = load_tables(world, cfg.data, connect())
    out = labelled_snapshots(tables, [cutoff], cfg.labels).execute()
    out["as_of"] = pd.to_datetime(out["as_of"])
    truth = load_truth(world)
    return out.merge(truth, on=KEYS, how="left") if truth is not None else out


def _count_features(world: Path, as_of: list[dt.date]) -> pd.DataFrame:
    """Per-event-type counts over 30 and 90 days, tenure and ARR, one row per account and as_of."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.register("dates", pd.DataFrame({"as_of": pd.to_datetime(as_of)}))
    sql = f"SELECT DISTINCT event_type FROM '{world}/usage_events.parquet' ORDER BY 1"
    types = [r[0] for r in con.execute(sql).fetchall()]
    counts = ", ".join(
        f"count(*) FILTER (WHERE e.event_type = '{t}' AND e.ts >= d.as_of - INTERVAL {w} DAY) "
        f'AS "n_{t}_{w}d"'
        for t in types
        for w in (30, 90)
    )
    frame = con.execute(f"""
        WITH active AS (
            SELECT s.account_id, d.as_of, sum(s.arr) AS arr
            FROM '{world}/subscriptions.parquet' s, dates d
            WHERE s.start_date <= d.as_of
              AND d.as_of < least(coalesce(s.end_date, DATE '9999-12-31'),
                                  coalesce(s.canceled_at, DATE '9999-12-31'))
            GROUP BY ALL),
        usage AS (
            SELECT e.account_id, d.as_of, {counts}
            FROM '{world}/usage_events.parquet' e JOIN dates d
              ON e.ts < d.as_of AND e.ts >= d.as_of - INTERVAL 90 DAY
            GROUP BY ALL)
        SELECT a.account_id, a.as_of, a.arr,
               date_diff('day', acc.signup_date, a.as_of) AS tenure_days,
               usage.* EXCLUDE (account_id, as_of)
        FROM active a JOIN '{world}/accounts.parquet' acc USING (account_id)
        LEFT JOIN usage USING (account_id, as_of)
    """).df()  # fmt: skip
    return frame.fillna({c: 0 for c in frame.columns if c.startswith("n_")})


def _lr(train_x: pd.DataFrame, y: np.ndarray, test_x: pd.DataFrame) -> np.ndarray:
    def design(x: pd.DataFrame) -> pd.DataFrame:
        numeric = x.select_dtypes("number").astype(float)
        if "segment" in x:
            dummies = pd.get_dummies(x["segment"].astype(str), prefix="seg", dtype=float)
            numeric = numeric.join(dummies)
        return numeric

    a, b = design(train_x), design(test_x)
    b = b.reindex(columns=a.columns, fill_value=0.0)
    pipe = make_pipeline(SimpleImputer(strategy="median", keep_empty_features=True),
                         StandardScaler(), LogisticRegression(max_iter=3000))  # fmt: skip
    return pipe.fit(a, y).predict_proba(b)[:, 1]


def _plain_lgb(train_x: pd.DataFrame, y: np.ndarray, test_x: pd.DataFrame) -> np.ndarray:
    def design(x: pd.DataFrame) -> pd.DataFrame:
        x = x.copy()
        for c in x.columns:
            if not pd.api.types.is_numeric_dtype(x[c]):
                x[c] = x[c].astype("category")
        return x

    a = design(train_x)
    b = design(test_x)
    for c in a.select_dtypes("category"):
        b[c] = pd.Categorical(b[c].astype(object), categories=a[c].cat.categories)
    model = lgb.LGBMClassifier(
        n_estimators=300, learning_rate=0.03, num_leaves=15, min_child_samples=50, subsample=0.8,
        subsample_freq=1, colsample_bytree=0.8, random_state=0, verbose=-1, n_jobs=2)  # fmt: skip
    return model.fit(a, y).predict_proba(b)[:, 1]


def _auc(y: pd.Series, p: pd.Series) -> float:
    ok = p.notna() & y.notna()
    return float(roc_auc_score(y[ok], p[ok])) if y[ok].nunique() == 2 else float("nan")


REFERENCES = ("logistic_regression", "plain_lightgbm_features", "plain_lightgbm_counts")


def evaluate_at_cutoff(world: Path, cutoff: dt.date, work: Path | None = None,
                       config: Config | None = None,
                       references: tuple[str, ...] = REFERENCES) -> CutoffResult:  # fmt: skip
    """Train on the world as known on `cutoff`, score at `cutoff`, judge against what followed."""
    work = Path(work or tempfile.mkdtemp(prefix="cutoff-"))
    base = config or Config()
    cfg = base.model_copy(update={"registry": RegistryConfig(
        tracking_uri=f"sqlite:///{work / 'mlruns.db'}")})  # fmt: skip
    known = as_known_on(world, cutoff, work / "known")
    seconds, notes = {}, []
    began = time.perf_counter()
    report = train(cfg, data_dir=known)
    seconds["train"] = time.perf_counter() - began
    uris = {p.name.rsplit("-", 1)[-1]: f"models:/{p.name}/{p.version}" for p in report.promotions}
    results = {r.name: r for r in report.results}
    notes += [f"{p.name}: {p.alias} ({p.reason})" for p in report.promotions]
    began = time.perf_counter()
    score(cfg, data_dir=known, as_of=cutoff, out=work / "scores", uris=uris)
    seconds["score"] = time.perf_counter() - began
    scores = pd.read_parquet(work / "scores" / "scores.parquet")

    outcomes = _outcomes(world, cutoff)
    frame = training_table(known, cfg, check=False)  # every labelled row known on the cut-off
    scoring_rows = frame[frame.as_of == pd.Timestamp(cutoff)]
    if "plain_lightgbm_counts" in references:
        counts = _count_features(known, sorted({*frame.as_of.dt.date, cutoff}))
        counts["as_of"] = pd.to_datetime(counts["as_of"])

    labels = set(label_columns(base.labels).values())  # arr_after and the reason too: known later
    features = [c for c in frame.columns if c not in {*KEYS, *labels}]
    truths = [c for c in ("p_churn_90d", "p_expansion_90d") if c in outcomes]
    judged = outcomes[[*KEYS, "involuntary_churn_90d", *LABELS.values(), *truths]]
    judged = judged.merge(scores[["account_id", "churn_probability", "expansion_probability"]],
                          on="account_id", how="left")  # fmt: skip
    auc, fits, rows, positives = {}, {}, {}, {}
    for target, label in LABELS.items():
        learn = frame[frame[label].notna()]
        if target == "churn":
            learn = learn[learn.involuntary_churn_90d != 1]
        y = learn[label].to_numpy(float)
        here = judged[judged[label].notna()]
        if target == "churn":
            here = here[here.involuntary_churn_90d != 1]
        rows[target], positives[target] = len(here), int(here[label].sum())
        col = {}
        col["churnml"] = _auc(here[label], here[f"{target}_probability"])
        x_now = scoring_rows.set_index("account_id").reindex(here.account_id)
        if len(np.unique(y)) == 2:
            fitters = {"logistic_regression": _lr, "plain_lightgbm_features": _plain_lgb}
            for name, fitter in fitters.items():
                if name in references:
                    p = fitter(learn[features], y, x_now[features])
                    col[name] = _auc(here[label], pd.Series(p, index=here.index))
        if len(np.unique(y)) == 2 and "plain_lightgbm_counts" in references:
            c_learn = learn[KEYS].merge(counts, on=KEYS, how="left")
            c_now = counts[counts.as_of == pd.Timestamp(cutoff)].set_index("account_id")
            c_now = c_now.reindex(here.account_id)
            cols = [c for c in counts.columns if c not in KEYS]
            col["plain_lightgbm_counts"] = _auc(
                here[label], pd.Series(_plain_lgb(c_learn[cols], y, c_now[cols]),
                                       index=here.index))  # fmt: skip
        if target in results:
            fits[target] = _fits(results[target], here[label], x_now)
        truth = f"p_{label}"
        if truth in here:
            col["oracle"] = _auc(here[label], here[truth])
        auc[target] = col
    return CutoffResult(pd.DataFrame(auc), pd.DataFrame(fits), rows, positives, seconds, notes)


def _fits(result: TargetResult, y: pd.Series, x_now: pd.DataFrame) -> dict[str, object]:
    """The chosen recipe, the evaluation fit and the registered (production) fit judged at the
    cut-off, and the mean of the backtests' ROC-AUC (with the oracle's on the same rows)."""
    backtests = pd.DataFrame(result.backtests)
    fitted = {"evaluation_fit": result.evaluation, "production_fit": result.model}
    at = {name: _auc(y, pd.Series(m.predict(x_now), index=y.index)) for name, m in fitted.items()}
    return {
        "chosen": result.choice.recipe.label,
        "no_skill": result.skill.no_skill,
        **at,
        "backtests": len(backtests),
        "backtest_auc": backtests["roc_auc"].mean() if len(backtests) else float("nan"),
        "backtest_oracle": backtests.get("oracle_roc_auc", pd.Series(dtype=float)).mean(),
    }
