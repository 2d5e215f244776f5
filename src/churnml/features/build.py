"""Compute the feature catalogue at many observation dates at once, point in time, on any engine.

Every source joins one input table to the snapshots (account_id, as_of), keeping only what was
known strictly before as_of (the usage and users sources: to every as_of, the snapshots kept by
the final join); each catalogue entry aggregates one source. Usage events are scanned twice, by
span and by user, and reduced to small tables (account × span, the users' windows as bits over
the as_of dates; see `rollups`); the 7/30/90-day windows are computed on those, never on raw
events.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import NamedTuple

import ibis
import ibis.expr.types as ir
import pyarrow.parquet as pq

from churnml.config import Config, FeatureConfig, LabelConfig
from churnml.data import load
from churnml.data.sources import Engine, cached, on_engine, spark_frame
from churnml.features import rollups
from churnml.features.catalogue import Feature, Source, catalogue
from churnml.features.labels import default_as_of, label_columns, labelled_snapshots
from churnml.io import DONE, atomic_path, committed
from churnml.vocabulary import KEYS

log = logging.getLogger(__name__)

MAX_WINDOW = 90
GRACE_DAYS = LabelConfig.model_fields["grace_days"].default


# -- sources -----------------------------------------------------------------------------------
class _Rollups(NamedTuple):
    """The usage rollups, each kept by the engine (see `rollups`)."""

    spans: ir.Table  # account × span (`rollups.span_use`)
    users: ir.Table  # account × user × as_of chunk (`rollups.user_windows`)
    first_days: ir.Table  # account (`rollups.first_days`)


class _Sources:
    """Builds each source lazily (rollups once) from typed tables and the snapshots."""

    def __init__(self, tables: dict[str, ir.Table], snaps: ir.Table, as_of: list[dt.date],
                 cfg: FeatureConfig, grace_days: int,
                 scan: rollups.TypeScan | None = None) -> None:  # fmt: skip
        self.t, self.snaps, self.as_of, self.cfg = tables, snaps, as_of, cfg
        self.grace_days, self.scan = grace_days, scan
        self._cache: dict[Source, ir.Table] = {}

    def release(self) -> None:
        """Let the engine free the usage rollups (each source that needs them is computed)."""
        for table in self.__dict__.pop("_usage_rollups", ()):
            table.release()
        if "_periods" in self.__dict__:
            self.__dict__.pop("_periods").release()

    def get(self, source: Source) -> ir.Table:
        if source not in self._cache:
            self._cache[source] = BUILDERS[source][1](self)
        return self._cache[source]

    def _account(self) -> ir.Table:
        a = self.snaps.select(KEYS).inner_join(self.t["accounts"], "account_id")
        return a.mutate(tenure_days=rollups.age(a, a.signup_date))

    def _contract(self) -> ir.Table:
        s = self.t["subscriptions"]
        j = self.snaps.select(KEYS).inner_join(s, "account_id")
        # Known at as_of: rows signed before it; a cancellation only once it has happened.
        grace = ibis.interval(days=self.grace_days)
        j = j.mutate(
            canceled=j.canceled_at.notnull() & (j.canceled_at < j.as_of),
            active=j.end_date.isnull() | (j.end_date > j.as_of),
            # In renewal (nothing active): the last term, which ended within the grace.
            ended=(j.end_date <= j.as_of) & (j.end_date > j.as_of - grace),
        )
        j = j.filter(~j.canceled & (j.arr > 0) & (j.start_date < j.as_of) & (j.active | j.ended))
        j = j.mutate(
            any_active=j.active.any().over(group_by=KEYS),
            last_end=j.end_date.max().over(group_by=KEYS),
        )
        j = j.filter(j.active | (~j.any_active & (j.end_date == j.last_end)))
        return j.mutate(
            term_days=j.end_date.delta(j.start_date, unit="day"),
            end_in_days=j.end_date.delta(j.as_of, unit="day"),
        )

    @cached_property
    def _scan(self) -> rollups.TypeScan:
        return self.scan or rollups.scan_types(self.t["usage_events"], self.as_of)

    @cached_property
    def _usage_rollups(self) -> _Rollups:
        """The events before the last as_of, scanned twice account part by account part
        (`rollups.type_spans`, then `rollups.user_windows`), and reduced (`_Rollups`)."""
        scan, keys = self._scan, self.cfg.key_events or ()
        types = tuple(scan.event_types)
        calendar = on_engine(scan.parts[0], rollups.user_calendar(self.as_of, scan.cuts[0]))
        parts: list[_Rollups] = []
        for part, by_type in zip(scan.parts, scan.by_type, strict=True):
            parts.append(_Rollups(
                cached(rollups.span_use(by_type, scan.calendar, keys, types)),
                cached(rollups.user_windows(part, calendar, keys)),
                cached(rollups.first_days(by_type, keys)),
            ))  # fmt: skip
            by_type.release()
        return _Rollups(*(rollups.union(list(tables)) for tables in zip(*parts, strict=True)))

    def _usage(self) -> ir.Table:
        pairs = rollups.window_spans(self.as_of, self._scan.cuts)
        j = self._usage_rollups.spans.inner_join(pairs, "span")
        return j.mutate(age=rollups.age(j, j.span))

    def _users(self) -> ir.Table:
        return rollups.users_at(self._usage_rollups.users, self.as_of)

    @cached_property
    def _periods(self) -> ir.Table:
        return cached(rollups.period_use(self._usage_rollups.spans))

    def _lifetime(self) -> ir.Table:
        j = rollups.to_date(self._periods, self._usage_rollups.first_days, self.snaps)
        firsts = [c for c in j.columns if c.startswith("first_key_")]
        ages = {f"{c}_age": rollups.age(j, j[c]) for c in firsts}
        return j.mutate(
            first_age=rollups.age(j, j.first_day), last_age=rollups.age(j, j.last_day), **ages
        )

    def _first_seen(self) -> ir.Table:
        # A user's first day, if before as_of, is the same on the full data and on the data
        # known at as_of.
        users = self._usage_rollups.users
        first = users.group_by(["account_id", "user_id"]).aggregate(day=users.first_day.min())
        j = self.snaps.select(KEYS).inner_join(first, "account_id")
        j = j.filter(j.day < j.as_of)
        return j.mutate(first_age=rollups.age(j, j.day))

    def _onboarding(self) -> ir.Table:
        plan = ibis.memtable(
            {
                "milestone": list(self.cfg.onboarding_plan),
                "due_days": list(self.cfg.onboarding_plan.values()),
            }
        )
        a = self.get(Source.ACCOUNT).select(*KEYS, "signup_date", "tenure_days")
        rows = a.cross_join(plan)
        m = self.t["onboarding_milestones"]
        done = m.filter(m.completed_at.notnull())
        j = rows.left_join(
            done.select("account_id", "milestone", "completed_at"), ["account_id", "milestone"]
        )
        day = j.completed_at.cast("date")
        known = day < j.as_of
        return j.select(
            *KEYS, "milestone", "due_days", "tenure_days",
            done_days=ibis.ifelse(known, day.delta(j.signup_date, unit="day"), ibis.null("int64")),
            first_value=j.milestone == self.cfg.first_value_milestone,
        )  # fmt: skip

    def _support(self) -> ir.Table:
        j = rollups.before(self.snaps, self.t["support_tickets"], "created_at")
        resolved = j.resolved_at.notnull() & (j.resolved_at.cast("date") < j.as_of)
        hours = j.resolved_at.delta(j.created_at, unit="second").cast("float64") / 3600
        return j.mutate(
            high=j.priority.isin(self.cfg.high_priority),
            open=~resolved,
            resolve_hours=ibis.ifelse(resolved, hours, ibis.null("float64")),
            csat=ibis.ifelse(resolved, j.csat, ibis.null("float64")),
        )

    def _sentiment(self) -> ir.Table:
        j = rollups.before(self.snaps, self.t["nps_responses"], "submitted_at")
        order = ibis.window(group_by=KEYS, order_by=[ibis.desc(j.submitted_at), ibis.desc(j.score)])
        return j.mutate(rank=ibis.row_number().over(order))

    def _contacts(self) -> ir.Table:
        j = rollups.before(self.snaps, self.t["contacts"], "start_date")
        left = j.end_date.notnull() & (j.end_date < j.as_of)
        return j.mutate(
            active=~left,
            left_age=ibis.ifelse(left, rollups.age(j, j.end_date), ibis.null("int64")),
        )

    def _touchpoints(self) -> ir.Table:
        j = rollups.before(self.snaps, self.t["cs_touchpoints"], "ts")
        return j.mutate(review=j.kind.isin(self.cfg.business_reviews))


# Each source: the input table it reads, and how it is built from it.
BUILDERS: dict[Source, tuple[str, Callable[[_Sources], ir.Table]]] = {
    Source.ACCOUNT: ("accounts", _Sources._account),
    Source.CONTRACT: ("subscriptions", _Sources._contract),
    Source.USAGE: ("usage_events", _Sources._usage),
    Source.USERS: ("usage_events", _Sources._users),
    Source.LIFETIME: ("usage_events", _Sources._lifetime),
    Source.FIRST_SEEN: ("usage_events", _Sources._first_seen),
    Source.ONBOARDING: ("onboarding_milestones", _Sources._onboarding),
    Source.SUPPORT: ("support_tickets", _Sources._support),
    Source.SENTIMENT: ("nps_responses", _Sources._sentiment),
    Source.CONTACTS: ("contacts", _Sources._contacts),
    Source.TOUCHPOINTS: ("cs_touchpoints", _Sources._touchpoints),
}


def input_table(source: Source) -> str | None:
    """The input table a source reads (None for derived, relative and custom features)."""
    return BUILDERS[source][0] if source in BUILDERS else None


# -- key events --------------------------------------------------------------------------------
def event_types(events: ir.Table, before: dt.date) -> dict[str, int]:
    """Event type → events before `before`, the types used by the most accounts first (ties: by
    name)."""
    e = events.filter(events.ts < ibis.timestamp(dt.datetime.combine(before, dt.time())))
    return rollups.ranked_types(e, rollups.event_count(e))


def top_event_types(events: ir.Table, before: dt.date, k: int) -> tuple[str, ...]:
    """The `k` event types used by the most accounts before `before` (ties: by name)."""
    return tuple(event_types(events, before))[:k]


def with_key_events(cfg: Config, tables: dict[str, ir.Table], before: dt.date,
                    types: dict[str, int] | None = None) -> Config:  # fmt: skip
    """`cfg` with its key events fixed: as configured, else chosen from the data before `before`
    (the first `features.top_events` of `types`, by default `event_types` before `before`)."""
    if cfg.features.key_events is not None:
        return cfg
    types = types if types is not None else event_types(tables["usage_events"], before)
    return cfg.with_key_events(tuple(types)[: cfg.features.top_events])


# -- assembly ------------------------------------------------------------------------------------
def available(features: list[Feature], tables: dict[str, ir.Table]) -> list[Feature]:
    """The features whose tables (and, for derived ones, inputs) are present, and that count
    users only where usage events name some, in catalogue order."""
    out: list[Feature] = []
    missing = set()
    users = "usage_events" in tables and names_users(tables["usage_events"])
    for f in features:
        needed = input_table(f.source)
        names = {g.name for g in out}
        if (needed and needed not in tables) or not set(f.inputs) <= names:
            missing.add(needed or f.family)
            continue
        if f.of_users and not users:
            continue
        out.append(f)
    for table in sorted(t for t in missing if t):
        log.info("%s is missing: its features are skipped", table)
    if "usage_events" in tables and not users:
        log.info("usage_events names no user: the features that count users are skipped")
    return out


def names_users(events: ir.Table) -> bool:
    """Whether any usage event names a user (the engine stops at the first)."""
    return bool(events.filter(events.user_id.notnull()).limit(1).count().execute())


def _aggregate(source: ir.Table, features: list[Feature]) -> ir.Table:
    return source.group_by(KEYS).aggregate(**{f.name: f.expr(source) for f in features})


def compute_features(
    tables: dict[str, ir.Table],
    snaps: ir.Table,
    as_of: list[dt.date],
    cfg: FeatureConfig,
    progress: Callable[[str], None] | None = None,
    grace_days: int = GRACE_DAYS,
    scan: rollups.TypeScan | None = None,
) -> ir.Table:
    """All available catalogue features for the given snapshots (account_id, as_of, …). The
    contract of an account in renewal (see `lapsed_terms`) is its last term's. `scan`: the first
    scan of the usage events (`rollups.scan_types`), if done (it is used up)."""
    features = available(catalogue(cfg), tables)
    snaps = snaps.select("account_id", as_of=snaps.as_of.cast("date"))
    sources = _Sources(tables, snaps, as_of, cfg, grace_days, scan)
    out = snaps
    by_source: dict[Source, list[Feature]] = {}
    for f in features:
        by_source.setdefault(f.source, []).append(f)
    for name, group in by_source.items():
        if name not in BUILDERS:
            continue
        if progress:
            progress(name)
        src = sources.get(name)
        part = (
            src.select(*KEYS, **{f.name: f.expr(src) for f in group})
            if name == Source.ACCOUNT
            else _aggregate(src, group)
        )
        # Materialised one source at a time: one huge query plan is slower and hungrier.
        out = out.left_join(cached(part), KEYS).select(out, *[f.name for f in group])
    sources.release()
    fills = {f.name: out[f.name].fill_null(0) for f in features if f.zero_when_missing}
    out = out.mutate(**fills)
    out = out.mutate(**{f.name: f.expr(out) for f in by_source.get(Source.DERIVED, [])})
    relative = by_source.get(Source.RELATIVE, [])
    if relative:  # ranked on a narrow table: each window would otherwise carry every column
        narrow = out.select(*KEYS, "segment", *{f.inputs[0] for f in relative})
        ranks = narrow.select(*KEYS, **{f.name: _segment_percentile(narrow, f.inputs[0])
                                        for f in relative})  # fmt: skip
        out = out.left_join(cached(ranks), KEYS).select(out, *[f.name for f in relative])
    return out.select(*KEYS, *[f.name for f in features])


def csm_context(
    tables: dict[str, ir.Table], snaps: ir.Table, as_of: list[dt.date], cfg: FeatureConfig,
    grace_days: int = GRACE_DAYS,
) -> ir.Table:
    """For the CSM, not for the models, per snapshot: the earliest-due onboarding milestone that
    is overdue (`overdue_milestone`), and the contact to call (`primary_contact`,
    `primary_contact_role`: the champion in place, else the executive sponsor, else the latest
    contact in place). Null where there is none, or the table is missing."""
    snaps = snaps.select("account_id", as_of=snaps.as_of.cast("date"))
    sources = _Sources(tables, snaps, as_of, cfg, grace_days)
    out, none = snaps, ibis.null("string")
    if "onboarding_milestones" in tables:
        o = sources.get(Source.ONBOARDING)
        o = o.filter((o.due_days < o.tenure_days) & o.done_days.isnull())
        key = o.due_days.cast("string").lpad(6, "0").concat(o.milestone)  # ties: by name
        late = o.group_by(KEYS).aggregate(late=key.min().substr(6))
        out = out.left_join(late, KEYS).select(out, overdue_milestone=late.late)
    else:
        out = out.mutate(overdue_milestone=none)
    if "contacts" in tables:
        c = sources.get(Source.CONTACTS)
        c = c.filter(c.active).mutate(
            rank=ibis.cases((c.role == "champion", 0), (c.role == "exec_sponsor", 1), else_=2))
        first = ibis.window(group_by=KEYS, order_by=[c.rank, ibis.desc(c.start_date), c.contact_id])
        c = c.mutate(n=ibis.row_number().over(first))
        c = c.filter(c.n == 0).select(*KEYS, who=c.contact_id.cast("string"), what=c.role)
        out = out.left_join(c, KEYS).select(out, primary_contact=c.who, primary_contact_role=c.what)
    else:
        out = out.mutate(primary_contact=none, primary_contact_role=none)
    return out.select(*KEYS, "overdue_milestone", "primary_contact", "primary_contact_role")


def _segment_percentile(t: ir.Table, column: str) -> ir.FloatingValue:
    """Percent rank within (segment, as_of); nulls stay null and do not shift the others."""
    value = t[column].cast("float64")
    ranked = value.fill_null(float("-inf"))
    pct = ibis.percent_rank().over(group_by=["segment", "as_of"], order_by=ranked)
    return ibis.ifelse(value.isnull(), ibis.null("float64"), pct)


def build_features(
    tables: dict[str, ir.Table],
    *,
    as_of: list[dt.date],
    cfg: Config,
    progress: Callable[[str], None] | None = None,
) -> ir.Table:
    """Snapshots at `as_of` with ARR, labels (null where unknown) and every available feature
    (key events, unless configured, from the data before the last as_of)."""
    scan = rollups.scan_types(tables["usage_events"], as_of)
    cfg = with_key_events(cfg, tables, max(as_of), scan.event_types)
    labelled = cached(labelled_snapshots(tables, as_of, cfg.labels))
    feats = compute_features(
        tables, labelled.select(KEYS), as_of, cfg.features, progress, cfg.labels.grace_days, scan
    )
    labels = labelled.drop("arr")
    return feats.inner_join(labels, KEYS).order_by(KEYS)


@dataclass(frozen=True)
class FeatureTable:
    path: str  # a local file, or on Spark a folder (or a URI)
    rows: int
    features: list[str]
    as_of: list[dt.date]


ROW_GROUP_ROWS = 122_880  # DuckDB's own row group: 100,000 wrote 346,935 rows 0.3 s slower


def _write(expr: ir.Table, out: Path) -> int:
    """The engine writes the rows into one Parquet file (row groups of ROW_GROUP_ROWS),
    atomically; return how many."""
    typed = expr.cast(expr.schema())  # engines may widen sums (DuckDB: HUGEINT)
    with atomic_path(out) as tmp:
        typed.to_parquet(tmp, compression="zstd", row_group_size=ROW_GROUP_ROWS)
        return pq.ParquetFile(tmp).metadata.num_rows


def _write_on_spark(expr: ir.Table, out: str) -> int:
    """The executors write the rows into `out`, a folder of Parquet parts (any path Spark
    writes), committed whole (`churnml.io.committed`); return how many."""
    frame = spark_frame(expr)
    with committed(frame.sparkSession, out, DONE) as tmp:
        frame.write.parquet(tmp)
        return frame.sparkSession.read.parquet(tmp).count()  # from the parts' footers


def write_features(
    data_dir: Path | str,
    cfg: Config,
    out: Path | str,
    as_of: list[dt.date] | None = None,
    engine: Engine = "duckdb",
    check: bool = True,
    progress: Callable[[str], None] | None = None,
) -> FeatureTable:
    """Validate the data, build features and labels at `as_of` (default: every month start), and
    write them to `out` (Parquet, one row per account and as_of) atomically: a file, or on
    Spark a folder of parts written by the executors."""
    tables = load(data_dir, cfg.data, engine, check=check)
    dates = sorted(set(as_of or default_as_of(tables)))
    expr = build_features(tables, as_of=dates, cfg=cfg, progress=progress)
    rows = _write_on_spark(expr, str(out)) if engine == "spark" else _write(expr, Path(out))
    labels = set(label_columns(cfg.labels).values())
    names = [c for c in expr.columns if c not in {*KEYS, *labels}]
    return FeatureTable(str(out), rows, names, dates)
