"""Every text of the reports, in English and Japanese, and number/date formats per language."""

from __future__ import annotations

import datetime as dt
import math
from typing import Literal

Lang = Literal["en", "ja"]

MESSAGES: dict[str, dict[str, str]] = {
    "en": {
        "title_summary": "Customer Success portfolio",
        "title_csm": "Portfolio of {owner}",
        "title_account": "{name}",
        "as_of": "As of {date}",
        "accounts": "Accounts",
        "arr": "ARR",
        "arr_at_risk": "ARR at risk",
        "expected_expansion_arr": "Expected expansion ARR",
        "expected_grr": "Expected gross revenue retention",
        "expected_nrr": "Expected net revenue retention",
        "horizon_note": "over the next {days} days, from the models' probabilities",
        "by_segment_tier": "By segment and churn tier",
        "segment": "Segment",
        "tier": "Tier",
        "health_distribution": "Health scores",
        "drivers": "What drives churn risk and expansion, by segment",
        "drivers_note": "Mean absolute contribution (percentage points of probability)",
        "churn_drivers": "Churn risk",
        "expansion_drivers": "Expansion",
        "family": "Family",
        "feature": "Signal",
        "actions": "Accounts per next best action",
        "portfolios": "Portfolios",
        "owner": "CSM",
        "account": "Account",
        "churn_probability": "Churn risk",
        "expansion_probability": "Expansion propensity",
        "health_score": "Health",
        "next_best_action": "Next best action",
        "reasons": "Why",
        "signals": "Expansion signals",
        "ranked_note": "Ranked by ARR at risk",
        "expansion_candidates": "Expansion candidates",
        "none": "None",
        "renewal_pending": "In renewal: the term ended {days} day(s) ago and no renewal is "
        "recorded yet",
        "notice_no_model": "{target}: no model was trained for this portfolio (for instance, no "
        "account ever expanded), so its figures are left empty.",
        "notice_no_skill": "{target}: the model shows no skill on recent data (its ranking is not "
        "clearly better than chance or the rule-based health score). Treat its figures as a rough "
        "guide; its signals are not shown as reasons.",
        "scorecard": "Scorecard",
        "waterfall": "How the churn risk adds up",
        "waterfall_note": "From the average account ({base}) to this account ({value})",
        "value": "Value",
        "segment_typical": "Segment median",
        "play": "Recommended play",
        "adoption_trend": "Adoption over the last 12 months",
        "active_users": "Active users",
        "events": "Events",
        "back": "Back to the portfolio",
        "other": "All other signals",
        "tier_high": "high",
        "tier_medium": "medium",
        "tier_low": "low",
        "score_adoption": "Adoption",
        "score_onboarding": "Onboarding",
        "score_support": "Support",
        "score_sentiment": "Sentiment",
        "score_relationship": "Relationship",
        "score_contract": "Contract",
        "action_save": "Save",
        "action_fix_then_expand": "Fix, then expand",
        "action_expand": "Expand",
        "action_nurture": "Nurture",
        "play_save": "Call the champion this week. Review the reasons below with them, agree a "
        "recovery plan with dates, and bring the executive sponsor in if adoption is falling.",
        "play_fix_then_expand": "Do not pitch an upsell yet. Fix what drives the risk first; once "
        "the risk is low, the expansion signals below are the opening.",
        "play_expand": "Healthy and growing: propose the upsell or add-on that the expansion "
        "signals point to, with a business case built on their own usage.",
        "play_nurture": "Keep the cadence: share best practices for the least-used features and "
        "check in before the renewal.",
    },
    "ja": {
        "title_summary": "カスタマーサクセス ポートフォリオ",
        "title_csm": "{owner} の担当ポートフォリオ",
        "title_account": "{name}",
        "as_of": "{date} 時点",
        "accounts": "アカウント数",
        "arr": "ARR",
        "arr_at_risk": "リスクのあるARR",
        "expected_expansion_arr": "見込み拡大ARR",
        "expected_grr": "見込みグロス収益維持率（GRR）",
        "expected_nrr": "見込みネット収益維持率（NRR）",
        "horizon_note": "今後{days}日間、モデルの確率に基づく",
        "by_segment_tier": "セグメント別・解約リスク区分別",
        "segment": "セグメント",
        "tier": "区分",
        "health_distribution": "ヘルススコアの分布",
        "drivers": "セグメント別の解約リスクと拡大の要因",
        "drivers_note": "寄与の絶対値の平均（確率のポイント）",
        "churn_drivers": "解約リスク",
        "expansion_drivers": "拡大",
        "family": "分類",
        "feature": "シグナル",
        "actions": "次のアクション別のアカウント数",
        "portfolios": "担当別ポートフォリオ",
        "owner": "担当CSM",
        "account": "アカウント",
        "churn_probability": "解約リスク",
        "expansion_probability": "拡大の見込み",
        "health_score": "ヘルス",
        "next_best_action": "次のアクション",
        "reasons": "理由",
        "signals": "拡大のシグナル",
        "ranked_note": "リスクのあるARRの大きい順",
        "expansion_candidates": "拡大の候補",
        "none": "なし",
        "renewal_pending": "更新手続き中：契約期間が{days}日前に終了し、"
        "更新はまだ記録されていません",
        "notice_no_model": "{target}：このポートフォリオではモデルを学習できなかったため"
        "（例：拡大した顧客がいない）、該当欄は空欄です。",
        "notice_no_skill": "{target}：直近のデータでモデルに予測力が認められません（偶然や"
        "ルールベースのヘルススコアを明確に上回りません）。数値は目安として扱ってください。"
        "要因は理由として表示しません。",
        "scorecard": "スコアカード",
        "waterfall": "解約リスクの内訳",
        "waterfall_note": "平均的なアカウント（{base}）からこのアカウント（{value}）まで",
        "value": "値",
        "segment_typical": "セグメント中央値",
        "play": "推奨プレイ",
        "adoption_trend": "過去12か月の利用状況",
        "active_users": "アクティブユーザー数",
        "events": "イベント数",
        "back": "ポートフォリオに戻る",
        "other": "その他のシグナル",
        "tier_high": "高",
        "tier_medium": "中",
        "tier_low": "低",
        "score_adoption": "利用定着",
        "score_onboarding": "オンボーディング",
        "score_support": "サポート",
        "score_sentiment": "顧客の声",
        "score_relationship": "関係性",
        "score_contract": "契約",
        "action_save": "解約防止",
        "action_fix_then_expand": "課題解決の後に拡大",
        "action_expand": "拡大提案",
        "action_nurture": "育成",
        "play_save": "今週中にチャンピオンと話してください。以下の理由を一緒に確認し、期日付きの"
        "改善計画に合意し、利用が落ちているならエグゼクティブスポンサーも巻き込みます。",
        "play_fix_then_expand": "まだアップセルは提案しないでください。まずリスクの要因を解消し、"
        "リスクが下がったら以下の拡大シグナルが糸口になります。",
        "play_expand": "健全で成長中です。拡大シグナルが示すアップセルやアドオンを、顧客自身の"
        "利用実績に基づくビジネスケースとともに提案してください。",
        "play_nurture": "定期的な接点を保ち、利用の少ない機能のベストプラクティスを共有し、"
        "更新前に状況を確認してください。",
    },
}


def money(value: float, lang: Lang) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"${value:,.0f}" if lang == "en" else f"{value:,.0f} ドル"


def percent(value: float, lang: Lang, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value * 100:.{digits}f}%"


def date(value: dt.date, lang: Lang) -> str:
    return (
        f"{value:%B} {value.day}, {value.year}"
        if lang == "en"
        else f"{value.year}年{value.month}月{value.day}日"
    )


def number(value: float, lang: Lang) -> str:
    return f"{value:,.0f}"
