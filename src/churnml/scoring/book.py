"""What depends on the whole scored book, done once every chunk is in: the scorecard and health
as percentiles, the next best action, the play, and the priority of the today list.

Scorecard (documented for CSMs): each family's score is the account's percentile within its
segment of how much that family lowers its churn risk (the family's log-odds contributions,
negated). 90 means the family looks at least as good as for 90% of the segment's accounts; empty
means "no signal" (the account has no data in that family, or the model does not use it). Health
is the account's percentile of low churn risk across the whole book: 90 means its churn risk is
no higher than that of 90% of the book, so its order is the order of risk.

Priority ("act today"): ARR at stake (ARR at risk plus expected expansion ARR) × urgency, where
urgency rises from 1 to 2 as the renewal comes within `scoring.save_runway_days` (2 when the
renewal is overdue or pending).

The percentiles need the whole book; the rest is row by row (`act`). In memory, `finish` does
both. For a book of any size the engine counts the ranks (`ranked`, window functions on DuckDB
or Spark) and `shares` turns them into the same percentiles, chunk by chunk.
"""

from __future__ import annotations

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd
import pyarrow as pa

from churnml.config import ScoringConfig
from churnml.features.catalogue import FAMILIES, Feature, family
from churnml.scoring.actions import next_best_action
from churnml.scoring.plays import choose_plays, load_library
from churnml.scoring.reasons import REASON


def percentile(values: pd.Series, groups: pd.Series | None = None) -> pd.Series:
    """Share (0–100) of its group's values that each value is at least as high as; missing
    values stay missing (and do not count)."""
    values = pd.to_numeric(values, errors="coerce")
    grouped = values.groupby(pd.Series(0, index=values.index) if groups is None else groups)
    return share(grouped.rank(method="max"), grouped.transform("count"))


RANKED = (*(f"score_{f}" for f in FAMILIES), "health_score")  # percentiles over the book


def ranks(scores: ir.Table) -> dict[str, ir.Value]:
    """The engine's `rank:<column>` and `size:<column>` of each RANKED column: how many of the
    group's values are at most the account's (peers included), and how many values the group
    has; the group is the segment for the scorecard, the whole book for health. Missing and NaN
    values neither rank nor count, so that `share` gives what `percentile` gives in memory."""
    out: dict[str, ir.Value] = {}
    for name in RANKED:
        value = ibis.ifelse(scores[name].isnan(), ibis.null("float64"), scores[name])
        group = [] if name == "health_score" else ["segment"]
        upto = ibis.range_window(group_by=group, order_by=value, preceding=None, following=0)
        out[f"rank:{name}"] = ibis.ifelse(value.isnull(), ibis.null("int64"),
                                          value.count().over(upto))  # fmt: skip
        out[f"size:{name}"] = value.count().over(group_by=group)
    return out


def ranked(scores: ir.Table) -> ir.Table:
    """`scores` (an engine table) with their `ranks`, computed on the narrow columns."""
    narrow = scores.select("account_id", "segment", *RANKED)
    return scores.inner_join(narrow.select("account_id", **ranks(narrow)), "account_id")


def shares(ranked: pd.DataFrame) -> pd.DataFrame:
    """Rows with `ranks` as pandas: each RANKED column set to its percentile, ranks dropped."""
    columns = {name: share(ranked[f"rank:{name}"], ranked[f"size:{name}"]) for name in RANKED}
    return ranked.drop(columns=[c for c in ranked if c.startswith(("rank:", "size:"))]).assign(
        **columns)  # fmt: skip


def share(rank: pd.Series, size: pd.Series) -> pd.Series:
    """A percentile from a value's rank (how many of its group's values are at most it) and the
    size of its group (how many values it has), to 0.1."""
    return (rank / size * 100).round(1)


def first_feature(reasons: pd.Series) -> pd.Series:
    """The feature of each row's first reason (None where there is none)."""
    out = np.full(len(reasons), None, dtype=object)
    if reasons.notna().any():
        lists = pa.array(reasons.array, type=pa.list_(REASON))
        if isinstance(lists, pa.ChunkedArray):  # scored in chunks
            lists = lists.combine_chunks()
        lengths = lists.value_lengths().fill_null(0).to_numpy()
        names = np.asarray(lists.flatten().field("feature").to_numpy(zero_copy_only=False), object)
        has = lengths > 0
        out[has] = names[(np.cumsum(lengths) - lengths)[has]]
    return pd.Series(out, index=reasons.index, dtype=object)


def finish(scores: pd.DataFrame, sc: ScoringConfig, cat: dict[str, Feature]) -> pd.DataFrame:
    """Turn the chunks' raw family pulls into the scorecard and health, then `act`."""
    out = scores.copy()
    segment = out.segment.astype(str)
    for f in FAMILIES:
        out[f"score_{f}"] = percentile(out[f"score_{f}"], segment)
    out["health_score"] = percentile(out.health_score)  # chunks: −raw, from a skilled model
    return act(out, sc, cat)


def act(out: pd.DataFrame, sc: ScoringConfig, cat: dict[str, Feature]) -> pd.DataFrame:
    """Add the action, the play and the priority to accounts whose scorecard and health are
    percentiles already, row by row (see the module docstring), in place; returns `out`. Each
    first reason's feature is read from `first_<reasons column>` where given, else from the
    reasons."""
    segment = out.segment.astype(str)
    days_to_renewal = (pd.to_datetime(out.renewal_date) - pd.to_datetime(out.as_of)).dt.days
    out["next_best_action"] = next_best_action(
        out.churn_tier.to_numpy(), out.expansion_tier.to_numpy(), out.score_adoption.to_numpy(),
        sc, out.arr_at_risk.to_numpy(), days_to_renewal.to_numpy(dtype=float),
    )  # fmt: skip
    expanding = out.next_best_action == "expand"
    first = {c: out[f"first_{c}"] if f"first_{c}" in out else first_feature(out[c])
             for c in ("churn_reasons", "expansion_signals")}  # given when scored in a stream
    driver = first["churn_reasons"].where(~expanding, first["expansion_signals"])
    driver_family = driver.map({n: family(cat[n]) for n in driver.dropna().unique() if n in cat})
    library = load_library(sc.plays)
    plays = choose_plays(library, out.next_best_action, driver, driver_family, segment, out.as_of,
                         out.renewal_date)  # fmt: skip
    out[plays.columns] = plays
    stake = out.arr_at_risk.fillna(0) + out.expected_expansion_arr.fillna(0)
    runway = max(sc.save_runway_days, 1)
    urgency = 1 + ((runway - days_to_renewal.fillna(np.inf)) / runway).clip(0, 1)
    out["priority"] = (stake * urgency).round(2)
    return out
