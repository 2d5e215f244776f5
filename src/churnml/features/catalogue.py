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
usage          daily usage rollup, 90 days before as_of: age (days, 1–90), n_events, users, key_<i>
users          one row per user active in the 90 days before as_of: age (days since last activity),
               key_<i>_age (days since the user last used key event i)
first_seen     one row per user first seen before as_of: first_age (days since their first use)
lifetime       account usage per period, all history before as_of: n_events, key_<i>, first_age
               (days since the first event), first_key_<i>_age
recency        account activity per period before as_of: last_age (days since its last activity)
breadth        one row per event type used in the 30 days before as_of: age
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
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, get_args

import ibis
import ibis.expr.types as ir

from churnml.config import FeatureConfig

Family = Literal[
    "contract", "adoption", "onboarding", "support", "sentiment", "relationship", "relative"
]
FEATURE_FAMILIES: tuple[Family, ...] = get_args(Family)
# The scorecard's families: a feature's family, except that relative-to-segment counts as adoption.
FAMILIES = ("adoption", "onboarding", "support", "sentiment", "relationship", "contract")
Healthy = Literal["higher", "lower", "neutral"]
Expr = Callable[[ir.Table], ir.Value]


@dataclass(frozen=True)
class Feature:
    """One feature: its meaning (for people) and its computation (for the engine)."""

    name: str
    family: Family
    source: str  # a source name, or "derived" / "relative"
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
    def derived(self) -> bool:
        return self.source in ("derived", "relative")

    def label(self, lang: str) -> str:
        """The short label in `lang` ("en" or "ja"), else the description."""
        short = self.short[lang == "ja"]
        return short or (self.ja if lang == "ja" else self.en)

    @property
    def lever(self) -> bool:
        """Something a CSM can move (adoption, onboarding, support, sentiment, relationship), as
        opposed to context (tenure, term timing, segment, size, region, contract)."""
        return self.family != "contract"


def family(feature: Feature) -> str:
    """The scorecard family of a feature (relative-to-segment features count as adoption)."""
    return "adoption" if feature.family == "relative" else feature.family


def _float(value: ir.NumericValue) -> ir.FloatingValue:
    """Float arithmetic on every engine (Spark would otherwise compute in DECIMAL)."""
    return value.cast("float64")


def _count(where: Callable[[ir.Table], ir.BooleanValue]) -> Expr:
    return lambda t: where(t).cast("int64").sum().cast("int64")


def _ratio(num: str, den: str) -> Expr:
    return lambda t: ibis.ifelse(t[den] > 0, t[num] / t[den], ibis.null("float64"))


def _days(column: str) -> Expr:
    return lambda t: t[column]


def _account_feature(name: str, en: str, ja: str, categorical: bool = True) -> Feature:
    return Feature(name, "contract", "account", "category" if categorical else "count",
                   "neutral", en, ja, lambda t: t[name], categorical=categorical,
                   short=(en, ja))  # fmt: skip


def _adoption(cfg: FeatureConfig) -> list[Feature]:
    out: list[Feature] = []
    for w in (7, 30, 90):
        out += [
            Feature(f"active_users_{w}d", "adoption", "users", "users", "higher",
                    f"Users active in the last {w} days",
                    f"過去{w}日間のアクティブユーザー数",
                    _count(lambda t, w=w: t.age <= w), w, zero_when_missing=True,
                    short=(f"Active users {w}d", f"アクティブユーザー（{w}日）")),
            Feature(f"active_days_{w}d", "adoption", "usage", "days", "higher",
                    f"Days with any product use in the last {w} days",
                    f"過去{w}日間に製品が利用された日数",
                    _count(lambda t, w=w: t.age <= w), w, zero_when_missing=True,
                    short=(f"Active days {w}d", f"利用日数（{w}日）")),
        ]  # fmt: skip
    out += [
        *[Feature(f"events_{w}d", "adoption", "usage", "events", "higher",
                  f"Product events in the last {w} days", f"過去{w}日間の製品イベント数",
                  lambda t, w=w: t.n_events.sum(where=t.age <= w).cast("int64"), w,
                  zero_when_missing=True, short=(f"Events {w}d", f"イベント（{w}日）"))
          for w in (30, 90)],
        Feature("daily_users_30d", "adoption", "usage", "users", "higher",
                "Average daily active users over the last 30 days",
                "過去30日間の1日あたり平均アクティブユーザー数",
                lambda t: _float(t.users.sum(where=t.age <= 30)) / 30, 30, zero_when_missing=True,
                short=("Daily users 30d", "1日平均ユーザー（30日）")),
        Feature("usage_trend_30d", "adoption", "usage", "ratio", "higher",
                "Events in the last 30 days relative to the 30 days before",
                "直近30日間のイベント数（その前の30日間との比）",
                lambda t: (_float(t.n_events.sum(where=t.age <= 30)).fill_null(0) + 1)
                / (_float(t.n_events.sum(where=(t.age > 30) & (t.age <= 60))).fill_null(0) + 1),
                60, short=("Usage trend 30d", "利用の推移（30日）")),
        Feature("breadth_30d", "adoption", "breadth", "features", "higher",
                "Distinct product features used in the last 30 days",
                "過去30日間に利用された機能の種類数",
                _count(lambda t: t.age <= 30), 30, zero_when_missing=True,
                short=("Features used 30d", "利用機能数（30日）")),
        Feature("days_since_last_activity", "adoption", "recency", "days", "lower",
                "Days since anyone last used the product", "最後に製品が利用されてからの日数",
                lambda t: t.last_age.min(), short=("Days since last use", "最終利用からの日数")),
        *[Feature(f"seat_utilisation_{w}d", "adoption", "derived", "share", "higher",
                  f"Share of purchased seats active in the last {w} days",
                  f"購入シートのうち過去{w}日間にアクティブだった割合",
                  _ratio(f"active_users_{w}d", "seats"), w, inputs=(f"active_users_{w}d", "seats"),
                  short=(f"Active seats {w}d", f"アクティブシート率（{w}日）"))
          for w in (30, 90)],
        Feature("events_per_active_user_30d", "adoption", "derived", "events", "higher",
                "Events per active user in the last 30 days",
                "過去30日間のアクティブユーザー1人あたりのイベント数",
                _ratio("events_30d", "active_users_30d"), 30,
                inputs=("events_30d", "active_users_30d"),
                short=("Events per user 30d", "ユーザーあたりイベント（30日）")),
        Feature("seat_headroom_30d", "adoption", "derived", "seats", "neutral",
                "Purchased seats not used in the last 30 days (negative: more users than seats)",
                "過去30日間に使われなかった購入シート数（マイナスはシート数を超える利用）",
                lambda t: t.seats - t.active_users_30d, 30, inputs=("seats", "active_users_30d"),
                short=("Unused seats 30d", "未使用シート（30日）")),
        Feature("user_days_trend_30d", "adoption", "usage", "ratio", "higher",
                "Daily active users over the last 30 days relative to the 30 days before",
                "直近30日間の日次アクティブユーザー延べ数（その前の30日間との比）",
                lambda t: (_float(t.users.sum(where=t.age <= 30)).fill_null(0) + 1)
                / (_float(t.users.sum(where=(t.age > 30) & (t.age <= 60))).fill_null(0) + 1),
                60, short=("Daily users trend 30d", "日次ユーザーの推移（30日）")),
        Feature("new_users_30d", "adoption", "first_seen", "users", "higher",
                "Users whose first recorded use was in the last 30 days",
                "過去30日間に初めて利用したユーザー数",
                _count(lambda t: t.first_age <= 30), 30, zero_when_missing=True,
                short=("New users 30d", "新規ユーザー（30日）")),
        Feature("stickiness_30d", "adoption", "derived", "share", "higher",
                "Daily over monthly active users (DAU/MAU), last 30 days",
                "過去30日間のDAU/MAU（定着度）",
                _ratio("daily_users_30d", "active_users_30d"), 30,
                inputs=("daily_users_30d", "active_users_30d"),
                short=("DAU/MAU 30d", "DAU/MAU（30日）")),
    ]  # fmt: skip
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
        Feature("days_since_first_use", "adoption", "lifetime", "days", "neutral",
                "Days since the account's first recorded product use",
                "記録上の最初の製品利用からの日数", lambda t: t.first_age.max(),
                short=("Days since first use", "初回利用からの日数")),
        Feature("events_per_30d_lifetime", "adoption", "lifetime", "events", "higher",
                "Product events per 30 days since the first recorded use",
                "最初の利用以降の30日あたりの製品イベント数",
                lambda t: _float(t.n_events.sum()) * 30 / ibis.greatest(t.first_age.max(), 30),
                short=("Events per 30d, lifetime", "30日あたりイベント（全期間）")),
    ]  # fmt: skip


def _key_event(i: int, event: str, slug: str) -> list[Feature]:
    """The features of one key event (column `key_<i>` of the usage sources)."""
    out = []
    for w in (30, 90):
        out += [
            Feature(f"{slug}_events_{w}d", "adoption", "usage", "events", "higher",
                    f"Uses of '{event}' in the last {w} days",
                    f"過去{w}日間の「{event}」の利用回数",
                    lambda t, w=w: t[f"key_{i}"].sum(where=t.age <= w).cast("int64"), w,
                    zero_when_missing=True,
                    short=(f"'{event}' uses {w}d", f"「{event}」利用回数（{w}日）")),
            Feature(f"{slug}_share_{w}d", "adoption", "derived", "share", "higher",
                    f"Share of the last {w} days' events that were '{event}'",
                    f"過去{w}日間のイベントのうち「{event}」が占める割合",
                    _ratio(f"{slug}_events_{w}d", f"events_{w}d"), w,
                    inputs=(f"{slug}_events_{w}d", f"events_{w}d"),
                    short=(f"'{event}' share {w}d", f"「{event}」の割合（{w}日）")),
        ]  # fmt: skip
    key = f"key_{i}"
    return [
        *out,
        Feature(f"{slug}_users_30d", "adoption", "users", "users", "higher",
                f"Users who used '{event}' in the last 30 days",
                f"過去30日間に「{event}」を利用したユーザー数",
                _count(lambda t: t[f"{key}_age"] <= 30), 30, zero_when_missing=True,
                short=(f"'{event}' users 30d", f"「{event}」ユーザー（30日）")),
        Feature(f"{slug}_trend_30d", "adoption", "usage", "ratio", "higher",
                f"Uses of '{event}' in the last 30 days relative to the 30 days before",
                f"直近30日間の「{event}」の利用回数（その前の30日間との比）",
                lambda t: (_float(t[key].sum(where=t.age <= 30)).fill_null(0) + 1)
                / (_float(t[key].sum(where=(t.age > 30) & (t.age <= 60))).fill_null(0) + 1), 60,
                short=(f"'{event}' trend 30d", f"「{event}」の推移（30日）")),
        Feature(f"{slug}_days_since_first", "adoption", "lifetime", "days", "neutral",
                f"Days since '{event}' was first used", f"「{event}」の最初の利用からの日数",
                lambda t: t[f"first_{key}_age"].max(),
                short=(f"Days since first '{event}'", f"「{event}」初回からの日数")),
        Feature(f"{slug}_per_30d_lifetime", "adoption", "lifetime", "events", "higher",
                f"Uses of '{event}' per 30 days since the account's first recorded use",
                f"最初の利用以降の30日あたりの「{event}」の利用回数",
                lambda t: _float(t[key].sum()) * 30 / ibis.greatest(t.first_age.max(), 30),
                short=(f"'{event}' per 30d, lifetime", f"「{event}」30日あたり（全期間）")),
    ]  # fmt: skip


def _onboarding() -> list[Feature]:
    out = [
        Feature("onboarding_done", "onboarding", "onboarding", "milestones", "higher",
                "Onboarding milestones completed", "完了したオンボーディングのマイルストーン数",
                _count(lambda t: t.done_days.notnull()), zero_when_missing=True,
                short=("Milestones done", "完了マイルストーン")),
        Feature("onboarding_overdue", "onboarding", "onboarding", "milestones", "lower",
                "Onboarding milestones past their due date and not done",
                "期限を過ぎても未完了のオンボーディングのマイルストーン数",
                _count(lambda t: (t.due_days < t.tenure_days) & t.done_days.isnull()),
                zero_when_missing=True, short=("Milestones overdue", "期限超過マイルストーン")),
        Feature("days_to_first_value", "onboarding", "onboarding", "days", "lower",
                "Days from signup to first value",
                "契約から最初の価値実感（ファーストバリュー）までの日数",
                lambda t: t.done_days.max(where=t.first_value),
                short=("Days to first value", "ファーストバリューまでの日数")),
    ]  # fmt: skip
    for n in (30, 60, 90):
        out.append(
            Feature(f"onboarding_done_by_day_{n}", "onboarding", "onboarding", "share", "higher",
                    f"Share of milestones due by day {n} that were done by day {n}",
                    f"契約後{n}日目までに期限が来るマイルストーンのうち、{n}日目までに完了した割合",
                    lambda t, n=n: ibis.ifelse(
                        t.tenure_days.max() >= n,
                        _count(lambda r: (r.due_days <= n) & (r.done_days < n))(t)
                        / _count(lambda r: r.due_days <= n)(t).nullif(0),
                        ibis.null("float64"),
                    ), n, short=(f"Milestones on time by day {n}", f"{n}日目までの期限内完了率"))
        )  # fmt: skip
    return out


def _support() -> list[Feature]:
    out = []
    for w in (30, 90):
        out += [
            Feature(f"tickets_{w}d", "support", "support", "tickets", "lower",
                    f"Support tickets opened in the last {w} days",
                    f"過去{w}日間に起票されたサポートチケット数",
                    _count(lambda t, w=w: t.age <= w), w, zero_when_missing=True,
                    short=(f"Tickets {w}d", f"チケット（{w}日）")),
            Feature(f"high_priority_tickets_{w}d", "support", "support", "tickets", "lower",
                    f"High-priority support tickets in the last {w} days",
                    f"過去{w}日間の高優先度サポートチケット数",
                    _count(lambda t, w=w: (t.age <= w) & t.high), w, zero_when_missing=True,
                    short=(f"Urgent tickets {w}d", f"高優先度チケット（{w}日）")),
        ]  # fmt: skip
    out += [
        Feature("open_tickets", "support", "support", "tickets", "lower",
                "Support tickets still open", "未解決のサポートチケット数",
                _count(lambda t: t.open), zero_when_missing=True,
                short=("Open tickets", "未解決チケット")),
        Feature("resolution_hours_90d", "support", "support", "hours", "lower",
                "Average hours to resolve tickets opened in the last 90 days",
                "過去90日間のチケットの平均解決時間（時間）",
                lambda t: t.resolve_hours.mean(where=t.age <= 90), 90,
                short=("Hours to resolve 90d", "平均解決時間（90日）")),
        Feature("csat_90d", "support", "support", "score (1–5)", "higher",
                "Average support satisfaction (CSAT) in the last 90 days",
                "過去90日間のサポート満足度（CSAT）の平均",
                lambda t: t.csat.mean(where=t.age <= 90), 90, short=("CSAT 90d", "CSAT（90日）")),
    ]  # fmt: skip
    return out


def _sentiment() -> list[Feature]:
    return [
        Feature("nps_last", "sentiment", "sentiment", "score (0–10)", "higher",
                "Latest NPS score", "直近のNPSスコア", lambda t: t.score.max(where=t.rank == 0),
                short=("Latest NPS", "直近のNPS")),
        Feature("nps_change", "sentiment", "sentiment", "points", "higher",
                "Change of the latest NPS score from the one before",
                "直近のNPSスコアの前回からの変化",
                lambda t: t.score.max(where=t.rank == 0) - t.score.max(where=t.rank == 1),
                short=("NPS change", "NPSの変化")),
        Feature("nps_detractor", "sentiment", "derived", "flag", "lower",
                "Latest NPS response is a detractor (0–6)", "直近のNPS回答が批判者（0〜6）",
                lambda t: (t.nps_last <= 6).cast("int64"), inputs=("nps_last",),
                short=("NPS detractor", "NPS批判者")),
        Feature("days_since_nps", "sentiment", "sentiment", "days", "neutral",
                "Days since the latest NPS response", "直近のNPS回答からの日数",
                lambda t: t.age.min(), short=("Days since NPS", "NPS回答からの日数")),
    ]  # fmt: skip


def _relationship() -> list[Feature]:
    def present(role: str) -> Expr:
        return lambda t: (t.active & (t.role == role)).cast("int64").max()

    return [
        Feature("has_champion", "relationship", "contacts", "flag", "higher",
                "A champion is in place", "チャンピオン（推進者）がいる", present("champion"),
                zero_when_missing=True, short=("Champion in place", "チャンピオンあり")),
        Feature("has_exec_sponsor", "relationship", "contacts", "flag", "higher",
                "An executive sponsor is in place", "エグゼクティブスポンサーがいる",
                present("exec_sponsor"), zero_when_missing=True,
                short=("Exec sponsor in place", "エグゼクティブスポンサーあり")),
        Feature("champion_left_90d", "relationship", "contacts", "flag", "lower",
                "A champion left in the last 90 days", "過去90日間にチャンピオンが離任した",
                lambda t: ((t.role == "champion") & (t.left_age <= 90)).cast("int64").max(), 90,
                zero_when_missing=True, short=("Champion left 90d", "チャンピオン離任（90日）")),
        Feature("contacts_active", "relationship", "contacts", "contacts", "higher",
                "Known contacts currently in place", "現在在籍している既知の担当者数",
                _count(lambda t: t.active), zero_when_missing=True,
                short=("Contacts in place", "在籍中の担当者")),
        Feature("business_reviews_90d", "relationship", "touchpoints", "meetings", "higher",
                "Business reviews (QBR/EBR) in the last 90 days",
                "過去90日間のビジネスレビュー（QBR/EBR）の回数",
                _count(lambda t: t.review & (t.age <= 90)), 90, zero_when_missing=True,
                short=("Business reviews 90d", "ビジネスレビュー（90日）")),
        Feature("touchpoints_90d", "relationship", "touchpoints", "touchpoints", "higher",
                "CS touchpoints in the last 90 days", "過去90日間のCSとの接点の数",
                _count(lambda t: t.age <= 90), 90, zero_when_missing=True,
                short=("CS touchpoints 90d", "CS接点（90日）")),
        Feature("days_since_touchpoint", "relationship", "touchpoints", "days", "lower",
                "Days since the last CS touchpoint", "最後のCSとの接点からの日数",
                lambda t: t.age.min(), short=("Days since last touch", "最終接点からの日数")),
        Feature("days_since_business_review", "relationship", "touchpoints", "days", "lower",
                "Days since the last business review", "最後のビジネスレビューからの日数",
                lambda t: t.age.min(where=t.review),
                short=("Days since business review", "ビジネスレビューからの日数")),
    ]  # fmt: skip


def _contract() -> list[Feature]:
    return [
        Feature("tenure_days", "contract", "account", "days", "higher",
                "Days since the account signed up", "契約開始からの日数", lambda t: t.tenure_days,
                short=("Tenure", "契約期間")),
        _account_feature("segment", "Customer segment", "顧客セグメント"),
        _account_feature("industry", "Industry", "業種"),
        _account_feature("region", "Region", "地域"),
        _account_feature("acquisition_channel", "Acquisition channel", "獲得チャネル"),
        _account_feature("employees", "Employees at the customer", "顧客の従業員数",
                         categorical=False),
        Feature("arr", "contract", "contract", "currency", "neutral",
                "Annual recurring revenue", "年間経常収益（ARR）",
                lambda t: t.arr.sum().cast("float64"), short=("ARR", "ARR")),
        Feature("seats", "contract", "contract", "seats", "neutral",
                "Seats purchased", "購入シート数", lambda t: t.seats.sum().cast("float64"),
                short=("Seats", "シート数")),
        Feature("products_held", "contract", "contract", "products", "higher",
                "Products subscribed", "契約中の製品数", lambda t: t.product.nunique(),
                short=("Products", "製品数")),
        Feature("product_mix", "contract", "contract", "category", "neutral",
                "Products subscribed, by name", "契約中の製品の組み合わせ",
                lambda t: t.product.collect(distinct=True).sort().join("+"), categorical=True,
                short=("Product mix", "製品の組み合わせ")),
        Feature("plan", "contract", "contract", "category", "neutral",
                "Plan of the main subscription", "主契約のプラン", lambda t: t.plan.argmax(t.arr),
                categorical=True, short=("Plan", "プラン")),
        Feature("days_to_renewal", "contract", "contract", "days", "higher",
                "Days until the current term ends (empty for open-ended plans)",
                "現在の契約期間の終了（更新）までの日数（期間の定めのない契約は空欄）",
                lambda t: t.end_in_days.min(), short=("Days to renewal", "更新までの日数")),
        Feature("term_months", "contract", "contract", "months", "higher",
                "Length of the current contract term in months (0 for monthly plans)",
                "現在の契約期間の長さ（月、月額プランは0）",
                lambda t: (_float(t.term_days.max()).fill_null(0) / 30.44).round().cast("int64"),
                short=("Term (months)", "契約期間（月）")),
    ]  # fmt: skip


_RELATIVE = (
    "seat_utilisation_30d", "active_days_30d", "events_per_active_user_30d", "breadth_30d",
    "usage_trend_30d",
)  # fmt: skip


def _relative(by_name: dict[str, Feature]) -> list[Feature]:
    return [
        Feature(f"{name}_segment_pct", "relative", "relative", "percentile", "higher",
                f"Percentile within the segment: {by_name[name].en.lower()}",
                f"セグメント内の順位（パーセンタイル）：{by_name[name].ja}",
                lambda t, name=name: t[name], inputs=(name, "segment"),
                short=(f"{by_name[name].short[0]}, segment rank",
                       f"{by_name[name].short[1]}（セグメント内順位）"))
        for name in _RELATIVE
    ]  # fmt: skip


def catalogue(cfg: FeatureConfig) -> list[Feature]:
    """Every feature, in a stable order (family by family)."""
    base = _contract() + _adoption(cfg) + _onboarding() + _support() + _sentiment()
    base += _relationship()
    return base + _relative({f.name: f for f in base})


def by_name(cfg: FeatureConfig) -> dict[str, Feature]:
    """The catalogue keyed by feature name."""
    return {f.name: f for f in catalogue(cfg)}
