"""A generated world's tables written the way users' systems export them: CSV saved from a
spreadsheet in a locale (day or month first, decimal commas, semicolons), and usage events kept
as a daily rollup. churnml reads both with default settings (the rollup with
`data.event_counts: quantity`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from churnml.data.contract import TABLES
from churnml.io import atomic_path


@dataclass(frozen=True)
class Locale:
    """How a spreadsheet in one locale writes a CSV."""

    delimiter: str
    timestamp: str  # strptime codes
    date: str
    decimal: str  # a float's decimal separator
    thousands: str  # and its thousands separator
    money: str  # how ARR is written: {} is the amount


LOCALES = {
    "de": Locale(";", "%d.%m.%Y %H:%M", "%d.%m.%Y", ",", ".", "{}\u00a0€"),
    "us": Locale(",", "%m/%d/%Y %I:%M %p", "%m/%d/%Y", ".", ",", "${}"),
    "ja": Locale(",", "%Y/%m/%d %H:%M", "%Y/%m/%d", ".", "", "{}"),
}


def _written(values: pd.Series, kind: str, locale: Locale, money: bool = False) -> pd.Series:
    """A column as the locale's spreadsheet writes it (text; empty stays empty)."""
    if kind in ("date", "timestamp"):
        fmt = locale.timestamp if kind == "timestamp" else locale.date
        return pd.to_datetime(values).dt.strftime(fmt)
    if kind == "float":
        text = values.map(lambda x: f"{x:_.2f}", na_action="ignore")
        text = text.str.replace(".", locale.decimal).str.replace("_", locale.thousands)
        return text.map(locale.money.format, na_action="ignore") if money else text
    return values.astype("Int64") if kind == "int" else values  # 84, not 84.0


def as_spreadsheet_csv(world: Path, locale: str) -> None:
    """Rewrite each `<table>.parquet` in `world` as `<table>.csv` in the locale's way (one of
    LOCALES); timestamps keep the minute, amounts the cent (ARR with the locale's currency)."""
    style = LOCALES[locale]
    for name, table in TABLES.items():
        path = world / f"{name}.parquet"
        if not path.exists():
            continue
        df = pd.read_parquet(path)
        for column in table.columns:
            if column.name in df:
                df[column.name] = _written(df[column.name], column.kind, style,
                                           money=column.name in ("arr", "mrr"))
        with atomic_path(world / f"{name}.csv") as tmp:
            df.to_csv(tmp, sep=style.delimiter, index=False)
        path.unlink()


def as_mrr(world: Path) -> None:
    """Rewrite `world`'s subscriptions with monthly recurring revenue (`mrr`, ARR / 12) in place
    of `arr`, as billing systems export it."""
    path = world / "subscriptions.parquet"
    subs = pd.read_parquet(path)
    with atomic_path(path) as tmp:
        subs.assign(arr=subs.arr / 12).rename(columns={"arr": "mrr"}).to_parquet(tmp, index=False)


def without_users(world: Path) -> None:
    """Rewrite `world`'s usage events without `user_id`: usage kept by account."""
    path = world / "usage_events.parquet"
    events = pd.read_parquet(path)
    with atomic_path(path) as tmp:
        events.drop(columns="user_id").to_parquet(tmp, index=False)


def as_daily_rollup(world: Path) -> int:
    """Rewrite `world`'s usage events as one row per account, user (if they name one), day and
    event type, with how many events it stands for in `quantity`; return how many rows."""
    path = world / "usage_events.parquet"
    keys = [c for c in ("account_id", "user_id", "ts", "event_type")
            if c in pq.read_schema(path).names]  # fmt: skip
    events = pd.read_parquet(path, columns=keys)
    rollup = events.assign(ts=events.ts.dt.floor("D")).groupby(keys, dropna=False).size()
    with atomic_path(path) as tmp:
        rollup.rename("quantity").astype("float64").reset_index().to_parquet(tmp, index=False)
    return len(rollup)
