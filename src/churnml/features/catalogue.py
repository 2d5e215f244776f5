"""The feature catalogue: every feature declared once.

An entry says what a CS lead needs to read a feature (family, unit, which direction is healthy, a
description in English and Japanese) and how it is computed: either an aggregate over the rows of
one *source* joined to the snapshots (see `churnml.features.build`), or a value *derived* from other
features. The same entry drives computation, documentation (`churnml features --list`) and the
reason sentences shown to CSMs.

Sources and the columns their expressions may use (every source also has account_id, as_of):

=============  ==================================================================================
account        one row per snapshot: tenure_days, segment, industry, region, acquisition_channel,
               employees
contract       subscription rows active at as_of: arr, seats, product, plan, term_days, end_in_days
usage          account usage in spans (runs of days no 7/30/60/90-day window cuts), 90 days
               before as_of: age (days from the span's first day), days (active days), n_events,
               key_<i>, types_<j> (event types used, as bits)
users          one row per user active in the 90 days before as_of: active_<w>d (active in the
               last w days, for w in 7, 30, 90), active_prev_30d (in the 30 days before the last
               30), key_<i>_30d (used key event i in the last 30)
first_seen     one row per user first seen before as_of: first_age (days from their first use)
lifetime       one row per snapshot with use before as_of, over all of it: n_events, key_<i>,
               first_age (days since the first event), last_age (since the last), first_key_<i>_age
onboarding     the onboarding plan × snapshot: due_days, done_days (signup → completion, if done
               before as_of), tenure_days, first_value (bool)
support        tickets created before as_of: age, high, open, resolve_hours, csat
sentiment      NPS responses before as_of: age, score, rank (0 = latest)
contacts       contacts who started before as_of: role, active, left_age (days since they left)
touchpoints    CS touchpoints before as_of: age, review (a business review)
=============  ==================================================================================
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal, get_args

import ibis
import ibis.expr.types as ir

from churnml.config import FeatureConfig
from churnml.features.rollups import (
    KEY_USER_WINDOW,
    USER_WINDOWS,
    bit_count,
    bit_or,
    type_columns,
)

Family = Literal[
    "contract", "adoption", "onboarding", "support", "sentiment", "relationship", "relative"
]
FEATURE_FAMILIES: tuple[Family, ...] = get_args(Family)
# The scorecard's families: a feature's family, except that relative-to-segment counts as adoption.
FAMILIES = ("adoption", "onboarding", "support", "sentiment", "relationship", "contract")
Healthy = Literal["higher", "lower", "neutral"]
Expr = Callable[[ir.Table], ir.Value]


class Source(StrEnum):
    """Where a feature's rows come from: a source of the table above, a value derived from other
    features, a percentile within the segment (relative), or a column of a custom feature table."""

    ACCOUNT = "account"
    CONTRACT = "contract"
    USAGE = "usage"
    USERS = "users"
    FIRST_SEEN = "first_seen"
    LIFETIME = "lifetime"
    ONBOARDING = "onboarding"
    SUPPORT = "support"
    SENTIMENT = "sentiment"
    CONTACTS = "contacts"
    TOUCHPOINTS = "touchpoints"
    DERIVED = "derived"
    RELATIVE = "relative"
    CUSTOM = "custom"


@dataclass(frozen=True, kw_only=True)
class Feature:
    """One feature: its meaning (for people) and its computation (for the engine)."""

    name: str
    family: Family
    source: Source
    unit: str
    healthy: Healthy
    en: str
    ja: str
    expr: Expr
    window_days: int | None = None
    categorical: bool = False
    zero_when_missing: bool = False  # counts: no rows means 0, not unknown
    inputs: tuple[str, ...] = ()  # derived features: the features they read
    short: tuple[str, str] = ("", "")  # a label for charts and tables, in English and Japanese

    @property
    def of_users(self) -> bool:
        """Whether it counts users: left out where usage events name none."""
        return self.source in (Source.USERS, Source.FIRST_SEEN)

    @property
    def derived(self) -> bool:
        return self.source in (Source.DERIVED, Source.RELATIVE)

    def label(self, lang: str) -> str:
        """The short label in `lang` ("en" or "ja"), else the description."""
        short = self.short[lang == "ja"]
        return short or (self.ja if lang == "ja" else self.en)

    @property
    def lever(self) -> bool:
        """Something a CSM can move (adoption, onboarding, support, sentiment, relationship), as
        opposed to context (tenure, term timing, segment, size, region, contract)."""
        return self.family != "contract"


ROW_HEADER = ("name", "family", "window", "unit", "healthy")  # then a description per language


def catalogue_rows(features: Iterable[Feature], langs: tuple[str, ...]) -> list[list[str]]:
    """The catalogue as text, one row per feature: ROW_HEADER's columns, then the description in
    each of `langs` (for `churnml features --list` and the copy logged with each model)."""
    return [
        [f.name, f.family, f"{f.window_days}d" if f.window_days else "", f.unit, f.healthy,
         *(f.ja if lang == "ja" else f.en for lang in langs)]
        for f in features
    ]  # fmt: skip


def catalogue_markdown(features: Iterable[Feature]) -> str:
    """The catalogue as a Markdown table, in both languages (logged with each model)."""
    header = [*ROW_HEADER, "en", "ja"]
    rows = [header, ["---"] * len(header), *catalogue_rows(features, ("en", "ja"))]
    return "".join(f"| {' | '.join(row)} |\n" for row in rows)


def family(feature: Feature) -> str:
    """The scorecard family of a feature (relative-to-segment features count as adoption)."""
    return "adoption" if feature.family == "relative" else feature.family


def _float(value: ir.NumericValue) -> ir.FloatingValue:
    """Float arithmetic on every engine (Spark would otherwise compute in DECIMAL)."""
    return value.cast("float64")


def _types_used(t: ir.Table, days: int) -> ir.IntegerValue:
    """Distinct event types used within `days`: the bits set in the types used (`types_<j>`)."""
    used = [bit_count(bit_or(t[c], where=t.age <= days)).fill_null(0) for c in type_columns(t)]
    return sum(used[1:], used[0]).cast("int64") if used else ibis.literal(0, "int64")


def _count(where: Callable[[ir.Table], ir.BooleanValue]) -> Expr:
    return lambda t: where(t).cast("int64").sum().cast("int64")


def _ratio(num: str, den: str) -> Expr:
    return lambda t: ibis.ifelse(t[den] > 0, t[num] / t[den], ibis.null("float64"))


def _days(column: str) -> Expr:
    return lambda t: t[column]


def _account_feature(name: str, en: str, ja: str, categorical: bool = True) -> Feature:
    return Feature(
        name=name,
        family="contract",
        source=Source.ACCOUNT,
        unit="category" if categorical else "count",
        healthy="neutral",
        en=en,
        ja=ja,
        expr=lambda t: t[name],
        categorical=categorical,
        short=(en, ja),
    )


def _adoption(cfg: FeatureConfig) -> list[Feature]:
    out: list[Feature] = []
    for w in USER_WINDOWS:
        out += [
            Feature(
                name=f"active_users_{w}d",
                family="adoption",
                source=Source.USERS,
                unit="users",
                healthy="higher",
                en=f"Users active in the last {w} days",
                ja=f"過去{w}日間のアクティブユーザー数",
                expr=_count(lambda t, w=w: t[f"active_{w}d"]),
                window_days=w,
                zero_when_missing=True,
                short=(f"Active users {w}d", f"アクティブユーザー（{w}日）"),
            ),
            Feature(
                name=f"active_days_{w}d",
                family="adoption",
                source=Source.USAGE,
                unit="days",
                healthy="higher",
                en=f"Days with any product use in the last {w} days",
                ja=f"過去{w}日間に製品が利用された日数",
                expr=lambda t, w=w: t.days.sum(where=t.age <= w).cast("int64"),
                window_days=w,
                zero_when_missing=True,
                short=(f"Active days {w}d", f"利用日数（{w}日）"),
            ),
        ]
    out += [
        *[
            Feature(
                name=f"events_{w}d",
                family="adoption",
                source=Source.USAGE,
                unit="events",
                healthy="higher",
                en=f"Product events in the last {w} days",
                ja=f"過去{w}日間の製品イベント数",
                expr=lambda t, w=w: t.n_events.sum(where=t.age <= w).cast("int64"),
                window_days=w,
                zero_when_missing=True,
                short=(f"Events {w}d", f"イベント（{w}日）"),
            )
            for w in (30, 90)
        ],
        Feature(
            name="usage_trend_30d",
            family="adoption",
            source=Source.USAGE,
            unit="ratio",
            healthy="higher",
            en="Events in the last 30 days relative to the 30 days before",
            ja="直近30日間のイベント数（その前の30日間との比）",
            expr=lambda t: (
                (_float(t.n_events.sum(where=t.age <= 30)).fill_null(0) + 1)
                / (_float(t.n_events.sum(where=(t.age > 30) & (t.age <= 60))).fill_null(0) + 1)
            ),
            window_days=60,
            short=("Usage trend 30d", "利用の推移（30日）"),
        ),
        Feature(
            name="breadth_30d",
            family="adoption",
            source=Source.USAGE,
            unit="features",
            healthy="higher",
            en="Distinct product features used in the last 30 days",
            ja="過去30日間に利用された機能の種類数",
            expr=lambda t: _types_used(t, 30),
            window_days=30,
            zero_when_missing=True,
            short=("Features used 30d", "利用機能数（30日）"),
        ),
        Feature(
            name="days_since_last_activity",
            family="adoption",
            source=Source.LIFETIME,
            unit="days",
            healthy="lower",
            en="Days since anyone last used the product",
            ja="最後に製品が利用されてからの日数",
            expr=lambda t: t.last_age.min(),
            short=("Days since last use", "最終利用からの日数"),
        ),
        *[
            Feature(
                name=f"seat_utilisation_{w}d",
                family="adoption",
                source=Source.DERIVED,
                unit="share",
                healthy="higher",
                en=f"Share of purchased seats active in the last {w} days",
                ja=f"購入シートのうち過去{w}日間にアクティブだった割合",
                expr=_ratio(f"active_users_{w}d", "seats"),
                window_days=w,
                inputs=(f"active_users_{w}d", "seats"),
                short=(f"Active seats {w}d", f"アクティブシート率（{w}日）"),
            )
            for w in (30, 90)
        ],
        Feature(
            name="events_per_active_user_30d",
            family="adoption",
            source=Source.DERIVED,
            unit="events",
            healthy="higher",
            en="Events per active user in the last 30 days",
            ja="過去30日間のアクティブユーザー1人あたりのイベント数",
            expr=_ratio("events_30d", "active_users_30d"),
            window_days=30,
            inputs=("events_30d", "active_users_30d"),
            short=("Events per user 30d", "ユーザーあたりイベント（30日）"),
        ),
        Feature(
            name="seat_headroom_30d",
            family="adoption",
            source=Source.DERIVED,
            unit="seats",
            healthy="neutral",
            en="Purchased seats not used in the last 30 days (negative: more users than seats)",
            ja="過去30日間に使われなかった購入シート数（マイナスはシート数を超える利用）",
            expr=lambda t: t.seats - t.active_users_30d,
            window_days=30,
            inputs=("seats", "active_users_30d"),
            short=("Unused seats 30d", "未使用シート（30日）"),
        ),
        Feature(
            name="active_users_trend_30d",
            family="adoption",
            source=Source.USERS,
            unit="ratio",
            healthy="higher",
            en="Users active in the last 30 days relative to the 30 days before",
            ja="直近30日間のアクティブユーザー数（その前の30日間との比）",
            expr=lambda t: (
                (_float(_count(lambda t: t.active_30d)(t)) + 1)
                / (_float(_count(lambda t: t.active_prev_30d)(t)) + 1)
            ),
            window_days=60,
            short=("Active users trend 30d", "アクティブユーザーの推移（30日）"),
        ),
        Feature(
            name="new_users_30d",
            family="adoption",
            source=Source.FIRST_SEEN,
            unit="users",
            healthy="higher",
            en="Users whose first recorded use was in the last 30 days",
            ja="過去30日間に初めて利用したユーザー数",
            expr=_count(lambda t: t.first_age <= 30),
            window_days=30,
            zero_when_missing=True,
            short=("New users 30d", "新規ユーザー（30日）"),
        ),
        Feature(
            name="weekly_stickiness_30d",
            family="adoption",
            source=Source.DERIVED,
            unit="share",
            healthy="higher",
            en="Weekly over monthly active users (WAU/MAU): the last 7 days' over the last 30's",
            ja="WAU/MAU（定着度）：過去7日間と過去30日間のアクティブユーザー数の比",
            expr=_ratio("active_users_7d", "active_users_30d"),
            window_days=30,
            inputs=("active_users_7d", "active_users_30d"),
            short=("WAU/MAU 30d", "WAU/MAU（30日）"),
        ),
    ]
    out += _lifetime()
    events = cfg.key_events or ()
    for i, (event, slug) in enumerate(zip(events, event_slugs(events), strict=True)):
        out += _key_event(i, event, slug)
    return out


def event_slugs(events: tuple[str, ...] | list[str]) -> list[str]:
    """Names fit for a feature column, one per event type: lower case, `_` for anything else
    than a letter or digit, numbered when two would clash ("Report Created" → report_created)."""
    out: list[str] = []
    for event in events:
        slug = re.sub(r"[^0-9a-z]+", "_", str(event).lower()).strip("_") or "event"
        slug = slug if slug[0].isalpha() else f"event_{slug}"
        out.append(slug if slug not in out else f"{slug}_{len(out)}")
    return out


def _lifetime() -> list[Feature]:
    return [
        Feature(
            name="days_since_first_use",
            family="adoption",
            source=Source.LIFETIME,
            unit="days",
            healthy="neutral",
            en="Days since the account's first recorded product use",
            ja="記録上の最初の製品利用からの日数",
            expr=lambda t: t.first_age.max(),
            short=("Days since first use", "初回利用からの日数"),
        ),
        Feature(
            name="events_per_30d_lifetime",
            family="adoption",
            source=Source.LIFETIME,
            unit="events",
            healthy="higher",
            en="Product events per 30 days since the first recorded use",
            ja="最初の利用以降の30日あたりの製品イベント数",
            expr=lambda t: _float(t.n_events.sum()) * 30 / ibis.greatest(t.first_age.max(), 30),
            short=("Events per 30d, lifetime", "30日あたりイベント（全期間）"),
        ),
    ]


def _key_event(i: int, event: str, slug: str) -> list[Feature]:
    """The features of one key event (column `key_<i>` of the usage sources)."""
    out = []
    for w in (30, 90):
        out += [
            Feature(
                name=f"{slug}_events_{w}d",
                family="adoption",
                source=Source.USAGE,
                unit="events",
                healthy="higher",
                en=f"Uses of '{event}' in the last {w} days",
                ja=f"過去{w}日間の「{event}」の利用回数",
                expr=lambda t, w=w: t[f"key_{i}"].sum(where=t.age <= w).cast("int64"),
                window_days=w,
                zero_when_missing=True,
                short=(f"'{event}' uses {w}d", f"「{event}」利用回数（{w}日）"),
            ),
            Feature(
                name=f"{slug}_share_{w}d",
                family="adoption",
                source=Source.DERIVED,
                unit="share",
                healthy="higher",
                en=f"Share of the last {w} days' events that were '{event}'",
                ja=f"過去{w}日間のイベントのうち「{event}」が占める割合",
                expr=_ratio(f"{slug}_events_{w}d", f"events_{w}d"),
                window_days=w,
                inputs=(f"{slug}_events_{w}d", f"events_{w}d"),
                short=(f"'{event}' share {w}d", f"「{event}」の割合（{w}日）"),
            ),
        ]
    key = f"key_{i}"
    return [
        *out,
        Feature(
            name=f"{slug}_users_30d",
            family="adoption",
            source=Source.USERS,
            unit="users",
            healthy="higher",
            en=f"Users who used '{event}' in the last 30 days",
            ja=f"過去30日間に「{event}」を利用したユーザー数",
            expr=_count(lambda t: t[f"{key}_{KEY_USER_WINDOW}d"]),
            window_days=30,
            zero_when_missing=True,
            short=(f"'{event}' users 30d", f"「{event}」ユーザー（30日）"),
        ),
        Feature(
            name=f"{slug}_trend_30d",
            family="adoption",
            source=Source.USAGE,
            unit="ratio",
            healthy="higher",
            en=f"Uses of '{event}' in the last 30 days relative to the 30 days before",
            ja=f"直近30日間の「{event}」の利用回数（その前の30日間との比）",
            expr=lambda t: (
                (_float(t[key].sum(where=t.age <= 30)).fill_null(0) + 1)
                / (_float(t[key].sum(where=(t.age > 30) & (t.age <= 60))).fill_null(0) + 1)
            ),
            window_days=60,
            short=(f"'{event}' trend 30d", f"「{event}」の推移（30日）"),
        ),
        Feature(
            name=f"{slug}_days_since_first",
            family="adoption",
            source=Source.LIFETIME,
            unit="days",
            healthy="neutral",
            en=f"Days since '{event}' was first used",
            ja=f"「{event}」の最初の利用からの日数",
            expr=lambda t: t[f"first_{key}_age"].max(),
            short=(f"Days since first '{event}'", f"「{event}」初回からの日数"),
        ),
        Feature(
            name=f"{slug}_per_30d_lifetime",
            family="adoption",
            source=Source.LIFETIME,
            unit="events",
            healthy="higher",
            en=f"Uses of '{event}' per 30 days since the account's first recorded use",
            ja=f"最初の利用以降の30日あたりの「{event}」の利用回数",
            expr=lambda t: _float(t[key].sum()) * 30 / ibis.greatest(t.first_age.max(), 30),
            short=(f"'{event}' per 30d, lifetime", f"「{event}」30日あたり（全期間）"),
        ),
    ]


def _onboarding() -> list[Feature]:
    out = [
        Feature(
            name="onboarding_done",
            family="onboarding",
            source=Source.ONBOARDING,
            unit="milestones",
            healthy="higher",
            en="Onboarding milestones completed",
            ja="完了したオンボーディングのマイルストーン数",
            expr=_count(lambda t: t.done_days.notnull()),
            zero_when_missing=True,
            short=("Milestones done", "完了マイルストーン"),
        ),
        Feature(
            name="onboarding_overdue",
            family="onboarding",
            source=Source.ONBOARDING,
            unit="milestones",
            healthy="lower",
            en="Onboarding milestones past their due date and not done",
            ja="期限を過ぎても未完了のオンボーディングのマイルストーン数",
            expr=_count(lambda t: (t.due_days < t.tenure_days) & t.done_days.isnull()),
            zero_when_missing=True,
            short=("Milestones overdue", "期限超過マイルストーン"),
        ),
        Feature(
            name="days_to_first_value",
            family="onboarding",
            source=Source.ONBOARDING,
            unit="days",
            healthy="lower",
            en="Days from signup to first value",
            ja="契約から最初の価値実感（ファーストバリュー）までの日数",
            expr=lambda t: t.done_days.max(where=t.first_value),
            short=("Days to first value", "ファーストバリューまでの日数"),
        ),
    ]
    for n in (30, 60, 90):
        out.append(
            Feature(
                name=f"onboarding_done_by_day_{n}",
                family="onboarding",
                source=Source.ONBOARDING,
                unit="share",
                healthy="higher",
                en=f"Share of milestones due by day {n} that were done by day {n}",
                ja=f"契約後{n}日目までに期限が来るマイルストーンのうち、{n}日目までに完了した割合",
                expr=lambda t, n=n: ibis.ifelse(
                    t.tenure_days.max() >= n,
                    _count(lambda r: (r.due_days <= n) & (r.done_days < n))(t)
                    / _count(lambda r: r.due_days <= n)(t).nullif(0),
                    ibis.null("float64"),
                ),
                window_days=n,
                short=(f"Milestones on time by day {n}", f"{n}日目までの期限内完了率"),
            )
        )
    return out


def _support() -> list[Feature]:
    out = []
    for w in (30, 90):
        out += [
            Feature(
                name=f"tickets_{w}d",
                family="support",
                source=Source.SUPPORT,
                unit="tickets",
                healthy="lower",
                en=f"Support tickets opened in the last {w} days",
                ja=f"過去{w}日間に起票されたサポートチケット数",
                expr=_count(lambda t, w=w: t.age <= w),
                window_days=w,
                zero_when_missing=True,
                short=(f"Tickets {w}d", f"チケット（{w}日）"),
            ),
            Feature(
                name=f"high_priority_tickets_{w}d",
                family="support",
                source=Source.SUPPORT,
                unit="tickets",
                healthy="lower",
                en=f"High-priority support tickets in the last {w} days",
                ja=f"過去{w}日間の高優先度サポートチケット数",
                expr=_count(lambda t, w=w: (t.age <= w) & t.high),
                window_days=w,
                zero_when_missing=True,
                short=(f"Urgent tickets {w}d", f"高優先度チケット（{w}日）"),
            ),
        ]
    out += [
        Feature(
            name="open_tickets",
            family="support",
            source=Source.SUPPORT,
            unit="tickets",
            healthy="lower",
            en="Support tickets still open",
            ja="未解決のサポートチケット数",
            expr=_count(lambda t: t.open),
            zero_when_missing=True,
            short=("Open tickets", "未解決チケット"),
        ),
        Feature(
            name="resolution_hours_90d",
            family="support",
            source=Source.SUPPORT,
            unit="hours",
            healthy="lower",
            en="Average hours to resolve tickets opened in the last 90 days",
            ja="過去90日間のチケットの平均解決時間（時間）",
            expr=lambda t: t.resolve_hours.mean(where=t.age <= 90),
            window_days=90,
            short=("Hours to resolve 90d", "平均解決時間（90日）"),
        ),
        Feature(
            name="csat_90d",
            family="support",
            source=Source.SUPPORT,
            unit="score (1–5)",
            healthy="higher",
            en="Average support satisfaction (CSAT) in the last 90 days",
            ja="過去90日間のサポート満足度（CSAT）の平均",
            expr=lambda t: t.csat.mean(where=t.age <= 90),
            window_days=90,
            short=("CSAT 90d", "CSAT（90日）"),
        ),
    ]
    return out


def _sentiment() -> list[Feature]:
    return [
        Feature(
            name="nps_last",
            family="sentiment",
            source=Source.SENTIMENT,
            unit="score (0–10)",
            healthy="higher",
            en="Latest NPS score",
            ja="直近のNPSスコア",
            expr=lambda t: t.score.max(where=t.rank == 0),
            short=("Latest NPS", "直近のNPS"),
        ),
        Feature(
            name="nps_change",
            family="sentiment",
            source=Source.SENTIMENT,
            unit="points",
            healthy="higher",
            en="Change of the latest NPS score from the one before",
            ja="直近のNPSスコアの前回からの変化",
            expr=lambda t: t.score.max(where=t.rank == 0) - t.score.max(where=t.rank == 1),
            short=("NPS change", "NPSの変化"),
        ),
        Feature(
            name="nps_detractor",
            family="sentiment",
            source=Source.DERIVED,
            unit="flag",
            healthy="lower",
            en="Latest NPS response is a detractor (0–6)",
            ja="直近のNPS回答が批判者（0〜6）",
            expr=lambda t: (t.nps_last <= 6).cast("int64"),
            inputs=("nps_last",),
            short=("NPS detractor", "NPS批判者"),
        ),
        Feature(
            name="days_since_nps",
            family="sentiment",
            source=Source.SENTIMENT,
            unit="days",
            healthy="neutral",
            en="Days since the latest NPS response",
            ja="直近のNPS回答からの日数",
            expr=lambda t: t.age.min(),
            short=("Days since NPS", "NPS回答からの日数"),
        ),
    ]


def _relationship() -> list[Feature]:
    def present(role: str) -> Expr:
        return lambda t: (t.active & (t.role == role)).cast("int64").max()

    return [
        Feature(
            name="has_champion",
            family="relationship",
            source=Source.CONTACTS,
            unit="flag",
            healthy="higher",
            en="A champion is in place",
            ja="チャンピオン（推進者）がいる",
            expr=present("champion"),
            zero_when_missing=True,
            short=("Champion in place", "チャンピオンあり"),
        ),
        Feature(
            name="has_exec_sponsor",
            family="relationship",
            source=Source.CONTACTS,
            unit="flag",
            healthy="higher",
            en="An executive sponsor is in place",
            ja="エグゼクティブスポンサーがいる",
            expr=present("exec_sponsor"),
            zero_when_missing=True,
            short=("Exec sponsor in place", "エグゼクティブスポンサーあり"),
        ),
        Feature(
            name="champion_left_90d",
            family="relationship",
            source=Source.CONTACTS,
            unit="flag",
            healthy="lower",
            en="A champion left in the last 90 days",
            ja="過去90日間にチャンピオンが離任した",
            expr=lambda t: ((t.role == "champion") & (t.left_age <= 90)).cast("int64").max(),
            window_days=90,
            zero_when_missing=True,
            short=("Champion left 90d", "チャンピオン離任（90日）"),
        ),
        Feature(
            name="contacts_active",
            family="relationship",
            source=Source.CONTACTS,
            unit="contacts",
            healthy="higher",
            en="Known contacts currently in place",
            ja="現在在籍している既知の担当者数",
            expr=_count(lambda t: t.active),
            zero_when_missing=True,
            short=("Contacts in place", "在籍中の担当者"),
        ),
        Feature(
            name="business_reviews_90d",
            family="relationship",
            source=Source.TOUCHPOINTS,
            unit="meetings",
            healthy="higher",
            en="Business reviews (QBR/EBR) in the last 90 days",
            ja="過去90日間のビジネスレビュー（QBR/EBR）の回数",
            expr=_count(lambda t: t.review & (t.age <= 90)),
            window_days=90,
            zero_when_missing=True,
            short=("Business reviews 90d", "ビジネスレビュー（90日）"),
        ),
        Feature(
            name="touchpoints_90d",
            family="relationship",
            source=Source.TOUCHPOINTS,
            unit="touchpoints",
            healthy="higher",
            en="CS touchpoints in the last 90 days",
            ja="過去90日間のCSとの接点の数",
            expr=_count(lambda t: t.age <= 90),
            window_days=90,
            zero_when_missing=True,
            short=("CS touchpoints 90d", "CS接点（90日）"),
        ),
        Feature(
            name="days_since_touchpoint",
            family="relationship",
            source=Source.TOUCHPOINTS,
            unit="days",
            healthy="lower",
            en="Days since the last CS touchpoint",
            ja="最後のCSとの接点からの日数",
            expr=lambda t: t.age.min(),
            short=("Days since last touch", "最終接点からの日数"),
        ),
        Feature(
            name="days_since_business_review",
            family="relationship",
            source=Source.TOUCHPOINTS,
            unit="days",
            healthy="lower",
            en="Days since the last business review",
            ja="最後のビジネスレビューからの日数",
            expr=lambda t: t.age.min(where=t.review),
            short=("Days since business review", "ビジネスレビューからの日数"),
        ),
    ]


def _contract() -> list[Feature]:
    return [
        Feature(
            name="tenure_days",
            family="contract",
            source=Source.ACCOUNT,
            unit="days",
            healthy="higher",
            en="Days since the account signed up",
            ja="契約開始からの日数",
            expr=lambda t: t.tenure_days,
            short=("Tenure", "契約期間"),
        ),
        _account_feature("segment", "Customer segment", "顧客セグメント"),
        _account_feature("industry", "Industry", "業種"),
        _account_feature("region", "Region", "地域"),
        _account_feature("acquisition_channel", "Acquisition channel", "獲得チャネル"),
        _account_feature(
            "employees", "Employees at the customer", "顧客の従業員数", categorical=False
        ),
        Feature(
            name="arr",
            family="contract",
            source=Source.CONTRACT,
            unit="currency",
            healthy="neutral",
            en="Annual recurring revenue",
            ja="年間経常収益（ARR）",
            expr=lambda t: t.arr.sum().cast("float64"),
            short=("ARR", "ARR"),
        ),
        Feature(
            name="seats",
            family="contract",
            source=Source.CONTRACT,
            unit="seats",
            healthy="neutral",
            en="Seats purchased",
            ja="購入シート数",
            expr=lambda t: t.seats.sum().cast("float64"),
            short=("Seats", "シート数"),
        ),
        Feature(
            name="products_held",
            family="contract",
            source=Source.CONTRACT,
            unit="products",
            healthy="higher",
            en="Products subscribed",
            ja="契約中の製品数",
            expr=lambda t: t.product.nunique(),
            short=("Products", "製品数"),
        ),
        Feature(
            name="product_mix",
            family="contract",
            source=Source.CONTRACT,
            unit="category",
            healthy="neutral",
            en="Products subscribed, by name",
            ja="契約中の製品の組み合わせ",
            expr=lambda t: t.product.collect(distinct=True).sort().join("+"),
            categorical=True,
            short=("Product mix", "製品の組み合わせ"),
        ),
        Feature(
            name="plan",
            family="contract",
            source=Source.CONTRACT,
            unit="category",
            healthy="neutral",
            en="Plan of the main subscription",
            ja="主契約のプラン",
            expr=lambda t: t.plan.argmax(t.arr),
            categorical=True,
            short=("Plan", "プラン"),
        ),
        Feature(
            name="days_to_renewal",
            family="contract",
            source=Source.CONTRACT,
            unit="days",
            healthy="higher",
            en="Days until the current term ends (empty for open-ended plans)",
            ja="現在の契約期間の終了（更新）までの日数（期間の定めのない契約は空欄）",
            expr=lambda t: t.end_in_days.min(),
            short=("Days to renewal", "更新までの日数"),
        ),
        Feature(
            name="term_months",
            family="contract",
            source=Source.CONTRACT,
            unit="months",
            healthy="higher",
            en="Length of the current contract term in months (0 for monthly plans)",
            ja="現在の契約期間の長さ（月、月額プランは0）",
            expr=lambda t: (_float(t.term_days.max()).fill_null(0) / 30.44).round().cast("int64"),
            short=("Term (months)", "契約期間（月）"),
        ),
    ]


_RELATIVE = (
    "seat_utilisation_30d",
    "active_days_30d",
    "events_per_active_user_30d",
    "breadth_30d",
    "usage_trend_30d",
)


def _relative(by_name: dict[str, Feature]) -> list[Feature]:
    return [
        Feature(
            name=f"{name}_segment_pct",
            family="relative",
            source=Source.RELATIVE,
            unit="percentile",
            healthy="higher",
            en=f"Percentile within the segment: {by_name[name].en.lower()}",
            ja=f"セグメント内の順位（パーセンタイル）：{by_name[name].ja}",
            expr=lambda t, name=name: t[name],
            inputs=(name, "segment"),
            short=(
                f"{by_name[name].short[0]}, segment rank",
                f"{by_name[name].short[1]}（セグメント内順位）",
            ),
        )
        for name in _RELATIVE
    ]


def catalogue(cfg: FeatureConfig) -> list[Feature]:
    """Every feature, in a stable order (family by family)."""
    base = _contract() + _adoption(cfg) + _onboarding() + _support() + _sentiment()
    base += _relationship()
    return base + _relative({f.name: f for f in base})


def by_name(cfg: FeatureConfig) -> dict[str, Feature]:
    """The catalogue keyed by feature name."""
    return {f.name: f for f in catalogue(cfg)}
