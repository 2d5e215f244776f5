"""Labels follow docs/design.md: churn after grace, involuntary marked, expansion by ARR
or product."""

from __future__ import annotations

import pandas as pd
import pytest
from tests.helpers import T, accounts, day, events, subscription, tables

from churnml.config import LabelConfig
from churnml.features.labels import labelled_snapshots, month_starts

END = day(400).date()  # the data reaches far past T


def _labels(subs: list[dict], end=END, **cfg: object) -> pd.DataFrame:
    ids = sorted({s["account_id"] for s in subs})
    t = tables(
        accounts=accounts(*ids),
        subscriptions=pd.DataFrame(subs),
        usage_events=events((ids[0], day(-1))),
    )
    out = labelled_snapshots(t, [T], LabelConfig(**cfg), end=end).execute()
    return out.set_index("account_id").sort_index()


def test_no_renewal_within_horizon_is_churn() -> None:
    out = _labels([subscription("a", -300, 60), subscription("b", -300, 95)])
    assert out.churn_90d.to_dict() == {"a": 1, "b": 0}


def test_a_late_renewal_within_grace_is_not_churn() -> None:
    subs = [
        subscription("a", -300, 30),
        subscription("a", 50, 400),  # 20 days without ARR
        subscription("b", -300, 30),
        subscription("b", 65, 400),
    ]  # 35 days: churn, then win-back
    out = _labels(subs)
    assert out.churn_90d.to_dict() == {"a": 0, "b": 1}


def test_involuntary_churn_is_marked() -> None:
    subs = [
        subscription("a", -300, 60, canceled_at=day(20), cancel_reason="bankruptcy"),
        subscription("b", -300, 60, canceled_at=day(20), cancel_reason="too_expensive"),
    ]
    out = _labels(subs)
    assert out.churn_90d.to_dict() == {"a": 1, "b": 1}
    assert out.involuntary_churn_90d.to_dict() == {"a": 1, "b": 0}


def test_cancellation_date_is_the_churn_date() -> None:
    subs = [subscription("a", -300, 300, canceled_at=day(100), cancel_reason="low_usage")]
    assert _labels(subs).churn_90d.to_dict() == {"a": 0}


def test_expansion_needs_five_percent_more_arr_or_a_new_product() -> None:
    subs = [
        subscription("up", -300, 200, arr=1000.0),
        subscription("up", 30, 200, arr=60.0),
        subscription("small", -300, 200, arr=1000.0),
        subscription("small", 30, 200, arr=40.0),
        subscription("cross", -300, 200) | {"product": "platform"},
        subscription("cross", 10, 200, arr=10.0) | {"product": "analytics"},
        subscription("late", -300, 200, arr=1000.0),
        subscription("late", 91, 200, arr=500.0),
    ]
    out = _labels(subs)
    assert out.expansion_90d.to_dict() == {"cross": 1, "late": 0, "small": 0, "up": 1}


def test_a_renewal_at_the_same_price_is_not_expansion() -> None:
    subs = [subscription("a", -300, 30, arr=1000.0), subscription("a", 30, 400, arr=1030.0)]
    out = _labels(subs)
    assert (out.churn_90d.iloc[0], out.expansion_90d.iloc[0]) == (0, 0)


def test_labels_are_unknown_where_the_data_ends() -> None:
    subs = [subscription("a", -300, None)]
    assert _labels(subs, end=day(100).date()).churn_90d.isna().all()  # needs 90 + 30 days
    out = _labels(subs, end=day(100).date())
    assert out.expansion_90d.to_dict() == {"a": 0}
    assert _labels(subs, end=day(120).date()).churn_90d.to_dict() == {"a": 0}


def test_only_active_accounts_are_snapshotted() -> None:
    subs = [
        subscription("ended", -300, -10),
        subscription("future", 5, 300),
        subscription("open", -300, None),
        subscription("starts_today", 0, 300),
    ]
    out = _labels(subs)
    assert list(out.index) == ["open", "starts_today"]


@pytest.mark.parametrize("horizon", [30, 180])
def test_horizon_is_configurable(horizon: int) -> None:
    out = _labels([subscription("a", -300, 60)], horizon_days=horizon)
    assert out[f"churn_{horizon}d"].iloc[0] == (1 if horizon > 60 else 0)


def test_month_starts_are_strictly_after_the_first_day() -> None:
    import datetime as dt

    assert month_starts(dt.date(2024, 1, 1), dt.date(2024, 3, 1)) == [
        dt.date(2024, 2, 1),
        dt.date(2024, 3, 1),
    ]


def test_arr_after_the_horizon_is_the_arr_on_that_day() -> None:
    """ARR at as_of + 90 days: a renewal at a new price counts, a churn is 0, an ARR change on
    day 91 is not seen yet; unknown where the data ends before the day."""
    subs = [
        subscription("up", -300, 30, arr=1000.0),
        subscription("up", 30, 400, arr=1300.0),
        subscription("gone", -300, 60, arr=800.0),
        subscription("late", -300, 91, arr=500.0),
        subscription("late", 91, 400, arr=900.0),
    ]
    assert _labels(subs).arr_after_90d.to_dict() == {"gone": 0.0, "late": 500.0, "up": 1300.0}
    assert _labels(subs, end=day(89).date()).arr_after_90d.isna().all()
    assert _labels(subs, end=day(90).date()).arr_after_90d.notna().all()


def test_a_churn_keeps_its_stated_reason() -> None:
    subs = [
        subscription("a", -300, 300, canceled_at=day(20), cancel_reason="too_expensive"),
        subscription("b", -300, 60),  # the term ran out: no reason stated
        subscription("c", -300, 400),
        subscription("c", -300, 400, canceled_at=day(-200), cancel_reason="low_usage")
        | {"product": "addon"},  # an earlier cancellation of another row; c stays
    ]
    out = _labels(subs)
    assert out.churn_reason_90d.fillna("none").to_dict() == {"a": "too_expensive", "b": "none",
                                                             "c": "none"}  # fmt: skip
