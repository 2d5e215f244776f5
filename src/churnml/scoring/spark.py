"""Scoring on Spark: the feature table stays on the cluster and `mapInPandas` scores each batch of
rows on the executors with the same function as the DuckDB path; only scored rows come back.

Each output row carries the account's scores and, packed beside them as `<target>:<feature>`
columns, its contributions; the driver unpacks them into the two tables that are written.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import ibis.expr.types as ir
import pandas as pd
import pyarrow as pa
from pyspark.sql.pandas.types import from_arrow_schema

Scorer = Callable[[pd.DataFrame], tuple[pd.DataFrame, pd.DataFrame]]


def map_in_pandas(
    table: ir.Table, score_batch: Scorer, scores: pa.Schema, features: dict[str, list[str]]
) -> list[tuple[pd.DataFrame, pd.DataFrame]]:
    """Score `table` (an Ibis table on Spark) batch by batch on the executors; return the scores
    and contributions (wide, as `score_batch` gives them) gathered on the driver."""
    con = table._find_backend()
    frame = con._session.sql(con.compile(table))
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
    contributions: pd.DataFrame,
    schema: pa.Schema,
    features: dict[str, list[str]],
) -> pd.DataFrame:
    parts = [scores[schema.names]]
    for target, names in features.items():
        mine = contributions[contributions.target == target].reset_index(drop=True)
        parts.append(mine[names].add_prefix(f"{target}:"))
    return pd.concat(parts, axis=1)


def _unpack(
    result: pa.Table, schema: pa.Schema, features: dict[str, list[str]]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    scores = result.select(schema.names).to_pandas()
    contributions = []
    for target, names in features.items():
        ids = {"account_id": result["account_id"], "target": pa.repeat(target, len(result))}
        points = result.select([f"{target}:{n}" for n in names]).rename_columns(names)
        contributions.append(pa.table({**ids, **dict(zip(names, points.columns, strict=True))}))
    return scores, pd.concat([c.to_pandas() for c in contributions], ignore_index=True)
