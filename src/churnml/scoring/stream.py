"""Scoring a book of any size in bounded memory: the feature table is read in account order,
chunk by chunk, and each chunk's rows go to disk as soon as they are scored.

Two passes, and nothing kept per account in this process. The first scores each chunk and writes
it to the output's temporary folder: the scores with their raw family pulls and the feature of
each first reason (`_scores.parquet`), the contributions (`contributions.parquet`, each chunk's
targets one after the other), the models' inputs. Then the engine ranks the book
(`churnml.scoring.book.ranks`: the scorecard within each segment, health across the book) and
gives the scores back in account order with their ranks; the second pass turns ranks into
percentiles and adds the action, play, priority and stamps, chunk by chunk (with `--previous`,
what changed since: `churnml.scoring.changes.Since`, from the rows of the chunk's accounts in
both runs' files), and writes scores.parquet, the CRM feed and the alerts. The engine spills to
disk past its memory limit, so memory does not grow with the book. The files hold what
`write_outputs` writes for the same book (a test); only their row groups differ, and the order of
contributions' rows (by chunk, then target, where the whole book has every row of one target,
then the next).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from contextlib import ExitStack
from pathlib import Path

import ibis
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pyarrow import csv

from churnml.io import atomic_dir, parquet_writer, write_parquet
from churnml.scoring.book import first_feature, ranked
from churnml.scoring.changes import Since, alerts
from churnml.scoring.crm import CSV, FieldMap, crm_frame, write_csv
from churnml.scoring.outputs import (
    ADOPTION_FILE,
    REASONS,
    SCORED,
    SCORES,
    Finisher,
    Scorer,
    alert_rows,
)

FIRSTS = [f"first_{column}" for column in REASONS.values()]  # the feature of the first reason
WIDE = "_scores.parquet"  # the first pass's scores, in the temporary folder
WIDE_SCHEMA = pa.schema([*SCORES, *((name, pa.string()) for name in FIRSTS)])


def first_reasons(scores: pd.DataFrame) -> dict[str, pd.Series]:
    """`first_<reasons column>`: the feature of each account's first reason (for `act`)."""
    columns = zip(FIRSTS, REASONS.values(), strict=True)
    return {name: first_feature(scores[column]) for name, column in columns}


def score_streamed(
    con: ibis.BaseBackend,
    batches: Iterable[pa.RecordBatch],
    score_chunk: Scorer,
    finish_chunk: Finisher,
    inputs: list[str],
    out: Path | str,
    fields: FieldMap,
    meta: dict[str, object],
    adoption: pa.Table | None = None,
    chunk_rows: int = 65_536,
    since: Since | None = None,
) -> tuple[int, int]:
    """Score `batches` (feature rows in account order) with `score_chunk`; rank the book on
    `con` (an engine that spills, such as DuckDB); finish each chunk with `finish_chunk` (rows
    with ranks in, the finished scores out) and, given `since` (a previous run), what changed;
    write scores.parquet (`meta` in its metadata), contributions.parquet, features.parquet
    (account_id and `inputs`), crm_export.csv, alerts.csv (no rows without `since`) and
    `adoption` into `out`, all or none. Returns the rows scored and the alerts."""
    with atomic_dir(out) as tmp:
        _first_pass(batches, score_chunk, inputs, tmp)
        book = ranked(con.read_parquet(tmp / WIDE)).order_by("account_id")
        rows, found = _second_pass(book.to_pyarrow_batches(chunk_size=chunk_rows), finish_chunk,
                                   tmp, fields, meta, since)  # fmt: skip
        (tmp / WIDE).unlink()
        if adoption is not None:
            write_parquet(adoption, tmp / ADOPTION_FILE)
        write_csv(found, tmp / "alerts.csv")
    return rows, len(found)


def _first_pass(batches: Iterable[pa.RecordBatch], score_chunk: Scorer, inputs: list[str],
                tmp: Path) -> None:  # fmt: skip
    """Score and write each chunk: the scores, the models' inputs, and each target's
    contributions, the targets of a chunk one after the other."""
    writers: dict[str, pq.ParquetWriter] = {}
    union: pa.Schema | None = None  # the contributions' (every chunk scores the same targets)

    def write(name: str, rows: pd.DataFrame | pa.RecordBatch, schema: pa.Schema | None = None,
              ) -> None:  # fmt: skip
        table = (pa.Table.from_batches([rows]) if isinstance(rows, pa.RecordBatch)
                 else pa.Table.from_pandas(rows, schema=schema, preserve_index=False))  # fmt: skip
        table = table.replace_schema_metadata()
        if name not in writers:
            writers[name] = parquet_writer(tmp / name, table.schema)
        writers[name].write_table(table.cast(writers[name].schema))

    try:
        for batch in batches:
            scores, points = score_chunk(batch.to_pandas())
            if scores.empty:
                continue
            write(WIDE, scores.assign(**first_reasons(scores)), WIDE_SCHEMA)
            write("features.parquet", batch.select(["account_id", *inputs]))
            union = union or _contributions_schema(points)
            for target, block in points.items():
                rows = block.assign(target=target).reindex(columns=union.names)
                write("contributions.parquet", rows, union)
    finally:
        for writer in writers.values():
            writer.close()
    if WIDE not in writers:
        raise ValueError("no account is active at as_of: nothing to score")


def finished(batch: pa.RecordBatch, finish_chunk: Finisher) -> pd.DataFrame:
    """A batch of ranked scores finished by `finish_chunk`, with scores.parquet's columns (the
    change columns empty)."""
    part = finish_chunk(as_pandas(batch))
    return part.assign(**dict.fromkeys(set(SCORED.names) - set(part.columns)))[SCORED.names]


def as_pandas(batch: pa.RecordBatch) -> pd.DataFrame:
    """A batch as pandas; reasons stay Arrow lists (as scoring makes them), not lists of dicts."""
    return batch.to_pandas(types_mapper=lambda t: pd.ArrowDtype(t) if pa.types.is_list(t) else None)


def _second_pass(batches: Iterable[pa.RecordBatch], finish_chunk: Finisher, tmp: Path,
                 fields: FieldMap, meta: dict[str, object],
                 since: Since | None) -> tuple[int, pd.DataFrame]:  # fmt: skip
    """Each chunk of ranked scores finished (and compared `since`) and written: scores.parquet
    and crm_export.csv. Returns the rows written and the alerts' rows."""
    schema = SCORED.with_metadata({key: json.dumps(value) for key, value in meta.items()})
    rows, found = 0, list[pd.DataFrame]()
    with ExitStack() as stack:
        scores_out = stack.enter_context(parquet_writer(tmp / "scores.parquet", schema))
        feed_out = None
        for batch in batches:
            part = finished(batch, finish_chunk)
            if since is not None:
                part = part.assign(**since.compare(part, tmp))
                found.append(alerts(part, since.alert_points))
            scores_out.write_table(pa.Table.from_pandas(part, schema=schema, preserve_index=False))
            feed = pa.Table.from_pandas(crm_frame(part, fields), preserve_index=False)
            if feed_out is None:
                feed_out = stack.enter_context(
                    csv.CSVWriter(tmp / "crm_export.csv", feed.schema, write_options=CSV))
            feed_out.write_table(feed)
            rows += len(part)
    return rows, _ranked(found)


def _ranked(chunks: list[pd.DataFrame]) -> pd.DataFrame:
    """The chunks' alerts as alerts.csv's rows, ranked by priority as `alerts` ranks a whole
    book's (ties in account order)."""
    chunks = [rows for rows in chunks if len(rows)]
    if not chunks:
        return alert_rows()
    rows = pd.concat(chunks, ignore_index=True)
    return alert_rows(rows.sort_values("priority", ascending=False, kind="stable"))


def _contributions_schema(points: dict[str, pd.DataFrame]) -> pa.Schema:
    """account_id, target, then the union of the targets' features (and bias) in their order."""
    columns = dict.fromkeys(c for block in points.values() for c in block.columns[1:])
    return pa.schema([("account_id", pa.string()), ("target", pa.string()),
                      *((c, pa.float64()) for c in columns)])  # fmt: skip


def top_at_risk(scores_path: Path, columns: list[str]) -> pd.DataFrame:
    """The five accounts of a scores.parquet with the most ARR at risk, with `columns`."""
    risk = pq.read_table(scores_path, columns=["account_id", "arr_at_risk"]).to_pandas()
    top = risk.dropna(subset=["arr_at_risk"]).nlargest(5, "arr_at_risk")
    rows = pq.read_table(scores_path, columns=columns,
                         filters=[("account_id", "in", top.account_id.tolist())])  # fmt: skip
    return top[["account_id"]].merge(rows.to_pandas(), on="account_id", how="left")[columns]
