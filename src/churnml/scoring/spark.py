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
   each part) is written from it.
4. The run's metadata goes to `scores.parquet/_churnml.json`, and alerts.csv (a header) beside.

Each output is a folder of part files, which pandas, pyarrow, DuckDB and Spark read as one table.
`churnml.io.committed` makes the run all or none (see its docstring for object stores).
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import ibis
import ibis.expr.types as ir
import pandas as pd
import pyarrow as pa
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import from_arrow_schema, to_arrow_schema

from churnml.data.sources import spark_frame
from churnml.io import SparkStore, committed
from churnml.scoring.book import ranked
from churnml.scoring.crm import FieldMap, crm_frame, csv_text
from churnml.scoring.outputs import ADOPTION_FILE, META_FILE, SCORED, Finisher, Scorer, alert_rows
from churnml.scoring.stream import WIDE_SCHEMA, as_pandas, finished, first_reasons

CSV_OPTIONS = {"header": True, "quoteAll": True, "escape": '"'}  # as churnml.scoring.crm


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
) -> tuple[int, pd.DataFrame]:
    """Score `table` (an Ibis table on Spark) and write the run to `out` (any path Spark
    writes), all or none: `score_batch` scores a batch (targets and their model `features`);
    `finish_batch` finishes ranked scores (as in `churnml.scoring.stream.score_streamed`); the
    CRM feed has `fields`; `inputs` go to features.parquet, `adoption` to adoption.parquet,
    `meta` beside scores.parquet. Returns the rows scored and the five with the most ARR at risk
    (`top_columns`)."""
    con = ibis.get_backend(table)
    frame = spark_frame(table)
    session = frame.sparkSession
    packed = _packed_schema(features)
    feed = pa.schema([(name, pa.string()) for name in fields.fields])

    def score(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            yield from _pack(*score_batch(batch.to_pandas()), packed)

    def finish(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            yield from _batches(finished(batch, finish_batch), SCORED)

    def to_crm(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            yield from _batches(crm_frame(as_pandas(batch), fields), feed)

    with committed(session, out, "scores.parquet") as tmp:
        frame.mapInArrow(score, from_arrow_schema(packed)).write.parquet(f"{tmp}/_scored")
        scored = session.read.parquet(f"{tmp}/_scored")
        _contributions(scored, features).write.parquet(f"{tmp}/contributions.parquet")
        frame.select("account_id", *inputs).write.parquet(f"{tmp}/features.parquet")
        if adoption is not None:
            spark_frame(adoption).write.parquet(f"{tmp}/{ADOPTION_FILE}")
        book = ranked(con.read_parquet(f"{tmp}/_scored").select(*WIDE_SCHEMA.names))
        spark_frame(book).mapInArrow(finish, from_arrow_schema(SCORED)).write.parquet(
            f"{tmp}/scores.parquet")  # fmt: skip
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
    schema = WIDE_SCHEMA
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
