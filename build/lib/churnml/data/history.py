"""A data folder as it was known on a day: what a data provider would have exported then.

Used to backtest the whole pipeline honestly (train on what was known at a cut-off, score at the
cut-off, judge on what happened after) and to test that features never look past `as_of`.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import ibis
import ibis.expr.types as ir

from churnml.config import DataConfig
from churnml.data.sources import connect, load_tables
from churnml.io import atomic_dir

# Per table: (column that must be before the day, columns that are blanked when not yet known).
_KNOWN = {
    "accounts": ("signup_date", ()),
    "subscriptions": ("start_date", ("canceled_at",)),
    "usage_events": ("ts", ()),
    "onboarding_milestones": (None, ("completed_at",)),
    "support_tickets": ("created_at", ("resolved_at",)),
    "nps_responses": ("submitted_at", ()),
    "contacts": ("start_date", ("end_date",)),
    "cs_touchpoints": ("ts", ()),
}
# Values that only exist once another column is known.
_DEPENDS = {"cancel_reason": "canceled_at", "csat": "resolved_at"}


def known_on(table: str, t: ir.Table, day: dt.date, accounts: ir.Table) -> ir.Table:
    """The rows of `t` known on `day` (strictly before it), later facts blanked, and only rows
    of accounts that existed then."""
    before, blanked = _KNOWN[table]
    cut = ibis.date(day)
    if before is not None:
        t = t.filter(t[before].cast("date") < cut)
    if table != "accounts":
        t = t.semi_join(accounts, "account_id")
    blank = {c: ibis.ifelse(t[c].cast("date") < cut, t[c], ibis.null(t[c].type())) for c in blanked}
    t = t.mutate(**blank)
    later = {c: ibis.ifelse(t[src].notnull(), t[c], ibis.null(t[c].type()))
             for c, src in _DEPENDS.items() if c in t.columns and src in blanked}  # fmt: skip
    return t.mutate(**later)


def as_known_on(
    data_dir: Path | str, day: dt.date, out: Path | str, config: DataConfig | None = None
) -> Path:
    """Write every table of `data_dir` as known on `day` to `out/<table>.parquet`, with the
    contract's column names (so the default config reads it). Returns `out`."""
    tables = load_tables(data_dir, config or DataConfig(), connect())
    accounts = known_on("accounts", tables["accounts"], day, tables["accounts"])
    with atomic_dir(out) as tmp:
        for name, t in tables.items():
            known_on(name, t, day, accounts.select("account_id")).to_parquet(
                tmp / f"{name}.parquet"
            )
    return Path(out)
