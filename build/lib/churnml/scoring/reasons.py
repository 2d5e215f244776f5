"""Top reasons as structured records and as sentences in English or Japanese, from the catalogue."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

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
    if _missing(value):
        return _WORDS[lang]["unknown"]
    return value_formatter(unit, lang)(value if unit == "category" else float(value))


def value_formatter(unit: str, lang: Lang) -> Callable[[Any], str]:
    """The function that shows a (present) value of this unit."""
    words = _WORDS[lang]
    return {
        "category": str,
        "share": "{:.0%}".format,
        "percentile": "{:.0%}".format,
        "currency": "${:,.0f}".format,
        "days": lambda v: words["days"].format(f"{v:,.0f}"),
        "flag": lambda v: words["yes"] if v >= 0.5 else words["no"],
        "ratio": "{:.2f}×".format,
    }.get(unit, _number)


def _number(v: float) -> str:
    return f"{v:,.0f}" if v.is_integer() else f"{v:,.1f}"


def _missing(value: object) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def _around(feature: Feature, median: object, lang: Lang) -> tuple[str, str]:
    """The text before and after a feature's value: its description, then its segment median."""
    text, sep, left, right = (
        (feature.ja, "：", "（", "）") if lang == "ja" else (feature.en, ": ", " (", ")")
    )
    if feature.categorical or _missing(median):
        return text + sep, ""
    typical = _WORDS[lang]["median"].format(format_value(median, feature.unit, lang))
    return text + sep, f"{left}{typical}{right}"


def sentence(feature: Feature, value: object, median: object, lang: Lang) -> str:
    """'Share of purchased seats active in the last 30 days: 32% (segment median 71%)'."""
    head, tail = _around(feature, median, lang)
    return head + format_value(value, feature.unit, lang) + tail


def segment_medians(values: pd.DataFrame, segment: pd.Series) -> pd.DataFrame:
    """Median of every numeric feature within each segment (rows: segment)."""
    numeric = values.select_dtypes("number")
    return numeric.groupby(segment.to_numpy()).median()


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
) -> pa.ListArray:
    """Per row, the k largest positive contributions as a list of REASON records: feature, value,
    contribution (probability points), segment median (from `segment_medians` of the whole batch)
    and sentence. Features pushing the other way never appear. Vectorised per feature, not per row.
    """
    matrix = contributions.to_numpy()
    names = np.asarray(contributions.columns)
    k = min(k, matrix.shape[1])
    top = np.argpartition(-matrix, k - 1, axis=1)[:, :k]  # the k largest, then in order
    top = np.take_along_axis(top, np.argsort(-np.take_along_axis(matrix, top, 1), axis=1), 1)
    points = np.take_along_axis(matrix, top, axis=1)
    rows, slots = np.nonzero(points > 0)  # row-major: each row's reasons in order, positives first
    cols = top[rows, slots]
    by_feature = np.argsort(cols, kind="stable")
    segments = segment.to_numpy()[rows]
    phrases = []  # one (raw, sentences, median) per feature that is someone's reason
    for at in np.split(by_feature, np.flatnonzero(np.diff(cols[by_feature])) + 1):
        if len(at):
            name = names[cols[at[0]]]
            feature = catalogue.get(name) or _unknown(name)
            column = values[name].to_numpy()[rows[at]]
            phrases.append(_phrases(feature, column, segments[at], medians.get(name), lang))
    back = np.argsort(by_feature)  # from grouped by feature to row order
    raw, sentences, median = (
        pa.concat_arrays([p[i] for p in phrases] or [pa.array([], kind)]).take(back)
        for i, kind in enumerate((pa.string(), pa.string(), pa.float64()))
    )
    offsets = np.zeros(len(matrix) + 1, np.int32)
    offsets[1:] = np.cumsum((points > 0).sum(axis=1))
    records = pa.StructArray.from_arrays(
        [pa.array(names[cols], pa.string()), raw, pa.array(points[rows, slots]), median, sentences],
        fields=list(REASON),
    )
    return pa.ListArray.from_arrays(pa.array(offsets), records)


def no_reasons(rows: int) -> pa.ListArray:
    """`rows` empty lists of reasons (a model without skill gives none)."""
    return pa.ListArray.from_arrays(pa.array(np.zeros(rows + 1, np.int32)), pa.array([], REASON))


def _unknown(name: str) -> Feature:
    """A feature outside the catalogue (a custom feature table): named by its column."""
    return Feature(name, "contract", "custom", "", "neutral", name, name, lambda t: t)


def _phrases(
    feature: Feature,
    values: np.ndarray,
    segments: np.ndarray,
    medians: pd.Series | None,
    lang: Lang,
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
    shown = map(value_formatter(feature.unit, lang), uniques.tolist())
    shown = pa.array([*shown, _WORDS[lang]["unknown"]]).take(np.where(missing, len(uniques), codes))
    segment_codes, segment_names = pd.factorize(segments)
    around = [_around(feature, typical.get(s), lang) for s in segment_names]
    tails = pa.array([tail for _, tail in around], pa.string()).take(segment_codes)
    sentences = pc.binary_join_element_wise(_around(feature, None, lang)[0], shown, tails, "")
    median = pa.array(typical.reindex(segments).to_numpy(dtype=float), from_pandas=True)
    return raw, sentences, median
