"""Top reasons as structured records and as sentences in English or Japanese, from the catalogue."""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import pandas as pd

from churnml.features.catalogue import Feature

Lang = Literal["en", "ja"]
_WORDS = {
    "en": {"yes": "yes", "no": "no", "unknown": "unknown", "days": "{} days",
           "median": "segment median {}"},
    "ja": {"yes": "はい", "no": "いいえ", "unknown": "不明", "days": "{}日",
           "median": "セグメント中央値 {}"},
}  # fmt: skip


def format_value(value: object, unit: str, lang: Lang) -> str:
    """A feature value as a CSM reads it: 32%, 45 days, $12,000, yes/no."""
    words = _WORDS[lang]
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return words["unknown"]
    if unit == "category":
        return str(value)
    v = float(value)
    if unit in ("share", "percentile"):
        return f"{v:.0%}"
    if unit == "currency":
        return f"${v:,.0f}"
    if unit == "days":
        return words["days"].format(f"{v:,.0f}")
    if unit == "flag":
        return words["yes"] if v >= 0.5 else words["no"]
    if unit == "ratio":
        return f"{v:.2f}×"
    return f"{v:,.0f}" if v.is_integer() else f"{v:,.1f}"


def sentence(feature: Feature, value: object, median: object, lang: Lang) -> str:
    """'Share of purchased seats active in the last 30 days: 32% (segment median 71%)'."""
    text = feature.ja if lang == "ja" else feature.en
    shown = format_value(value, feature.unit, lang)
    if feature.categorical or median is None or (isinstance(median, float) and math.isnan(median)):
        return f"{text}：{shown}" if lang == "ja" else f"{text}: {shown}"
    typical = _WORDS[lang]["median"].format(format_value(median, feature.unit, lang))
    return f"{text}：{shown}（{typical}）" if lang == "ja" else f"{text}: {shown} ({typical})"


def segment_medians(values: pd.DataFrame, segment: pd.Series) -> pd.DataFrame:
    """Median of every numeric feature within each segment (rows: segment)."""
    numeric = values.select_dtypes("number")
    return numeric.groupby(segment.to_numpy()).median()


def top_reasons(
    contributions: pd.DataFrame,
    values: pd.DataFrame,
    segment: pd.Series,
    medians: pd.DataFrame,
    catalogue: dict[str, Feature],
    lang: Lang,
    k: int,
) -> list[list[dict[str, object]]]:
    """Per row, the k largest positive contributions: feature, value, contribution (probability
    points), segment median (from `segment_medians` of the whole batch) and sentence. Features
    pushing the other way never appear."""
    matrix = contributions.to_numpy()
    order = np.argsort(-matrix, axis=1, kind="stable")[:, :k]
    names = np.array(contributions.columns)
    out = []
    for row, (idx, seg) in enumerate(zip(order, segment.to_numpy(), strict=True)):
        reasons = []
        for j in idx:
            if matrix[row, j] <= 0:
                break
            name = names[j]
            value = values.iloc[row][name]
            median = medians.at[seg, name] if name in medians.columns else None
            feature = catalogue.get(name) or Feature(
                name, "contract", "custom", "", "neutral", name, name, lambda t: t
            )
            reasons.append(
                {
                    "feature": name,
                    "value": None if pd.isna(value) else str(value),
                    "contribution": float(matrix[row, j]),
                    "segment_median": None if median is None or pd.isna(median) else float(median),
                    "sentence": sentence(feature, value, median, lang),
                }
            )
        out.append(reasons)
    return out
