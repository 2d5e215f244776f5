"""Snapshots (account × as_of, active accounts only) and their labels, as Ibis expressions.

Definitions (docs/data-contract.md, shared with the synthetic world):

* ARR(a, t) = Σ arr of the rows of a with start_date ≤ t < min(end_date, canceled_at)
  (empty = open); the account is active at t when ARR(a, t) > 0.
* churn date: the first day d > as_of with ARR(a, d) = 0 that stays 0 for `grace_days`;
  ``churn_{H}d`` = churn date ≤ as_of + H days. ``involuntary_churn_{H}d`` marks churns whose
  cancelled rows carry a reason from ``involuntary_reasons``.
* ``expansion_{H}d``: ARR(a, d) ≥ ratio × ARR(a, as_of) for some d in (as_of, as_of + H], or a
  product active at d that was not active at as_of.
* ``arr_after_{H}d``: ARR(a, as_of + H), 0 if the account is not active then (revenue outcomes,
  for the forecast).
* ``churn_reason_{H}d``: the cancel reason of the churn, when its last row was cancelled with one.
* A label is known (not null) only if the data reaches as_of + H (+ grace for churn).
"""

from __future__ import annotations

import datetime as dt

import ibis
import ibis.expr.types as ir
import pyarrow as pa

from churnml.config import LabelConfig
from churnml.vocabulary import label_names

FAR = ibis.date(9999, 12, 31)


def label_columns(cfg: LabelConfig) -> dict[str, str]:
    """Names of the label columns for the configured horizon, keyed by role."""
    return label_names(cfg.horizon_days)


def month_starts(first: dt.date, last: dt.date) -> list[dt.date]:
    """First days of the months in (first, last]: the default observation dates."""
    return observation_dates(first, last, "month")


def observation_dates(first: dt.date, last: dt.date, every: str = "month") -> list[dt.date]:
    """Observation dates in (first, last]: every month's first day, also its 16th
    (`half_month`), or every Monday (`week`)."""
    if every == "week":
        monday = first + dt.timedelta(days=7 - first.weekday())
        return [monday + dt.timedelta(weeks=k) for k in range((last - monday).days // 7 + 1)]
    days = (1, 16) if every == "half_month" else (1,)
    out, year, month = [], first.year, first.month
    while dt.date(year, month, 1) <= last:
        out += [dt.date(year, month, d) for d in days if first < dt.date(year, month, d) <= last]
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return out


def data_end(tables: dict[str, ir.Table]) -> dt.date:
    """The first day the data no longer covers: the day after the last usage event."""
    last = tables["usage_events"].ts.max().execute()
    return (last.date() if hasattr(last, "date") else last) + dt.timedelta(days=1)


def default_as_of(tables: dict[str, ir.Table], every: str = "month") -> list[dt.date]:
    """Observation dates from just after the first subscription to the end of the data."""
    first = tables["subscriptions"].start_date.min().execute()
    first = first.date() if hasattr(first, "date") else first
    return observation_dates(first, data_end(tables), every)


def _rows(subs: ir.Table) -> ir.Table:
    """Paid subscription rows with the day they stop counting (`row_end`, FAR when open)."""
    end = ibis.least(subs.end_date.fill_null(FAR), subs.canceled_at.fill_null(FAR))
    return subs.filter(subs.arr > 0).mutate(row_end=end)


def date_table(columns: dict[str, list[dt.date]]) -> ir.Table:
    """A small in-memory table of date columns (typed even when empty)."""
    return ibis.memtable(pa.table({name: pa.array(v, pa.date32()) for name, v in columns.items()}))


def _dates(as_of: list[dt.date]) -> ir.Table:
    return date_table({"as_of": list(as_of)})


def snapshots(subs: ir.Table, as_of: list[dt.date]) -> ir.Table:
    """One row per account active at each date: account_id, as_of, arr (ARR at as_of)."""
    rows = _rows(subs)
    j = rows.cross_join(_dates(as_of))
    j = j.filter(j.start_date <= j.as_of, j.as_of < j.row_end)
    return j.group_by("account_id", "as_of").aggregate(arr=j.arr.sum())


def lapsed_terms(subs: ir.Table, as_of: list[dt.date], grace_days: int) -> ir.Table:
    """Accounts in renewal: not active at as_of, their last term ended (not cancelled) fewer than
    `grace_days` days before it, or on it, and no renewal has started yet. account_id, as_of,
    arr (of the last term), days_since_term_end (0 = it ended on as_of)."""
    rows = _rows(subs).cross_join(_dates(as_of))
    per = ["account_id", "as_of"]
    ended = ibis.ifelse(rows.row_end <= rows.as_of, rows.row_end, ibis.null("date"))
    rows = rows.mutate(last_end=ended.max().over(group_by=per))
    last = rows.row_end == rows.last_end
    cancelled = rows.canceled_at.notnull() & (rows.canceled_at < rows.end_date.fill_null(FAR))
    g = rows.group_by(per).aggregate(
        active=((rows.start_date <= rows.as_of) & (rows.as_of < rows.row_end)).any(),
        arr=rows.arr.sum(where=last),
        cancelled=(last & cancelled).any(),
        last_end=rows.last_end.max(),
    )
    g = g.mutate(days_since_term_end=g.as_of.delta(g.last_end, unit="day"))
    g = g.filter(~g.active, ~g.cancelled, g.days_since_term_end < grace_days)
    return g.select(*per, "arr", "days_since_term_end")


def _islands(subs: ir.Table, cfg: LabelConfig) -> ir.Table:
    """Spans of continuous ARR per account, gaps shorter than the grace merged in."""
    rows = _rows(subs)
    order = ibis.window(group_by="account_id", order_by=["start_date", "row_end"])
    running = ibis.window(
        group_by="account_id", order_by=["start_date", "row_end"], preceding=None, following=0
    )
    rows = rows.mutate(run_end=rows.row_end.max().over(running))
    rows = rows.mutate(prev_end=rows.run_end.lag().over(order))
    gap = rows.start_date.delta(rows.prev_end, unit="day")
    rows = rows.mutate(new=(rows.prev_end.isnull() | (gap >= cfg.grace_days)).cast("int64"))
    rows = rows.mutate(island=rows.new.sum().over(running))
    involuntary = rows.canceled_at.notnull() & rows.cancel_reason.isin(cfg.involuntary_reasons)
    return rows.group_by("account_id", "island").aggregate(
        island_start=rows.start_date.min(),
        island_end=rows.run_end.max(),
        last_involuntary=rows.row_end.max(where=involuntary),
        reason=rows.cancel_reason.argmax(rows.row_end),  # the last row's (null if renewal lapsed)
    )


def _churn(snaps: ir.Table, subs: ir.Table, cfg: LabelConfig, end: dt.date) -> ir.Table:
    names = label_columns(cfg)
    isl = _islands(subs, cfg)
    j = snaps.inner_join(isl, "account_id")
    j = j.filter(j.island_start <= j.as_of, j.as_of < j.island_end)
    known = j.as_of + ibis.interval(days=cfg.horizon_days + cfg.grace_days) <= ibis.date(end)
    churned = (j.island_end != FAR) & (
        j.island_end <= j.as_of + ibis.interval(days=cfg.horizon_days)
    )
    inv = churned & (j.last_involuntary == j.island_end).fill_null(False)
    return j.select(
        "account_id",
        "as_of",
        **{
            names["churn"]: ibis.ifelse(known, churned.cast("int8"), ibis.null("int8")),
            names["involuntary"]: ibis.ifelse(known, inv.cast("int8"), ibis.null("int8")),
            names["reason"]: ibis.ifelse(known & churned, j.reason, ibis.null("string")),
        },
    )


def _expansion(snaps: ir.Table, subs: ir.Table, cfg: LabelConfig, end: dt.date) -> ir.Table:
    rows = _rows(subs)
    horizon = ibis.interval(days=cfg.horizon_days)
    # Candidate days: row starts inside the horizon (ARR only rises when a row starts).
    starts = snaps.inner_join(rows, "account_id")
    starts = starts.filter(
        starts.start_date > starts.as_of, starts.start_date <= starts.as_of + horizon
    )
    starts = starts.select(
        "account_id", "as_of", "arr", "product", day="start_date", day_end="row_end"
    )
    # ARR on each candidate day.
    days = starts.select("account_id", "as_of", "arr", "day").distinct()
    on_day = days.inner_join(
        rows.select("account_id", s="start_date", e="row_end", a="arr"), "account_id"
    )
    on_day = on_day.filter(on_day.s <= on_day.day, on_day.day < on_day.e)
    grew = (
        on_day.group_by("account_id", "as_of", "arr", "day")
        .aggregate(arr_day=on_day.a.sum())
        .filter(lambda t: t.arr_day >= cfg.expansion_ratio * t.arr)
        .select("account_id", "as_of")
    )
    # Products active at as_of, and products newly active on a candidate day.
    held = snaps.inner_join(rows, "account_id")
    held = held.filter(held.start_date <= held.as_of, held.as_of < held.row_end).select(
        "account_id", "as_of", "product"
    )
    new_products = (
        starts.filter(starts.day < starts.day_end)
        .anti_join(held, ["account_id", "as_of", "product"])
        .select("account_id", "as_of")
    )
    expanded = grew.union(new_products, distinct=True).mutate(hit=ibis.literal(1, "int8"))
    out = snaps.left_join(expanded, ["account_id", "as_of"])
    known = out.as_of + horizon <= ibis.date(end)
    value = out.hit.fill_null(0).cast("int8")
    return out.select(
        "account_id", "as_of",
        **{label_columns(cfg)["expansion"]: ibis.ifelse(known, value, ibis.null("int8"))},
    )  # fmt: skip


def labelled_snapshots(
    tables: dict[str, ir.Table], as_of: list[dt.date], cfg: LabelConfig, end: dt.date | None = None
) -> ir.Table:
    """Snapshots with ARR and every label: account_id, as_of, arr, churn_Hd, involuntary_churn_Hd,
    expansion_Hd, arr_after_Hd (labels null where the data does not reach far enough)."""
    subs = tables["subscriptions"]
    end = end or data_end(tables)
    snaps = snapshots(subs, as_of)
    churn = _churn(snaps, subs, cfg, end)
    expansion = _expansion(snaps, subs, cfg, end)
    return (
        snaps.inner_join(churn, ["account_id", "as_of"])
        .inner_join(expansion, ["account_id", "as_of"])
        .inner_join(_arr_after(subs, as_of, cfg, end), ["account_id", "as_of"])
    )


def _arr_after(subs: ir.Table, as_of: list[dt.date], cfg: LabelConfig,
               end: dt.date) -> ir.Table:  # fmt: skip
    """ARR at as_of + H per account and as_of (0 if inactive then; null where the data ends
    before): one pass over rows × dates, as `snapshots`."""
    rows = _rows(subs).cross_join(_dates(as_of))
    later = rows.as_of + ibis.interval(days=cfg.horizon_days)
    held = (rows.start_date <= later) & (later < rows.row_end)
    g = rows.group_by("account_id", "as_of").aggregate(later_arr=rows.arr.sum(where=held))
    known = g.as_of + ibis.interval(days=cfg.horizon_days) <= ibis.date(end)
    value = g.later_arr.fill_null(0.0)
    return g.select("account_id", "as_of", **{
        label_columns(cfg)["arr_after"]: ibis.ifelse(known, value, ibis.null("float64"))})
