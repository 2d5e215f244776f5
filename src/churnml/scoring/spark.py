"""Scoring on Spark, every row written by the executors: the driver plans the jobs and reads back
only counts and the five accounts with the most ARR at risk.

1. `mapInArrow` scores each batch of the feature table with the DuckDB path's function; the rows
   (scores, each first reason's feature, and the contributions packed beside them as
   `<target>:<feature>` columns) go to `_scored/` under the run's temporary prefix.
2. contributions.parquet/ is unpacked from `_scored/`; features.parquet/ is the models' inputs
   from the feature table; adoption.parquet/ is the report's monthly use.
3. The whole-book step, as on DuckDB (`churnml.scoring.stream`): Spark ranks the book with
   window functions (`churnml.scoring.book.ranks`), and a second `mapInArrow` finishes each batch
   (percentiles, action, play, priority, stamps): scores.parquet/. crm_export.csv/ (a header in
   each part) is written from it; with `--changed-since`, only the rows that a join to the
   earlier export finds new or changed.
   With `--previous` (`Previous`), the ranked book is first joined with what each account had
   in both runs (contributions, inputs, probabilities: `_previous_rows`), and each batch is
   compared as on DuckDB (`churnml.scoring.changes.compare`); a previous run by other models is
   first scored again under the prefix (`_then/`). alerts.csv/ is then found and ranked by Spark.
4. The run's metadata goes to `scores.parquet/_churnml.json`, and alerts.csv (a header; without
   `--previous`) beside.

Each output is a folder of part files, which pandas, pyarrow, DuckDB and Spark read as one table.
`churnml.io.committed` makes the run all or none (see its docstring for object stores).
"""

from __future__ import annotations

import json
import operator
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import reduce

import ibis
import ibis.expr.types as ir
import pandas as pd
import pyarrow as pa
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import from_arrow_schema, to_arrow_schema

from churnml.data.sources import spark_frame
from churnml.io import SparkStore, committed
from churnml.scoring.book import ranked
from churnml.scoring.changes import ALERTS, BEFORE
from churnml.scoring.crm import FieldMap, compared_fields, crm_frame, csv_text
from churnml.scoring.outputs import ADOPTION_FILE, META_FILE, SCORED, Finisher, Scorer, alert_rows
from churnml.scoring.stream import WIDE_SCHEMA, as_pandas, finished, first_reasons
from churnml.vocabulary import TARGETS, TIERS

CSV_OPTIONS = {"header": True, "quoteAll": True, "escape": '"'}  # as churnml.scoring.crm


@dataclass(frozen=True)
class Previous:
    """What a run compares with (`--previous`): the earlier run at `path` (any path Spark reads);
    `again`, the feature table of its date when it used other models (scored again with today's
    models and compared with that: its reasons read against today's medians, which no change
    uses), else None (its own files are compared); `compare`, `churnml.scoring.changes.compare`
    with the catalogue, language, currency and date bound; `alert_points`, the rise in churn risk
    that raises an alert."""

    path: str
    again: ir.Table | None
    compare: Callable[..., pd.DataFrame]
    alert_points: float


@dataclass(frozen=True)
class _Job:
    """What scores a feature table (see `score_on_spark`)."""

    score_batch: Scorer
    finish_batch: Finisher
    features: dict[str, list[str]]
    inputs: list[str]
    fields: FieldMap


def score_on_spark(
    table: ir.Table,
    score_batch: Scorer,
    finish_batch: Finisher,
    features: dict[str, list[str]],
    inputs: list[str],
    out: str,
    fields: FieldMap,
    meta: dict[str, object],
    adoption: ir.Table | None,
    top_columns: list[str],
    previous: Previous | None = None,
    changed_since: str | None = None,
) -> tuple[int, int, pd.DataFrame, int | None]:
    """Score `table` (an Ibis table on Spark) and write the run to `out` (any path Spark
    writes), all or none: `score_batch` scores a batch (targets and their model `features`);
    `finish_batch` finishes ranked scores (as in `churnml.scoring.stream.score_streamed`); the
    CRM feed has `fields`; `inputs` go to features.parquet, `adoption` to adoption.parquet,
    `meta` beside scores.parquet; with `previous`, what changed since and alerts.csv; with
    `changed_since` (an earlier run's crm_export.csv), only the CRM rows that changed. Returns
    the rows scored, the CRM rows, the five with the most ARR at risk (`top_columns`) and the
    alerts (None without `previous`)."""
    job = _Job(score_batch, finish_batch, features, inputs, fields)
    session = spark_frame(table).sparkSession
    with committed(session, out, "scores.parquet") as tmp:
        store, since = SparkStore(session, tmp), None
        if previous is not None:
            then = previous.path if previous.again is None else f"{tmp}/_then"
            if previous.again is not None:
                _write_run(previous.again, job, then, None)
            since = (then, previous)
        scores, alerted = _write_run(table, job, tmp, since, changed_since)
        if adoption is not None:
            spark_frame(adoption).write.parquet(f"{tmp}/{ADOPTION_FILE}")
        store.write(f"{tmp}/scores.parquet/{META_FILE}", json.dumps(meta).encode())
        if since is None:
            store.write(f"{tmp}/alerts.csv", csv_text(alert_rows()))
        if store.exists(f"{tmp}/_then"):
            store.delete(f"{tmp}/_then")
        rows, feed = scores.count(), f"{tmp}/crm_export.csv"
        crm_rows = rows if changed_since is None else _read_csv(session, feed).count()
        top = scores.where(F.col("arr_at_risk").isNotNull()).orderBy(F.desc("arr_at_risk"))
        top = top.limit(5).select(*top_columns).toArrow().to_pandas()
    return rows, crm_rows, top, alerted


def _write_run(table: ir.Table, job: _Job, tmp: str, since: tuple[str, Previous] | None,
               changed_since: str | None = None) -> tuple[DataFrame, int | None]:  # fmt: skip
    """Score `table` into `tmp`: scores.parquet, contributions.parquet, features.parquet,
    crm_export.csv (the rows changed since the export `changed_since`, if given) and, `since`
    (the run to compare with, and the previous run) given, alerts.csv. Returns scores.parquet as
    Spark reads it, and the alerts."""
    con, frame = ibis.get_backend(table), spark_frame(table)
    session = frame.sparkSession
    packed = _packed_schema(job.features)
    feed = pa.schema([(name, pa.string()) for name in job.fields.fields])

    def score(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            yield from _pack(*job.score_batch(batch.to_pandas()), packed)

    def to_crm(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            yield from _batches(crm_frame(as_pandas(batch), job.fields), feed)

    frame.mapInArrow(score, from_arrow_schema(packed)).write.parquet(f"{tmp}/_scored")
    scored = session.read.parquet(f"{tmp}/_scored")
    _contributions(scored, job.features).write.parquet(f"{tmp}/contributions.parquet")
    frame.select("account_id", *job.inputs).write.parquet(f"{tmp}/features.parquet")
    kept = WIDE_SCHEMA if since is None else packed  # compared: with today's contributions
    book = spark_frame(ranked(con.read_parquet(f"{tmp}/_scored").select(*kept.names)))
    _finished(book, job, tmp, since).write.parquet(f"{tmp}/scores.parquet")
    SparkStore(session, tmp).delete(f"{tmp}/_scored")
    scores = session.read.parquet(f"{tmp}/scores.parquet")
    crm = scores.select(*dict.fromkeys(job.fields.fields.values())).mapInArrow(
        to_crm, from_arrow_schema(feed))  # fmt: skip
    if changed_since is not None:
        crm = _changed(crm, _read_csv(session, changed_since), job.fields)
    crm.write.csv(f"{tmp}/crm_export.csv", **CSV_OPTIONS)
    if since is None:
        return scores, None
    found = _alerts(scores, since[1].alert_points)
    found.write.csv(f"{tmp}/alerts.csv", **CSV_OPTIONS)
    return scores, _read_csv(session, f"{tmp}/alerts.csv").count()


def _read_csv(session: SparkSession, path: str) -> DataFrame:
    """A CSV that churnml wrote (a file, or a folder of parts with a header in each), as text."""
    return session.read.csv(path, header=True, multiLine=True, escape='"')


def _changed(feed: DataFrame, old: DataFrame, fields: FieldMap) -> DataFrame:
    """The rows of `feed` that are new or whose CRM fields differ from the earlier export `old`
    (as `churnml.scoring.crm.changed_rows`; missing and empty cells are the same)."""
    compared = compared_fields(fields, old.columns)

    def text(frame: DataFrame, name: str) -> Column:
        return F.coalesce(frame[f"`{name}`"], F.lit(""))

    old = old.select(old[f"`{fields.key}`"].alias("old:key"),
                     *(text(old, f).alias(f"old:{f}") for f in compared))  # fmt: skip
    joined = feed.join(old, feed[f"`{fields.key}`"] == old["`old:key`"], "left")
    differs = [text(joined, f) != joined[f"`old:{f}`"] for f in compared]
    new = joined["`old:key`"].isNull()
    return joined.where(reduce(operator.or_, differs, new)).select(*feed.columns)


def _finished(book: DataFrame, job: _Job, tmp: str,
              since: tuple[str, Previous] | None) -> DataFrame:  # fmt: skip
    """The ranked `book` finished batch by batch (percentiles, action, play, priority, stamps)
    and, `since` given, compared with the previous run: scores.parquet's rows."""
    packed = set(_packed(job.features))
    columns = [c for c in book.columns if c not in packed]  # the ranked scores
    compare = None if since is None else since[1].compare  # what the executors need of it

    def finish(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            part = finished(batch.select(columns), job.finish_batch)
            if compare is not None:
                part = part.assign(**compare(part, *_sides(batch.to_pandas(), job)))
            yield from _batches(part, SCORED)

    if since is not None:
        for part in _previous_rows(book.sparkSession, tmp, *since, job):
            book = book.join(part, "account_id", "left")
    return book.mapInArrow(finish, from_arrow_schema(SCORED))


def _previous_rows(session: SparkSession, now: str, then: str, previous: Previous,
                   job: _Job) -> list[DataFrame]:  # fmt: skip
    """What `compare` needs of each account besides its scores and contributions (packed in the
    book): its inputs in the run `now` (`now:<input>`); its contributions, inputs and
    probabilities in the run `then` (`then:<target>:<feature>`, `then:<input>`,
    `then:<target>_probability`); the previous run's BEFORE columns (`before:<column>`). Tables
    keyed by account_id, to join to the book."""

    def read(run: str, name: str, columns: dict[str, str]) -> DataFrame:
        rows = session.read.parquet(f"{run}/{name}")
        return rows.select("account_id", *(F.col(f"`{c}`").alias(a) for a, c in columns.items()))

    contributions = session.read.parquet(f"{then}/contributions.parquet")
    parts = [contributions.where(F.col("target") == target).select(
        "account_id", *(F.col(f"`{n}`").alias(f"then:{target}:{n}") for n in names))
        for target, names in job.features.items()]  # fmt: skip
    parts += [read(run, "features.parquet", {f"{side}:{n}": n for n in job.inputs})
              for side, run in (("now", now), ("then", then))]  # fmt: skip
    probabilities = {f"then:{t}_probability": f"{t}_probability" for t in TARGETS}
    before = {f"before:{c}": c for c in BEFORE[1:]}
    if then == previous.path:  # the previous run's own files: one read of its scores
        return [*parts, read(then, "scores.parquet", probabilities | before)]
    return [*parts, read(then, "scores.parquet", probabilities),
            read(previous.path, "scores.parquet", before)]


def _sides(rows: pd.DataFrame, job: _Job) -> tuple[pd.DataFrame, ...]:
    """`compare`'s then, before, contributions and values of a batch of `_previous_rows`."""
    ids = rows[["account_id"]]
    union = list(dict.fromkeys(n for names in job.features.values() for n in names))

    def picked(prefix: str, columns: list[str] | tuple[str, ...]) -> pd.DataFrame:
        return ids.assign(**{c: rows[f"{prefix}{c}"] for c in columns})

    def contributions(side: str) -> pd.DataFrame:  # today's packed as `<target>:<feature>`
        return pd.concat([picked(f"{side}{target}:", names).assign(target=target).reindex(
            columns=["account_id", "target", *union]) for target, names in job.features.items()],
            ignore_index=True)  # fmt: skip

    then = picked("then:", [f"{t}_probability" for t in TARGETS])
    before = picked("before:", BEFORE[1:])
    return (then, before, tuple(contributions(s) for s in ("", "then:")),
            tuple(picked(f"{s}:", job.inputs) for s in ("now", "then")))


def _alerts(scores: DataFrame, points: float) -> DataFrame:
    """alerts.csv's rows (as `churnml.scoring.changes.alerts` finds and ranks them), as text."""
    schema = pa.schema([(name, pa.string()) for name in ALERTS])

    def up(target: str) -> Column:  # into a higher tier: earlier in TIERS
        at = [F.array_position(F.array(*map(F.lit, TIERS)), F.col(f"{target}{c}"))
              for c in ("_tier", "_tier_before")]  # fmt: skip
        return (at[0] > 0) & (at[1] > 0) & (at[0] < at[1])

    def cells(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            yield from _batches(alert_rows(as_pandas(batch)), schema)

    rose = F.col("churn_change") >= points
    found = scores.where(up("churn") | up("expansion") | rose).select(*ALERTS)
    found = found.orderBy(F.desc_nulls_last("priority"), "account_id")
    return found.mapInArrow(cells, from_arrow_schema(schema))


def _packed_schema(features: dict[str, list[str]]) -> pa.Schema:
    """SCORES, each first reason's feature, and `<target>:<feature>` contributions."""
    return pa.schema([*WIDE_SCHEMA, *((name, pa.float64()) for name in _packed(features))])


def _packed(features: dict[str, list[str]]) -> list[str]:
    """The contributions' columns beside the scores: `<target>:<feature>`."""
    return [f"{target}:{name}" for target, names in features.items() for name in names]


def _pack(scores: pd.DataFrame, contributions: dict[str, pd.DataFrame], schema: pa.Schema,
          ) -> Iterator[pa.RecordBatch]:  # fmt: skip
    parts = [scores.assign(**first_reasons(scores))]
    parts += [points.drop(columns="account_id").add_prefix(f"{target}:")
              for target, points in contributions.items()]  # fmt: skip
    return _batches(pd.concat(parts, axis=1), schema)


def _batches(frame: pd.DataFrame, schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    """`frame` as Arrow batches of `schema` as Spark holds it (timestamps in microseconds)."""
    table = pa.Table.from_pandas(frame[schema.names], schema=schema, preserve_index=False)
    yield from table.cast(to_arrow_schema(from_arrow_schema(schema))).to_batches()


def _contributions(scored: DataFrame, features: dict[str, list[str]]) -> DataFrame:
    """The targets' contributions, one after the other, under the union of their columns."""
    parts = [
        scored.select("account_id", F.lit(target).alias("target"),
                      *(F.col(f"`{target}:{name}`").alias(name) for name in names))
        for target, names in features.items()
    ]  # fmt: skip
    union = parts[0]
    for part in parts[1:]:
        union = union.unionByName(part, allowMissingColumns=True)
    return union
