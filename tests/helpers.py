"""Small hand-made tables for tests: the fewest rows that show one behaviour."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path
from typing import NamedTuple

import ibis
import ibis.expr.types as ir
import pandas as pd

from churnml.config import Config, RegistryConfig
from churnml.data.contract import TABLES
from churnml.data.sources import typed
from churnml.models.pipeline import TrainReport

T = dt.date(2024, 3, 1)


def day(offset: int) -> pd.Timestamp:
    """Midnight `offset` days from T (negative: before)."""
    return pd.Timestamp(T) + pd.Timedelta(days=offset)


def tables(**frames: pd.DataFrame) -> dict[str, ir.Table]:
    """Typed Ibis tables from pandas frames holding some of each contract table's columns."""
    out = {}
    for name, df in frames.items():
        schema = {c: TABLES[name].column(c) for c in df.columns}
        df = df.copy()
        for col, column in schema.items():
            if column.kind == "date":
                df[col] = pd.to_datetime(df[col]).dt.date
        out[name] = typed(ibis.memtable(df), TABLES[name])
    return out


def accounts(*ids: str, signup: int = -400, segment: str = "smb") -> pd.DataFrame:
    return pd.DataFrame({"account_id": list(ids), "segment": segment, "signup_date": day(signup)})


def subscription(
    account: str, start: int, end: int | None, arr: float = 1200.0, **extra: object
) -> dict:
    return {
        "account_id": account,
        "product": "platform",
        "start_date": day(start),
        "end_date": None if end is None else day(end),
        "arr": arr,
        **extra,
    }


def events(
    *rows: tuple[str, pd.Timestamp], user: int | None = 1, event_type: str = "login"
) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "account_id": [a for a, _ in rows],
            "user_id": user,
            "ts": [ts for _, ts in rows],
            "event_type": event_type,
        }
    )


def partition_by_month(world: Path, table: str, column: str) -> Path:
    """Replace `world`'s `table`.parquet by a folder of Hive partitions by the month of `column`
    (`<table>/month=2024-01/part-0.parquet`), as Spark and warehouses export tables."""
    path = world / f"{table}.parquet"
    df = pd.read_parquet(path)
    for month, part in df.groupby(df[column].dt.strftime("%Y-%m")):
        folder = world / table / f"month={month}"
        folder.mkdir(parents=True)
        part.to_parquet(folder / "part-0.parquet", index=False)
    path.unlink()
    return world / table


def promote_every_target(tracking_uri: str) -> None:
    """Make the latest version of every registered model champion, as a user would by hand for
    a model the gate kept back (on small test worlds, expansion often shows no skill)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    for model in client.search_registered_models():
        latest = max(client.search_model_versions(f"name = '{model.name}'"),
                     key=lambda v: int(v.version))  # fmt: skip
        client.set_registered_model_alias(model.name, "champion", latest.version)


def fast_config(tracking_uri: str) -> Config:
    """The default config with one backtest, at most 150 rounds, and this tracking store."""
    base = Config()
    return base.model_copy(update={
        "model": base.model.model_copy(update={"backtests": 1, "max_rounds": 150}),
        "registry": RegistryConfig(tracking_uri=tracking_uri),
    })  # fmt: skip


EMPTY_STORE: list[Path] = []  # set once per session by conftest's `_empty_store`


def store_in(folder: Path) -> str:
    """The URI of an MLflow SQLite store in `folder`: when new, a copy of an empty, migrated
    one (creating its tables takes about 3 s each time)."""
    path = folder / "mlruns.db"
    if not path.exists():
        shutil.copy(EMPTY_STORE[0], path)
    return f"sqlite:///{path}"


class Trained(NamedTuple):
    """The session's training of the small world (conftest's `trained`)."""

    store: Path  # its MLflow SQLite store
    report: TrainReport  # what `train` returned (before every target was made champion)
