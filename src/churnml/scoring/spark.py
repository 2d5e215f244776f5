"""Scoring on Spark: the feature table stays on the cluster and `mapInPandas` scores each batch of
rows on the executors with the same function as the DuckDB path; only scored rows come back.

Each output row carries the account's scores and, packed beside them as `<target>:<feature>`
columns, its contributions; the driver unpacks them into the two tables that are written.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import ibis
import ibis.expr.types as ir
import pandas as pd
import pyarrow as pa
from pyspark.sql.pandas.types import from_arrow_schema

from churnml.scoring.outputs import Chunk

Scorer = Callable[[pd.DataFrame], Chunk]


def map_in_pandas(
    table: ir.Table, score_batch: Scorer, scores: pa.Schema, features: dict[str, list[str]]
) -> list[Chunk]:
    """Score `table` (an Ibis table on Spark) batch by batch on the executors; return the scored
    rows gathered on the driver, as `score_batch` gives them."""
    con = ibis.get_backend(table)
    frame = con.raw_sql(con.compile(table))
    packed = scores
    for target, names in features.items():
        for name in names:
            packed = packed.append(pa.field(f"{target}:{name}", pa.float64()))

    def score_partition(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for batch in batches:
            yield _pack(*score_batch(batch), scores, features)

    result = frame.mapInPandas(score_partition, schema=from_arrow_schema(packed)).toArrow()
    return [_unpack(result, scores, features)]


def _pack(
    scores: pd.DataFrame,
    contributions: dict[str, pd.DataFrame],
    schema: pa.Schema,
    features: dict[str, list[str]],
) -> pd.DataFrame:
    parts = [scores[schema.names]]
    for target, names in features.items():
        parts.append(contributions[target][names].add_prefix(f"{target}:"))
    return pd.concat(parts, axis=1)


def _unpack(result: pa.Table, schema: pa.Schema, features: dict[str, list[str]]) -> Chunk:
    contributions = {}
    for target, names in features.items():
        points = result.select([f"{target}:{n}" for n in names]).rename_columns(names)
        contributions[target] = points.add_column(0, "account_id", result["account_id"]).to_pandas()
    return result.select(schema.names).to_pandas(), contributions
