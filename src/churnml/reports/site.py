"""`churnml report`: a static, self-contained site from a scoring run (no network, charts inline).

index.html (leader summary), csm/<owner>.html (a portfolio per CSM), account/<id>.html (one
account). All user data is escaped by Jinja2's autoescaping; file names are derived from a hash
so that any owner or account id stays inside the output folder.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import pandas as pd
from jinja2 import Environment, FileSystemLoader, select_autoescape

from churnml.config import Config
from churnml.features.catalogue import FAMILIES, by_name, family
from churnml.io import atomic_dir, run_file, write_text
from churnml.reports.charts import (
    adoption_chart,
    adoption_months,
    feature_label,
    histogram,
    waterfall,
)
from churnml.reports.leader import LeaderSections
from churnml.reports.messages import MESSAGES, Lang, date, money, number, percent
from churnml.reports.segments import MIN_LIFT, root_causes
from churnml.scoring.crm import FieldMap, crm_frame, write_csv
from churnml.scoring.outputs import (
    ADOPTION_FILE,
    CURRENCY,
    FORECAST,
    STATED,
    read_key_events,
    read_meta,
)
from churnml.scoring.plays import load_library
from churnml.scoring.reasons import format_value, segment_label, sentence
from churnml.vocabulary import ACTIONS, TARGETS, TIERS


def safe_name(value: object) -> str:
    """A file name for any string: its safe characters plus a short hash (no paths, no dots)."""
    text = str(value)
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", text)[:40].strip("_") or "x"
    return f"{stem}-{hashlib.sha1(text.encode('utf-8')).hexdigest()[:8]}.html"


class _Site(LeaderSections):
    def __init__(self, scores: pd.DataFrame, contributions: pd.DataFrame, cfg: Config, lang: Lang,
                 adoption: pd.DataFrame | None, learnt: dict[str, dict] | None = None,
                 values: pd.DataFrame | None = None) -> None:  # fmt: skip
        self.s, self.c, self.cfg, self.lang = scores, contributions, cfg, lang
        learnt = learnt or {}  # what training kept, from scores.parquet's metadata
        self.outlook, self.stated = learnt.get(FORECAST), learnt.get(STATED) or {}
        self.m = MESSAGES[lang]
        self.cat = by_name(cfg.features)
        self.cells = root_causes(scores, contributions, values, self.cat,
                                 cfg.report.min_cell_accounts)  # fmt: skip
        churn = contributions[contributions.target == "churn"]
        self.churn = churn.drop(columns="target").set_index("account_id")
        self.adoption = {} if adoption is None else dict(tuple(adoption.groupby("account_id")))
        self.as_of = date(pd.Timestamp(scores.as_of.iloc[0]).date(), lang)
        owner = scores.get("csm_owner", pd.Series("", index=scores.index)).fillna("")
        self.s = scores.assign(
            owner=owner.astype(str),
            name=scores.get("account_name", scores.account_id).fillna(scores.account_id),
        )
        self.shown = {t for t in TARGETS if _skill(scores, t) == "ok"}  # reasons are presented
        self.notices = [
            self.m[f"notice_{'no_model' if _skill(scores, t) is None else 'no_skill'}"].format(
                target=self.m[f"{t}_drivers"])
            for t in TARGETS if t not in self.shown
        ]  # fmt: skip
        self.library = load_library(cfg.scoring.plays)
        since = scores.get("previous_as_of", pd.Series(dtype=object)).dropna()
        self.since = self.day(since.iloc[0]) if len(since) else None  # --previous: compared with
        self.env = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"),
                               autoescape=select_autoescape(["html", "j2"]))  # fmt: skip

    def money(self, value: float) -> str:
        return money(value, self.lang, self.cfg.report.currency)

    def segment(self, code: object) -> str:
        return segment_label(code, self.lang, self.cfg.report.segment_names)

    def day(self, value: object) -> str:
        if value is None or pd.isna(value):
            return "–"
        return date(pd.Timestamp(value).date(), self.lang, short=True)

    def render(self, template: str, **context: object) -> str:
        return self.env.get_template(template).render(
            m=self.m, lang=self.lang, as_of=self.as_of, notices=self.notices, since=self.since,
            **context,
        )

    def _points(self, value: object) -> str:
        """A change of probability in points: +3.1 pts (–: not compared)."""
        if value is None or pd.isna(value):
            return "–"
        return self.m["points"].format(value * 100)

    def movers(self, rows: pd.DataFrame, top: int = 10) -> list[dict[str, object]]:
        """The accounts whose churn risk rose most since the previous run, by ARR it puts at
        risk (empty without --previous)."""
        if "churn_change" not in rows or rows.churn_change.isna().all():
            return []
        rose = rows[rows.churn_change > 0]
        added = (rose.churn_change * rose.arr).nlargest(top)
        return [self._row(r) for _, r in rose.loc[added.index].iterrows()]

    def _change_waterfall(self, row: pd.Series) -> str | None:
        """From the previous run's churn risk to today's: the drivers, every other signal, and
        the model part (None without --previous)."""
        if pd.isna(row.get("churn_change")) or "churn" not in self.shown:
            return None
        steps = {d["feature"]: d["points"] for d in _listed(row.churn_change_drivers)}
        data = row.churn_change - row.churn_change_model
        steps[self.m["other"]] = data - sum(steps.values())
        if round(row.churn_change_model * 100, 2):  # shown only when it moved the risk
            steps[self.m["model_part"]] = row.churn_change_model
        before = row.churn_probability - row.churn_change
        return waterfall(pd.Series(steps), before, self.cat, self.lang, self.m["other"],
                         top=len(steps), ordered=True)  # fmt: skip

    def _scorecard(self, row: pd.Series) -> list[tuple[str, str]]:
        """Each family's percentile within the segment, or 'no signal'."""
        return [
            (self.m[f"score_{f}"], self.m["no_signal"] if pd.isna(v) else f"{v:.0f}")
            for f in FAMILIES
            if not pd.isna(v := row.get(f"score_{f}"))
            or row[[f"score_{g}" for g in FAMILIES]].notna().any()  # a scorecard at all
        ]

    def _play(self, row: pd.Series) -> dict[str, str]:
        play = self.library.play(str(row.get("play")))
        if play is None:
            return {"title": self.m[f"action_{row.next_best_action}"], "text": "", "owner": "",
                    "due": "–"}  # fmt: skip
        words = play.ja if self.lang == "ja" else play.en
        owner = self.library.owners.get(str(row.play_owner), {}).get(self.lang, row.play_owner)
        milestone = row.get("overdue_milestone")
        milestone = self.m["earliest_milestone"] if pd.isna(milestone) else str(milestone)
        return {"title": words.title, "text": words.text.replace("{milestone}", milestone),
                "owner": owner, "due": self.day(row.play_due)}  # fmt: skip

    def _contact(self, row: pd.Series) -> str:
        """'C123 (champion)', or – when no contact is in place."""
        who = row.get("primary_contact")
        if who is None or pd.isna(who):
            return "–"
        role = str(row.get("primary_contact_role"))
        return f"{who} ({self.m.get(f'role_{role}', role)})"

    def _context(self, row: pd.Series) -> list[str]:
        """What frames the account, which a CSM cannot change: renewal, tenure, plan."""
        m, out = self.m, []
        as_of = pd.Timestamp(row.as_of)
        if pd.isna(row.renewal_date):
            out.append(m["no_term"])
        else:
            days = (pd.Timestamp(row.renewal_date) - as_of).days
            key = "renewal_today" if days == 0 else "renewal_in" if days > 0 else "renewal_overdue"
            key += "_one" if abs(days) == 1 else ""
            out.append(m[key].format(days=abs(days), date=self.day(row.renewal_date)))
        if not pd.isna(row.get("tenure_days")):
            out.append(m["customer_for"].format(years=row.tenure_days / 365.25))
        if not pd.isna(row.get("plan")) and not pd.isna(row.get("seats")):
            out.append(m["plan_seats"].format(plan=row.plan, seats=f"{row.seats:,.0f}"))
        if not pd.isna(row.get("overdue_milestone")):
            out.append(m["overdue_milestone"].format(milestone=row.overdue_milestone))
        if self._contact(row) != "–":
            out.append(f"{m['contact']}: {self._contact(row)}")
        return out

    def _row(self, row: pd.Series) -> dict[str, object]:
        money_ = self.money
        stake = np.nansum(np.array([row.arr_at_risk, row.expected_expansion_arr], dtype=float))
        return {
            "account_id": row.account_id, "file": safe_name(row.account_id), "name": row["name"],
            "segment": self.segment(row.segment), "owner": row.owner, "arr": money_(row.arr),
            "play": self._play(row), "renewal_date": self.day(row.get("renewal_date")),
            "change": self._points(row.get("churn_change")),
            "change_text": row.get("churn_change_text") or "",
            "last_touch": self.day(row.get("last_touch_date")), "stake": money_(stake),
            "contact": self._contact(row),
            "sort": {"arr": row.arr, "churn": row.churn_probability, "risk": row.arr_at_risk,
                     "change": row.get("churn_change"),
                     "health": row.health_score, "stake": stake,
                     "renewal": str(row.get("renewal_date") or ""),
                     "touch": str(row.get("last_touch_date") or "")},
            "churn_probability": percent(row.churn_probability, self.lang),
            "churn_tier": row.churn_tier, "expansion_tier": row.expansion_tier,
            "expansion_probability": percent(row.expansion_probability, self.lang),
            "arr_at_risk": money_(row.arr_at_risk),
            "health_score": "–" if pd.isna(row.health_score) else f"{row.health_score:.0f}",
            "expected_expansion_arr": money_(row.expected_expansion_arr),
            "next_best_action": row.next_best_action, "scorecard": self._scorecard(row),
            "reasons": [self._sentence(r, "churn", row.segment) for r in _listed(row.churn_reasons)],
            "signals": [self._sentence(r, "expansion", row.segment)
                        for r in _listed(row.expansion_signals)],
            "base_rate": percent(row.churn_base_rate, self.lang),
            "renewal": self.m["renewal_pending"].format(days=int(row.days_since_term_end))
            if row.get("renewal_pending") else "",
        }  # fmt: skip

    # -- pages -------------------------------------------------------------------------------
    def summary(self) -> str:
        s, lang = self.s, self.lang
        arr = s.arr.sum()
        grr = 1 - s.arr_at_risk.sum() / arr if arr else float("nan")
        expanding = s.expected_expansion_arr.notna().any()
        nrr = grr + s.expected_expansion_arr.sum() / arr if arr and expanding else float("nan")
        totals = {"accounts": number(len(s), lang), "arr": self.money(arr),
                  "arr_at_risk": self.money(s.arr_at_risk.sum()),
                  "expected_expansion_arr": self.money(s.expected_expansion_arr.sum(min_count=1)),
                  "grr": percent(grr, lang), "nrr": percent(nrr, lang)}  # fmt: skip
        outlook = self.forecast()
        if outlook:  # the simulated forecast replaces the point values, with its range
            whole = outlook["book"][0]
            totals |= {"grr": whole["grr"], "nrr": whole["nrr"]}
        grouped = s.groupby(["segment", "churn_tier"]).agg(
            accounts=("account_id", "size"), arr=("arr", "sum"), arr_at_risk=("arr_at_risk", "sum"),
            expected_expansion_arr=("expected_expansion_arr", lambda v: v.sum(min_count=1)),
        ).reset_index()  # fmt: skip
        grouped["tier_order"] = grouped.churn_tier.map({t: i for i, t in enumerate(TIERS)})
        by_segment = [
            {"segment": self.segment(r.segment), "tier": r.churn_tier,
             "accounts": number(r.accounts, lang), "arr": self.money(r.arr),
             "arr_at_risk": self.money(r.arr_at_risk),
             "expected_expansion_arr": self.money(r.expected_expansion_arr)}
            for r in grouped.sort_values(["segment", "tier_order"]).itertuples()
        ]  # fmt: skip
        actions = s.next_best_action.value_counts()
        owners = s.groupby("owner").agg(
            accounts=("account_id", "size"), risk=("arr_at_risk", "sum")
        )
        owners = [{"owner": o, "file": safe_name(o), "accounts": number(r.accounts, lang),
                   "arr_at_risk": self.money(r.risk)}
                  for o, r in owners.sort_values("risk", ascending=False).iterrows()]  # fmt: skip
        today = [self._row(r) for _, r in s.nlargest(self.cfg.report.today, "priority").iterrows()]
        return self.render(
            "summary.html.j2", title=self.m["title_summary"], totals=totals, by_segment=by_segment,
            today=today, runway=self.cfg.scoring.save_runway_days, movers=self.movers(s),
            risk_chart=histogram(s.churn_probability),
            actions=[(a, number(actions.get(a, 0), lang)) for a in ACTIONS],
            drivers=self._drivers(), owners=owners, horizon=self.cfg.labels.horizon_days,
            outlook=outlook, draws=self.cfg.forecast.draws, causes=self.root_causes(),
            stated=self.stated_reasons(),
            min_cell=self.cfg.report.min_cell_accounts, min_lift=MIN_LIFT,
        )  # fmt: skip

    def _drivers(self) -> list[dict[str, object]]:
        """Per segment and target: mean absolute contribution (points) by family and feature."""
        segment = self.c.account_id.map(self.s.set_index("account_id").segment)
        families = {n: family(f) for n, f in self.cat.items()}
        out = []
        for seg in sorted(segment.dropna().unique()) if self.shown else []:
            parts = []
            for target in sorted(self.shown, key=TARGETS.index):
                title = self.m[f"{target}_drivers"]
                rows = self.c[(segment == seg) & (self.c.target == target)]
                mean = rows.drop(columns=["account_id", "target"]).abs().mean().mul(100).dropna()
                fam = mean.groupby(lambda f: families.get(f, "other")).sum()
                fam = fam.sort_values(ascending=False)
                feat = mean.sort_values(ascending=False).head(5)
                parts.append({
                    "title": title,
                    "families": [(self.m.get(f"score_{f}", f), f"{v:.2f}") for f, v in fam.items()],
                    "features": [(feature_label(f, self.cat, self.lang), f"{v:.2f}") for f, v in feat.items()],
                })  # fmt: skip
            out.append({"segment": self.segment(seg), "parts": parts})
        return out

    def _sentence(self, reason: dict, target: str, segment: object) -> str:
        """A reason in the report's language, rebuilt from its structured record."""
        f = self.cat.get(reason["feature"])
        if f is None:
            return str(reason["sentence"])
        value = (
            reason["value"] if f.categorical or reason["value"] is None else float(reason["value"])
        )
        return sentence(f, value, reason["segment_median"], self.lang, target,
                        reason["contribution"], self.segment(segment),
                        self.cfg.report.currency)  # fmt: skip

    def _shown(self, feature: str, value: object) -> str:
        """A reason's value as text, formatted by the feature's unit."""
        f = self.cat.get(feature)
        if value is None or f is None or f.categorical:
            return "–" if value is None else str(value)
        return format_value(float(value), f.unit, self.lang, self.cfg.report.currency)

    def csm(self, owner: str, rows: pd.DataFrame) -> str:
        rows = rows.sort_values("arr_at_risk", ascending=False)
        accounts = [self._row(r) for _, r in rows.iterrows()]
        keen = rows[
            rows.next_best_action.isin(["expand", "fix_then_expand"])
            | (rows.expansion_tier == "high")
        ]
        candidates = [
            self._row(r)
            for _, r in keen.sort_values("expected_expansion_arr", ascending=False).iterrows()
        ]
        return self.render("csm.html.j2", title=self.m["title_csm"].format(owner=owner), owner=owner,
                           movers=self.movers(rows, top=5),
                           accounts=accounts, candidates=candidates)  # fmt: skip

    def account(self, row: pd.Series) -> str:
        a = self._row(row)
        shown = "churn" in self.shown and row.account_id in self.churn.index
        series = self.churn.loc[row.account_id].dropna() if shown else None
        a["reason_rows"] = [
            {"sentence": self._sentence(r, "churn", row.segment), "points": f"{r['contribution'] * 100:+.2f}",
             "value": self._shown(r["feature"], r["value"]),
             "median": self._shown(r["feature"], r["segment_median"])}
            for r in _listed(row.churn_reasons)
        ]  # fmt: skip
        a["context"] = self._context(row)
        mine = self.adoption.get(row.account_id)
        months = adoption_months(pd.Timestamp(row.as_of).date())
        adoption = None if mine is None else adoption_chart(mine, months, self.m, self.lang)
        return self.render(
            "account.html.j2",
            title=str(row["name"]),
            a=a,
            owner_file=safe_name(row.owner),
            waterfall=None if series is None else waterfall(
                series, row.churn_base_rate, self.cat, self.lang, self.m["other"]),
            change_waterfall=self._change_waterfall(row),
            adoption=adoption,
        )


def _skill(scores: pd.DataFrame, target: str) -> str | None:
    """'ok', 'no_skill' or None (no model) for a target, as scoring recorded it."""
    column = scores.get(f"{target}_model_skill")
    if column is None:
        return "ok"
    return None if pd.isna(column.iloc[0]) else str(column.iloc[0])


def _listed(reasons: object) -> list:
    """A reasons cell as a list (an empty target's cell is None)."""
    return [] if reasons is None else list(reasons)


def _need(run: Path, name: str) -> Path:
    path = run_file(run, name)
    if path is None:
        raise FileNotFoundError(f"no {name} in {run}: give the --out of churnml score")
    return path


def build_report(
    scores_dir: Path | str,
    out: Path | str,
    cfg: Config,
    lang: Lang = "en",
) -> Path:
    """Write the site into `out` (atomically, file by file) and return the path of index.html.
    Everything comes from the scoring run's folder: scores, contributions, features and, for the
    adoption charts, `adoption.parquet` (runs before it have no charts)."""
    scores_dir = Path(scores_dir)
    scores = pd.read_parquet(_need(scores_dir, "scores.parquet"))
    contributions = pd.read_parquet(_need(scores_dir, "contributions.parquet"))
    if scores.empty:
        raise ValueError(f"{scores_dir / 'scores.parquet'} has no rows")
    lacking = [c for c in ("priority", "play", "renewal_date") if c not in scores]
    if lacking:
        raise ValueError(f"{scores_dir / 'scores.parquet'} lacks column(s) {', '.join(lacking)}: "
                         "it was written by an older churnml; score again")  # fmt: skip
    used = run_file(scores_dir, ADOPTION_FILE)
    adoption = None if used is None else pd.read_parquet(used)
    events = read_key_events(scores_dir / "scores.parquet")  # the report's texts name them
    cfg = cfg if events is None else cfg.with_key_events(events)
    currency = read_meta(scores_dir / "scores.parquet", CURRENCY)  # the data's, if not set
    cfg = cfg.shown_in(currency if isinstance(currency, str) else None)
    learnt = {key: read_meta(scores_dir / "scores.parquet", key) for key in (FORECAST, STATED)}
    inputs = run_file(scores_dir, "features.parquet")
    values = None if inputs is None else pd.read_parquet(inputs)
    site = _Site(scores, contributions, cfg, lang, adoption, learnt, values)
    with atomic_dir(out) as tmp:
        write_text(site.summary(), tmp / "index.html")
        cells = FieldMap("segment", {c: c for c in site.cells.columns})  # formula-safe text
        write_csv(crm_frame(site.cells, cells), tmp / "segments.csv")
        for owner, rows in site.s.groupby("owner"):
            write_text(site.csm(str(owner), rows), tmp / "csm" / safe_name(owner))
        for _, row in site.s.iterrows():
            write_text(site.account(row), tmp / "account" / safe_name(row.account_id))
    return Path(out) / "index.html"
