"""What is known when a contract is signed, and whether the account was lost in its first year:
one row per account, for the fit model that Sales scores new deals with.

* signed_at: the first day the account had paid ARR; ``as_of`` is the first day of that month
  (the cohort: the fit model is split by time on it).
* Known at signing: the account's firmographics (segment, industry, region, acquisition channel,
  employees) and its first contract: ARR, seats, products, plan (of its largest row) and term in
  months (0 for a row with no end: month to month).
* ``lost_first_year`` (vocabulary.LOST_FIRST_YEAR): 1 when the account churned (as the churn
  label defines it, grace included) or held less ARR than at signing, by FIRST_YEAR_DAYS after
  signing; null when the data does not reach that far (plus the grace). Involuntary churns are
  marked (``involuntary``) and left out of training, as for the churn model.
* ``arr_after``: ARR FIRST_YEAR_DAYS after signing (0 when churned), for retention by profile.
"""

from __future__ import annotations

import datetime as dt
from itertools import combinations

import ibis
import ibis.expr.types as ir
import pandas as pd

from churnml.config import LabelConfig
from churnml.features.labels import _churn, _rows, data_end, label_columns
from churnml.io import plain
from churnml.vocabulary import FIRST_YEAR_DAYS, LOST_FIRST_YEAR

FIRMOGRAPHICS = ("segment", "industry", "region", "acquisition_channel", "employees")
CONTRACT = ("arr", "seats", "products", "plan", "term_months")
SIGNING_FEATURES = (*FIRMOGRAPHICS, *CONTRACT)
PROFILE_COLUMNS = ("segment", "acquisition_channel", "industry", "plan", "term_months")


def _first_contract(subs: ir.Table) -> ir.Table:
    """account_id, signed_at and the contract held that day (rows active on it)."""
    rows = _rows(subs)
    first = rows.group_by("account_id").aggregate(signed_at=rows.start_date.min())
    at = rows.inner_join(first, "account_id")
    at = at.filter(at.start_date <= at.signed_at, at.signed_at < at.row_end)
    term = at.end_date.delta(at.start_date, unit="day").fill_null(0)
    return at.group_by("account_id", "signed_at").aggregate(
        arr=at.arr.sum(),
        seats=at.seats.sum(),
        products=at["product"].nunique(),
        plan=at.plan.argmax(at.arr),
        term_months=(term.argmax(at.arr) / 30.44).round().cast("int64"),
    )


def signing_table(tables: dict[str, ir.Table], labels: LabelConfig,
                  end: dt.date | None = None) -> pd.DataFrame:  # fmt: skip
    """One row per account: signing features, the first-year label and ARR a year on (module
    docstring). Columns the data does not hold (all null) are left out."""
    subs, end = tables["subscriptions"], end or data_end(tables)
    deals = _first_contract(subs)
    year = labels.model_copy(update={"horizon_days": FIRST_YEAR_DAYS})
    names = label_columns(year)
    churn = _churn(deals.mutate(as_of=deals.signed_at), subs, year, end)
    later = _rows(subs).inner_join(deals.select("account_id", "signed_at"), "account_id")
    day = later.signed_at + ibis.interval(days=FIRST_YEAR_DAYS)
    held = (later.start_date <= day) & (day < later.row_end)
    after = later.group_by("account_id").aggregate(arr_after=later.arr.sum(where=held))
    firms = tables["accounts"].select("account_id", *(c for c in FIRMOGRAPHICS))
    frame = (
        deals.inner_join(firms, "account_id")
        .inner_join(churn.rename(signed_at="as_of"), ["account_id", "signed_at"])
        .inner_join(after, "account_id")
        .execute()
    )
    frame["arr_after"] = frame["arr_after"].fillna(0.0)
    churned, involuntary = frame[names["churn"]], frame[names["involuntary"]]
    shrank = (frame["arr_after"] > 0) & (frame["arr_after"] < frame["arr"] - 0.005)
    lost = (churned.fillna(0) == 1) | shrank
    frame[LOST_FIRST_YEAR] = lost.astype("Int8").where(churned.notna())
    frame["involuntary"] = involuntary.fillna(0).astype("int8")
    frame["arr_after"] = frame["arr_after"].where(churned.notna())
    frame["signed_at"] = pd.to_datetime(frame["signed_at"])
    frame.insert(1, "as_of", frame["signed_at"].dt.to_period("M").dt.to_timestamp())
    frame = frame.drop(columns=[c for c in names.values() if c in frame])
    present = [c for c in SIGNING_FEATURES if frame[c].notna().any()]
    keep = ["account_id", "as_of", "signed_at", *present, LOST_FIRST_YEAR, "involuntary",
            "arr_after"]  # fmt: skip
    return frame[keep].sort_values(["as_of", "account_id"], ignore_index=True)


def profiles(frame: pd.DataFrame, min_accounts: int) -> list[dict[str, object]]:
    """How signed accounts fared in their first year, by profile: each value of the profile
    columns, and each pair of them, with at least `min_accounts` labelled accounts (involuntary
    churns left out). ARR-weighted: the share of signing ARR on accounts lost, and first-year
    NRR (ARR a year on over ARR at signing); best NRR first."""
    known = frame[frame[LOST_FIRST_YEAR].notna() & (frame["involuntary"] == 0)].copy()
    dims = [c for c in PROFILE_COLUMNS if c in known and known[c].nunique() > 1]
    known["lost_arr"] = known["arr"].where(known[LOST_FIRST_YEAR] == 1, 0.0)
    out = []
    for combo in [*combinations(dims, 1), *combinations(dims, 2)]:
        g = known.groupby(list(combo), observed=True).agg(
            accounts=("account_id", "size"), arr=("arr", "sum"), lost_arr=("lost_arr", "sum"),
            arr_after=("arr_after", "sum"), lost=(LOST_FIRST_YEAR, "mean"))  # fmt: skip
        for key, r in g[g.accounts >= min_accounts].iterrows():
            values = key if isinstance(key, tuple) else (key,)
            out.append({"profile": {c: plain(v) for c, v in zip(combo, values, strict=True)},
                        "accounts": int(r.accounts), "arr": float(r.arr),
                        "lost_rate": float(r.lost), "lost_arr_rate": float(r.lost_arr / r.arr),
                        "nrr": float(r.arr_after / r.arr)})  # fmt: skip
    return sorted(out, key=lambda p: -p["nrr"])
