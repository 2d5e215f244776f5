"""Reports: every message in both languages, user data escaped, files stay inside --out."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from churnml.config import Config
from churnml.reports.messages import MESSAGES
from churnml.reports.site import build_report, safe_name


def test_every_message_key_exists_in_both_languages() -> None:
    assert set(MESSAGES["en"]) == set(MESSAGES["ja"])
    assert all(v.strip() for lang in MESSAGES.values() for v in lang.values())


def _scores(folder: Path) -> Path:
    reason = [{"feature": "seat_utilisation_30d", "value": "0.2", "contribution": 0.03,
               "segment_median": 0.6, "sentence": "Seats <b>used</b>: 20%"}]  # fmt: skip
    rows = []
    for i, (name, owner) in enumerate([("<script>alert(1)</script>", "../../etc/x"),
                                       ("Normal Co", "csm_a")]):  # fmt: skip
        rows.append({
            "account_id": f"A{i}", "as_of": pd.Timestamp("2026-01-01"), "segment": "smb",
            "csm_owner": owner, "account_name": name, "arr": 1000.0, "churn_probability": 0.3,
            "churn_base_rate": 0.05, "churn_reasons": reason, "expansion_probability": 0.1,
            "expansion_base_rate": 0.08, "expansion_signals": [], "health_score": 40.0,
            "churn_tier": "high", "expansion_tier": "low", "arr_at_risk": 300.0,
            "expected_expansion_arr": 20.0, "next_best_action": "save",
            "renewal_date": pd.Timestamp("2026-02-01").date(), "last_touch_date": None,
            "tenure_days": 400, "plan": "pro", "seats": 10.0, "play": "save_plan",
            "play_owner": "csm", "play_due": pd.Timestamp("2026-01-08").date(),
            "priority": 300.0 * (i + 1),
            **{f"score_{f}": 50.0 for f in ("adoption", "onboarding", "support", "sentiment",
                                            "relationship", "contract")},
        })  # fmt: skip
    folder.mkdir()
    pd.DataFrame(rows).to_parquet(folder / "scores.parquet")
    contrib = pd.DataFrame({"account_id": ["A0", "A1"], "target": "churn",
                            "seat_utilisation_30d": 0.2, "nps_last": 0.05})  # fmt: skip
    contrib.to_parquet(folder / "contributions.parquet")
    return folder


def test_user_data_is_escaped_and_files_stay_inside_out(tmp_path: Path) -> None:
    scores = _scores(tmp_path / "scores")
    out = tmp_path / "site"
    index = build_report(scores, out, Config(), "en")
    files = [p.resolve() for p in out.rglob("*.html")]
    assert all(out.resolve() in p.parents for p in files)
    assert not (tmp_path / "etc").exists()
    account = (out / "account" / safe_name("A0")).read_text(encoding="utf-8")
    assert "<script>alert" not in account and "&lt;script&gt;alert(1)&lt;/script&gt;" in account
    assert "<b>used</b>" not in account  # reason sentences are text too
    assert "&lt;script&gt;" in (out / "csm" / safe_name("../../etc/x")).read_text(encoding="utf-8")
    assert "$2,000" in index.read_text(encoding="utf-8")  # total ARR


def test_japanese_report(tmp_path: Path) -> None:
    index = build_report(_scores(tmp_path / "scores"), tmp_path / "site", Config(), "ja")
    html = index.read_text(encoding="utf-8")
    assert 'lang="ja"' in html and "リスクのあるARR" in html and "2026年1月1日" in html


def test_safe_names_have_no_path_parts() -> None:
    for value in ("../../etc/x", "a/b", "..", "名前", ""):
        name = safe_name(value)
        assert "/" not in name and not name.startswith(".")


def test_no_skill_an_empty_target_and_a_renewal_are_said_plainly(tmp_path: Path) -> None:
    folder = _scores(tmp_path / "scores")
    scores = pd.read_parquet(folder / "scores.parquet").assign(
        renewal_pending=[False, True], days_since_term_end=pd.array([None, 3], dtype="Int64"),
        churn_model_skill="no_skill", expansion_model_skill=None, expansion_probability=None,
        expected_expansion_arr=None, expansion_tier=None, expansion_signals=None,
        churn_reasons=[[], []],  # as scoring writes them for a model without skill
    )  # fmt: skip
    scores.to_parquet(folder / "scores.parquet")
    out = tmp_path / "site"
    index = build_report(folder, out, Config(), "en").read_text(encoding="utf-8")
    assert "Churn risk: the model shows no skill" in index
    assert "Expansion: no model was trained" in index
    assert "Mean absolute contribution" not in index  # no drivers from a model without skill
    account = (out / "account" / safe_name("A1")).read_text(encoding="utf-8")
    assert "In renewal: the term ended 3 day(s) ago" in account
    assert "How the churn risk adds up" not in account  # no waterfall either
    assert "<th>Signal</th>" not in account and "<p class=\"muted\">None</p>" in account
    assert "In renewal" not in (out / "account" / safe_name("A0")).read_text(encoding="utf-8")


def test_money_follows_the_configured_currency_and_language() -> None:
    from churnml.reports.messages import money

    assert money(96981.4, "en", "USD") == "$96,981"
    assert money(96981.4, "ja", "USD") == "$96,981"  # dollars stay dollars in Japanese
    assert money(96981.4, "ja", "JPY") == "96,981円"
    assert money(96981.4, "en", "JPY") == "¥96,981"
    assert money(96981.4, "en", "CHF") == "96,981 CHF"
    assert money(float("nan"), "en", "EUR") == "–"


def test_a_japanese_book_in_yen_with_named_segments(tmp_path: Path) -> None:
    cfg = Config.model_validate({"report": {"currency": "JPY", "segment_names": {
        "smb": {"en": "Small business", "ja": "小規模"}}}})  # fmt: skip
    index = build_report(_scores(tmp_path / "scores"), tmp_path / "site", cfg, "ja")
    html = index.read_text(encoding="utf-8")
    assert "2,000円" in html and "ドル" not in html and "$" not in html
    assert "小規模" in html and ">smb<" not in html


def test_movers_and_the_change_waterfall_after_a_previous_run(tmp_path: Path) -> None:
    folder = _scores(tmp_path / "scores")
    scores = pd.read_parquet(folder / "scores.parquet")
    driver = {"feature": "seat_utilisation_30d", "before": "40%", "after": "20%",
              "points": 0.03, "sentence": "Active seats 30d fell 40% → 20% (+3.0 pts)"}  # fmt: skip
    scores = scores.assign(
        previous_as_of=pd.Timestamp("2025-12-01").date(), churn_change=[0.05, -0.02],
        churn_change_model=[0.01, 0.0], churn_change_drivers=[[driver], []],
        churn_change_text=["Churn risk +5.0 pts since Dec 1, 2025: " + driver["sentence"],
                           "Churn risk -2.0 pts since Dec 1, 2025"],
    )  # fmt: skip
    scores.to_parquet(folder / "scores.parquet")
    out = tmp_path / "site"
    index = build_report(folder, out, Config(), "en").read_text(encoding="utf-8")
    assert "Whose churn risk rose since Dec 1, 2025" in index
    movers = index[index.index('id="movers"'):]
    movers = movers[: movers.index("</table>")]
    assert 'data-account="A0"' in movers and 'data-account="A1"' not in movers  # A1 fell
    account = (out / "account" / safe_name("A0")).read_text(encoding="utf-8")
    assert "How the churn risk changed since Dec 1, 2025" in account
    chart = account[account.index("How the churn risk changed"):]
    for step in ("Active seats 30d", "All other signals", "Model changed or data restated",
                 "+3.00", "+1.00"):  # fmt: skip
        assert step in chart, step
    fell = (out / "account" / safe_name("A1")).read_text(encoding="utf-8")
    assert "How the churn risk changed" in fell
    assert "Model changed or data restated" not in fell  # no model part: no empty step
    unchanged = build_report(_scores(tmp_path / "again"), tmp_path / "site2", Config(), "en")
    assert "Whose churn risk rose" not in unchanged.read_text(encoding="utf-8")


def test_segments_csv_holds_every_group_formula_safe(tmp_path: Path) -> None:
    """25 accounts of an industry whose name a spreadsheet would run (and 25 of another): the
    group is in segments.csv, its name inert, and the leader page shows it escaped."""
    folder = _scores(tmp_path / "scores")
    scores = pd.read_parquet(folder / "scores.parquet")
    many = pd.concat([scores.iloc[[1]]] * 50, ignore_index=True)
    many["account_id"] = [f"B{i}" for i in range(50)]
    many["industry"] = ["=HYPERLINK(\"http://x\")<b>"] * 25 + ["retail"] * 25
    many.to_parquet(folder / "scores.parquet")
    contributions = pd.DataFrame({"account_id": many.account_id, "target": "churn",
                                  "seat_utilisation_30d": 0.02, "nps_last": 0.0})  # fmt: skip
    contributions.to_parquet(folder / "contributions.parquet")
    index = build_report(folder, tmp_path / "site", Config(), "en").read_text(encoding="utf-8")
    cells = pd.read_csv(tmp_path / "site" / "segments.csv", dtype=str)
    assert "'=HYPERLINK(\"http://x\")<b>" in set(cells.industry)
    assert "=HYPERLINK(&#34;http://x&#34;)&lt;b&gt;" in index and '")<b>' not in index


@pytest.mark.parametrize(("segments", "rows"), [(["smb", "smb"], 1), (["smb", "mid"], 3)])
def test_the_forecast_is_by_segment_only_in_a_book_of_several(tmp_path: Path, segments: list[str],
                                                               rows: int) -> None:  # fmt: skip
    """A one-segment book's forecast is the whole book's alone (a segment row would repeat it)."""
    from churnml.forecast.revenue import History
    from churnml.reports.site import _Site
    from churnml.scoring.outputs import FORECAST

    folder = _scores(tmp_path / "scores")
    scores = pd.read_parquet(folder / "scores.parquet").assign(segment=segments)
    history = History(involuntary={"*": 0.0}, expanded=[1.5], stayed=[1.0]).as_dict()
    site = _Site(scores, pd.read_parquet(folder / "contributions.parquet"), Config(), "en", None,
                 {FORECAST: {"history": history}})  # fmt: skip
    outlook = site.forecast()
    assert outlook is not None
    assert [r["level"] for r in outlook["book"]] == ["all"] + ["segment"] * (rows - 1)
    assert [r["level"] for r in outlook["renewals"]] == ["all"] + ["segment"] * (rows - 1)


@pytest.mark.parametrize(("days", "en", "ja"), [
    (1, "Renewal tomorrow (Jan 2, 2026)", "明日更新"), (0, "Renewal today", "本日更新"),
    (2, "Renewal in 2 days", "更新まで2日"), (-1, "Term ended yesterday", "契約期間は昨日終了"),
    (-3, "Term ended 3 days ago", "契約期間は3日前に終了"),
])  # fmt: skip
def test_the_renewal_is_said_in_plain_words(tmp_path: Path, days: int, en: str, ja: str) -> None:
    folder = _scores(tmp_path / "scores")
    scores = pd.read_parquet(folder / "scores.parquet")
    scores["renewal_date"] = (pd.Timestamp("2026-01-01") + pd.Timedelta(days=days)).date()
    scores.to_parquet(folder / "scores.parquet")
    for lang, text in (("en", en), ("ja", ja)):
        site = tmp_path / f"site_{lang}"
        build_report(folder, site, Config(), lang)
        page = (site / "account" / safe_name("A1")).read_text(encoding="utf-8")
        assert text in page, (lang, days)


def test_the_adoption_chart_shows_events_where_usage_names_no_user() -> None:
    """Usage kept by account: the bars are events, titled so, not a row of 0 active users."""
    from churnml.reports.charts import adoption_chart

    months = pd.date_range("2024-01-01", periods=3, freq="MS")
    frame = pd.DataFrame({"month": months[:2], "users": [0, 0], "events": [120, 80]})
    for lang in ("en", "ja"):
        m = MESSAGES[lang]
        svg = adoption_chart(frame, months, m, lang)
        assert f"<title>{m['events']}</title>" in svg and "2024-01: 120</title>" in svg
        named = adoption_chart(frame.assign(users=[3, 0]), months, m, lang)
        assert f"<title>{m['active_users']}</title>" in named and "2024-02: 0</title>" in named
