"""Scoring a book of any size in bounded memory: the feature table is read in account order, chunk
by chunk, and each chunk's rows go to disk as soon as they are scored.

Two passes. The first scores each chunk and writes its wide columns (reasons and sentences,
contributions, the models' inputs) to files in the output's temporary folder; it keeps only the
narrow columns that the whole book needs (`BOOK`: segment, raw family pulls, tiers, ARR, the
first reason). Once every chunk is in, `finish` turns those into the scorecard, health, action,
play and priority. The second pass reads the wide columns back chunk by chunk, adds the finished
ones and writes scores.parquet and the CRM feed. Memory grows with the narrow columns only, not
with the features, contributions or reasons. The files hold what `write_outputs` writes for the
same book (a test); only their row groups differ.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from contextlib import ExitStack
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pyarrow import csv

from churnml.features.catalogue import FAMILIES
from churnml.io import atomic_dir, parquet_writer, write_parquet
from churnml.scoring.book import first_feature
from churnml.scoring.crm import CSV, FieldMap, crm_frame, write_csv
from churnml.scoring.outputs import ADOPTION_FILE, REASONS, SCORED, SCORES, Chunk, alert_rows

# What the whole-book step reads of each account (`churnml.scoring.book.finish`), and the summary.
BOOK = ("account_id", "account_name", "segment", "as_of", "arr", "renewal_date", "churn_tier",
        "expansion_tier", "churn_probability", "arr_at_risk", "expected_expansion_arr",
        "health_score", *(f"score_{f}" for f in FAMILIES))  # fmt: skip
# What the finishing step adds: the percentiles (raw pulls until then) and what follows from them.
FINISHED = [n for n in SCORED.names
            if n not in SCORES.names or n.startswith("score_") or n == "health_score"]  # fmt: skip
WIDE = "_scores.parquet"  # the first pass's scores, in the temporary folder


def first_reasons(scores: pd.DataFrame) -> dict[str, pd.Series]:
    """`first_<reasons column>`: the feature of each account's first reason (for `finish`)."""
    return {f"first_{column}": first_feature(scores[column]) for column in REASONS.values()}


def score_streamed(
    batches: Iterable[pa.RecordBatch],
    score_chunk: Callable[[pd.DataFrame], Chunk],
    finish_book: Callable[[pd.DataFrame], pd.DataFrame],
    inputs: list[str],
    out: Path | str,
    fields: FieldMap,
    meta: dict[str, object],
    adoption: pa.Table | None = None,
) -> tuple[pd.DataFrame, int]:
    """Score `batches` (feature rows in account order, as the engine gives them) with
    `score_chunk`; finish the book with `finish_book` (the narrow columns in, the `FINISHED`
    columns out); write scores.parquet (`meta` in its metadata), contributions.parquet,
    features.parquet (account_id and `inputs`), crm_export.csv, an empty alerts.csv and
    `adoption` into `out`, all or none. Returns the finished narrow book and the CRM rows."""
    with atomic_dir(out) as tmp:
        narrow, targets = _first_pass(batches, score_chunk, inputs, tmp)
        book = finish_book(narrow)
        rows = _second_pass(book, tmp, fields, meta)
        _contributions(tmp, targets)
        if adoption is not None:
            write_parquet(adoption, tmp / ADOPTION_FILE)
        write_csv(alert_rows(), tmp / "alerts.csv")  # no rows

    return book, rows


def _first_pass(batches: Iterable[pa.RecordBatch], score_chunk: Callable[[pd.DataFrame], Chunk],
                inputs: list[str], tmp: Path) -> tuple[pd.DataFrame, list[str]]:  # fmt: skip
    """Score and write each chunk; the narrow book and the targets scored."""
    writers: dict[str, pq.ParquetWriter] = {}
    narrow: list[pd.DataFrame] = []
    targets: list[str] = []  # in the order the models come

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
            narrow.append(_owned(scores[list(BOOK)].assign(**first_reasons(scores))))
            write(WIDE, scores, SCORES)
            write("features.parquet", batch.select(["account_id", *inputs]))
            targets += [t for t in points if t not in targets]
            for target, block in points.items():
                write(f"_{target}.parquet", block.assign(target=target)[
                    ["account_id", "target", *block.columns[1:]]])  # fmt: skip
    finally:
        for writer in writers.values():
            writer.close()
    if not narrow:
        raise ValueError("no account is active at as_of: nothing to score")
    return pd.concat(narrow, ignore_index=True), targets


def _owned(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` in memory of its own: Arrow-backed text columns can be views of the engine's
    whole batch and would keep every batch alive (about 1.5 kB an account)."""
    text = [c for c in frame.columns if isinstance(frame[c].dtype, pd.StringDtype)]
    return frame.astype(dict.fromkeys(text, object)).astype(dict.fromkeys(text, "str"))


def _second_pass(book: pd.DataFrame, tmp: Path, fields: FieldMap, meta: dict[str, object]) -> int:
    """The wide scores read back chunk by chunk with the finished columns: scores.parquet and
    crm_export.csv. Returns the CRM rows."""
    book = book.assign(**dict.fromkeys(set(FINISHED) - set(book.columns)))  # change columns
    schema = SCORED.with_metadata({key: json.dumps(value) for key, value in meta.items()})
    wide, start, rows = pq.ParquetFile(tmp / WIDE), 0, 0
    with ExitStack() as stack:
        scores_out = stack.enter_context(parquet_writer(tmp / "scores.parquet", schema))
        feed_out = None
        for batch in wide.iter_batches(batch_size=65_536):
            part = batch.to_pandas(types_mapper=_keep_lists)
            end = start + len(part)
            done = book.iloc[start:end].reset_index(drop=True)  # the same accounts, in order
            part = part.drop(columns=[c for c in FINISHED if c in part]).join(done[FINISHED])
            scores_out.write_table(pa.Table.from_pandas(part, schema=schema, preserve_index=False))
            feed = pa.Table.from_pandas(crm_frame(part, fields), preserve_index=False)
            if feed_out is None:
                feed_out = stack.enter_context(
                    csv.CSVWriter(tmp / "crm_export.csv", feed.schema, write_options=CSV))
            feed_out.write_table(feed)
            start, rows = end, rows + len(part)
    (tmp / WIDE).unlink()
    return rows


def _keep_lists(dtype: pa.DataType) -> pd.ArrowDtype | None:
    """Reasons stay Arrow lists in pandas (as scoring makes them), not lists of dicts."""
    return pd.ArrowDtype(dtype) if pa.types.is_list(dtype) else None


def _contributions(tmp: Path, targets: list[str]) -> None:
    """The targets' parts, one after the other, under the union of their columns."""
    files = [pq.ParquetFile(tmp / f"_{t}.parquet") for t in targets]
    columns = list(dict.fromkeys(name for f in files for name in f.schema_arrow.names))
    schema = pa.schema([pa.field(c, pa.string() if c in ("account_id", "target")
                                 else pa.float64()) for c in columns])  # fmt: skip
    with parquet_writer(tmp / "contributions.parquet", schema) as writer:
        for f in files:
            for batch in f.iter_batches(batch_size=65_536):
                missing = [pa.nulls(batch.num_rows, pa.float64()) if c not in batch.schema.names
                           else batch.column(c) for c in columns]  # fmt: skip
                writer.write_table(pa.Table.from_arrays(missing, schema=schema))
    for t in targets:
        (tmp / f"_{t}.parquet").unlink()


def top_at_risk(book: pd.DataFrame, scores_path: Path, columns: list[str]) -> pd.DataFrame:
    """The five accounts with the most ARR at risk, with `columns` (reasons from the file)."""
    top = book.dropna(subset=["arr_at_risk"]).nlargest(5, "arr_at_risk")
    reasons = pq.read_table(scores_path, columns=["account_id", "churn_reasons"],
                            filters=[("account_id", "in", top.account_id.tolist())])  # fmt: skip
    return top.merge(reasons.to_pandas(), on="account_id", how="left")[columns]
