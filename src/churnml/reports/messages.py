"""Every text of the reports, in English and Japanese (formats of numbers, money and dates per
language: `churnml.scoring.reasons`, re-exported here)."""

from __future__ import annotations

from churnml.scoring.reasons import date, money, number, percent
from churnml.vocabulary import Lang

__all__ = ["MESSAGES", "Lang", "date", "money", "number", "percent"]


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
        "forecast": "Revenue forecast, next {days} days",
        "forecast_note": (
            "Central value (the mean of {draws:,} simulated outcomes of every account, from the "
            "models' calibrated probabilities) and, in brackets, the range that holds 80% of "
            "them. Involuntary churn (bankruptcy, acquisition, non-payment) is forecast apart, at"
            " each segment's historical rate."
        ),
        "forecast_renewals": "Renewals due in the next {days} days",
        "forecast_backtest": (
            "Backtest: at {cutoffs} past cut-offs, the 80% range held the realised GRR {grr} of "
            "the time and the realised NRR {nrr}; the central value missed by {grr_error} points "
            "(GRR) and {nrr_error} points (NRR) on average."
        ),
        "churned_arr": "Churned ARR",
        "involuntary_arr": "of which involuntary",
        "expanded_arr": "Expanded ARR",
        "grr": "GRR",
        "nrr": "NRR",
        "group": "Group",
        "level_all": "All accounts",
        "root_causes": "Root causes by segment",
        "root_causes_note": (
            "Groups by segment, acquisition channel and industry with at least {n} accounts. A "
            "group's driving family is the one that adds the most churn risk beyond what its "
            "accounts' segments show. A group is flagged when that family adds at least {lift} "
            "points, hits most of its accounts harder than their segment's median, and the "
            "group's risk is above its segments': a segment problem, not an account problem. All "
            "groups are in segments.csv."
        ),
        "root_cause_flag": (
            "{cell} ({accounts} accounts): {family} adds {lift} points of churn risk beyond its "
            "segments and hits {share} of its accounts harder than their segment's median; "
            "expected churn {churn} against {baseline}."
        ),
        "no_root_cause": (
            "No group stands out: where risk concentrates, it follows the accounts, not a "
            "segment."
        ),
        "cell": "Group",
        "forecast_by_csm": "By CSM",
        "stated_reasons": "What churned accounts said, and what the model saw",
        "stated_reasons_note": (
            "Churned accounts that gave a cancel reason (training history), by the family that "
            "raised their risk most in the months before (each churn counted once)."
        ),
        "stated_reason": "Stated reason",
        "main_risk": "Driving family",
        "churn_expected": "Expected churn",
        "tickets_per_account": "Tickets per account (90 days)",
        "nps": "NPS",
        "onboarding_on_time": "Onboarding on time",
        "by_segment_tier": "By segment and churn tier",
        "segment": "Segment",
        "tier": "Tier",
        "risk_distribution": "Accounts by churn risk (%)",
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
        "back_summary": "Back to the summary",
        "act_today": "Act today",
        "act_today_note": "Ranked by ARR at stake (at risk plus expected expansion) × urgency "
        "(a renewal within {days} days counts up to twice)",
        "arr_at_stake": "ARR at stake",
        "renewal_date": "Renewal",
        "last_touch": "Last touch",
        "play_owner": "Owner",
        "play_due": "Due",
        "context": "Context",
        "customer_for": "Customer for {years:.1f} years",
        "renewal_in": "Renewal in {days} days ({date})",
        "renewal_in_one": "Renewal tomorrow ({date})",
        "renewal_today": "Renewal today ({date})",
        "renewal_overdue": "Term ended {days} days ago ({date})",
        "renewal_overdue_one": "Term ended yesterday ({date})",
        "no_term": "No fixed term (monthly or open-ended)",
        "plan_seats": "Plan {plan}, {seats} seats",
        "filter": "Filter accounts",
        "no_signal": "no signal",
        "sort_hint": "Click a column header to sort",
        "month": "Month",
        "points": "{:+.1f} pts",
        "contact": "Contact",
        "role_champion": "champion",
        "role_exec_sponsor": "executive sponsor",
        "overdue_milestone": "Overdue milestone: {milestone}",
        "earliest_milestone": "the earliest one",
        "change": "Change",
        "movers": "Whose churn risk rose since {date}",
        "movers_note": "Largest rise of ARR at risk first; the change is split exactly by signal",
        "change_waterfall": "How the churn risk changed since {date}",
        "model_part": "Model changed or data restated",
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
        "title_fit": "Fit at signing",
        "fit_lead": (
            "The chance that a deal is lost in its first year (churns or shrinks), from what is "
            "known when it is signed: firmographics, acquisition channel, plan, term and size."
        ),
        "fit_model": (
            "Fit model trained through {through}; on the latest signing months it was tested on, "
            "ROC-AUC {auc} against {segment_auc} for each segment's own rate, log loss {loss} "
            "against {base_loss} for the base rate."
        ),
        "fit_no_skill": (
            "The fit model shows no skill on recent signings ({why}): treat its figures as a rough "
            "guide."
        ),
        "deals": "Deals",
        "deals_note": "Riskiest first; each deal against the base rate of {base}",
        "deal": "Deal",
        "filter_deals": "Filter deals",
        "fit_probability": "Lost in year one",
        "fit_band": "Fit",
        "fit_good": "good",
        "fit_average": "average",
        "fit_poor": "poor",
        "profiles_good": "Profiles that retained and grew",
        "profiles_poor": "Profiles that did not",
        "profiles_note": (
            "Accounts signed in the history, by profile (one or two traits, at least {n} accounts "
            "each), ARR-weighted: first-year net revenue retention and the share of signing ARR "
            "on accounts lost in year one."
        ),
        "profile": "Profile",
        "first_year_nrr": "First-year NRR",
        "lost_arr": "ARR lost",
        "sig_segment": "Segment",
        "sig_industry": "Industry",
        "sig_region": "Region",
        "sig_acquisition_channel": "Channel",
        "sig_employees": "Employees",
        "sig_arr": "ARR",
        "sig_seats": "Seats",
        "sig_products": "Products",
        "sig_plan": "Plan",
        "sig_term_months": "Term (months)",
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
        "forecast": "収益予測（今後{days}日間）",
        "forecast_note": (
            "中心値（モデルの較正済み確率から全アカウントの結果を{draws:,}回シミュレ"
            "ーションした平均）と、括弧内にその80%が入る範囲。非自発的解約（倒産・買収・未"
            "払い）は、セグメントごとの過去の発生率で別に予測します。"
        ),
        "forecast_renewals": "今後{days}日間に更新を迎える契約",
        "forecast_backtest": (
            "バックテスト：過去{cutoffs}時点で、80%の範囲に実績のGRRが入った割"
            "合は{grr}、NRRは{nrr}。中心値の平均誤差はGRRで{grr_erro"
            "r}pt、NRRで{nrr_error}pt。"
        ),
        "churned_arr": "解約ARR",
        "involuntary_arr": "うち非自発的",
        "expanded_arr": "拡大ARR",
        "grr": "GRR",
        "nrr": "NRR",
        "group": "グループ",
        "level_all": "全アカウント",
        "root_causes": "セグメント別の根本原因",
        "root_causes_note": (
            "セグメント・獲得チャネル・業種の組み合わせのうち、{n}社以上のグループ。グルー"
            "プの主因とは、所属セグメントで見込まれる以上に解約リスクを押し上げている要因群で"
            "す。主因が{lift}pt以上押し上げ、大半のアカウントでセグメントの中央値より"
            "強く効き、グループのリスクもセグメントより高い場合に印を付けます。これはアカウン"
            "ト個別ではなくセグメントの問題です。全グループはsegments.csvにありま"
            "す。"
        ),
        "root_cause_flag": (
            "{cell}（{accounts}社）：{family}がセグメントの水準より解"
            "約リスクを{lift}pt押し上げ、{share}のアカウントでセグメントの中央"
            "値より強く効いています。見込み解約率{churn}（比較値{baseline}）"
            "。"
        ),
        "no_root_cause": (
            "目立つグループはありません。リスクが集中する場合も、セグメントではなくアカウント"
            "個別の要因です。"
        ),
        "cell": "グループ",
        "forecast_by_csm": "CSM別",
        "stated_reasons": "解約したアカウントの申告理由とモデルの見立て",
        "stated_reasons_note": (
            "解約理由を申告したアカウント（学習期間）を、解約前の数か月にリスクを最も押し上げ"
            "ていた要因群で分類（解約1件につき1回）。"
        ),
        "stated_reason": "申告理由",
        "main_risk": "主因",
        "churn_expected": "見込み解約率",
        "tickets_per_account": "1社あたりチケット数（90日）",
        "nps": "NPS",
        "onboarding_on_time": "オンボーディング期限内完了率",
        "by_segment_tier": "セグメント別・解約リスク区分別",
        "segment": "セグメント",
        "tier": "区分",
        "risk_distribution": "解約リスク別のアカウント数（%）",
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
        "back_summary": "サマリーに戻る",
        "act_today": "今日やること",
        "act_today_note": "対象ARR（リスクのあるARRと見込み拡大ARRの合計）×緊急度の大きい順"
        "（{days}日以内の更新は最大2倍）",
        "arr_at_stake": "対象ARR",
        "renewal_date": "更新日",
        "last_touch": "最終接点",
        "play_owner": "担当",
        "play_due": "期日",
        "context": "前提情報",
        "customer_for": "契約{years:.1f}年",
        "renewal_in": "更新まで{days}日（{date}）",
        "renewal_in_one": "明日更新（{date}）",
        "renewal_today": "本日更新（{date}）",
        "renewal_overdue": "契約期間は{days}日前に終了（{date}）",
        "renewal_overdue_one": "契約期間は昨日終了（{date}）",
        "no_term": "期間の定めなし（月額など）",
        "plan_seats": "プラン {plan}、{seats}シート",
        "filter": "アカウントを絞り込み",
        "no_signal": "シグナルなし",
        "sort_hint": "列の見出しをクリックすると並べ替えます",
        "month": "月",
        "points": "{:+.1f}pt",
        "contact": "担当者",
        "role_champion": "チャンピオン",
        "role_exec_sponsor": "エグゼクティブスポンサー",
        "overdue_milestone": "期限超過のマイルストーン：{milestone}",
        "earliest_milestone": "最も古いもの",
        "change": "変化",
        "movers": "{date}以降に解約リスクが上がったアカウント",
        "movers_note": "リスクのあるARRの増加が大きい順。変化はシグナルごとに正確に分解しています",
        "change_waterfall": "{date}以降の解約リスクの変化",
        "model_part": "モデル変更・データ修正",
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
        "title_fit": "契約時の適合度",
        "fit_lead": (
            "契約時にわかる情報（企業属性、獲得チャネル、プラン、契約期間、規模）から、その商談が"
            "1年目に失われる（解約または縮小）確率を示します。"
        ),
        "fit_model": (
            "適合度モデルは{through}までのデータで学習。直近の契約月での検証では ROC-AUC {auc}"
            "（セグメント別の実績率は {segment_auc}）、対数損失 {loss}（全体の実績率は "
            "{base_loss}）。"
        ),
        "fit_no_skill": (
            "適合度モデルは直近の契約で有効性を示していません（{why}）。目安としてご覧ください。"
        ),
        "deals": "商談",
        "deals_note": "リスクの高い順。全体の実績率は {base}",
        "deal": "商談",
        "filter_deals": "商談を絞り込み",
        "fit_probability": "1年目の喪失確率",
        "fit_band": "適合度",
        "fit_good": "良好",
        "fit_average": "平均的",
        "fit_poor": "低い",
        "profiles_good": "定着し、拡大したプロファイル",
        "profiles_poor": "定着しなかったプロファイル",
        "profiles_note": (
            "過去に契約したアカウントのプロファイル別（1〜2項目、各{n}社以上）、ARR加重の1年目の"
            "売上維持率（NRR）と、1年目に失われたアカウントの契約時ARRの割合。"
        ),
        "profile": "プロファイル",
        "first_year_nrr": "1年目NRR",
        "lost_arr": "失われたARR",
        "sig_segment": "セグメント",
        "sig_industry": "業種",
        "sig_region": "地域",
        "sig_acquisition_channel": "獲得チャネル",
        "sig_employees": "従業員数",
        "sig_arr": "ARR",
        "sig_seats": "シート数",
        "sig_products": "製品数",
        "sig_plan": "プラン",
        "sig_term_months": "契約期間（月）",
    },
}
