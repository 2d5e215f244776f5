"""Find the input tables, read them on an engine, and give them the contract's names and types.

Every later stage works on the Ibis tables this module returns, so the same expressions run on
DuckDB (embedded, the default) and on Spark.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import ibis
import ibis.expr.types as ir

from churnml.config import DataConfig
from churnml.data.contract import TABLES, Table

log = logging.getLogger(__name__)

Engine = Literal["duckdb", "spark"]

_IBIS_TYPES = {
    "id": "string",
    "text": "string",
    "date": "date",
    "timestamp": "timestamp",
    "float": "float64",
    "int": "int64",
}


@dataclass(frozen=True)
class Source:
    """Where one contract table was found, and how its columns are named there."""

    table: Table
    path: str
    fmt: Literal["parquet", "csv"]
    columns: dict[str, str]

    def user_column(self, name: str) -> str:
        return self.columns.get(name, name)


class MissingTableError(FileNotFoundError):
    """A required table could not be found."""

    def __init__(self, table: str, rule: str) -> None:
        self.table, self.rule = table, rule
        super().__init__(f"table {table}: {rule}")


def locate(data_dir: Path | str, config: DataConfig) -> dict[str, Source]:
    """Find each contract table; absent optional tables are left out (with a logged note)."""
    data_dir = Path(data_dir)
    found: dict[str, Source] = {}
    for name, table in TABLES.items():
        spec = config.source(name)
        candidates = [spec.path] if spec.path else [f"{name}.parquet", f"{name}.csv", f"{name}/"]
        for candidate in candidates:
            path = candidate if "://" in candidate else str(data_dir / candidate)
            if "://" in path or Path(path).exists():
                fmt = "csv" if path.rstrip("/").endswith(".csv") else "parquet"
                if Path(path).is_dir():
                    path = str(Path(path) / "*.parquet")
                found[name] = Source(table, path, fmt, dict(spec.columns))
                break
        else:
            if table.required or spec.path:  # asked for by name: its absence is an error
                what = "required table" if table.required else "table configured but"
                raise MissingTableError(
                    name,
                    f"{what} not found in {data_dir} "
                    f"(looked for {', '.join(candidates)}); map its path in the config under "
                    f"data.tables.{name}.path",
                )
            log.info("table %s not found: its features are skipped", name)
    return found


def connect(engine: Engine = "duckdb") -> ibis.BaseBackend:
    """An Ibis connection: embedded DuckDB, or local Spark (`[spark]` extra, Java 17)."""
    if engine == "duckdb":
        con = ibis.duckdb.connect()
        # Timestamps are naive UTC: no session time zone may shift a day boundary.
        con.raw_sql("SET TimeZone = 'UTC'; SET preserve_insertion_order = false")
        return con
    if engine == "spark":
        return _spark()
    raise ValueError(f"unknown engine {engine!r}; use 'duckdb' or 'spark'")


def _spark() -> ibis.BaseBackend:
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise RuntimeError(
            "--engine spark needs the spark extra: pip install 'churnml[spark]'"
        ) from exc
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    session = (
        SparkSession.builder.master(os.environ.get("CHURNML_SPARK_MASTER", "local[2]"))
        .appName("churnml")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "8")
        .config("spark.driver.memory", "4g")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    return ibis.pyspark.connect(session)


def read_raw(con: ibis.BaseBackend, source: Source) -> ir.Table:
    """The table as stored, its columns renamed to the contract's names (types untouched)."""
    raw = con.read_csv(source.path) if source.fmt == "csv" else con.read_parquet(source.path)
    present = {
        name: source.user_column(name)
        for name in source.table.column_names
        if source.user_column(name) in raw.columns
    }
    return raw.select(**{name: raw[col] for name, col in present.items()})


def typed(raw: ir.Table, table: Table) -> ir.Table:
    """Cast every contract column to its contract type; absent optional columns become nulls.

    Ids are strings, except that integer ids other than `account_id` (the join key) stay integers.
    """
    cols = {}
    for column in table.columns:
        dtype = _IBIS_TYPES[column.kind]
        if column.name in raw.columns:
            value = raw[column.name]
            keep = column.kind == "id" and column.name != "account_id" and value.type().is_integer()
            cols[column.name] = (
                value if keep or value.type() == ibis.dtype(dtype) else value.cast(dtype)
            )
        else:
            cols[column.name] = ibis.null(dtype)
    return raw.select(**cols)


def load_tables(
    data_dir: Path | str, config: DataConfig, con: ibis.BaseBackend
) -> dict[str, ir.Table]:
    """Typed Ibis tables for every table found (call `validate` first for clear errors)."""
    return {
        name: typed(read_raw(con, source), source.table)
        for name, source in locate(data_dir, config).items()
    }


def ibis_type(kind: str) -> str:
    return _IBIS_TYPES[kind]
