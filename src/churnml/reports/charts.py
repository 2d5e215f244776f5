"""The report's charts, as inline SVG (labels escaped): waterfalls of contributions, the risk
histogram, and an account's monthly active users (counted by scoring: `adoption.parquet`)."""

from __future__ import annotations

import datetime as dt
import io

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from markupsafe import escape

from churnml.features.catalogue import Feature
from churnml.features.rollups import ADOPTION_MONTHS, adoption_start
from churnml.reports.messages import Lang

matplotlib.use("Agg")


def svg(fig: plt.Figure) -> str:
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight")
    plt.close(fig)
    svg = buffer.getvalue()
    return svg[svg.index("<svg") :]


def feature_label(feature: str, cat: dict[str, Feature], lang: Lang) -> str:
    f = cat.get(feature)
    return f.label(lang) if f else feature


def waterfall(contrib: pd.Series, base: float, cat: dict[str, Feature], lang: Lang,
              other: str, top: int = 8, ordered: bool = False) -> str:  # fmt: skip
    """Horizontal waterfall from the base rate to the probability (inline SVG, escaped labels):
    the `top` largest steps then the rest as `other`, or the steps as given (`ordered`)."""
    order = contrib.index if ordered else contrib.abs().sort_values(ascending=False).index
    steps = [(feature_label(f, cat, lang), float(contrib[f])) for f in order[:top]]
    if len(order) > top:
        steps.append((other, float(contrib[order[top:]].sum())))
    levels = np.cumsum([base] + [v for _, v in steps])
    lo, hi = min(levels.min(), 0.0), max(levels.max(), 1e-9)
    scale = lambda v: 330 + 320 * (v - lo) / (hi - lo)  # noqa: E731
    rows = []
    for i, ((label, v), start) in enumerate(zip(steps, levels[:-1], strict=True)):
        x0, x1 = sorted((scale(start), scale(start + v)))
        color = "#b42318" if v > 0 else "#067647"
        rows.append(
            f'<text x="322" y="{i * 22 + 15}" text-anchor="end" font-size="11">{escape(label if len(label) <= 40 else label[:39] + "…")}</text>'
            f'<rect x="{x0:.1f}" y="{i * 22 + 4}" width="{max(x1 - x0, 1):.1f}" height="14" fill="{color}"/>'
            f'<text x="{max(x1, x0) + 4:.1f}" y="{i * 22 + 15}" font-size="10">{v * 100:+.2f}</text>'
        )  # fmt: skip
    height = len(steps) * 22 + 8
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 700 {height}" role="img">'
            f'<line x1="{scale(base):.1f}" y1="0" x2="{scale(base):.1f}" y2="{height}" stroke="grey" '
            f'stroke-dasharray="3"/>{"".join(rows)}</svg>')  # fmt: skip


def adoption_chart(frame: pd.DataFrame, months: pd.DatetimeIndex, m: dict[str, str],
                    lang: Lang) -> str:  # fmt: skip
    """Monthly active users over `months` (bars, missing months as 0) with a y axis and dated
    month labels, as a small inline SVG; events where the account's usage names no user."""
    what = "users" if frame.users.sum() > 0 or not frame.events.sum() else "events"
    title = m["active_users" if what == "users" else "events"]
    by_month = frame.set_index(pd.to_datetime(frame.month))[what]
    values = by_month.reindex(months, fill_value=0).to_numpy(dtype=float)
    top = max(values.max(), 1.0)
    label = (lambda d: f"{d:%b}" + (f" {d:%y}" if d.month == 1 or d == months[0] else "")) \
        if lang == "en" else (lambda d: f"{d.month}月" if d.month != 1 and d != months[0]
                              else f"{d.year % 100}年{d.month}月")  # fmt: skip
    bars = "".join(
        f'<rect x="{50 + i * 40}" y="{110 - 100 * u / top:.1f}" width="30" height="{100 * u / top:.1f}" '
        f'fill="#1d4ed8"><title>{escape(f"{mo:%Y-%m}")}: {u:,.0f}</title></rect>'
        f'<text x="{65 + i * 40}" y="126" font-size="9" text-anchor="middle">{escape(label(mo))}</text>'
        for i, (mo, u) in enumerate(zip(months, values, strict=True))
    )  # fmt: skip
    axis = (f'<line x1="44" y1="10" x2="44" y2="110" stroke="#616e7c"/>'
            f'<line x1="44" y1="110" x2="{50 + 40 * len(months)}" y2="110" stroke="#616e7c"/>'
            f'<text x="40" y="14" font-size="9" text-anchor="end">{top:,.0f}</text>'
            f'<text x="40" y="113" font-size="9" text-anchor="end">0</text>'
            f'<text x="10" y="60" font-size="9" transform="rotate(-90 10 60)" text-anchor="middle">'
            f'{escape(title)}</text>')  # fmt: skip
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {60 + 40 * len(months)} 134" '
            f'role="img" style="max-width:620px"><title>{escape(title)}</title>'
            f'{axis}{bars}</svg>')  # fmt: skip


def adoption_months(as_of: dt.date) -> pd.DatetimeIndex:
    """The months of `monthly_use`: the full calendar months before as_of's month."""
    return pd.date_range(adoption_start(as_of), periods=ADOPTION_MONTHS, freq="MS")


def histogram(probability: pd.Series) -> str:
    """Accounts by churn risk (in %), as an inline SVG (numbers only: the page's heading names
    it, in the page's language and fonts)."""
    values = probability.dropna() * 100
    fig, ax = plt.subplots(figsize=(5, 2.6))
    ax.hist(values, bins=20, range=(0, max(5.0, float(np.ceil(values.max())) if len(values) else 5.0)),
            color="#1d4ed8")  # fmt: skip
    return svg(fig)
