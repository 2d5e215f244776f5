"""The table recorder: rows collected as column arrays month by month, contract tables as Arrow,
and usage events expanded from the monthly usage plan in chunks of accounts, written as they go."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from churnml.data.contract import TABLES
from churnml.data.synthetic.shape import Vocabulary


class Recorder:
    """Collects table rows as column arrays, month by month, and assembles DataFrames."""

    def __init__(self) -> None:
        self.parts: dict[str, list[dict[str, np.ndarray]]] = {}

    def add(self, table: str, **columns: np.ndarray) -> None:
        if len(next(iter(columns.values()))):
            self.parts.setdefault(table, []).append(columns)

    def frame(self, table: str) -> pd.DataFrame:
        parts = self.parts.get(table, [])
        return pd.DataFrame({c: np.concatenate([p[c] for p in parts]) for c in parts[0]})


def random_days(rng: np.random.Generator, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Uniform integer day offsets in [lo, hi) (hi > lo)."""
    return lo + np.floor(rng.random(len(lo)) * (hi - lo)).astype(np.int64)


def random_seconds(rng: np.random.Generator, n: int) -> np.ndarray:
    """Seconds into the day, around office hours (UTC)."""
    hours = np.clip(rng.normal(14.0, 3.5, n), 0, 23.999)
    return (hours * 3600).astype(np.int64)


ARROW_TYPES = {
    "id": pa.string(),
    "text": pa.string(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us"),
    "float": pa.float64(),
    "int": pa.int64(),
}


def to_arrow(name: str, df: pd.DataFrame) -> pa.Table:
    """A contract table as Arrow: the contract's columns that `df` has, with their types (dates as
    dates)."""
    table = TABLES[name]
    columns = [c for c in table.column_names if c in df]
    schema = pa.schema([(c, ARROW_TYPES[table.column(c).kind]) for c in columns])
    arrays = []
    for col in columns:
        values = df[col]
        if values.dtype.kind == "f" and table.column(col).kind == "int":
            values = values.astype("Int64")
        arrays.append(pa.array(values, from_pandas=True).cast(schema.field(col).type))
    return pa.Table.from_arrays(arrays, schema=schema)


EVENT_SCHEMA = pa.schema(
    [
        ("account_id", pa.string()),
        ("user_id", pa.int64()),
        ("ts", pa.timestamp("us")),
        ("event_type", pa.string()),
        ("quantity", pa.float64()),
    ]
)


def events_for(
    plan: pd.DataFrame, account_ids: np.ndarray, rng: np.random.Generator, vocab: Vocabulary
) -> pa.Table:
    """Expand account-months → active users → active days → events, all with np.repeat."""
    n_active = plan["n_active"].to_numpy()
    um = np.repeat(np.arange(len(plan)), n_active)  # user-month → plan row
    first = np.repeat(np.cumsum(n_active) - n_active, n_active)
    shift = rng.integers(0, 3, len(plan))[um]
    seats = plan["seats"].to_numpy()[um]
    user_idx = (np.arange(len(um)) - first + shift) % seats
    lo, hi = plan["lo"].to_numpy()[um], plan["hi"].to_numpy()[um]
    n_days = rng.binomial(hi - lo, plan["p_day"].to_numpy()[um])
    ud = np.repeat(np.arange(len(um)), n_days)  # user-day → user-month
    day = random_days(rng, lo[ud], hi[ud])
    n_events = 1 + rng.poisson(plan["lam"].to_numpy()[um][ud])
    ev = np.repeat(np.arange(len(ud)), n_events)  # event → user-day
    row = um[ud][ev]
    weights = plan[[f"w{j}" for j in range(len(vocab.names))]].to_numpy(np.float32)
    cum = np.cumsum(weights, axis=1)
    cum /= cum[:, -1:]
    types = (rng.random(len(ev), dtype=np.float32)[:, None] > cum[row]).sum(axis=1)
    types = np.minimum(types, len(vocab.names) - 1)
    month_start = plan["month_start"].to_numpy().astype("datetime64[D]")[row]
    ts = (month_start + day[ev].astype("timedelta64[D]")).astype("datetime64[us]") + (
        random_seconds(rng, len(ev)) * 1_000_000
    ).astype("timedelta64[us]")
    quantity = np.ones(len(ev))
    for name, lam in vocab.quantity:
        hit = types == vocab.names.index(name)
        quantity[hit] += rng.poisson(lam, hit.sum())
    account = plan["account"].to_numpy()[row]
    order = np.lexsort((ts, account))
    return pa.table(
        {
            "account_id": pa.array(account_ids[account[order]], pa.string()),
            "user_id": (account[order] + 1) * 100_000 + user_idx[ud][ev][order],
            "ts": ts[order],
            "event_type": pa.array(np.array(vocab.names, dtype=object)[types[order]], pa.string()),
            "quantity": quantity[order],
        },
        schema=EVENT_SCHEMA,
    )


def write_events(
    plan: pd.DataFrame,
    account_ids: np.ndarray,
    path: Path,
    seed: int,
    chunk_accounts: int,
    progress: Callable[[int], None] | None,
    vocab: Vocabulary,
) -> int:
    plan = plan.sort_values(["account", "month_start"], kind="stable")
    n = len(account_ids)
    bounds = np.searchsorted(
        plan["account"].to_numpy(), np.arange(0, n + chunk_accounts, chunk_accounts)
    )
    total = 0
    with pq.ParquetWriter(path, EVENT_SCHEMA, compression="zstd") as writer:
        for i, (a, b) in enumerate(itertools.pairwise(bounds)):
            rng = np.random.default_rng([seed, 2, i])
            table = events_for(plan.iloc[a:b], account_ids, rng, vocab)
            writer.write_table(table, row_group_size=1_000_000)
            total += table.num_rows
            if progress:
                progress(min(chunk_accounts, n - i * chunk_accounts))
    return total
