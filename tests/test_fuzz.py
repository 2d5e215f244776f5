"""Fuzz: random corruptions of a small world end in a clean result or a clean error, never a
traceback (property-based, with hypothesis; 30 examples, the same ones on every run).

Each example corrupts one column of one table (nulls, text, extreme numbers, far dates,
duplicated rows, a dropped column, no rows, a Latin-1 CSV), then runs `validate` and `features`
as a user would."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from churnml.cli import app
from churnml.data.synthetic import generate_world

TABLES = ("accounts", "subscriptions", "usage_events", "support_tickets", "nps_responses")
KINDS = ("nulls", "text", "extreme", "far_date", "duplicates", "drop_column", "empty", "latin1")
AS_OF = "2023-05-01"


@pytest.fixture(scope="module")
def clean_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("fuzz") / "world"
    generate_world(out, n_accounts=20, months=5, seed=9, truth_paths=2)
    return out


def _corrupt(df: pd.DataFrame, kind: str, column: str, rows: np.ndarray) -> pd.DataFrame:
    df = df.copy()
    if kind == "nulls":
        df[column] = df[column].astype(object)
        df.loc[rows, column] = None
    elif kind == "text":
        df[column] = df[column].astype(object)
        df.loc[rows, column] = "n/a ＝ 不明"
    elif kind == "extreme":
        df[column] = df[column].astype(object)
        extremes = [1e308, -1e308, float("inf"), -1, 0]
        df.loc[rows, column] = [extremes[i % len(extremes)] for i in range(len(rows))]
    elif kind == "far_date":
        df[column] = df[column].astype(object)
        df.loc[rows, column] = pd.Timestamp("2999-12-31")
    elif kind == "duplicates":
        df = pd.concat([df, df.loc[rows]], ignore_index=True)
    elif kind == "drop_column":
        df = df.drop(columns=column)
    elif kind == "empty":
        df = df.head(0)
    return df


def _write(df: pd.DataFrame, world: Path, table: str, kind: str) -> None:
    (world / f"{table}.parquet").unlink()
    if kind == "latin1" or df.dtypes.eq(object).any():  # mixed types: only CSV holds them
        df = df.assign(**{c: df[c].astype(str) for c in df.columns[:1]})
        text = df.to_csv(index=False)
        (world / f"{table}.csv").write_bytes(text.encode("latin-1", errors="replace")
                                             if kind == "latin1" else text.encode())  # fmt: skip
        if kind == "latin1":
            with (world / f"{table}.csv").open("ab") as f:
                f.write("A999,smb,2023-01-01,Café Müller\n".encode("latin-1"))
    else:
        df.to_parquet(world / f"{table}.parquet", index=False)


@pytest.mark.slow
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow],
          derandomize=True)  # fmt: skip
@given(table=st.sampled_from(TABLES), kind=st.sampled_from(KINDS), data=st.data())
def test_a_corrupted_world_gives_a_result_or_a_clean_error(
    clean_world: Path, table: str, kind: str, data: st.DataObject
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        world = Path(shutil.copytree(clean_world, Path(tmp) / "world"))
        df = pd.read_parquet(world / f"{table}.parquet")
        column = data.draw(st.sampled_from(list(df.columns)), label="column")
        k = data.draw(st.integers(1, max(1, min(5, len(df)))), label="rows")
        rows = np.asarray(df.index[:k])
        _write(_corrupt(df, kind, column, rows), world, table, kind)
        for args in (["validate"], ["features", "--as-of", AS_OF, "--out", f"{tmp}/f.parquet"]):
            result = CliRunner().invoke(app, [*args, "--data", str(world)])
            assert result.exit_code in (0, 1), result.output
            assert result.exception is None or isinstance(result.exception, SystemExit), (
                f"{args[0]} on {table}.{column} ({kind}): {result.exception!r}"
            )
