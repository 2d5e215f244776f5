"""Revenue forecast with intervals: churned and expanded ARR, GRR and NRR over the next H days.

Each account's ARR H days on is drawn `draws` times (seeded), in this order:

1. involuntary churn (bankruptcy, acquisition, non-payment) at its segment's base rate: the
   ARR-weighted share of active accounts that churned for an involuntary reason within H days in
   the history;
2. else voluntary churn with the churn model's calibrated probability × a level drawn once per
   draw for the whole book;
3. else expansion with the expansion model's probability × its own level, ARR × a ratio drawn
   from those of the accounts that expanded in the history;
4. else ARR × a ratio drawn from those of the accounts that did neither (contractions, price
   changes; mostly 1).

The levels carry what independent draws per account miss: a model is right on average over
time, yet in a given quarter churn (or expansion) runs above or below it for the whole book at
once. Each level is Gamma-distributed with mean 1 (the central value stays the model's) and the
variance that the backtest's out-of-time errors show (`levels`): the spread of realised /
predicted ARR around 1, less the part the accounts' own randomness explains (0 when nothing is
left).

Per group and draw, GRR = Σ min(after, before) / Σ before and NRR = Σ after / Σ before. The central
value is the mean over the draws, the interval their 10th to 90th percentiles (80%). The history
comes from the labelled training rows (`learn`). The backtest (`backtest`) forecasts at past
cut-offs with out-of-time predictions and checks the intervals against what happened; the levels
it uses at a cut-off come only from cut-offs whose horizons do not overlap its own.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

import numpy as np
import pandas as pd
from scipy import sparse

QUANTILES = 101  # ratios kept per outcome (their quantiles)
LEVEL = 0.8  # the interval's coverage
MEASURES = ("churned_arr", "involuntary_arr", "expanded_arr", "grr", "nrr")


@dataclass(frozen=True)
class History:
    """What the labelled history says about revenue outcomes over H days."""

    involuntary: dict[str, float]  # segment → involuntary churn rate ("*": the whole book)
    expanded: list[float]  # quantiles of ARR after / before, accounts that expanded
    stayed: list[float]  # the same, accounts that neither churned nor expanded
    levels: dict[str, float] = field(default_factory=dict)  # target → variance of its level

    def as_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> History:
        return cls(**data)


def realised(frame: pd.DataFrame, names: dict[str, str]) -> pd.Series:
    """ARR H days on, as the forecast counts it: 0 after a churn (the label, with its grace),
    else the ARR on that day, or the ARR at as_of while a renewal is pending (no ARR that day)."""
    after = frame[names["arr_after"]].where(frame[names["arr_after"]] > 0, frame["arr"])
    return after.where(frame[names["churn"]] != 1, 0.0)


def learn(frame: pd.DataFrame, names: dict[str, str]) -> History:
    """Rates and ratios from labelled rows (segment, arr and every label known)."""
    known = frame.dropna(subset=[names["churn"], names["expansion"], names["arr_after"]])
    known = known[known["arr"] > 0]
    ratio = realised(known, names) / known["arr"]
    kept = known[names["churn"]] != 1
    grew = kept & (known[names["expansion"]] == 1)
    lost = known["arr"].where(known[names["involuntary"]].fillna(0).eq(1), 0.0)
    segment = known["segment"].astype(str)
    rates = lost.groupby(segment).sum() / known["arr"].groupby(segment).sum()
    return History(
        involuntary={"*": float(lost.sum() / known["arr"].sum()), **rates.round(6).to_dict()},
        expanded=_quantiles(ratio[grew]),
        stayed=_quantiles(ratio[kept & ~grew]),
    )


def _quantiles(values: pd.Series) -> list[float]:
    if values.empty:
        return [1.0]
    return np.round(np.quantile(values, np.linspace(0, 1, QUANTILES)), 6).tolist()


def forecast(book: pd.DataFrame, history: History, by: tuple[str, ...] = (), draws: int = 1000,
             seed: int = 0) -> pd.DataFrame:  # fmt: skip
    """The forecast for the whole book and for each group of each column in `by`: a row per
    group (level, group, accounts, arr) with each measure's central value and its 80% interval
    (`<measure>`, `<measure>_low`, `<measure>_high`). `book` holds arr, segment,
    churn_probability and expansion_probability (missing: no expansion forecast)."""
    book = book[book["arr"] > 0]
    levels = [("all", pd.Series("all", index=book.index)), *((c, book[c]) for c in by)]
    groups = [(level, g) for level, keys in levels for g in pd.unique(keys.astype(str))]
    member = sparse.hstack([_one_hot(keys.astype(str).to_numpy()) for _, keys in levels]).tocsr()
    arr = book["arr"].to_numpy(float)
    totals = {m: [] for m in ("churned_arr", "involuntary_arr", "expanded_arr", "gross", "after")}
    rng = np.random.default_rng(seed)
    for size in np.diff(np.r_[0:draws:100, draws]):  # 100 draws at a time: bounded memory
        for name, per_account in _draw(book, arr, history, int(size), rng).items():
            totals[name].append(per_account @ member)
    total = {name: np.vstack(parts) for name, parts in totals.items()}  # draws × groups
    before = arr @ member
    total["grr"], total["nrr"] = total.pop("gross") / before, total.pop("after") / before
    out = pd.DataFrame(groups, columns=["level", "group"])
    out["accounts"] = np.asarray(member.sum(axis=0)).ravel().astype(int)
    out["arr"] = before
    tail = (1 - LEVEL) / 2
    for name in MEASURES:
        out[name] = total[name].mean(axis=0)
        out[f"{name}_sd"] = total[name].std(axis=0)
        out[f"{name}_low"], out[f"{name}_high"] = np.quantile(total[name], [tail, 1 - tail], axis=0)
    return out


def _one_hot(keys: np.ndarray) -> sparse.csr_matrix:
    codes, uniques = pd.factorize(keys, sort=False)
    return sparse.csr_matrix((np.ones(len(keys)), (np.arange(len(keys)), codes)),
                             shape=(len(keys), len(uniques)))  # fmt: skip


def _draw(book: pd.DataFrame, arr: np.ndarray, history: History, size: int,
          rng: np.random.Generator) -> dict[str, np.ndarray]:  # fmt: skip
    """`size` draws of each account's outcome (draws × accounts)."""
    n = len(book)
    inv_rate = book["segment"].astype(str).map(history.involuntary).fillna(history.involuntary["*"])
    churn_p = book["churn_probability"].to_numpy(float) * _level(history, "churn", size, rng)
    grow_p = np.nan_to_num(book["expansion_probability"].to_numpy(float))
    grow_p = grow_p * _level(history, "expansion", size, rng)
    involuntary = rng.random((size, n)) < inv_rate.to_numpy(float)
    churned = involuntary | (rng.random((size, n)) < churn_p)
    grew = ~churned & (rng.random((size, n)) < grow_p)
    ratio = np.where(grew, _pick(history.expanded, size, n, rng),
                     _pick(history.stayed, size, n, rng))  # fmt: skip
    after = np.where(churned, 0.0, arr * ratio)
    return {
        "churned_arr": np.where(churned & ~involuntary, arr, 0.0),
        "involuntary_arr": np.where(involuntary, arr, 0.0),
        "expanded_arr": np.maximum(after - arr, 0.0),
        "gross": np.minimum(after, arr),
        "after": after,
    }


def _level(history: History, target: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """A level per draw (a column): Gamma with mean 1 and the history's variance for `target`."""
    variance = history.levels.get(target, 0.0)
    if variance <= 0:
        return np.ones((size, 1))
    return rng.gamma(1 / variance, variance, (size, 1))


def levels(backtested: pd.DataFrame) -> dict[str, float]:
    """Each target's level variance, from the plain forecasts (no levels) of a backtest beside
    what happened: mean of ((realised − predicted)² − the draws' own variance) / predicted²."""
    out = {}
    for target in ("churn", "expansion"):
        predicted = backtested[f"{target}_predicted"]
        if len(backtested) < 2 or (predicted <= 0).any():
            out[target] = 0.0
            continue
        excess = (backtested[f"{target}_realised"] - predicted) ** 2 - backtested[f"{target}_noise"]
        out[target] = round(max(0.0, float((excess / predicted**2).mean())), 6)
    return out


def _pick(quantiles: list[float], size: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """Ratios drawn from a distribution kept as its quantiles (interpolated)."""
    q = np.asarray(quantiles)
    return np.interp(rng.random((size, n)) * (len(q) - 1), np.arange(len(q)), q)


def backtest(frame: pd.DataFrame, predictions: pd.DataFrame, names: dict[str, str],
             reach_days: int, draws: int = 1000, seed: int = 0) -> pd.DataFrame:  # fmt: skip
    """At each past cut-off with out-of-time predictions (account_id, as_of, churn_probability,
    expansion_probability), the book's forecast from the history known before it (labels whose
    `reach_days` had passed), beside what happened: a row per cut-off with the forecast, the
    realised GRR and NRR and whether each fell in its interval; and, for `levels`, the plain
    forecast's churned and expanded ARR (`<target>_predicted`, `_noise`: its variance) beside
    the realised (`<target>_realised`). The levels at a cut-off come from the cut-offs at least
    `reach_days` away."""
    frame = frame.assign(as_of=pd.to_datetime(frame["as_of"]))
    cases = [case for cutoff, preds in predictions.groupby("as_of")
             if (case := _case(frame, cutoff, preds, names, reach_days)) is not None]  # fmt: skip
    if not cases:
        return pd.DataFrame()
    facts = pd.DataFrame([_facts(book, history, names, draws, seed) for _, book, history in cases])
    dates = pd.to_datetime(pd.Series([cutoff for cutoff, _, _ in cases]))
    rows = []
    for k, (cutoff, book, history) in enumerate(cases):
        apart = ((dates - cutoff).abs() >= pd.Timedelta(days=reach_days)).to_numpy()
        got = forecast(book, replace(history, levels=levels(facts[apart])), draws=draws,
                       seed=seed).iloc[0]  # fmt: skip
        after, before = realised(book, names), book["arr"]
        rows.append({"cutoff": cutoff.date(), "accounts": len(book),
                     **got.drop(["level", "group", "accounts", "arr"]),
                     "grr_realised": float(np.minimum(after, before).sum() / before.sum()),
                     "nrr_realised": float(after.sum() / before.sum()),
                     **facts.iloc[k]})  # fmt: skip
    out = pd.DataFrame(rows)
    for m in ("grr", "nrr"):
        out[f"{m}_covered"] = out[f"{m}_realised"].between(out[f"{m}_low"], out[f"{m}_high"])
    return out


def _case(frame: pd.DataFrame, cutoff: pd.Timestamp, preds: pd.DataFrame, names: dict[str, str],
          reach_days: int) -> tuple[pd.Timestamp, pd.DataFrame, History] | None:  # fmt: skip
    """The book at a cut-off with its predictions, and the history known then."""
    known = frame[frame["as_of"] + pd.Timedelta(days=reach_days) <= cutoff]
    book = frame[frame["as_of"] == cutoff].dropna(subset=[names["churn"], names["arr_after"]])
    if known.empty or book.empty:
        return None
    book = book.merge(preds, on=["account_id", "as_of"], how="left")
    by_segment = book.groupby("segment")["churn_probability"].transform("mean")
    # rows left out of the churn model's data (involuntary churns): their segment's mean
    book["churn_probability"] = book["churn_probability"].fillna(by_segment)
    return cutoff, book, learn(known, names)


def _facts(book: pd.DataFrame, history: History, names: dict[str, str], draws: int,
           seed: int) -> dict[str, float]:  # fmt: skip
    """The plain forecast (no levels) of churned and expanded ARR, its variance, and what
    happened: voluntary churned ARR, and ARR gained."""
    plain = forecast(book, history, draws=draws, seed=seed).iloc[0]
    churned = (book[names["churn"]] == 1) & (book[names["involuntary"]] != 1)
    gained = (realised(book, names) - book["arr"]).clip(lower=0)
    return {
        "churn_predicted": plain["churned_arr"], "churn_noise": plain["churned_arr_sd"] ** 2,
        "churn_realised": float(book["arr"][churned].sum()),
        "expansion_predicted": plain["expanded_arr"],
        "expansion_noise": plain["expanded_arr_sd"] ** 2,
        "expansion_realised": float(gained.sum()),
    }  # fmt: skip


def summary(backtested: pd.DataFrame) -> dict[str, float]:
    """Coverage of the 80% intervals and mean absolute error of the central values (points)."""
    if backtested.empty:
        return {}
    out = {"forecast_cutoffs": float(len(backtested))}
    for m in ("grr", "nrr"):
        out[f"forecast_{m}_coverage"] = float(backtested[f"{m}_covered"].mean())
        error = (backtested[m] - backtested[f"{m}_realised"]).abs().mean()
        out[f"forecast_{m}_mae_pts"] = float(error * 100)
    return out
