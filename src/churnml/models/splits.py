"""Where a target's rows are cut: the test part, the training span and the validation folds
inside it (by time; one row per account by cohort; by label for a single date)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedKFold, train_test_split

from churnml.config import ModelConfig


class TrainingError(ValueError):
    """The data cannot support the requested training (too short a history, one class, …)."""


@dataclass
class Fold:
    """Row masks: what a validation fold fits on, and what it is judged on."""

    fit: np.ndarray
    valid: np.ndarray


@dataclass
class Split:
    """Row masks for the training span and the test part, the folds inside the training span,
    and the dates each covers (for people)."""

    train: np.ndarray
    test: np.ndarray
    folds: list[Fold]
    kind: str  # "time", "cohort" (one row per account) or "stratified"
    dates: dict[str, str] = field(default_factory=dict)

    @property
    def valid(self) -> np.ndarray:
        """Every row that some fold is judged on."""
        return np.logical_or.reduce([f.valid for f in self.folds])

    def describe(self) -> str:
        return "; ".join(f"{k} {v}" for k, v in self.dates.items())


def _span(dates: list[pd.Timestamp]) -> str:
    first, last = dates[0], dates[-1]
    return f"{first:%Y-%m-%d}" + ("" if first == last else f" … {last:%Y-%m-%d}") + (
        f" ({len(dates)} dates)")  # fmt: skip


def _folds(dates: list, gap: pd.Timedelta, m: ModelConfig) -> list[tuple[list, list]]:
    """Time-ordered (fit dates, validation dates) pairs inside `dates`, latest last: as many as
    `m.folds`, blocks of up to `m.valid_dates`, each fitting on ≥ `m.min_train_dates` dates."""
    for block in range(m.valid_dates, 0, -1):
        out, end = [], len(dates)
        while len(out) < m.folds and end - block >= 0:
            valid = dates[end - block : end]
            fit_dates = [d for d in dates if d <= valid[0] - gap]
            if len(fit_dates) < m.min_train_dates:
                break
            out.append((fit_dates, valid))
            end -= block
        if out:
            return out[::-1]
    return []


def time_split(as_of: pd.Series, horizon_days: int, m: ModelConfig, end: int = 0) -> Split:
    """Test part, then (one horizon earlier) the training span with its validation folds.
    Parts shrink to what the dates hold; `end` drops that many latest dates (backtests)."""
    dates = sorted(as_of.unique())
    if end:
        dates = dates[:-end]
    gap = pd.Timedelta(days=horizon_days)
    values = as_of.to_numpy()
    for k in range(min(m.test_dates, max(len(dates) - 1, 1)), 0, -1):
        test = dates[-k:]
        train = [d for d in dates if d <= test[0] - gap]
        folds = _folds(train, gap, m)
        if folds:
            spans = {"train": _span(train), "test": _span(test)}
            spans |= {f"fold {i + 1}": f"fit {_span(f)} → validate {_span(v)}"
                      for i, (f, v) in enumerate(folds)}  # fmt: skip
            return Split(
                np.isin(values, train),
                np.isin(values, test),
                [Fold(np.isin(values, f), np.isin(values, v)) for f, v in folds],
                "time",
                spans,
            )
    raise TrainingError(_too_short(dates, horizon_days, m))


def _too_short(dates: list, horizon_days: int, m: ModelConfig) -> str:
    """Why `dates` hold no time split, and what would fix it: more history, or more dates."""
    need = 1 + m.min_train_dates + 1
    what = (f"{len(dates)} labelled as_of dates" + (f" ({_span(dates)})" if dates else "")
            + f" cannot hold a test date and, {horizon_days} days before it, a validation date "
            f"with {m.min_train_dates} training date(s) another {horizon_days} days before that")
    if len(dates) >= m.min_train_dates:
        anchor = dates[m.min_train_dates - 1]
        days = (dates[-1] - anchor).days
        if days < 2 * horizon_days:
            return (f"{what}: the last is {days} days after training date "
                    f"{m.min_train_dates} ({anchor:%Y-%m-%d}), where two horizons need "
                    f"{2 * horizon_days}. Load at least {2 * horizon_days - days} more days of "
                    "history (the last labelled date is a horizon before the data end), or "
                    "shorten labels.horizon_days, or lower model.min_train_dates")  # fmt: skip
    return (f"{what} (at least {need} dates spread over two horizons). Snapshot more often "
            "(labels.snapshot_every: week or half_month), load a longer history, or lower "
            "model.min_train_dates")


def stratified_split(y: np.ndarray, seed: int) -> Split:
    """80/20 by label, one validation fold of a quarter of the training rows: only for a table
    with a single as_of (no time to cut by)."""
    idx = np.arange(len(y))
    train, test = train_test_split(idx, test_size=0.2, stratify=y, random_state=seed)
    fit_idx, valid = train_test_split(train, test_size=0.25, stratify=y[train], random_state=seed)
    mask = [np.isin(idx, part) for part in (train, test, fit_idx, valid)]
    return Split(mask[0], mask[1], [Fold(mask[2], mask[3])], "stratified")


def cohort_split(as_of: pd.Series, y: np.ndarray, m: ModelConfig) -> Split:
    """For one row per account (the fit model): the latest dates are the test part (at most
    `m.test_dates`, at most a third of them; more, up to half, until it holds both classes),
    every earlier row the training span, judged in stratified random folds (the rows share no
    label window, so the folds need no gap, and every training row validates once)."""
    dates = sorted(as_of.unique())
    if len(dates) < 2:
        raise TrainingError(f"{len(dates)} labelled signing month(s): a time split needs two")
    k = min(m.test_dates, max(1, len(dates) // 3))
    while len(np.unique(y[(as_of >= dates[-k]).to_numpy()])) < 2 and k < len(dates) // 2:
        k += 1
    test_dates = dates[-k:]
    train, test = (as_of < test_dates[0]).to_numpy(), (as_of >= test_dates[0]).to_numpy()
    if len(np.unique(y[test])) < 2:
        raise TrainingError(f"the latest signing months ({_span(test_dates)}) hold "
                            f"{int(test.sum())} row(s) of a single class: nothing to test on")
    rows = np.flatnonzero(train)
    k = int(min(max(m.folds, 3), np.bincount(y[rows].astype(int), minlength=2).min()))
    if k < 2:
        raise TrainingError("the training span holds fewer than two rows of each class")
    folds = []
    for fit_idx, valid_idx in StratifiedKFold(k, shuffle=True, random_state=m.seed).split(
        rows, y[rows]
    ):
        fit_mask, valid_mask = np.zeros(len(y), bool), np.zeros(len(y), bool)
        fit_mask[rows[fit_idx]], valid_mask[rows[valid_idx]] = True, True
        folds.append(Fold(fit_mask, valid_mask))
    spans = {"train": _span(dates[: len(dates) - len(test_dates)]), "test": _span(test_dates),
             "folds": f"{k} stratified random folds of the training rows"}  # fmt: skip
    return Split(train, test, folds, "cohort", spans)
