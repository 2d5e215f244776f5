"""Top reasons as structured records and as sentences in English or Japanese, from the catalogue."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from typing import Any

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from churnml.config import ReportConfig
from churnml.features.catalogue import Feature, Source
from churnml.vocabulary import Lang

_WORDS = {
    "en": {"yes": "yes", "no": "no", "unknown": "unknown", "day": "{} day", "days": "{} days",
           "median": " ({segment} median {value})", "churn": "raises risk ",
           "expansion": "raises propensity ", "points": " pts: ", "is": ": ", "space": " "},
    "ja": {"yes": "はい", "no": "いいえ", "unknown": "不明", "day": "{}日", "days": "{}日",
           "median": "（{segment}の中央値 {value}）", "churn": "リスクを",
           "expansion": "拡大見込みを", "points": "pt押し上げ：", "is": "：", "space": " "},
}  # fmt: skip


def format_value(value: object, unit: str, lang: Lang, currency: str) -> str:
    """A feature value as a CSM reads it: 32%, 45 days, $12,000, yes/no."""
    if _missing(value):
        return _WORDS[lang]["unknown"]
    return value_formatter(unit, lang, currency)(value if unit == "category" else float(value))


SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥", "CNY": "¥", "INR": "₹", "KRW": "₩"}


def money(value: float, lang: Lang, currency: str) -> str:
    """An amount as people read it: $96,981, €96,981, 96,981円 (yen in Japanese), 96,981 CHF."""
    if _missing(value):
        return "–"
    if lang == "ja" and currency == "JPY":
        return f"{value:,.0f}円"
    symbol = SYMBOLS.get(currency)
    return f"{symbol}{value:,.0f}" if symbol else f"{value:,.0f} {currency}"


def date(value: dt.date, lang: Lang, short: bool = False) -> str:
    """January 26, 2026 (short: Jan 26, 2026), or 2026年1月26日."""
    if lang == "ja":
        return f"{value.year}年{value.month}月{value.day}日"
    return f"{value:%b %-d, %Y}" if short else f"{value:%B %-d, %Y}"


def percent(value: float, lang: Lang, digits: int = 1) -> str:
    """A share as a percentage ("–" when missing); the same in both languages."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value * 100:.{digits}f}%"


def number(value: float, lang: Lang) -> str:
    """A count with thousands separators; the same in both languages."""
    return f"{value:,.0f}"


def value_formatter(unit: str, lang: Lang, currency: str) -> Callable[[Any], str]:
    """The function that shows a (present) value of this unit."""
    words = _WORDS[lang]
    return {
        "category": str,
        "share": "{:.0%}".format,
        "percentile": "{:.0%}".format,
        "currency": lambda v: money(v, lang, currency),
        "days": lambda v: _days(f"{v:,.0f}", words),
        "flag": lambda v: words["yes"] if v >= 0.5 else words["no"],
        "ratio": "{:.2f}×".format,
    }.get(unit, _number)


def _days(shown: str, words: dict[str, str]) -> str:
    return words["day" if shown in ("1", "-1") else "days"].format(shown)


def _number(v: float) -> str:
    return f"{v:,.0f}" if v.is_integer() else f"{v:,.1f}"


def _missing(value: object) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def segment_label(segment: object, lang: Lang, names: dict[str, dict[str, str]]) -> str:
    """A segment's display name from `report.segment_names`, else its code."""
    return names.get(str(segment), {}).get(lang, str(segment))


def _around(feature: Feature, median: object, lang: Lang, segment: str,
            currency: str) -> tuple[str, str]:  # fmt: skip
    """The text before and after a feature's value: its short label, then its segment median."""
    words = _WORDS[lang]
    head = feature.label(lang) + words["is" if feature.unit in ("flag", "category") else "space"]
    if feature.categorical or feature.unit == "flag" or _missing(median):
        return head, ""
    median = format_value(median, feature.unit, lang, currency)
    return head, words["median"].format(segment=segment, value=median)


def _lead(target: str, points: np.ndarray, lang: Lang) -> np.ndarray:
    """'raises risk +3.1 pts: ' per contribution (probability points, as fractions); each
    distinct size is formatted once."""
    words = _WORDS[lang]
    codes, sizes = pd.factorize(np.round(np.asarray(points, float) * 100, 1))
    text = np.array([f"{words[target]}{v:+.1f}{words['points']}" for v in sizes], dtype=object)
    return text[codes]


def sentence(feature: Feature, value: object, median: object, lang: Lang, target: str,
             points: float, segment: str, currency: str) -> str:  # fmt: skip
    """'raises risk +3.1 pts: Active seats 30d 32% (Enterprise median 71%)'."""
    head, tail = _around(feature, median, lang, segment, currency)
    lead = str(_lead(target, np.array([points]), lang)[0])
    return lead + head + format_value(value, feature.unit, lang, currency) + tail


def segment_medians(values: pd.DataFrame, segment: pd.Series) -> pd.DataFrame:
    """Median of every numeric feature within each segment (rows: segment)."""
    numeric = values.select_dtypes("number")
    return numeric.groupby(segment.to_numpy()).median()


def engine_medians(table: ir.Table, names: list[str]) -> pd.DataFrame:
    """Median of every numeric feature within each segment, computed by the engine."""
    numeric = [c for c in names if c in table.columns and table[c].type().is_numeric()]
    if ibis.get_backend(table).name == "pyspark":
        return _sorted_medians(table, numeric)
    # A few columns a query: DuckDB's median holds its values outside its memory limit.
    groups = (numeric[i : i + 8] for i in range(0, len(numeric), 8))
    parts = [table.group_by("segment").aggregate(**{c: table[c].median() for c in some})
             .execute().set_index("segment") for some in groups]  # fmt: skip
    return pd.concat(parts, axis=1).astype(float) if parts else pd.DataFrame()


def _sorted_medians(table: ir.Table, numeric: list[str]) -> pd.DataFrame:
    """The same medians by sorting, for Spark: its exact median keeps every distinct value of a
    segment in one task's memory, which fails on large books. Here the values, one row per
    feature, are sorted within (segment, feature), spilling as needed, and the middle one (the
    two middle ones' midpoint, as DuckDB interpolates) is kept."""
    values = table.select("segment", *(table[c].cast("float64").name(c) for c in numeric))
    long = values.pivot_longer(numeric, names_to="feature", values_to="value")
    long = long.filter(long.value.notnull() & ~long.value.isnan())
    cell = ["segment", "feature"]
    at = long.mutate(i=ibis.row_number().over(group_by=cell, order_by=long.value) + 1,
                     n=long.value.count().over(group_by=cell))  # fmt: skip
    middle = at.filter((at.i == (at.n + 1) // 2) | (at.i == (at.n + 2) // 2))
    lo, hi = middle.value.min(), middle.value.max()
    found = middle.group_by(cell).aggregate(median=lo + (hi - lo) * 0.5).execute()
    medians = found.pivot(index="segment", columns="feature", values="median")
    return medians.reindex(columns=numeric).rename_axis(index="segment", columns=None)


MIN_POINTS = 0.001  # a reason raises its probability by at least 0.1 point (shown as +0.1)
REASON = pa.struct(
    [
        ("feature", pa.string()),
        ("value", pa.string()),
        ("contribution", pa.float64()),
        ("segment_median", pa.float64()),
        ("sentence", pa.string()),
    ]
)


def top_reasons(
    contributions: pd.DataFrame,
    values: pd.DataFrame,
    segment: pd.Series,
    medians: pd.DataFrame,
    catalogue: dict[str, Feature],
    lang: Lang,
    k: int,
    target: str = "churn",
    shown: ReportConfig | None = None,
) -> pa.ListArray:
    """Per row, the k largest positive contributions as a list of REASON records: feature, value,
    contribution (probability points), segment median (from `segment_medians` of the whole batch)
    and sentence (see `sentence`; segments and money as `shown` says). Features pushing the
    other way or by less than MIN_POINTS never appear, nor values on the other side of their
    segment median (see `_against`). Vectorised per feature, not per row.
    """
    matrix = np.where(_against(contributions, values, segment, medians, catalogue, target), 0.0,
                      contributions.to_numpy())  # fmt: skip
    names = np.asarray(contributions.columns)
    rows, cols, points, offsets = largest(matrix, k, MIN_POINTS)
    groups, back = by_column(cols)
    segments = segment.to_numpy()[rows]
    phrases = []  # one (raw, sentences, median) per feature that is someone's reason
    for at in groups:
        name = names[cols[at[0]]]
        feature = catalogue.get(name) or _unknown(name)
        column = values[name].to_numpy()[rows[at]]
        phrases.append(_phrases(feature, column, segments[at], medians.get(name), lang,
                                shown or ReportConfig()))  # fmt: skip
    raw, sentences, median = (
        pa.concat_arrays([p[i] for p in phrases] or [pa.array([], kind)]).take(back)
        for i, kind in enumerate((pa.string(), pa.string(), pa.float64()))
    )
    sentences = pc.binary_join_element_wise(
        pa.array(_lead(target, points, lang), pa.string()), sentences, "")
    records = pa.StructArray.from_arrays(
        [pa.array(names[cols], pa.string()), raw, pa.array(points), median, sentences],
        fields=list(REASON),
    )
    return pa.ListArray.from_arrays(pa.array(offsets), records)


_BETTER = {"higher": 1.0, "lower": -1.0}  # a healthy direction → the sign of "better than"


def _against(
    contributions: pd.DataFrame,
    values: pd.DataFrame,
    segment: pd.Series,
    medians: pd.DataFrame,
    catalogue: dict[str, Feature],
    target: str,
) -> np.ndarray:
    """Where a value would read as the opposite of the reason: a churn reason better than its
    segment median (more active seats than typical), or an expansion signal worse than it. Such a
    contribution is the model's interaction, not something a CSM can act on, so it is not shown."""
    sign = np.array([_BETTER.get(catalogue[n].healthy, 0.0) if n in catalogue and n in medians
                     else 0.0 for n in contributions.columns])  # fmt: skip
    judged = sign != 0  # neither neutral, nor outside the catalogue, nor without a median
    names = contributions.columns[judged]
    codes, segments = pd.factorize(segment.to_numpy())  # medians looked up by code, not by name
    typical = medians.reindex(index=segments, columns=names).to_numpy(dtype=float)[codes]
    better = (values[names].to_numpy(dtype=float, na_value=np.nan) - typical) * sign[judged]
    out = np.zeros(contributions.shape, dtype=bool)
    out[:, judged] = better > 0 if target == "churn" else better < 0
    return out


def largest(
    matrix: np.ndarray, k: int, minimum: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per row, the (up to) k largest values that reach `minimum`, largest first: their row and
    column indices and values (row-major), and each row's offset into them (for a ListArray).
    `matrix` is left as it was."""
    k = min(k, matrix.shape[1])
    if not matrix.flags.writeable or np.isnan(matrix).any():
        matrix = np.where(np.isnan(matrix), -np.inf, matrix)
    every = np.arange(len(matrix))
    top = np.empty((len(matrix), k), dtype=np.intp)
    values = np.empty((len(matrix), k))
    for slot in range(k):  # k passes of argmax (each taken out, then put back): a few of many
        top[:, slot] = matrix.argmax(axis=1)
        values[:, slot] = matrix[every, top[:, slot]]
        matrix[every, top[:, slot]] = -np.inf
    matrix[every[:, None], top] = values
    kept = values >= minimum
    rows, slots = np.nonzero(kept)
    offsets = np.zeros(len(matrix) + 1, np.int32)
    offsets[1:] = np.cumsum(kept.sum(axis=1))
    return rows, top[rows, slots], values[rows, slots], offsets


def by_column(cols: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """Positions grouped by column (each group non-empty), and the order that takes values
    concatenated group by group back to the original positions."""
    order = np.argsort(cols, kind="stable")
    groups = [g for g in np.split(order, np.flatnonzero(np.diff(cols[order])) + 1) if len(g)]
    return groups, np.argsort(order)


def no_reasons(rows: int) -> pa.ListArray:
    """`rows` empty lists of reasons (a model without skill gives none)."""
    return pa.ListArray.from_arrays(pa.array(np.zeros(rows + 1, np.int32)), pa.array([], REASON))


def _unknown(name: str) -> Feature:
    """A feature outside the catalogue (a custom feature table): named by its column."""
    return Feature(name=name, family="contract", source=Source.CUSTOM, unit="", healthy="neutral",
                   en=name, ja=name, expr=lambda t: t)


def _phrases(
    feature: Feature,
    values: np.ndarray,
    segments: np.ndarray,
    medians: pd.Series | None,
    lang: Lang,
    shown: ReportConfig,
) -> tuple[pa.Array, pa.Array, pa.Array]:
    """Raw values as text, sentences and segment medians for one feature's reasons; each
    distinct value and each segment is formatted once."""
    typical = pd.Series(dtype=float) if medians is None else medians
    codes, uniques = pd.factorize(values)
    missing = codes < 0
    if feature.categorical:
        uniques = np.asarray(uniques, dtype=str)
        text = uniques.tolist()
    else:  # 12 significant digits: the same text whatever order an engine summed in
        uniques = np.asarray(uniques, dtype=float)
        text = [f"{v:.12g}" for v in uniques.tolist()]
    raw = pa.array(text, pa.string()).take(pa.array(codes, mask=missing))
    texts = map(value_formatter(feature.unit, lang, shown.currency), uniques.tolist())
    texts = pa.array([*texts, _WORDS[lang]["unknown"]]).take(np.where(missing, len(uniques), codes))
    segment_codes, distinct_segments = pd.factorize(segments)
    around = [_around(feature, typical.get(s), lang,
                      segment_label(s, lang, shown.segment_names), shown.currency)
              for s in distinct_segments]  # fmt: skip
    tails = pa.array([tail for _, tail in around], pa.string()).take(segment_codes)
    head = _around(feature, None, lang, "", shown.currency)[0]
    sentences = pc.binary_join_element_wise(head, texts, tails, "")
    median = typical.reindex(distinct_segments).to_numpy(dtype=float)[segment_codes]
    median = pa.array(median, from_pandas=True)
    return raw, sentences, median
