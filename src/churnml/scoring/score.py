"""Batch scoring: every account active at `as_of`, with tiers, health, ARR at risk, the next best
action and reasons; written as Parquet and as a CRM-ready CSV, atomically."""

from __future__ import annotations

import datetime as dt
import tempfile
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd
import pyarrow as pa

from churnml.config import Config, ScoringConfig
from churnml.data import load
from churnml.data.sources import Engine, book_currency, cached
from churnml.features.build import compute_features, csm_context, input_table, with_key_events
from churnml.features.catalogue import FAMILIES, Feature, by_name
from churnml.features.labels import lapsed_terms, snapshots
from churnml.features.rollups import monthly_use
from churnml.io import is_uri, run_file
from churnml.models.registry import LoadedModel, resolve_models
from churnml.scoring.actions import tier
from churnml.scoring.book import act, finish, shares
from churnml.scoring.changes import (
    BEFORE,
    Since,
    alerts,
    compare,
    read_previous,
    scored_as_of,
)
from churnml.scoring.crm import FieldMap, load_field_map, previous_export
from churnml.scoring.explain import explain, family_pulls
from churnml.scoring.outputs import (
    ACCOUNT_COLUMNS,
    CONTEXT_COLUMNS,
    CURRENCY,
    FORECAST,
    KEY_EVENTS,
    MODELS,
    REASONS,
    STATED,
    Chunk,
    Finisher,
    Scorer,
    as_columns,
    read_models,
    write_outputs,
)
from churnml.scoring.reasons import (
    Lang,
    engine_medians,
    no_reasons,
    segment_medians,
    top_reasons,
)
from churnml.scoring.stream import score_streamed, top_at_risk
from churnml.vocabulary import KEYS, TARGETS

if TYPE_CHECKING:  # Spark is an optional extra
    from churnml.scoring.spark import Previous

TOP_COLUMNS = ("account_id", "account_name", "segment", "arr", "churn_probability",
               "arr_at_risk", "next_best_action", "churn_reasons")  # fmt: skip


@dataclass(frozen=True)
class ScoreResult:
    out: str  # where the run is: an absolute local path, or a URI (on Spark)
    as_of: dt.date  # the day scored
    rows: int
    crm_rows: int
    models: dict[str, str]  # target → the model scored with
    missing: dict[str, str]  # target → why it has no model (its columns are empty)
    no_skill: list[str]  # targets whose model shows no skill (no reasons shown)
    top_at_risk: pd.DataFrame  # the accounts with the most ARR at risk, largest first
    alerts: int | None = None  # rows of alerts.csv (with --previous)
    currency: str = "USD"  # the amounts' (report.currency, else the data's)


class MissingFeaturesError(ValueError):
    """The feature table lacks columns a model was trained on."""


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
    parts = [_score_chunk(c, models, cat, cfg, lang, medians) for c in chunks]
    return _gather(parts, models, cfg.scoring, cat)


def _gather(
    parts: list[Chunk], models: dict[str, LoadedModel], sc: ScoringConfig, cat: dict[str, Feature]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Scored chunks as one table in account order, finished over the whole book (see
    `churnml.scoring.book`) and stamped with the models and the time; the contributions of each
    scored target in the same order, one target after the other."""
    if not parts:
        raise ValueError("no account to score")
    scores = pd.concat([s for s, _ in parts], ignore_index=True)
    ids = scores.account_id.to_numpy(dtype=str)
    order = None if (ids[1:] >= ids[:-1]).all() else np.argsort(ids, kind="stable")
    blocks = []
    for target in models:
        block = pd.concat([c[target] for _, c in parts], ignore_index=True)
        block = block if order is None else block.iloc[order]
        blocks.append(block.assign(target=target)[["account_id", "target", *block.columns[1:]]])
    scores = finish(scores if order is None else scores.iloc[order].reset_index(drop=True), sc, cat)
    return stamp(scores, models), pd.concat(blocks, ignore_index=True)


def stamp(
    scores: pd.DataFrame, models: dict[str, LoadedModel], at: dt.datetime | None = None
) -> pd.DataFrame:
    """Each target's model and whether it shows skill, and the time of scoring (`at`, else
    now, in UTC to the second)."""
    for target in TARGETS:
        loaded = models.get(target)
        scores[f"{target}_model"] = loaded.source if loaded else None
        scores[f"{target}_model_skill"] = (
            None if loaded is None else "no_skill" if loaded.no_skill else "ok"
        )
    scores["scored_at"] = at or scored_now()
    return scores


def scored_now() -> dt.datetime:
    """The time of scoring: now, in UTC, to the second (as scores.parquet stores it)."""
    return dt.datetime.now(dt.UTC).replace(microsecond=0, tzinfo=None)


def _score_chunk(
    chunk: pd.DataFrame,
    models: dict[str, LoadedModel],
    cat: dict[str, Feature],
    cfg: Config,
    lang: Lang,
    medians: pd.DataFrame,
) -> Chunk:
    sc = cfg.scoring
    segment = chunk["segment"].astype(str)
    out = chunk.reindex(columns=[*KEYS, *ACCOUNT_COLUMNS]).reset_index(drop=True)
    out["as_of"] = pd.to_datetime(out["as_of"]).dt.date
    out["arr"] = chunk["arr_now" if "arr_now" in chunk else "arr"].to_numpy(dtype=float)
    pending = chunk.get("renewal_pending", pd.Series(False, index=chunk.index))
    out["renewal_pending"] = pending.fillna(False).to_numpy(dtype=bool)
    days = chunk.get("days_since_term_end", pd.Series(None, index=chunk.index, dtype=float))
    out["days_since_term_end"] = pd.array(days.to_numpy(dtype=float), dtype="Int64")
    out["renewal_date"] = _date(out.as_of, chunk.get("days_to_renewal"), -days)
    out["last_touch_date"] = _date(out.as_of, None, chunk.get("days_since_touchpoint"))
    for name, kind in (("tenure_days", "Int64"), ("plan", object), ("seats", float),
                       *((c, object) for c in CONTEXT_COLUMNS)):
        column = chunk.get(name, pd.Series(None, index=chunk.index, dtype=object))
        out[name] = column.reset_index(drop=True).astype(kind)
    out = out.assign(**{f"score_{f}": np.nan for f in FAMILIES}, health_score=np.nan)
    points = {}
    for target in TARGETS:
        column, loaded = REASONS[target], models.get(target)
        if loaded is None:  # no model for this target: its columns stay empty
            out = out.assign(**{f"{target}_probability": np.nan, f"{target}_base_rate": np.nan,
                                column: None, f"{column}_text": None})  # fmt: skip
            continue
        ex = explain(loaded.model, chunk)
        out[f"{target}_probability"] = ex.probability
        out[f"{target}_base_rate"] = ex.base
        if loaded.no_skill:  # its contributions are not the account's reasons
            reasons = no_reasons(len(chunk))
        else:
            values = chunk.reindex(columns=loaded.model.features)
            levers = [f for f in ex.points.columns if f in cat and cat[f].lever]  # not context
            shown = ex.points[levers] if levers else ex.points
            reasons = top_reasons(shown, values, segment, medians, cat, lang, sc.reasons, target,
                                  cfg.report)  # fmt: skip
        out[column], out[f"{column}_text"] = as_columns(reasons)
        if target == "churn" and not loaded.no_skill:  # raw here, percentiles once all are in
            values = chunk.reindex(columns=loaded.model.features)
            out.update(family_pulls(ex.logodds, values, cat).reset_index(drop=True))
            out["health_score"] = -ex.raw  # the model's order (calibration steps would tie)
        points[target] = ex.points.reset_index(drop=True)
        points[target].insert(0, "account_id", out["account_id"].to_numpy())
    arr = out["arr"].to_numpy(dtype=float)
    churn_p, expansion_p = out.churn_probability.to_numpy(), out.expansion_probability.to_numpy()
    out["churn_tier"] = tier(churn_p, sc.churn_high, sc.churn_medium)
    out["expansion_tier"] = tier(expansion_p, sc.expansion_high, sc.expansion_medium)
    out["arr_at_risk"] = np.round(churn_p * arr, 2)
    out["expected_expansion_arr"] = np.round(expansion_p * arr * sc.expansion_size, 2)
    return out, points


def _date(as_of: pd.Series, ahead: pd.Series | None, behind: pd.Series | None) -> pd.Series:
    """as_of plus `ahead` days, else minus `behind` days (a date, or missing)."""
    none = pd.Series(np.nan, index=as_of.index)
    days = none if ahead is None else pd.Series(ahead.to_numpy(dtype=float), index=as_of.index)
    if behind is not None:
        days = days.fillna(-pd.Series(behind.to_numpy(dtype=float), index=as_of.index))
    return (pd.to_datetime(as_of) + pd.to_timedelta(days, unit="D")).dt.date


def scoring_table(tables: dict[str, ir.Table], as_of: dt.date, cfg: Config) -> ir.Table:
    """Every account active at as_of, or in renewal (its last term ended within the grace, with
    `renewal_pending` and `days_since_term_end`), with its features, ARR on the day (`arr_now`)
    account attributes and the CSM's context (`csm_context`): an engine expression, not yet
    run."""
    subs, grace = tables["subscriptions"], cfg.labels.grace_days
    active = snapshots(subs, [as_of]).mutate(days_since_term_end=ibis.null("int64"))
    snaps = active.union(lapsed_terms(subs, [as_of], grace))  # and accounts in renewal
    feats = compute_features(tables, snaps, [as_of], cfg.features, grace_days=grace)
    context = csm_context(tables, snaps, [as_of], cfg.features, grace_days=grace)
    accounts = tables["accounts"].select("account_id", *ACCOUNT_COLUMNS)
    now = snaps.select(  # ARR on the day (of the last term, in renewal), for ARR at risk
        *KEYS, "days_since_term_end", arr_now=snaps.arr,
        renewal_pending=snaps.days_since_term_end.notnull(),
    )  # fmt: skip
    return now.inner_join(feats, KEYS).inner_join(accounts, "account_id").left_join(context, KEYS)


COVERED_SHARE = 0.999  # the data reaches the day by which this share of usage events happened


def coverage(tables: dict[str, ir.Table]) -> tuple[dt.date, dt.date]:
    """The day the usage events reach (by which COVERED_SHARE of them happened, so that a few
    stray events far ahead, a clock gone wrong, do not count as data) and the last event's day."""
    ts = tables["usage_events"].ts
    last = ts.max().execute()
    if last is None or pd.isna(last):
        raise ValueError("table usage_events has no rows: nothing to score from")
    covered = ts.epoch_seconds().quantile(COVERED_SHARE).execute()  # as seconds: every engine
    last_day = pd.Timestamp(last).date()
    return min(pd.Timestamp(float(covered), unit="s").date(), last_day), last_day


def check_as_of(tables: dict[str, ir.Table], as_of: dt.date | None, max_gap_days: int) -> dt.date:
    """`as_of`, by default the day after the usage events reach (`coverage`, computed once);
    refused past the data: the missing days would read as an account gone quiet."""
    covered_day, last_day = coverage(tables)
    as_of = as_of or covered_day + dt.timedelta(days=1)
    gap = (as_of - covered_day).days - 1  # days before as_of with (almost) no events
    if gap > max_gap_days:
        strays = "" if last_day == covered_day else f"; a few stray ones reach {last_day}"
        raise ValueError(
            f"as_of {as_of} is beyond the data: the usage events (table usage_events, column ts) "
            f"reach {covered_day} (99.9% of them){strays}, {gap} day(s) before as_of (allowed: "
            f"scoring.max_data_gap_days = {max_gap_days}). Score as of "
            f"{covered_day + dt.timedelta(days=1 + max_gap_days)} or earlier, or load newer data."
        )
    return as_of


def trained_config(
    cfg: Config, models: dict[str, LoadedModel], tables: dict[str, ir.Table], as_of: dt.date
) -> Config:
    """`cfg` with the key events the models were trained with, so that scoring builds the same
    columns (models from before key events were stored: chosen from the data, as in training)."""
    stored = [m.model.meta["key_events"] for m in models.values() if "key_events" in m.model.meta]
    if not stored:
        return with_key_events(cfg, tables, as_of)
    return cfg.with_key_events(tuple(dict.fromkeys(e for events in stored for e in events)))


def require_features(columns: list[str], models: dict[str, LoadedModel], cfg: Config) -> None:
    """Refuse before any heavy work when a model's features are not all in the table."""
    cat = by_name(cfg.features)
    for target, loaded in models.items():
        missing = [f for f in loaded.model.features if f not in columns]
        if missing:
            tables = {input_table(cat[f].source) for f in missing if f in cat} - {None}
            raise MissingFeaturesError(
                f"the {target} model ({loaded.source}) needs {len(missing)} feature column(s) "
                f"that the feature table lacks, e.g. {', '.join(missing[:5])}"
                + (f" (from table {', '.join(sorted(tables))}: is it missing?)" if tables else "")
                + "; score data like the training data, or retrain on this data"
            )


def score(
    cfg: Config,
    *,
    data_dir: Path | str,
    as_of: dt.date | None,
    out: Path | str,
    uris: dict[str, str | None] | None = None,
    model_dir: Path | None = None,
    crm: str = "salesforce",
    lang: Lang = "en",
    changed_since: Path | None = None,
    engine: Engine = "duckdb",
    previous: Path | None = None,
) -> ScoreResult:
    """Score, then write scores.parquet, contributions.parquet, crm_export.csv and alerts.csv
    into `out`; with `previous` (an earlier `out`), what changed since and why; with
    `changed_since` (an earlier `out`), only the CRM rows that changed. On Spark `out` may be any
    path Spark writes, and the executors write the run. `as_of` None: the day after the data
    ends (`check_as_of`). On DuckDB written chunk by chunk, in bounded memory, unless
    `changed_since` is given."""
    where = str(out) if is_uri(out) else str(Path(out).resolve())
    if is_uri(where) and engine != "spark":
        raise ValueError(f"--out {where}: only --engine spark writes to a URI; give a local "
                         "folder")  # fmt: skip
    tables = load(data_dir, cfg.data, engine)
    if not cfg.data.exchange_rates:  # else converted into report.currency
        cfg = cfg.shown_in(book_currency(tables["subscriptions"]))
    as_of = check_as_of(tables, as_of, cfg.scoring.max_data_gap_days)
    before = read_previous(previous, as_of) if previous is not None else None
    fields = load_field_map(crm)
    models, missing = resolve_models(cfg, uris or {}, model_dir)
    cfg = trained_config(cfg, models, tables, as_of)
    expr = scoring_table(tables, as_of, cfg)
    require_features(expr.columns, models, cfg)
    table = cached(expr)
    names = sorted({f for m in models.values() for f in m.model.features} & set(table.columns))
    meta = {KEY_EVENTS: list(cfg.features.key_events or ()), CURRENCY: cfg.report.currency,
            MODELS: {t: identity(m) for t, m in models.items()}}  # fmt: skip
    learnt = models["churn"].model.meta if "churn" in models else {}
    meta |= {key: learnt[name] for key, name in ((FORECAST, "forecast"),
                                                 (STATED, "stated_reasons")) if name in learnt}
    use = monthly_use(tables["usage_events"], as_of)  # for the report
    alerted = None
    if engine == "spark":  # the executors write the run
        since = None if previous is None else _spark_previous(Path(previous), before, tables,
                                                               models, cfg, lang)  # fmt: skip
        rows, crm_rows, top, alerted = spark_scores(table, models, cfg, lang, names, str(out),
                                                    fields, meta, use, since,
                                                    changed_since)  # fmt: skip
    elif changed_since is None:  # bounded memory
        with tempfile.TemporaryDirectory() as scratch:
            since = None if previous is None else _since(
                Path(previous), before, tables, models, cfg, lang, names, fields,
                Path(scratch) / "then")
            rows, found = write_scores(table, models, cfg, lang, names, out, fields, meta,
                                       use.to_pyarrow(), since)  # fmt: skip
        crm_rows, alerted = rows, None if since is None else found
        top = top_at_risk(Path(out) / "scores.parquet", list(TOP_COLUMNS))
    else:
        scores, contributions = score_table(table, models, cfg, lang)
        values = table.select("account_id", *names).execute()  # for the next run's --previous
        found = None
        if before is not None:
            changes = _changes(scores, contributions, values, before, previous, tables, models,
                               cfg, lang)  # fmt: skip
            scores = scores.assign(**changes)
            found = alerts(scores, cfg.scoring.alert_points)
            alerted = len(found)
        crm_rows = write_outputs(scores, contributions, fields, out, changed_since, found, values,
                                 meta, use.to_pyarrow())  # fmt: skip
        rows, top = len(scores), scores.dropna(subset=["arr_at_risk"]).nlargest(5, "arr_at_risk")
        top = top[list(TOP_COLUMNS)]
    return ScoreResult(
        where, as_of, rows, crm_rows, {t: m.source for t, m in models.items()}, missing,
        [t for t, m in models.items() if m.no_skill], top.reset_index(drop=True), alerted,
        cfg.report.currency,
    )  # fmt: skip


def write_scores(table: ir.Table, models: dict[str, LoadedModel], cfg: Config, lang: Lang,
                 names: list[str], out: Path | str, fields: FieldMap, meta: dict[str, object],
                 adoption: pa.Table | None = None,
                 since: Since | None = None) -> tuple[int, int]:  # fmt: skip
    """Score a DuckDB feature table and write the run into `out` in bounded memory
    (`churnml.scoring.stream`), reading it in account order, with what changed `since` a
    previous run if given; `names`: the models' inputs kept in features.parquet. Returns the
    rows scored and the alerts."""
    score_chunk, finish_chunk = _chunk_steps(table, models, cfg, lang)
    ordered = table.order_by("account_id").to_pyarrow_batches(chunk_size=cfg.scoring.chunk_rows)
    return score_streamed(ibis.get_backend(table), ordered, score_chunk, finish_chunk, names, out,
                          fields, meta, adoption, cfg.scoring.chunk_rows, since)  # fmt: skip


def _since(previous: Path, before: pd.DataFrame, tables: dict[str, ir.Table],
           models: dict[str, LoadedModel], cfg: Config, lang: Lang, names: list[str],
           fields: FieldMap, scratch: Path) -> Since:  # fmt: skip
    """The previous run to compare with (`changes.Since`): its own files when it used today's
    models and kept its inputs; else its date scored again with today's models, into
    `scratch`."""
    run, then = previous, before
    if _kept_inputs(previous, models) is None:
        since = scored_as_of(before)
        table = cached(scoring_table(tables, since, cfg))
        write_scores(table, models, cfg, lang, names, scratch, fields, {})
        run, then = scratch, pd.read_parquet(scratch / "scores.parquet", columns=list(BEFORE))
    return Since(run, then, before, by_name(cfg.features), lang, cfg.report.currency,
                 cfg.scoring.alert_points)  # fmt: skip


def _spark_previous(previous: Path, before: pd.DataFrame, tables: dict[str, ir.Table],
                    models: dict[str, LoadedModel], cfg: Config, lang: Lang) -> Previous:
    """The previous run as a Spark run compares with it (`churnml.scoring.spark.Previous`): its
    own files when it used today's models and kept its inputs, else its date scored again."""
    from churnml.scoring.spark import Previous

    since = scored_as_of(before)
    kept = _kept_inputs(previous, models) is not None
    again = None if kept else cached(scoring_table(tables, since, cfg))
    bound = partial(compare, catalogue=by_name(cfg.features), lang=lang,
                    currency=cfg.report.currency, since=since)  # fmt: skip
    return Previous(str(previous.resolve()), again, bound, cfg.scoring.alert_points)


def _kept_inputs(previous: Path, models: dict[str, LoadedModel]) -> Path | None:
    """The previous run's inputs (features.parquet) if it kept them and used today's models
    (so its files can be compared as they are), else None."""
    same = read_models(previous / "scores.parquet") == {t: identity(m) for t, m in models.items()}
    kept = run_file(previous, "features.parquet")
    return kept if same else None


def _chunk_steps(table: ir.Table, models: dict[str, LoadedModel], cfg: Config, lang: Lang,
                 ) -> tuple[Scorer, Finisher]:  # fmt: skip
    """What scores a chunk of feature rows (segment medians from the engine), and what finishes
    a chunk of ranked scores (percentiles, action, play, priority, one time of scoring)."""
    cat = by_name(cfg.features)
    medians = engine_medians(table, sorted(cat))
    at = scored_now()  # one time for the whole run
    return (
        lambda chunk: _score_chunk(chunk, models, cat, cfg, lang, medians),
        lambda ranked: stamp(act(shares(ranked), cfg.scoring, cat), models, at),
    )


def spark_scores(table: ir.Table, models: dict[str, LoadedModel], cfg: Config, lang: Lang,
                 names: list[str], out: str, fields: FieldMap, meta: dict[str, object],
                 adoption: ir.Table | None = None, previous: Previous | None = None,
                 changed_since: Path | None = None,
                 ) -> tuple[int, int, pd.DataFrame, int | None]:  # fmt: skip
    """Score a Spark feature table, the executors writing the run into `out`
    (`churnml.scoring.spark`), with what changed since `previous` if given, and only the CRM rows
    changed since the run `changed_since` if given; the rows scored, the CRM rows, the five with
    the most ARR at risk, and the alerts (None without `previous`)."""
    from churnml.scoring.spark import score_on_spark

    score_chunk, finish_chunk = _chunk_steps(table, models, cfg, lang)
    features = {t: m.model.features for t, m in models.items()}
    export = None if changed_since is None else previous_export(Path(changed_since))
    return score_on_spark(table, score_chunk, finish_chunk, features, names, out, fields, meta,
                          adoption, list(TOP_COLUMNS), previous,
                          None if export is None else str(export.resolve()))  # fmt: skip


def identity(loaded: LoadedModel) -> str:
    """What tells one trained model from another (an alias URI does not)."""
    meta = loaded.model.meta
    keys = ("target", "trained_at", "training_rows", "base_rate", "rounds")
    return "|".join(str(meta.get(k)) for k in keys)


def _changes(
    scores: pd.DataFrame,
    contributions: pd.DataFrame,
    values: pd.DataFrame,
    before: pd.DataFrame,
    previous: Path,
    tables: dict[str, ir.Table],
    models: dict[str, LoadedModel],
    cfg: Config,
    lang: Lang,
) -> pd.DataFrame:
    """The change columns (`churnml.scoring.changes`). When the previous run used the same
    models and kept its inputs (features.parquet), its files are compared directly; else the
    previous date is scored again with today's models from today's data."""
    previous = Path(previous)
    kept = _kept_inputs(previous, models)
    if kept is not None:
        then, then_contributions = before, pd.read_parquet(previous / "contributions.parquet")
        then_values = pd.read_parquet(kept)
    else:
        since = scored_as_of(before)
        then_table = cached(scoring_table(tables, since, cfg))
        then, then_contributions = score_table(then_table, models, cfg, lang)
        then_values = then_table.select(*values.columns).execute()
    return compare(scores, then, before, (contributions, then_contributions),
                   (values, then_values), by_name(cfg.features), lang,
                   cfg.report.currency)  # fmt: skip


def score_table(
    table: ir.Table, models: dict[str, LoadedModel], cfg: Config, lang: Lang = "en"
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Score a feature table in memory (computed once and kept by the engine: `cached`):
    segment medians are taken there, then rows are streamed to this process and scored in
    chunks. (`--previous` and `--changed-since` compare whole books in memory; without them,
    `write_scores` and `spark_scores` write the run in bounded memory.)"""
    cat = by_name(cfg.features)
    medians = engine_medians(table, sorted(cat))
    batches = table.to_pyarrow_batches(chunk_size=cfg.scoring.chunk_rows)
    parts = [_score_chunk(b.to_pandas(), models, cat, cfg, lang, medians) for b in batches]
    if not any(len(scores) for scores, _ in parts):
        raise ValueError("no account is active at as_of: nothing to score")
    return _gather(parts, models, cfg.scoring, cat)
