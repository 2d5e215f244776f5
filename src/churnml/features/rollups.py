"""Point-in-time building blocks: ages in days before as_of, and the usage rollups.

Usage events are scanned twice, into two rollups kept by the engine: account × day × event type
(`type_days`) and account × user × day with the key events used as bits (`user_days`). Everything
else comes from those: account × day, account × user × period, account × event type × period,
where a period is the days up to one as_of after the previous; the 7/30/90-day windows are then
taken on the rollups (`in_window`, `last_in_window`), never on raw events. `monthly_use` counts
users and events per calendar month, for the account page's adoption chart (scoring writes it).
"""

from __future__ import annotations

import datetime as dt
import itertools

import ibis
import ibis.expr.types as ir

from churnml.config import FeatureConfig
from churnml.features.labels import date_table
from churnml.vocabulary import KEYS


def age(t: ir.Table, day: ir.DateValue) -> ir.IntegerValue:
    """Whole days from `day` to as_of (1 = the day before as_of)."""
    return t.as_of.delta(day, unit="day")


def before(snaps: ir.Table, rows: ir.Table, time_col: str) -> ir.Table:
    """Rows of each snapshot's account that happened strictly before as_of, with their age."""
    j = snaps.select(KEYS).inner_join(rows, "account_id")
    day = j[time_col].cast("date")
    return j.filter(day < j.as_of).mutate(age=age(j, day))


def periods(as_of: list[dt.date]) -> ir.Table:
    """Calendar: each day from the first to the last as_of → the first as_of after it."""
    dates = sorted(set(as_of))
    rows = {"day": [], "period": []}
    for start, end in itertools.pairwise(dates):
        for k in range((end - start).days):
            rows["day"].append(start + dt.timedelta(days=k))
            rows["period"].append(end)
    return date_table(rows)


def with_period(rows: ir.Table, as_of: list[dt.date]) -> ir.Table:
    """Rows (with a `day`) before the last as_of, tagged with `period`, the first as_of after."""
    first, last = min(as_of), max(as_of)
    r = rows.filter(rows.day < last).left_join(periods(as_of), "day")
    return r.mutate(period=ibis.ifelse(r.day < first, ibis.date(first), r.period))


def days(events: ir.Table) -> ir.Table:
    return events.mutate(day=events.ts.cast("date"))


ADOPTION_MONTHS = 12  # months of use shown on an account's page


def adoption_start(as_of: dt.date) -> dt.date:
    """The first day of the ADOPTION_MONTHS full calendar months before as_of's month."""
    year, month = divmod(as_of.year * 12 + as_of.month - 1 - ADOPTION_MONTHS, 12)
    return dt.date(year, month + 1, 1)


def monthly_use(events: ir.Table, as_of: dt.date) -> ir.Table:
    """account × month (its first day): active users and events, over the ADOPTION_MONTHS full
    calendar months before as_of's month (so only data before as_of)."""
    start, end = adoption_start(as_of), as_of.replace(day=1)
    e = events.filter(events.ts >= ibis.timestamp(start), events.ts < ibis.timestamp(end))
    e = e.mutate(month=e.ts.truncate("M").cast("date"))
    by_month = e.group_by(["account_id", "month"])
    return by_month.aggregate(users=e.user_id.nunique(), events=e.count())


def type_days(events: ir.Table) -> ir.Table:
    """account × day × event type: events. Daily counts, lifetime and breadth come from it."""
    e = days(events)
    return e.group_by(["account_id", "day", "event_type"]).aggregate(n_events=e.count())


def user_days(events: ir.Table, cfg: FeatureConfig) -> ir.Table:
    """account × user × day, with the key events the user used that day as bits (`keys`, bit i:
    key event i). Users per day, user recency and first use come from it."""
    e = days(events)
    names = cfg.key_events or ()
    if not names:
        return e.select("account_id", "user_id", "day").distinct()
    bits = ibis.cases(*((e.event_type == n, 1 << i) for i, n in enumerate(names)), else_=0)
    by_user_day = e.group_by(["account_id", "user_id", "day"])
    return by_user_day.aggregate(keys=bit_or(bits.cast("int64")))


@ibis.udf.agg.builtin
def bit_or(bits: int) -> int:
    """The engine's own BIT_OR (DuckDB and Spark have it; ibis compiles it for DuckDB only)."""


def key_used(t: ir.Table, cfg: FeatureConfig) -> list[ir.BooleanValue]:
    """Per key event, whether a row used it: by its `keys` bits (`user_days` rows) or by its event
    type (`type_days` rows)."""
    names = cfg.key_events or ()
    if "keys" in t.columns:
        return [(t["keys"] & (1 << i)) != 0 for i in range(len(names))]
    return [t.event_type == n for n in names]


def key_counts(types: ir.Table, cfg: FeatureConfig) -> dict[str, ir.Value]:
    """Uses of each key event in `type_days` rows, as aggregates (`key_<i>`)."""
    used = key_used(types, cfg)
    return {f"key_{i}": types.n_events.sum(where=u).fill_null(0) for i, u in enumerate(used)}


def key_days(t: ir.Table, cfg: FeatureConfig, how: str) -> dict[str, ir.Value]:
    """The first or last day each key event was used, as aggregates (`<how>_key_<i>`)."""
    day = t.day.min if how == "first" else t.day.max
    return {f"{how}_key_{i}": day(where=u) for i, u in enumerate(key_used(t, cfg))}


def daily(types: ir.Table, users: ir.Table, cfg: FeatureConfig) -> ir.Table:
    """account × day: events, distinct users, uses of each key event."""
    counts = types.group_by(["account_id", "day"]).aggregate(
        n_events=types.n_events.sum(), **key_counts(types, cfg)
    )
    people = users.group_by(["account_id", "day"]).aggregate(users=users.count())
    return counts.inner_join(people, ["account_id", "day"]).select(counts, people.users)


def window_days(as_of: list[dt.date], days: int) -> ir.Table:
    """(day, as_of) for each day in [as_of - days, as_of): an equi-join key for windows."""
    dates = sorted(set(as_of))
    return date_table(
        {"day": [d - dt.timedelta(days=k) for d in dates for k in range(1, days + 1)],
         "as_of": [d for d in dates for _ in range(days)]}
    )  # fmt: skip


def window_periods(as_of: list[dt.date], days: int | None) -> ir.Table:
    """(period, as_of) for each period (see `_with_period`) with days in the window of as_of."""
    dates = sorted(set(as_of))
    rows = {"period": [], "as_of": []}
    for d in dates:
        for p in dates:
            if p <= d and (days is None or p > d - dt.timedelta(days=days)):
                rows["period"].append(p)
                rows["as_of"].append(d)
    return date_table(rows)


def in_window(rollup: ir.Table, snaps: ir.Table, pairs: ir.Table, key: str) -> ir.Table:
    """Rollup rows joined to the snapshots whose window they fall in (equi-joins only)."""
    j = rollup.inner_join(pairs, key)
    return snaps.select(KEYS).inner_join(j, KEYS)


def last_in_window(rollup: ir.Table, snaps: ir.Table, as_of: list[dt.date], by: str,
                    window: int) -> ir.Table:  # fmt: skip
    """Per snapshot and `by` value (user, event type) seen within `window`: days since last seen
    (`age`), and since each other `last_<x>` day of the rollup (`<x>_age`)."""
    j = in_window(rollup, snaps, window_periods(as_of, window), "period")
    j = j.filter(j.last_day >= j.as_of - ibis.interval(days=window))
    lasts = [c for c in rollup.columns if c.startswith("last_")]
    last = j.group_by([*KEYS, by]).aggregate(**{c: j[c].max() for c in lasts})
    ages = {f"{c.removeprefix('last_')}_age": age(last, last[c]) for c in lasts if c != "last_day"}
    return last.mutate(age=age(last, last.last_day), **ages)
