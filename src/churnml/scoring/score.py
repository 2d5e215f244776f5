"""Batch scoring: every account active at `as_of`, with tiers, health, ARR at risk, the next best
action and reasons; written as Parquet and as a CRM-ready CSV, atomically."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from churnml.config import Config, ScoringConfig
from churnml.data.sources import Engine, connect, load_tables
from churnml.data.validate import DataValidationError, validate
from churnml.features.build import KEYS, compute_features
from churnml.features.catalogue import Feature, catalogue
from churnml.features.labels import snapshots
from churnml.io import atomic_dir, write_parquet
from churnml.models.artifact import TrainedModel
from churnml.models.registry import model_name, tracking_uri
from churnml.scoring.crm import FieldMap, changed_rows, crm_frame, load_field_map, write_csv
from churnml.scoring.explain import explain, family_scores, health_score
from churnml.scoring.reasons import Lang, segment_medians, top_reasons

TARGETS = ("churn", "expansion")
ACCOUNT_COLUMNS = ("segment", "csm_owner", "account_name")


@dataclass(frozen=True)
class LoadedModel:
    model: TrainedModel
    source: str  # what was loaded: a models:/ URI or a folder


@dataclass(frozen=True)
class ScoreResult:
    out: Path
    rows: int
    crm_rows: int
    models: dict[str, str]


def load_model(uri: str) -> LoadedModel:
    """A churnml model from a `models:/` URI, a run URI or an exported MLflow model folder."""
    pyfunc = mlflow.pyfunc.load_model(uri)
    return LoadedModel(pyfunc.unwrap_python_model().model, uri)


def resolve_models(
    cfg: Config, uris: dict[str, str | None], model_dir: Path | None
) -> dict[str, LoadedModel]:
    """Given URIs first, then an exported folder (`<dir>/<target>`), else the registry champion."""
    mlflow.set_tracking_uri(tracking_uri(cfg.registry))
    out = {}
    for target in TARGETS:
        if uris.get(target):
            uri = uris[target]
        elif model_dir is not None:
            uri = str(Path(model_dir) / target)
        else:
            uri = f"models:/{model_name(cfg.registry, target)}@champion"
        out[target] = load_model(uri)
    return out


def _tier(p: np.ndarray, high: float, medium: float) -> np.ndarray:
    return np.where(p >= high, "high", np.where(p >= medium, "medium", "low"))


def next_best_action(
    churn_tier: np.ndarray, expansion_tier: np.ndarray, adoption: np.ndarray, cfg: ScoringConfig
) -> np.ndarray:
    """save (high risk) · fix_then_expand (high risk, high propensity: no upsell pitch yet) ·
    expand (low risk, high propensity, healthy adoption) · nurture (the rest)."""
    risky, keen = churn_tier == "high", expansion_tier == "high"
    expand = keen & (churn_tier == "low") & (adoption >= cfg.healthy_adoption)
    return np.select(
        [risky & keen, risky, expand], ["fix_then_expand", "save", "expand"], "nurture"
    )


def _as_columns(reasons: pa.ListArray) -> tuple[pd.Series, pd.Series]:
    """Structured reasons (an Arrow list column) and their sentences joined by '; '."""
    sentences = pa.ListArray.from_arrays(reasons.offsets, reasons.values.field("sentence"))
    text = pc.binary_join(sentences, "; ").to_numpy(zero_copy_only=False)
    return pd.Series(pd.arrays.ArrowExtensionArray(reasons)), pd.Series(text, dtype=object)


def score_frame(
    frame: pd.DataFrame,
    models: dict[str, LoadedModel],
    cfg: Config,
    lang: Lang = "en",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Scores (one row per account) and contributions in probability points (one row per
    account × target, one column per feature)."""
    cat = {f.name: f for f in catalogue(cfg.features)}
    sc = cfg.scoring
    # Medians over the whole batch, so that a reason reads the same whatever the chunking.
    medians = segment_medians(frame.reindex(columns=sorted(cat)), frame["segment"].astype(str))
    parts, contribs = [], []
    for start in range(0, len(frame), sc.chunk_rows):
        chunk = frame.iloc[start : start + sc.chunk_rows]
        part, contrib = _score_chunk(chunk, models, cat, sc, lang, medians)
        parts.append(part)
        contribs.append(contrib)
    scores = pd.concat(parts, ignore_index=True)
    scores["churn_model"] = models["churn"].source
    scores["expansion_model"] = models["expansion"].source
    scores["scored_at"] = dt.datetime.now(dt.UTC).replace(microsecond=0, tzinfo=None)
    return scores, pd.concat(contribs, ignore_index=True)


def _score_chunk(
    chunk: pd.DataFrame,
    models: dict[str, LoadedModel],
    cat: dict[str, Feature],
    sc: ScoringConfig,
    lang: Lang,
    medians: pd.DataFrame,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    segment = chunk["segment"].astype(str)
    out = chunk[[*KEYS, *[c for c in ACCOUNT_COLUMNS if c in chunk]]].reset_index(drop=True)
    out["arr"] = chunk["arr_now" if "arr_now" in chunk else "arr"].to_numpy(dtype=float)
    wide = []
    for target in TARGETS:
        model = models[target].model
        ex = explain(model, chunk)
        out[f"{target}_probability"] = ex.probability
        out[f"{target}_base_rate"] = ex.base
        values = chunk.reindex(columns=model.features)
        reasons = top_reasons(ex.points, values, segment, medians, cat, lang, sc.reasons)
        column = "churn_reasons" if target == "churn" else "expansion_signals"
        out[column], out[f"{column}_text"] = _as_columns(reasons)
        if target == "churn":
            out = pd.concat([out, family_scores(ex.logodds, cat).reset_index(drop=True)], axis=1)
            out["health_score"] = health_score(ex.logodds)
        points = ex.points.reset_index(drop=True)
        wide.append(pd.concat([out[["account_id"]].assign(target=target), points], axis=1))
    arr = out["arr"].to_numpy(dtype=float)
    out["churn_tier"] = _tier(out.churn_probability.to_numpy(), sc.churn_high, sc.churn_medium)
    out["expansion_tier"] = _tier(
        out.expansion_probability.to_numpy(), sc.expansion_high, sc.expansion_medium
    )
    out["arr_at_risk"] = np.round(out.churn_probability.to_numpy() * arr, 2)
    out["expected_expansion_arr"] = np.round(
        out.expansion_probability.to_numpy() * arr * sc.expansion_size, 2
    )
    out["next_best_action"] = next_best_action(
        out.churn_tier.to_numpy(), out.expansion_tier.to_numpy(), out.score_adoption.to_numpy(), sc
    )
    return out, pd.concat(wide, ignore_index=True)


def features_at(data_dir: Path | str, as_of: dt.date, cfg: Config, engine: Engine) -> pd.DataFrame:
    """Every account active at as_of with its features, ARR on the day (`arr_now`) and account
    attributes."""
    tables = load_tables(data_dir, cfg.data, connect(engine))
    snaps = snapshots(tables["subscriptions"], [as_of])
    feats = compute_features(tables, snaps, [as_of], cfg.features).drop("segment")
    accounts = tables["accounts"].select("account_id", *ACCOUNT_COLUMNS)
    now = snaps.select(*KEYS, arr_now=snaps.arr)  # ARR on the day, for ARR at risk
    expr = now.inner_join(feats, KEYS).inner_join(accounts, "account_id").order_by("account_id")
    frame = expr.execute()
    if frame.empty:
        raise ValueError(f"no account is active at {as_of} in {data_dir}")
    return frame


def score(
    cfg: Config,
    data_dir: Path | str,
    as_of: dt.date,
    out: Path | str,
    uris: dict[str, str | None] | None = None,
    model_dir: Path | None = None,
    crm: str = "salesforce",
    lang: Lang = "en",
    changed_since: Path | None = None,
    engine: Engine = "duckdb",
) -> ScoreResult:
    """Score, then write scores.parquet, contributions.parquet and crm_export.csv into `out`."""
    report = validate(data_dir, cfg.data)
    if not report.ok:
        raise DataValidationError(report)
    fields = load_field_map(crm)
    models = resolve_models(cfg, uris or {}, model_dir)
    frame = features_at(data_dir, as_of, cfg, engine)
    scores, contributions = score_frame(frame, models, cfg, lang)
    crm_rows = write_outputs(scores, contributions, fields, out, changed_since)
    return ScoreResult(Path(out), len(scores), crm_rows, {t: m.source for t, m in models.items()})


def write_outputs(
    scores: pd.DataFrame,
    contributions: pd.DataFrame,
    fields: FieldMap,
    out: Path | str,
    changed_since: Path | None = None,
) -> int:
    """Write scores.parquet, contributions.parquet and crm_export.csv into `out`, all or none;
    return the number of CRM rows (only changed ones with `changed_since`)."""
    feed = crm_frame(scores, fields)
    if changed_since is not None:
        feed = changed_rows(feed, Path(changed_since) / "crm_export.csv", fields)
    with atomic_dir(out) as tmp:
        write_parquet(scores, tmp / "scores.parquet")
        write_parquet(contributions, tmp / "contributions.parquet")
        write_csv(feed, tmp / "crm_export.csv")
    return len(feed)


def export_champions(cfg: Config, out: Path | str) -> dict[str, Path]:
    """Copy the champion models out of the registry as MLflow model folders (`<out>/<target>`)."""
    mlflow.set_tracking_uri(tracking_uri(cfg.registry))
    paths = {}
    with atomic_dir(out) as tmp:
        for target in TARGETS:
            uri = f"models:/{model_name(cfg.registry, target)}@champion"
            mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(tmp / target))
            paths[target] = Path(out) / target
    return paths
