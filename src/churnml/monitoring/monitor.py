"""`churnml monitor`: is the churn model still right, and is it time to retrain?

For the model the latest scoring run used:
- input drift: each feature's PSI and share missing now (the latest run's date, features built
  from the data) against the model's reference profile (`churnml.monitoring.drift`); per family,
  the largest PSI and how many features shifted;
- score drift: the PSI of the churn probability;
- realised performance of every given run whose horizon has passed (its labels are in the data
  now): AUC, expected calibration error (10 bins of equal size), mean probability against the
  churn rate, the share of churned ARR among the top decile of risk, and the share of churned ARR
  the run had flagged high or medium (at all, and at least EARLY_DAYS before the churn date); for
  the book and per segment;
- contribution drift: each family's mean absolute contribution (log-odds), reference against now.

Verdict: retrain when a family's largest PSI over its watched features (levers, not clocks such as
days since a first use, nor ranks within the segment: see `_watched`) or the score's PSI reaches
PSI_SHIFT, or when a matured run's AUC fell more than AUC_DROP below the model's own test AUC;
else keep. The numbers
go to MLflow as a monitoring run tagged with the model, and to a page for ML engineers.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from jinja2 import Environment, FileSystemLoader, select_autoescape
from sklearn.metrics import roc_auc_score

from churnml.config import Config
from churnml.data import load
from churnml.data.contract import BOOK
from churnml.data.sources import cached
from churnml.features.catalogue import Feature, by_name, family
from churnml.features.labels import data_end, label_columns, labelled_snapshots
from churnml.io import run_file, write_text
from churnml.models.registry import LoadedModel, check_tracking, load_model, tracking_uri
from churnml.monitoring.drift import psi
from churnml.scoring.score import scoring_table, trained_config

TEMPLATES = Path(__file__).parents[1] / "reports" / "templates"
PSI_SHIFT = 0.25
EARLY_DAYS = 60  # flagged this long before the churn date counts as early
AUC_DROP = 0.05


@dataclass(frozen=True)
class Monitoring:
    as_of: dt.date
    model: str
    verdict: str  # "retrain" or "keep"
    reasons: list[str]
    features: pd.DataFrame  # feature, family, psi, missing_reference, missing_now
    families: pd.DataFrame  # family, largest_psi, shifted, features
    score_psi: float
    realised: pd.DataFrame  # as_of, segment, accounts, churned, auc, ece, mean_probability, …
    test_auc: float | None

    @property
    def shifted(self) -> int:
        """Features that count for the verdict and reached PSI_SHIFT."""
        return int(((self.features.psi >= PSI_SHIFT) & self.features.watched).sum())


def monitor(cfg: Config, data_dir: Path | str, runs: list[Path]) -> Monitoring:
    """Drift and realised performance of the churn model, for the scoring runs in `runs`."""
    tables = load(data_dir, cfg.data)
    scored = sorted((_read(r) for r in runs), key=lambda s: s.as_of.iloc[0])
    latest = scored[-1]
    as_of = pd.Timestamp(latest.as_of.iloc[0]).date()
    loaded = _model(cfg, latest)
    reference = loaded.model.meta.get("reference")
    if reference is None:
        raise ValueError(f"the churn model ({loaded.source}) has no reference profile (trained "
                         "before churnml recorded one): retrain it, then monitor")  # fmt: skip
    keyed = trained_config(cfg, {"churn": loaded}, tables, as_of)
    names = [f for f in loaded.model.features if f in reference["features"]]
    table = cached(scoring_table(tables, as_of, keyed))
    now = table.select("account_id", *[n for n in names if n in table.columns]).execute()
    catalogue = by_name(keyed.features)
    features = _input_drift(reference, now, names, catalogue)
    families = _families(features).merge(
        _contribution_drift(loaded, reference, now, catalogue), on="family", how="left")
    score_psi, _ = psi(reference["probability"], latest.churn_probability)
    realised = _realised(scored, tables, cfg)
    test_auc = loaded.model.meta.get("evaluation", {}).get("roc_auc")
    verdict, reasons = _verdict(families, score_psi, realised, test_auc)
    return Monitoring(as_of, loaded.source, verdict, reasons, features, families, score_psi,
                      realised, test_auc)  # fmt: skip


def _read(run: Path) -> pd.DataFrame:
    path = run_file(run, "scores.parquet")
    if path is None:
        raise FileNotFoundError(f"--scores: no scores.parquet in {run} (give an --out of "
                                "churnml score)")  # fmt: skip
    scores = pd.read_parquet(path)
    if scores.empty or scores.churn_probability.isna().all():
        raise ValueError(f"{path} has no churn probabilities to monitor")
    return scores


def _model(cfg: Config, latest: pd.DataFrame) -> LoadedModel:
    """The churn model the latest run used (its URI, or the folder it was exported to)."""
    mlflow.set_tracking_uri(tracking_uri(cfg.registry))
    check_tracking(cfg.registry)
    return load_model(str(latest.churn_model.iloc[0]), "churn")


def _input_drift(reference: dict, now: pd.DataFrame, names: list[str],
                 catalogue: dict) -> pd.DataFrame:  # fmt: skip
    rows = []
    for name in names:
        ref = reference["features"][name]
        value, missing = psi(ref, now[name]) if name in now else (np.nan, np.nan)
        feature = catalogue.get(name)
        rows.append({"feature": name, "family": family(feature) if feature else "other",
                     "psi": value, "missing_reference": ref["missing"], "missing_now": missing,
                     "watched": feature is not None and _watched(feature)})  # fmt: skip
    return pd.DataFrame(rows).sort_values("psi", ascending=False, ignore_index=True)


def _contribution_drift(loaded: LoadedModel, reference: dict, now: pd.DataFrame,
                        catalogue: dict) -> pd.DataFrame:  # fmt: skip
    """Mean absolute contribution (log-odds) per family: reference against now."""
    features = loaded.model.features
    if "contributions" not in reference or not set(features) <= set(now.columns):
        return pd.DataFrame(columns=["family", "pull_reference", "pull_now"])
    pull = np.abs(loaded.model.contributions(now)[:, : len(features)]).mean(axis=0)
    frame = pd.DataFrame({"feature": features, "pull_now": pull,
                          "pull_reference": [reference["contributions"].get(f, np.nan)
                                             for f in features]})  # fmt: skip
    frame["family"] = [family(catalogue[f]) if f in catalogue else "other" for f in features]
    return frame.groupby("family", as_index=False)[["pull_reference", "pull_now"]].sum()


def _watched(feature: Feature) -> bool:
    """Whether a feature's drift counts for the verdict: a lever, not a clock (days since a
    first use, which grows as the book ages) nor a rank within the segment (uniform by
    construction; its base feature is watched)."""
    clock = feature.unit == "days" and feature.healthy == "neutral"
    return feature.lever and not clock and feature.family != "relative"


def _families(features: pd.DataFrame) -> pd.DataFrame:
    """Per family, over its watched features: the largest PSI and how many shifted."""
    watched = features.psi.where(features.watched)
    grouped = features.assign(psi=watched).groupby("family")
    out = grouped.agg(largest_psi=("psi", "max"), features=("feature", "size"),
                      watched=("watched", "sum"))  # fmt: skip
    out["shifted"] = grouped.psi.apply(lambda p: int((p >= PSI_SHIFT).sum()))
    return out.reset_index().sort_values("largest_psi", ascending=False, ignore_index=True)


def _realised(scored: list[pd.DataFrame], tables: dict, cfg: Config) -> pd.DataFrame:
    """Each run whose horizon has passed, against what happened (see the module docstring)."""
    end = data_end(tables)
    names = label_columns(cfg.labels)
    subs = tables["subscriptions"].execute()
    rows = []
    for scores in scored:
        as_of = pd.Timestamp(scores.as_of.iloc[0]).date()
        if as_of + dt.timedelta(days=cfg.labels.horizon_days) >= end:
            continue  # not known yet
        labels = labelled_snapshots(tables, [as_of], cfg.labels).execute()
        y = labels.set_index("account_id")[names["churn"]]
        if cfg.labels.exclude_involuntary:
            y = y[labels.set_index("account_id")[names["involuntary"]] != 1]
        joined = scores.set_index("account_id").join(y.rename("churned"), how="inner")
        joined = joined.dropna(subset=["churned"])
        ends = _churn_dates(subs, as_of, cfg.labels.horizon_days).reindex(joined.index)
        joined["days_to_churn"] = (ends - pd.Timestamp(as_of)).dt.days
        for segment, part in [(BOOK, joined), *joined.groupby("segment")]:
            rows.append({"as_of": as_of, "segment": segment, **_performance(part)})
    return pd.DataFrame(rows)


def _churn_dates(subs: pd.DataFrame, as_of: dt.date, horizon: int) -> pd.Series:
    """Per account, the end of its last term that started within the horizon (cancelled early:
    the cancellation), as a churn date for the accounts that churned."""
    until = pd.Timestamp(as_of) + pd.Timedelta(days=horizon)
    s = subs[pd.to_datetime(subs.start_date) < until]
    ends = pd.to_datetime(s.get("canceled_at", pd.Series(pd.NaT, index=s.index))).fillna(
        pd.to_datetime(s.end_date))  # fmt: skip
    return ends.groupby(s.account_id).max()


def _performance(part: pd.DataFrame) -> dict[str, float]:
    y, p = part.churned.to_numpy(float), part.churn_probability.to_numpy(float)
    arr = part.arr.to_numpy(float)
    lost = arr * y
    top = np.argsort(-p, kind="stable")[: max(1, int(np.ceil(len(p) / 10)))]
    flagged = part.churn_tier.isin(["high", "medium"]).to_numpy()
    bins = np.array_split(np.argsort(p, kind="stable"), min(10, len(p)))
    ece = sum(len(b) * abs(p[b].mean() - y[b].mean()) for b in bins if len(b)) / max(len(p), 1)
    return {
        "accounts": len(part), "churned": int(y.sum()),
        "auc": roc_auc_score(y, p) if 0 < y.sum() < len(y) else np.nan,
        "ece": ece, "mean_probability": p.mean(), "churn_rate": y.mean(),
        "top_decile_churned_arr": lost[top].sum() / lost.sum() if lost.sum() else np.nan,
        "flagged_churned_arr": lost[flagged].sum() / lost.sum() if lost.sum() else np.nan,
        "flagged_60d_churned_arr": (lost[flagged & (part.days_to_churn >= EARLY_DAYS).to_numpy()]
                                    .sum() / lost.sum()) if lost.sum() else np.nan,
    }  # fmt: skip


def _verdict(families: pd.DataFrame, score_psi: float, realised: pd.DataFrame,
             test_auc: float | None) -> tuple[str, list[str]]:  # fmt: skip
    reasons = [f"{r.family}: {r.shifted} feature(s) shifted, largest PSI {r.largest_psi:.2f}"
               for r in families.itertuples() if r.largest_psi >= PSI_SHIFT]  # fmt: skip
    if score_psi >= PSI_SHIFT:
        reasons.append(f"churn probability shifted: PSI {score_psi:.2f}")
    book = realised[realised.segment == BOOK] if len(realised) else realised
    if test_auc is not None and len(book) and book.auc.notna().any():
        last = book.dropna(subset=["auc"]).iloc[-1]
        if last.auc < test_auc - AUC_DROP:
            reasons.append(f"realised AUC {last.auc:.3f} for the run of {last.as_of}, below the "
                           f"model's test AUC {test_auc:.3f} by more than {AUC_DROP}")  # fmt: skip
    return ("retrain" if reasons else "keep"), reasons


def log_monitoring(cfg: Config, result: Monitoring, page: Path) -> str:
    """A monitoring run in MLflow, tagged with the model it checks; returns its run id."""
    mlflow.set_tracking_uri(tracking_uri(cfg.registry))
    mlflow.set_experiment(cfg.registry.experiment)
    book = result.realised[result.realised.segment == BOOK] if len(result.realised) else None
    with mlflow.start_run(run_name=f"monitor {result.as_of}", tags={
            "churnml.kind": "monitoring", "churnml.model": result.model,
            "churnml.verdict": result.verdict}) as run:  # fmt: skip
        mlflow.log_metrics({
            "score_psi": result.score_psi,
            "largest_feature_psi": float(result.features.psi.max()),
            "shifted_features": result.shifted,
            **({} if book is None or book.empty else {"realised_auc": float(book.auc.iloc[-1]),
                                                       "realised_ece": float(book.ece.iloc[-1])}),
        })  # fmt: skip
        mlflow.log_artifact(str(page))
        return run.info.run_id


def write_page(result: Monitoring, out: Path | str) -> Path:
    """monitoring.html in `out` (atomically), in the report's style; returns its path."""
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["j2"]))
    html = env.get_template("monitor.html.j2").render(
        r=result, lang="en", notices=[], since=None, psi_shift=PSI_SHIFT, auc_drop=AUC_DROP,
        title=f"Monitoring, {result.as_of}",
    )  # fmt: skip
    path = Path(out) / "monitoring.html"
    write_text(html, path)
    return path
