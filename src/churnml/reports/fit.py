"""The Fit page for Sales: scored deals with their reasons, and the profiles of past signings
that retained and grew, and those that did not (`churnml fit-score`)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from jinja2 import Environment, FileSystemLoader, select_autoescape

from churnml.config import Config
from churnml.io import atomic_dir, write_parquet, write_text
from churnml.models.artifact import TrainedModel
from churnml.reports.messages import MESSAGES, Lang, money, number, percent
from churnml.scoring.crm import FieldMap, crm_frame, write_csv
from churnml.scoring.deals import TOP_REASONS
from churnml.scoring.reasons import date, segment_label

SHOWN_PROFILES = 10  # per table: the best and the worst first-year NRR
SHOWN_COLUMNS = ("segment", "industry", "acquisition_channel", "arr", "term_months")  # of a deal,
# when the model uses them (every column is in deals.csv)
MONEY = {"arr"}


def _value(name: str, value: object, cfg: Config, lang: Lang) -> str:
    """A signing column's value as people read it."""
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "–"
    if name in MONEY:
        return money(float(value), lang, cfg.report.currency)
    if name == "segment":
        return segment_label(value, lang, cfg.report.segment_names)
    return number(float(value), lang) if isinstance(value, int | float) else str(value)


def _reason(r: dict, m: dict[str, str], cfg: Config, lang: Lang) -> str:
    label = m.get(f"sig_{r['feature']}", r["feature"])
    value = _value(r["feature"], r["value"], cfg, lang)
    return f"{label}: {value} ({m['points'].format(r['points'] * 100)})"


def _profiles(rows: list[dict], m: dict[str, str], cfg: Config, lang: Lang) -> list[dict]:
    return [{"name": " × ".join(f"{m.get(f'sig_{c}', c)} {_value(c, v, cfg, lang)}"
                                for c, v in p["profile"].items()),
             "accounts": number(p["accounts"], lang), "arr": _value("arr", p["arr"], cfg, lang),
             "nrr": percent(p["nrr"], lang), "lost": percent(p["lost_arr_rate"], lang)}
            for p in rows]  # fmt: skip


def _facts(model: TrainedModel, m: dict[str, str], lang: Lang) -> str:
    meta, refs = model.meta, model.meta.get("references", {})
    through = date(pd.Timestamp(meta["trained_through"]).date(), lang)
    ref = lambda name, key: f"{refs.get(name, {}).get(key, float('nan')):.3f}"  # noqa: E731
    return m["fit_model"].format(
        through=through, auc=f"{meta['evaluation']['roc_auc']:.3f}",
        segment_auc=ref("segment_rate", "roc_auc"), loss=f"{meta['evaluation']['log_loss']:.3f}",
        base_loss=ref("base_rate", "log_loss"))  # fmt: skip


def fit_page(scored: pd.DataFrame, model: TrainedModel, cfg: Config, lang: Lang = "en") -> str:
    """The Fit page (HTML, every user-supplied text escaped) for deals scored by `score_deals`."""
    m = MESSAGES[lang]
    key = scored.columns[0]
    shown = [c for c in SHOWN_COLUMNS if c in model.features]
    columns = [{"label": m.get(f"sig_{c}", c), "num": pd.api.types.is_numeric_dtype(scored[c])}
               for c in shown]  # fmt: skip
    deals = [{"id": str(row[key]), "cells": [_value(c, row[c], cfg, lang) for c in shown],
              "probability": percent(row.fit_probability, lang), "band": row.fit,
              "sort": f"{row.fit_probability:.6f}",
              "reasons": [_reason(r, m, cfg, lang) for r in row.reasons]}
             for _, row in scored.iterrows()]  # fmt: skip
    profiles = model.meta.get("profiles", [])
    half = min(SHOWN_PROFILES, len(profiles) // 2)  # the two tables never share a profile
    skill = model.meta.get("skill", {})
    notices = [m["fit_no_skill"].format(why=skill.get("reason"))] if skill.get("no_skill") else []
    env = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"),
                      autoescape=select_autoescape(["html", "j2"]))  # fmt: skip
    base = percent(float(scored.base_rate.iloc[0]), lang) if len(scored) else "–"
    return env.get_template("fit.html.j2").render(
        m=m, lang=lang, title=m["title_fit"], notices=notices, facts=_facts(model, m, lang),
        columns=columns, deals=deals, base=base, min_accounts=cfg.fit.min_profile_accounts,
        good=_profiles(profiles[:half], m, cfg, lang),
        poor=_profiles(profiles[::-1][:half], m, cfg, lang))  # fmt: skip


def write_fit(scored: pd.DataFrame, model: TrainedModel, cfg: Config, out: Path | str,
              lang: Lang = "en") -> Path:  # fmt: skip
    """Write `deals.parquet`, `deals.csv` (formula-safe, the reasons in words) and `fit.html`
    into `out`, atomically as a whole; the page's path."""
    m = MESSAGES[lang]
    words = [[_reason(r, m, cfg, lang) for r in reasons] for reasons in scored.reasons]
    as_text = [[{**r, "value": None if r["value"] is None else str(r["value"])} for r in reasons]
               for reasons in scored.reasons]  # fmt: skip
    table = scored.assign(reasons=as_text)
    feed = scored.drop(columns="reasons").assign(
        **{f"reason_{i + 1}": [w[i] if len(w) > i else "" for w in words]
           for i in range(TOP_REASONS)})  # fmt: skip
    with atomic_dir(out) as tmp:
        write_parquet(table, tmp / "deals.parquet")
        write_csv(crm_frame(feed, FieldMap(feed.columns[0], {c: c for c in feed.columns})),
                  tmp / "deals.csv")  # fmt: skip
        write_text(fit_page(scored, model, cfg, lang), tmp / "fit.html")
    return Path(out) / "fit.html"
