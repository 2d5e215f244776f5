"""The leader page's sections beyond the book itself: the revenue forecast with its backtest, root
causes by segment, and stated churn reasons beside what the model saw (mixed into the site)."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from churnml.features.catalogue import FAMILIES
from churnml.forecast.revenue import History, forecast
from churnml.reports.messages import number, percent


class LeaderSections:
    """Methods of the site (`churnml.reports.site`) that read its scores (`s`), settings (`cfg`,
    `lang`, `m`: the messages), learnt forecast history (`outlook`), segment cells (`cells`) and
    stated reasons (`stated`)."""

    def stated_reasons(self) -> dict[str, object]:
        """Stated cancel reasons (rows) × the model's main family before the churn (columns)."""
        families = [f for f in (*FAMILIES, "none") if any(f in r for r in self.stated.values())]
        rows = [{"reason": reason, "counts": [number(n.get(f, 0), self.lang) for f in families]}
                for reason, n in sorted(self.stated.items(), key=lambda kv: -sum(kv[1].values()))]
        names = [self.m[f"score_{f}"] if f != "none" else "–" for f in families]
        return {"families": names, "rows": rows}

    def root_causes(self) -> dict[str, object]:
        """Flagged groups as sentences, and the groups with the most ARR at risk as a table."""
        cells, lang = self.cells, self.lang
        if cells.empty:
            return {"flags": [], "rows": []}

        def name(r: pd.Series) -> str:
            parts = [self.segment(r.segment) if pd.notna(r.segment) else None,
                     r.acquisition_channel, r.industry]  # fmt: skip
            return " × ".join(str(p) for p in parts if p is not None and pd.notna(p))

        def driver(r: pd.Series) -> str:
            return self.m[f"score_{r.driver}"]

        def pts(value: float) -> str:
            return f"{value:+.1f}"

        flags = [self.m["root_cause_flag"].format(
            cell=name(r), accounts=number(r.accounts, lang), family=driver(r),
            lift=pts(r.driver_lift_pts), share=percent(r.driver_share, lang, 0),
            churn=percent(r.churn_expected, lang), baseline=percent(r.churn_baseline, lang))
            for _, r in cells[cells.flagged].iterrows()]  # fmt: skip
        rows = [{"cell": name(r), "flagged": bool(r.flagged), "accounts": number(r.accounts, lang),
                 "arr_at_risk": self.money(r.arr_at_risk),
                 "churn_expected": percent(r.churn_expected, lang),
                 "driver": f"{driver(r)} ({pts(r.driver_lift_pts)})"
                 if round(r.driver_lift_pts, 1) > 0 else "–",  # a segment: no lift over itself
                 "tickets": "–" if pd.isna(r.tickets_per_account) else f"{r.tickets_per_account:.1f}",
                 "nps": "–" if pd.isna(r.nps) else f"{r.nps:.1f}",
                 "onboarding": percent(r.onboarding_on_time, lang, 0)}
                for _, r in cells.head(12).iterrows()]  # fmt: skip
        return {"flags": flags, "rows": rows}

    def forecast(self) -> dict[str, object] | None:
        """The revenue forecast for the book (all, per segment if more than one, per CSM) and for
        the renewals due within the horizon, with its backtest; None when training kept no
        history."""
        if not self.outlook:
            return None
        history = History.from_dict(self.outlook["history"])
        run = {"history": history, "draws": self.cfg.forecast.draws, "seed": self.cfg.model.seed}
        h = self.cfg.labels.horizon_days
        due = pd.to_datetime(self.s.renewal_date) <= pd.to_datetime(self.s.as_of) + pd.Timedelta(
            days=h)  # fmt: skip
        renewals = self.s[due]
        segments = ("segment",) if self.s.segment.nunique() > 1 else ()  # else: the book's
        rows = self._outlook_rows(forecast(self.s, by=(*segments, "owner"), **run))
        return {
            "book": [r for r in rows if r["level"] != "owner"],
            "owners": [r for r in rows if r["level"] == "owner"],
            "renewals": self._outlook_rows(forecast(renewals, by=segments, **run))
            if len(renewals) else [],
            "backtest": self._backtest(self.outlook.get("backtest") or {}),
        }

    def _outlook_rows(self, table: pd.DataFrame) -> list[dict[str, str]]:
        def shown(r: pd.Series, name: str, fmt: Callable[[float], str]) -> str:
            low, high = fmt(r[f"{name}_low"]), fmt(r[f"{name}_high"])
            return f"{fmt(r[name])} ({low}–{high})"

        def pct(v: float) -> str:
            return percent(v, self.lang)

        names = {"all": lambda g: self.m["level_all"], "segment": self.segment, "owner": str}
        return [{"level": r.level, "group": names[r.level](r.group),
                 "accounts": number(r.accounts, self.lang), "arr": self.money(r.arr),
                 "churned_arr": shown(r, "churned_arr", self.money),
                 "involuntary_arr": self.money(r.involuntary_arr),
                 "expanded_arr": shown(r, "expanded_arr", self.money),
                 "grr": shown(r, "grr", pct), "nrr": shown(r, "nrr", pct)}
                for _, r in table.iterrows()]  # fmt: skip

    def _backtest(self, summary: dict[str, float]) -> str:
        if not summary:
            return ""
        return self.m["forecast_backtest"].format(
            cutoffs=int(summary["forecast_cutoffs"]),
            **{f"{m}": percent(summary[f"forecast_{m}_coverage"], self.lang, 0) for m in ("grr", "nrr")},
            **{f"{m}_error": f"{summary[f'forecast_{m}_mae_pts']:.1f}" for m in ("grr", "nrr")},
        )  # fmt: skip
