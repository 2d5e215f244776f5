"""Batch scoring: every account active at `as_of`, with tiers, health, ARR at risk, the next best
action and reasons; written as Parquet and as a CRM-ready CSV, atomically."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import ibis.expr.types as ir
import mlflow
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from mlflow.exceptions import MlflowException

from churnml.config import Config, ScoringConfig
from churnml.data.sources import Engine, connect, load_tables
from churnml.data.validate import DataValidationError, validate
from churnml.features.build import KEYS, SOURCE_TABLES, compute_features
from churnml.features.catalogue import Feature, by_name
from churnml.features.labels import snapshots
from churnml.io import atomic_dir, write_parquet
from churnml.models.artifact import TrainedModel
from churnml.models.registry import model_name, tracking_uri
from churnml.scoring.crm import FieldMap, changed_rows, crm_frame, load_field_map, write_csv
from churnml.scoring.explain import FAMILIES, explain, family_scores, health_score
from churnml.scoring.reasons import REASON, Lang, segment_medians, top_reasons

TARGETS = ("churn", "expansion")
ACCOUNT_COLUMNS = ("segment", "csm_owner", "account_name")
Chunk = tuple[pd.DataFrame, dict[str, pd.DataFrame]]  # scores, contributions per target
TOP_COLUMNS = ("account_id", "account_name", "segment", "arr", "churn_probability",
               "arr_at_risk", "next_best_action", "churn_reasons_text")  # fmt: skip


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
    top_at_risk: pd.DataFrame  # the accounts with the most ARR at risk, largest first


class ModelNotFoundError(FileNotFoundError):
    """No model where scoring was told (or defaulted) to look."""


class MissingFeaturesError(ValueError):
    """The feature table lacks columns a model was trained on."""


def load_model(uri: str, target: str) -> LoadedModel:
    """A churnml model from a `models:/` URI, a run URI or an exported MLflow model folder."""
    try:
        pyfunc = mlflow.pyfunc.load_model(uri)
    except (MlflowException, OSError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelNotFoundError(
            f"no {target} model at {uri} ({reason}); train one with `churnml train`, or pass "
            f"--{target}-model URI or --model-dir (a folder from `churnml export`)"
        ) from None
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
        out[target] = load_model(uri, target)
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


def _reasons_fields(target: str) -> list[tuple[str, pa.DataType]]:
    column = "churn_reasons" if target == "churn" else "expansion_signals"
    return [
        (f"{target}_probability", pa.float64()),
        (f"{target}_base_rate", pa.float64()),
        (column, pa.list_(REASON)),
        (f"{column}_text", pa.string()),
    ]


# scores.parquet, one row per account: SCORES from each chunk, SCORED once stamped.
SCORES = pa.schema(
    [
        ("account_id", pa.string()),
        ("as_of", pa.date32()),
        *[(c, pa.string()) for c in ACCOUNT_COLUMNS],
        ("arr", pa.float64()),
        *_reasons_fields("churn"),
        *[(f"score_{f}", pa.float64()) for f in FAMILIES],
        ("health_score", pa.float64()),
        *_reasons_fields("expansion"),
        *[(c, pa.string()) for c in ("churn_tier", "expansion_tier")],
        ("arr_at_risk", pa.float64()),
        ("expected_expansion_arr", pa.float64()),
        ("next_best_action", pa.string()),
    ]
)
SCORED = pa.schema(
    [
        *SCORES,
        ("churn_model", pa.string()),
        ("expansion_model", pa.string()),
        ("scored_at", pa.timestamp("s")),
    ]
)


def score_frame(
    frame: pd.DataFrame,
    models: dict[str, LoadedModel],
    cfg: Config,
    lang: Lang = "en",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Score a feature table in memory: scores (one row per account) and contributions in
    probability points (one row per account × target, one column per feature)."""
    cat = by_name(cfg.features)
    # Medians over the whole batch, so that a reason reads the same whatever the chunking.
    medians = segment_medians(frame.reindex(columns=sorted(cat)), frame["segment"].astype(str))
    step = cfg.scoring.chunk_rows
    chunks = (frame.iloc[i : i + step] for i in range(0, len(frame), step))
    parts = [_score_chunk(c, models, cat, cfg.scoring, lang, medians) for c in chunks]
    return _gather(parts, models)


def _gather(
    parts: list[Chunk], models: dict[str, LoadedModel]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Scored chunks as one table in account order, stamped with the models and the time; the
    contributions of each target in the same order, one target after the other."""
    if not parts:
        raise ValueError("no account to score")
    scores = pd.concat([s for s, _ in parts], ignore_index=True)
    ids = scores.account_id.to_numpy(dtype=str)
    order = None if (ids[1:] >= ids[:-1]).all() else np.argsort(ids, kind="stable")
    blocks = []
    for target in TARGETS:
        block = pd.concat([c[target] for _, c in parts], ignore_index=True)
        block = block if order is None else block.iloc[order]
        blocks.append(block.assign(target=target)[["account_id", "target", *block.columns[1:]]])
    scores = scores if order is None else scores.iloc[order].reset_index(drop=True)
    scores["churn_model"] = models["churn"].source
    scores["expansion_model"] = models["expansion"].source
    scores["scored_at"] = dt.datetime.now(dt.UTC).replace(microsecond=0, tzinfo=None)
    return scores, pd.concat(blocks, ignore_index=True)


def _score_chunk(
    chunk: pd.DataFrame,
    models: dict[str, LoadedModel],
    cat: dict[str, Feature],
    sc: ScoringConfig,
    lang: Lang,
    medians: pd.DataFrame,
) -> Chunk:
    segment = chunk["segment"].astype(str)
    out = chunk.reindex(columns=[*KEYS, *ACCOUNT_COLUMNS]).reset_index(drop=True)
    out["as_of"] = pd.to_datetime(out["as_of"]).dt.date
    out["arr"] = chunk["arr_now" if "arr_now" in chunk else "arr"].to_numpy(dtype=float)
    points = {}
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
        points[target] = ex.points.reset_index(drop=True)
        points[target].insert(0, "account_id", out["account_id"].to_numpy())
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
    return out, points


def feature_table(tables: dict[str, ir.Table], as_of: dt.date, cfg: Config) -> ir.Table:
    """Every account active at as_of with its features, ARR on the day (`arr_now`) and account
    attributes (an engine expression, not yet run)."""
    snaps = snapshots(tables["subscriptions"], [as_of])
    feats = compute_features(tables, snaps, [as_of], cfg.features).drop("segment")
    accounts = tables["accounts"].select("account_id", *ACCOUNT_COLUMNS)
    now = snaps.select(*KEYS, arr_now=snaps.arr)  # ARR on the day, for ARR at risk
    return now.inner_join(feats, KEYS).inner_join(accounts, "account_id")


def check_as_of(tables: dict[str, ir.Table], as_of: dt.date, max_gap_days: int) -> None:
    """Refuse an as_of past the data: the missing days would read as an account gone quiet."""
    last = tables["usage_events"].ts.max().execute()
    if last is None or pd.isna(last):
        raise ValueError("table usage_events has no rows: nothing to score from")
    last_day = pd.Timestamp(last).date()
    gap = (as_of - last_day).days - 1  # days before as_of with no events at all
    if gap > max_gap_days:
        raise ValueError(
            f"as_of {as_of} is beyond the data: the last usage event (table usage_events, "
            f"column ts) is on {last_day}, {gap} day(s) before as_of with no events (allowed: "
            f"scoring.max_data_gap_days = {max_gap_days}). Score as of "
            f"{last_day + dt.timedelta(days=1 + max_gap_days)} or earlier, or load newer data."
        )


def require_features(columns: list[str], models: dict[str, LoadedModel], cfg: Config) -> None:
    """Refuse before any heavy work when a model's features are not all in the table."""
    cat = by_name(cfg.features)
    for target, loaded in models.items():
        missing = [f for f in loaded.model.features if f not in columns]
        if missing:
            tables = {SOURCE_TABLES.get(cat[f].source) for f in missing if f in cat} - {None}
            raise MissingFeaturesError(
                f"the {target} model ({loaded.source}) needs {len(missing)} feature column(s) "
                f"that the feature table lacks, e.g. {', '.join(missing[:5])}"
                + (f" (from table {', '.join(sorted(tables))}: is it missing?)" if tables else "")
                + "; score data like the training data, or retrain on this data"
            )


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
    tables = load_tables(data_dir, cfg.data, connect(engine))
    check_as_of(tables, as_of, cfg.scoring.max_data_gap_days)
    expr = feature_table(tables, as_of, cfg)
    require_features(expr.columns, models, cfg)
    scores, contributions = score_table(expr, models, cfg, lang)
    crm_rows = write_outputs(scores, contributions, fields, out, changed_since)
    top = scores.nlargest(5, "arr_at_risk")[list(TOP_COLUMNS)].reset_index(drop=True)
    return ScoreResult(
        Path(out), len(scores), crm_rows, {t: m.source for t, m in models.items()}, top
    )


def score_table(
    expr: ir.Table, models: dict[str, LoadedModel], cfg: Config, lang: Lang = "en"
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Score a feature table where it lives: features are computed once (cached in the engine),
    segment medians are taken there, then rows are scored in chunks — streamed from DuckDB, or
    by `mapInPandas` on Spark's executors."""
    cat = by_name(cfg.features)
    table = cached(expr)
    medians = _engine_medians(table, sorted(cat))
    if table._find_backend().name == "pyspark":
        from churnml.scoring.spark import map_in_pandas

        def score_batch(batch: pd.DataFrame) -> Chunk:
            return _score_chunk(batch, models, cat, cfg.scoring, lang, medians)

        features = {t: m.model.features for t, m in models.items()}
        parts = map_in_pandas(table, score_batch, SCORES, features)
    else:
        batches = table.to_pyarrow_batches(chunk_size=cfg.scoring.chunk_rows)
        parts = [
            _score_chunk(b.to_pandas(), models, cat, cfg.scoring, lang, medians) for b in batches
        ]
    try:
        return _gather(parts, models)
    except ValueError:
        raise ValueError("no account is active at as_of: nothing to score") from None


def _engine_medians(table: ir.Table, names: list[str]) -> pd.DataFrame:
    """Median of every numeric feature within each segment, computed by the engine."""
    numeric = [c for c in names if c in table.columns and table[c].type().is_numeric()]
    medians = table.group_by("segment").aggregate(**{c: table[c].median() for c in numeric})
    return medians.execute().set_index("segment").astype(float)


def cached(expr: ir.Table) -> ir.Table:
    """The table computed once and kept by its engine (Spark: its in-memory tables, such as
    calendars, are registered first, which ibis 12 does not do for `cache`)."""
    expr._find_backend()._run_pre_execute_hooks(expr)
    return expr.cache()


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
    table = pa.Table.from_pandas(scores, schema=SCORED, preserve_index=False)
    with atomic_dir(out) as tmp:
        write_parquet(table.replace_schema_metadata(), tmp / "scores.parquet")
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
