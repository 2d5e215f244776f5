"""Scoring on Spark, every row written by the executors: the driver plans the jobs and reads back
only counts and the five accounts with the most ARR at risk.

1. `mapInArrow` scores each batch of the feature table with the DuckDB path's function; the rows
   (scores, each first reason's feature, and the contributions packed beside them as
   `<target>:<feature>` columns) go to `_scored/` under the run's temporary prefix.
2. contributions.parquet/ is unpacked from `_scored/`; features.parquet/ is the models' inputs
   from the feature table; adoption.parquet/ is the report's monthly use.
3. The whole-book step: Spark's window functions rank the scorecard's family pulls within each
   segment and health across the book (counts of values at most the account's, as
   `churnml.scoring.book.percentile`), and a second `mapInArrow` turns ranks into percentiles
   and adds the action, play, priority and stamps on the narrow columns only; joined with the
   wide ones they make scores.parquet/, and crm_export.csv/ (a header in each part) is written
   from that.
4. The run's metadata goes to `scores.parquet/_churnml.json`, and alerts.csv (a header) beside.

Each output is a folder of part files, which pandas, pyarrow, DuckDB and Spark read as one table.
`churnml.io.committed` makes the run all or none (see its docstring for object stores).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import ibis.expr.types as ir
import pandas as pd
import pyarrow as pa
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import from_arrow_schema, to_arrow_schema

from churnml.data.sources import spark_frame
from churnml.io import SparkStore, committed
from churnml.scoring.book import share
from churnml.scoring.crm import FieldMap, crm_frame, csv_text
from churnml.scoring.outputs import ADOPTION_FILE, META_FILE, SCORED, SCORES, Chunk, alert_rows
from churnml.scoring.stream import BOOK, FINISHED, first_reasons

Scorer = Callable[[pd.DataFrame], Chunk]
RANKED = [n for n in FINISHED if n.startswith("score_")] + ["health_score"]  # percentiles
CSV_OPTIONS = {"header": True, "quoteAll": True, "escape": '"'}  # as churnml.scoring.crm


def score_on_spark(
    table: ir.Table,
    score_batch: Scorer,
    act: Callable[[pd.DataFrame], pd.DataFrame],
    features: dict[str, list[str]],
    inputs: list[str],
    out: str,
    fields: FieldMap,
    meta: dict[str, object],
    adoption: ir.Table,
    top_columns: list[str],
) -> tuple[int, pd.DataFrame]:
    """Score `table` (an Ibis table on Spark) and write the run to `out` (any path Spark
    writes), all or none: `score_batch` scores a batch (targets and their model `features`);
    `act` adds the `FINISHED` columns to narrow rows whose scorecard and health are percentiles;
    the CRM feed has `fields`; `inputs` go to features.parquet, `adoption` to adoption.parquet,
    `meta` beside scores.parquet. Returns the rows scored and the five with the most ARR at risk
    (`top_columns`)."""
    frame = spark_frame(table)
    session = frame.sparkSession
    packed = _packed_schema(features)
    feed = pa.schema([(name, pa.string()) for name in fields.fields])

    def score(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            yield from _pack(*score_batch(batch.to_pandas()), packed)

    def to_crm(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            yield from _batches(crm_frame(_pandas(batch), fields), feed)

    with committed(session, out, "scores.parquet") as tmp:
        frame.mapInArrow(score, from_arrow_schema(packed)).write.parquet(f"{tmp}/_scored")
        scored = session.read.parquet(f"{tmp}/_scored")
        _contributions(scored, features).write.parquet(f"{tmp}/contributions.parquet")
        frame.select("account_id", *inputs).write.parquet(f"{tmp}/features.parquet")
        spark_frame(adoption).write.parquet(f"{tmp}/{ADOPTION_FILE}")
        _scores(scored, act).write.parquet(f"{tmp}/scores.parquet")
        scores = session.read.parquet(f"{tmp}/scores.parquet")
        scores.select(*dict.fromkeys(fields.fields.values())).mapInArrow(
            to_crm, from_arrow_schema(feed)
        ).write.csv(f"{tmp}/crm_export.csv", **CSV_OPTIONS)
        store = SparkStore(session, tmp)
        store.write(f"{tmp}/scores.parquet/{META_FILE}", json.dumps(meta).encode())
        store.write(f"{tmp}/alerts.csv", csv_text(alert_rows()))
        store.delete(f"{tmp}/_scored")
        rows = scores.count()
        top = scores.where(F.col("arr_at_risk").isNotNull()).orderBy(F.desc("arr_at_risk"))
        top = top.limit(5).select(*top_columns).toArrow().to_pandas()
    return rows, top


def _packed_schema(features: dict[str, list[str]]) -> pa.Schema:
    """SCORES, each first reason's feature, and `<target>:<feature>` contributions."""
    schema = SCORES
    for name in first_reasons(pd.DataFrame({c: [] for c in SCORES.names})):
        schema = schema.append(pa.field(name, pa.string()))
    for target, names in features.items():
        for name in names:
            schema = schema.append(pa.field(f"{target}:{name}", pa.float64()))
    return schema


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


def _pandas(batch: pa.RecordBatch) -> pd.DataFrame:
    """A batch as pandas, lists kept as Arrow lists (as `churnml.scoring.stream` reads them)."""
    return batch.to_pandas(types_mapper=lambda t: pd.ArrowDtype(t) if pa.types.is_list(t) else None)


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


def _scores(scored: DataFrame, act: Callable[[pd.DataFrame], pd.DataFrame]) -> DataFrame:
    """scores.parquet's rows: narrow columns ranked over the book and finished by `act`,
    joined with the wide ones."""
    narrow = [*BOOK, *(n for n in scored.columns if n.startswith("first_"))]
    finished = pa.schema([SCORED.field("account_id"), *(SCORED.field(n) for n in FINISHED)])

    def finish(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            rows = _pandas(batch)
            for name in RANKED:
                rows[name] = share(rows.pop(f"rank:{name}"), rows.pop(f"size:{name}"))
            done = act(rows)
            done = done.assign(**dict.fromkeys(set(FINISHED) - set(done.columns)))  # changes
            yield from _batches(done, finished)

    ranked = scored.select(*narrow, *_ranks(scored)).drop(*RANKED)
    done = ranked.mapInArrow(finish, from_arrow_schema(finished))
    wide = scored.select(*(n for n in SCORES.names if n not in FINISHED))
    return wide.join(done, "account_id").select(*SCORED.names)


def _ranks(scored: DataFrame) -> list[Column]:
    """`rank:<column>` (how many of its group's values are at most the account's) and
    `size:<column>` (how many values the group has) of each RANKED column: its segment for
    the scorecard, the whole book for health. Missing and NaN values neither rank nor count."""
    out = []
    for name in RANKED:
        value = F.when(~F.isnan(name), F.col(name))
        group = Window.partitionBy("segment") if name != "health_score" else Window.partitionBy()
        at_most = F.count(value).over(group.orderBy(value))  # peers included: RANGE frame
        out += [F.when(value.isNotNull(), at_most).alias(f"rank:{name}"),
                F.count(value).over(group).alias(f"size:{name}")]  # fmt: skip
    return out
