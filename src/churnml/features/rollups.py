"""Point-in-time building blocks: ages in days before as_of, and the usage rollups.

Usage events are scanned once, into account × user × day (`user_days`: events, uses of each key
event, the event types used as bits), account part by account part on DuckDB so that memory stays
bounded (`account_parts`). Two rollups come from it: account × span (`span_use`; a span is a run
of days that no 7/30/60/90-day window before an as_of cuts, so a window's sum is a sum of whole
spans; by period: `period_use`) and account × user × period (`user_periods`; a period is the days
up to one as_of after the previous). The windows are taken on those (`in_window`,
`last_in_window`), never on raw events. `monthly_use` counts users and events per calendar month,
for the account page's adoption chart (scoring writes it).
"""

from __future__ import annotations

import datetime as dt
import itertools

import ibis
import ibis.expr.types as ir

from churnml.config import FeatureConfig
from churnml.data.sources import cached
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


WINDOWS = (7, 30, 60, 90)  # the usage windows' edges, in days before as_of (60: the trends')
TYPE_BITS = 63  # event types per `types_<j>` column (bits of a positive int64)
EVENTS_PER_PART = 32_000_000  # DuckDB aggregates usage events in account parts of about this


def user_days(events: ir.Table, cfg: FeatureConfig, types: tuple[str, ...]) -> ir.Table:
    """account × user × day: events (`n_events`), uses of each key event (`key_<i>`), and the
    event types used (`types_<j>`: bit k for `types[TYPE_BITS * j + k]`). The one scan of the
    events: every usage feature comes from it."""
    e = days(events)
    keys = cfg.key_events or ()
    chunks = [types[k : k + TYPE_BITS] for k in range(0, len(types), TYPE_BITS)]
    bits = {
        f"types_{j}": bit_or(
            ibis.cases(*((e.event_type == t, 1 << k) for k, t in enumerate(chunk)), else_=0)
            .cast("int64")
        )
        for j, chunk in enumerate(chunks)
    }
    return e.group_by(["account_id", "user_id", "day"]).aggregate(
        n_events=e.count(), **{f"key_{i}": e.count(where=e.event_type == n)
                               for i, n in enumerate(keys)}, **bits,
    )  # fmt: skip


@ibis.udf.agg.builtin
def bit_or(bits: int) -> int:
    """The engine's own BIT_OR (DuckDB and Spark have it; ibis compiles it for DuckDB only)."""


@ibis.udf.scalar.builtin
def bit_count(bits: int) -> int:
    """The engine's own BIT_COUNT: how many bits are set (DuckDB and Spark have it)."""


def type_columns(t: ir.Table) -> list[str]:
    """The columns of event types used, as bits (`types_<j>`)."""
    return [c for c in t.columns if c.startswith("types_")]


def key_columns(t: ir.Table) -> list[str]:
    """The columns of key event uses (`key_<i>`)."""
    return [c for c in t.columns if c.startswith("key_")]


def edges(as_of: list[dt.date]) -> list[dt.date]:
    """Every day a usage window starts or ends: as_of and as_of - w for w in WINDOWS."""
    return sorted({d - dt.timedelta(days=w) for d in set(as_of) for w in (0, *WINDOWS)})


def spans(as_of: list[dt.date]) -> ir.Table:
    """Calendar: each day from the first edge to the last as_of → its `span` (the last edge on or
    before it) and `period` (the first as_of after it). No window cuts a span."""
    cuts, dates = edges(as_of), sorted(set(as_of))
    rows: dict[str, list[dt.date]] = {"day": [], "span": [], "period": []}
    for start, end in itertools.pairwise(cuts):
        period = next(d for d in dates if d >= end)
        for k in range((end - start).days):
            rows["day"].append(start + dt.timedelta(days=k))
            rows["span"].append(start)
            rows["period"].append(period)
    return date_table(rows)


def span_use(users: ir.Table, as_of: list[dt.date]) -> ir.Table:
    """account × span × period, from `user_days` before the last as_of: events, user-days
    (`users`), active days (`days`), key event uses, types used, first and last day, first day of
    each key event. Days before the first edge have no span (null) and the first period."""
    u = users.filter(users.day < max(as_of))
    daily = u.group_by(["account_id", "day"]).aggregate(
        n_events=u.n_events.sum(), users=u.count(), **{c: u[c].sum() for c in key_columns(u)},
        **{c: bit_or(u[c]) for c in type_columns(u)},
    )  # fmt: skip
    d = daily.left_join(spans(as_of), "day")
    d = d.mutate(period=ibis.ifelse(d.period.isnull(), ibis.date(min(as_of)), d.period))
    keys = key_columns(daily)
    return d.group_by(["account_id", "span", "period"]).aggregate(
        n_events=d.n_events.sum(), users=d.users.sum(), days=d.count(),
        **{c: d[c].sum() for c in keys}, **{c: bit_or(d[c]) for c in type_columns(daily)},
        first_day=d.day.min(), last_day=d.day.max(),
        **{f"first_{c}": d.day.min(where=d[c] > 0) for c in keys},
    )  # fmt: skip


def period_use(spans: ir.Table) -> ir.Table:
    """account × period, from `span_use`: events, key event uses, the first and last day, the
    first day of each key event (lifetime and recency)."""
    keys = key_columns(spans)
    return spans.group_by(["account_id", "period"]).aggregate(
        n_events=spans.n_events.sum(), first_day=spans.first_day.min(),
        last_day=spans.last_day.max(), **{c: spans[c].sum() for c in keys},
        **{f"first_{c}": spans[f"first_{c}"].min() for c in keys},
    )  # fmt: skip


def user_periods(users: ir.Table, as_of: list[dt.date]) -> ir.Table:
    """account × user × period, from `user_days`: the user's first and last day, and the last day
    they used each key event (`last_key_<i>`)."""
    u = with_period(users, as_of)
    return u.group_by(["account_id", "user_id", "period"]).aggregate(
        first_day=u.day.min(), last_day=u.day.max(),
        **{f"last_{c}": u.day.max(where=u[c] > 0) for c in key_columns(users)},
    )  # fmt: skip


def window_spans(as_of: list[dt.date]) -> ir.Table:
    """(span, as_of) for each span in [as_of - max(WINDOWS), as_of)."""
    cuts = edges(as_of)
    pairs = [(s, d) for d in sorted(set(as_of)) for s in cuts
             if d - dt.timedelta(days=max(WINDOWS)) <= s < d]  # fmt: skip
    return date_table({"span": [s for s, _ in pairs], "as_of": [d for _, d in pairs]})


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


def account_parts(events: ir.Table, rows: int) -> list[ir.Table]:
    """`events` split by account into parts of about EVENTS_PER_PART rows, for DuckDB to
    aggregate one after the other in less memory (Spark: one part)."""
    spark = ibis.get_backend(events).name == "pyspark"
    n = 1 if spark else max(1, -(-rows // EVENTS_PER_PART))
    if n == 1:
        return [events]
    part = (engine_hash(events.account_id) % n + n) % n  # in [0, n) whatever the hash's sign
    return [events.filter(part == k) for k in range(n)]


@ibis.udf.scalar.builtin(name="hash")
def engine_hash(value: str) -> int:
    """The engine's own HASH (ibis's `hash` goes through a bit string on DuckDB: slower)."""


def union(parts: list[ir.Table]) -> ir.Table:
    """The parts as one table kept by the engine (the parts released)."""
    if len(parts) == 1:
        return parts[0]
    whole = cached(ibis.union(*parts))
    for part in parts:
        part.release()
    return whole
