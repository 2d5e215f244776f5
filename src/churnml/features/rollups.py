"""Point-in-time building blocks: ages in days before as_of, and the usage rollups.

Days are grouped into spans: runs of days that no 7/30/60/90-day window before an as_of cuts (and
no longer than SPAN_DAYS), so that every window is a set of whole spans and a span's days fit in
the bits of one integer. Usage events are scanned twice, account part by account part on DuckDB
so that memory stays bounded (`account_parts`): into account × span × event type (`type_spans`:
events, the days with one as bits) and account × user × as_of chunk (`user_windows`: the as_of
dates in whose windows the user was active, and used each key event, as bits; the first day).
From the first come account × span (`span_use`: events, active days, key event uses, types used,
the last day) and each account's first day of use and of each key event (`first_days`); from the
second, the users active at each as_of (`users_at`). The windows are taken on those
(`window_spans`), and the totals to date as running totals over periods (`period_use`,
`to_date`), never on raw events. Users are counted in windows only, by bits: the scan's groups
are few (a user's event types, not their days), which makes it about half as long as one by day.
`monthly_use` counts users and events per calendar month, for the account page's adoption chart
(scoring writes it).
"""

from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import dataclass
from functools import cached_property

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd
import pyarrow as pa

from churnml.data.sources import cached, on_engine
from churnml.features.labels import date_table
from churnml.vocabulary import KEYS


def event_count(events: ir.Table) -> ir.IntegerValue:
    """How many events the rows stand for: one each, or `row_events` each where the usage events
    are a rollup (`data.event_counts: quantity`)."""
    if "row_events" in events.columns:
        return events.row_events.sum().cast("int64")
    return events.count()


def age(t: ir.Table, day: ir.DateValue) -> ir.IntegerValue:
    """Whole days from `day` to as_of (1 = the day before as_of)."""
    return t.as_of.delta(day, unit="day")


def before(snaps: ir.Table, rows: ir.Table, time_col: str) -> ir.Table:
    """Rows of each snapshot's account that happened strictly before as_of, with their age."""
    j = snaps.select(KEYS).inner_join(rows, "account_id")
    day = j[time_col].cast("date")
    return j.filter(day < j.as_of).mutate(age=age(j, day))


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
    return by_month.aggregate(users=e.user_id.nunique(), events=event_count(e))


WINDOWS = (7, 30, 60, 90)  # the usage windows' edges, in days before as_of (60: the trends')
SPAN_DAYS = 63  # at most: a span's days are bits 0..62 of an int64
TYPE_BITS = 63  # event types per `types_<j>` column (bits of a positive int64)
AS_OF_BITS = 63  # as_of dates per chunk of the users' window masks (`user_calendar`)
USER_WINDOWS = (7, 30, 90)  # the users source's windows (`active_<w>d`)
# The users' windows as bits (`user_calendar`) → their days before as_of: [as_of - a, as_of - b).
USER_MASKS = {f"in_{w}d": (w, 0) for w in USER_WINDOWS} | {"in_prev_30d": (60, 30)}
KEY_USER_WINDOW = 30  # the window of key event users (`key_<i>_<w>d`)
EVENTS_PER_PART = 128_000_000  # DuckDB scans usage events in account parts of about this


@ibis.udf.agg.builtin
def bit_or(bits: int) -> int:
    """The engine's own BIT_OR (DuckDB and Spark have it; ibis compiles it for DuckDB only)."""


@ibis.udf.scalar.builtin(name="bit_count", signature=((int,), "int8"))
def _bit_count(bits: int) -> int:
    """The engine's own BIT_COUNT (DuckDB's is a TINYINT, Spark's an INT)."""


def bit_count(bits: ir.IntegerValue) -> ir.IntegerValue:
    """How many bits are set, as an int64 on every engine (DuckDB's own would overflow a sum of
    a few)."""
    return _bit_count(bits).cast("int64")


def lowest_bit(bits: ir.IntegerValue) -> ir.IntegerValue:
    """The index of the lowest bit set in `bits` (> 0)."""
    return bit_count((bits & -bits) - 1)


def highest_bit(bits: ir.IntegerValue) -> ir.IntegerValue:
    """The index of the highest bit set in `bits` (> 0): every lower bit set, then counted."""
    for shift in (1, 2, 4, 8, 16, 32):
        bits = bits | (bits >> shift)
    return bit_count(bits) - 1


def edges(as_of: list[dt.date], first: dt.date | None = None) -> list[dt.date]:
    """The days spans start: every day a usage window starts or ends (as_of and as_of - w for w
    in WINDOWS), and more cuts where needed so that no span is longer than SPAN_DAYS, from
    `first` (a first day of use, if earlier) to the last as_of."""
    cuts = sorted({d - dt.timedelta(days=w) for d in set(as_of) for w in (0, *WINDOWS)})
    step = dt.timedelta(days=SPAN_DAYS)
    while first is not None and first < cuts[0]:
        cuts.insert(0, cuts[0] - step)
    out = [cuts[0]]
    for cut in cuts[1:]:
        while cut - out[-1] > step:
            out.append(out[-1] + step)
        out.append(cut)
    return out


def spans(as_of: list[dt.date], cuts: list[dt.date]) -> pa.Table:
    """Calendar: each day from the first of `cuts` (see `edges`) to the last as_of → its `span`
    (the last cut on or before it), `bit` (1 << days since the span's first day) and `period`
    (the first as_of after it). No window cuts a span."""
    dates = sorted(set(as_of))
    rows: dict[str, list[dt.date]] = {"day": [], "span": [], "period": []}
    bits: list[int] = []
    for start, end in itertools.pairwise(cuts):
        period = next(d for d in dates if d >= end)
        for k in range((end - start).days):
            rows["day"].append(start + dt.timedelta(days=k))
            rows["span"].append(start)
            rows["period"].append(period)
            bits.append(1 << k)
    columns = {name: pa.array(v, pa.date32()) for name, v in rows.items()}
    return pa.table({**columns, "bit": pa.array(bits, pa.int64())})


def type_spans(events: ir.Table, calendar: ir.Table) -> ir.Table:
    """account × span × event type: events (`n`) and the days with one (`days`, as bits). One of
    the two scans of the events."""
    e = events.mutate(day=events.ts.cast("date"))
    e = e.inner_join(calendar.select("day", "span", "bit"), "day")
    return e.group_by(["account_id", "span", "event_type"]).aggregate(
        n=event_count(e), days=bit_or(e.bit)
    )


def user_windows(events: ir.Table, calendar: ir.Table, keys: tuple[str, ...]) -> ir.Table:
    """account × user × as_of chunk, from the events and `user_calendar`: the as_of dates (as
    bits) in whose windows the user was active (`in_<w>d`, `in_prev_30d`) and used each key
    event within KEY_USER_WINDOW days (`key_<i>`), and the user's first day (`first_day`). The
    other scan of the events; events of no user (null) are left out. Grouped by the user's event
    types first, then by user: a user uses few types, and comparing each event's type with every
    key event (a CASE) costs more than the groups."""
    e = events.filter(events.user_id.notnull())
    e = e.mutate(day=e.ts.cast("date")).inner_join(calendar, "day")
    by_type = e.group_by(["account_id", "user_id", "chunk", "event_type"]).aggregate(
        **{m: bit_or(e[m]) for m in USER_MASKS}, first_day=e.day.min()
    )
    within = by_type[f"in_{KEY_USER_WINDOW}d"]
    return by_type.group_by(["account_id", "user_id", "chunk"]).aggregate(
        **{m: bit_or(by_type[m]) for m in USER_MASKS},
        **{f"key_{i}": bit_or(within, where=by_type.event_type == k) for i, k in enumerate(keys)},
        first_day=by_type.first_day.min(),
    )  # fmt: skip


def type_columns(t: ir.Table) -> list[str]:
    """The columns of event types used, as bits (`types_<j>`)."""
    return [c for c in t.columns if c.startswith("types_")]


def key_columns(t: ir.Table) -> list[str]:
    """The columns of key event uses (`key_<i>`)."""
    return [c for c in t.columns if c.startswith("key_")]


def _type_bits(types: tuple[str, ...]) -> ir.Table:
    """event_type → its `types_<j>` column (`chunk` j) and bit."""
    return ibis.memtable(pa.table({
        "event_type": pa.array(types, pa.string()),
        "chunk": pa.array([k // TYPE_BITS for k in range(len(types))], pa.int64()),
        "type_bit": pa.array([1 << (k % TYPE_BITS) for k in range(len(types))], pa.int64()),
    }))  # fmt: skip


def _day(span: ir.DateValue, index: ir.IntegerValue) -> ir.DateValue:
    return (span + index.as_interval("D")).cast("date")


def span_use(by_type: ir.Table, calendar: ir.Table, keys: tuple[str, ...],
             types: tuple[str, ...]) -> ir.Table:  # fmt: skip
    """account × span × period, from `type_spans`: events, active days (`days`), key event uses,
    types used, the last day."""
    t = by_type.left_join(_type_bits(types), "event_type")
    per = t.group_by(["account_id", "span"]).aggregate(
        n_events=t.n.sum(), bits=bit_or(t.days),
        **{f"key_{i}": t.n.sum(where=t.event_type == k) for i, k in enumerate(keys)},
        **{f"types_{j}": bit_or(ibis.ifelse(t.chunk == j, t.type_bit, 0))
           for j in range(-(-len(types) // TYPE_BITS))},
    )  # fmt: skip
    j = per.inner_join(_periods(calendar), "span")
    return j.select(
        "account_id", "span", "period", "n_events", days=bit_count(j.bits),
        **{f"key_{i}": j[f"key_{i}"].fill_null(0) for i in range(len(keys))},
        **{c: j[c] for c in type_columns(per)},
        last_day=_day(j.span, highest_bit(j.bits)),
    )  # fmt: skip


def first_days(by_type: ir.Table, keys: tuple[str, ...]) -> ir.Table:
    """account, from `type_spans`: the first day of use (`first_day`) and of each key event
    (`first_key_<i>`), over the whole history."""
    t = by_type.group_by(["account_id", "event_type"]).aggregate(
        span=by_type.span.min(), days=by_type.days.argmin(by_type.span)
    )
    day = _day(t.span, lowest_bit(t.days))
    return t.group_by("account_id").aggregate(
        first_day=day.min(),
        **{f"first_key_{i}": day.min(where=t.event_type == k) for i, k in enumerate(keys)},
    )


def period_use(spans: ir.Table) -> ir.Table:
    """account × period, from `span_use`: events, key event uses, the last day (lifetime and
    recency)."""
    keys = key_columns(spans)
    return spans.group_by(["account_id", "period"]).aggregate(
        n_events=spans.n_events.sum(), last_day=spans.last_day.max(),
        **{c: spans[c].sum() for c in keys},
    )  # fmt: skip


def to_date(periods: ir.Table, first: ir.Table, snaps: ir.Table) -> ir.Table:
    """Per snapshot with use before as_of, from `period_use` and `first_days`: events and key
    event uses over every period up to as_of, the last day of use, the first day of use and of
    each key event. Running totals over the periods and the snapshots in date order (a snapshot
    after the period it closes): linear in both, where a join of each snapshot to every earlier
    period grows with their square. The first days are the account's over its whole history,
    kept if before as_of (the same as over the history before as_of)."""
    sums = ["n_events", *key_columns(periods)]
    rows = periods.select("account_id", "period", *sums, "last_day", snapshot=ibis.literal(0))
    nulls = {c: ibis.null(rows[c].type()) for c in (*sums, "last_day")}
    rows = rows.union(snaps.select("account_id", period=snaps.as_of, **nulls,
                                   snapshot=ibis.literal(1)))  # fmt: skip
    w = ibis.window(group_by="account_id", order_by=["period", "snapshot"], rows=(None, 0))
    run = rows.mutate(**{c: rows[c].sum().over(w) for c in sums},
                      last_day=rows.last_day.max().over(w))  # fmt: skip
    run = run.filter((run.snapshot == 1) & run.last_day.notnull())
    firsts = [c for c in first.columns if c.startswith("first_")]
    run = run.select("account_id", *sums, "last_day", as_of=run.period)
    j = run.inner_join(first, "account_id")
    return j.mutate(**{c: ibis.ifelse(j[c] < j.as_of, j[c], ibis.null("date")) for c in firsts})


def _periods(calendar: ir.Table) -> ir.Table:
    return calendar.select("span", "period").distinct()


def _as_of_bits(as_of: list[dt.date]) -> pa.Table:
    """Each as_of's `chunk` and `bit` in it (AS_OF_BITS to a chunk)."""
    dates = sorted(set(as_of))
    return pa.table({
        "as_of": pa.array(dates, pa.date32()),
        "chunk": pa.array([k // AS_OF_BITS for k in range(len(dates))], pa.int64()),
        "bit": pa.array([1 << (k % AS_OF_BITS) for k in range(len(dates))], pa.int64()),
    })  # fmt: skip


def user_calendar(as_of: list[dt.date], first: dt.date) -> pa.Table:
    """Calendar of the users' scan: each day from `first` to the last as_of → each `chunk` of
    as_of dates (`_as_of_bits`) with the bits of those in whose windows the day is (USER_MASKS).
    A day in no window is in chunk 0, with no bits (its use can be a user's first)."""
    dates = sorted(set(as_of))
    n_days, n_chunks = max((dates[-1] - first).days, 0), -(-len(dates) // AS_OF_BITS)
    masks = {m: np.zeros((n_chunks, n_days), np.int64) for m in USER_MASKS}
    for k, d in enumerate(dates):
        end, bit_k = (d - first).days, 1 << (k % AS_OF_BITS)
        for m, (most, fewest) in USER_MASKS.items():
            masks[m][k // AS_OF_BITS, max(end - most, 0) : max(end - fewest, 0)] |= bit_k
    used = np.logical_or.reduce([m != 0 for m in masks.values()])
    used[0] |= ~used.any(axis=0)
    chunk, day = np.nonzero(used)
    return pa.table({
        "day": pa.array(np.datetime64(first, "D") + day, pa.date32()),
        "chunk": pa.array(chunk, pa.int64()),
        **{m: pa.array(v[chunk, day], pa.int64()) for m, v in masks.items()},
    })  # fmt: skip


def users_at(windows: ir.Table, as_of: list[dt.date]) -> ir.Table:
    """account × as_of × user active within max(USER_WINDOWS) days before as_of, from
    `user_windows`: `active_<w>d` for w in USER_WINDOWS, `active_prev_30d`, and
    `key_<i>_<KEY_USER_WINDOW>d` (each true if the user was active, or used key event i, within
    so many days; in the 30 days before the last 30)."""
    j = windows.inner_join(ibis.memtable(_as_of_bits(as_of)), "chunk")
    j = j.filter((j[f"in_{max(USER_WINDOWS)}d"] & j.bit) != 0)
    keys = key_columns(windows)
    return j.select(
        "account_id", "as_of", "user_id",
        **{m.replace("in_", "active_"): (j[m] & j.bit) != 0 for m in USER_MASKS},
        **{f"{c}_{KEY_USER_WINDOW}d": ((j[c] & j.bit) != 0).fill_null(False) for c in keys},
    )  # fmt: skip


def window_spans(as_of: list[dt.date], cuts: list[dt.date]) -> ir.Table:
    """(span, as_of) for each span (of `cuts`, see `edges`) in [as_of - max(WINDOWS), as_of)."""
    pairs = [(s, d) for d in sorted(set(as_of)) for s in cuts
             if d - dt.timedelta(days=max(WINDOWS)) <= s < d]  # fmt: skip
    return date_table({"span": [s for s, _ in pairs], "as_of": [d for _, d in pairs]})


def ranked_types(t: ir.Table, events: ir.IntegerScalar) -> dict[str, int]:
    """Event type → `events` (an aggregate over `t`'s rows), the types used by the most accounts
    first (ties: by name)."""
    ranked = t.group_by("event_type").aggregate(accounts=t.account_id.nunique(), n=events)
    ranked = ranked.filter(ranked.event_type.notnull())
    ranked = ranked.order_by([ibis.desc("accounts"), "event_type"]).execute()
    return {str(t): int(n) for t, n in zip(ranked["event_type"], ranked["n"], strict=True)}


@dataclass
class TypeScan:
    """The usage events before the last as_of in account parts (`account_parts`), the calendar
    of spans (`edges`, `spans`), and the first of the two scans of each part: account × span ×
    event type (`type_spans`), kept by the engine."""

    parts: list[ir.Table]
    cuts: list[dt.date]
    calendar: ir.Table
    by_type: list[ir.Table]

    @cached_property
    def event_types(self) -> dict[str, int]:
        """Event type → events, ranked as `churnml.features.build.event_types` ranks them."""
        t = self.by_type[0] if len(self.by_type) == 1 else ibis.union(*self.by_type)
        return ranked_types(t, t.n.sum())


def scan_types(events: ir.Table, as_of: list[dt.date]) -> TypeScan:
    """`TypeScan` of `events` for snapshots at `as_of`."""
    first = events.ts.min().execute()  # DuckDB: from the Parquet footers
    cuts = edges(as_of, None if pd.isna(first) else first.date())
    calendar = on_engine(events, spans(as_of, cuts))
    last = ibis.timestamp(dt.datetime.combine(max(as_of), dt.time()))
    parts = account_parts(events.filter(events.ts < last), events.count().execute())
    return TypeScan(parts, cuts, calendar, [cached(type_spans(p, calendar)) for p in parts])


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
