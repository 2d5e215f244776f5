"""Score deals with the fit model: the chance that a newly signed account is lost in its first
year, from what is known at signing, with the reasons in words (`churnml fit-score`).

Deals come as a CSV, Excel or Parquet file with an id column (`deal_id` or `account_id`) and the
columns the fit model was trained on (`features.signing.SIGNING_FEATURES` that the data held); a
cell may be empty where a value is unknown, but every column must be there. Or they come from the
data itself: the accounts signed since a date (`signed_since`).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd

from churnml.config import Config
from churnml.data import load
from churnml.data.sources import read_frame, read_numbers
from churnml.features.signing import signing_table
from churnml.io import plain
from churnml.models.artifact import TrainedModel
from churnml.models.registry import (
    LoadedModel,
    ModelNotFoundError,
    check_tracking,
    load_model,
    model_name,
    scoring_uri,
    tracking_uri,
)
from churnml.scoring.explain import explain
from churnml.vocabulary import FIRST_YEAR_DAYS, FIT

DEAL_IDS = ("deal_id", "account_id")
TOP_REASONS, MIN_POINTS = 3, 0.01  # reasons per deal; each moves the probability ≥ 1 point
POOR, GOOD = 1.25, 0.8  # a deal's probability against the base rate: poor fit, good fit


class DealsError(ValueError):
    """Deals that cannot be scored: unreadable, no id column, columns missing, bad numbers."""


def fit_model(cfg: Config, uri: str | None = None) -> LoadedModel:
    """The fit model to score deals with: a given URI, else the registry's (its champion, else
    its newest version)."""
    mlflow.set_tracking_uri(tracking_uri(cfg.registry))  # models:/ URIs resolve there
    if uri is None:
        check_tracking(cfg.registry)  # "server down" is not "no model"
        uri = scoring_uri(cfg.registry, FIT)
    if uri is None:
        raise ModelNotFoundError(
            f"no fit model registered as {model_name(cfg.registry, FIT)}: train with `churnml "
            f"train --data DIR` on a history that covers accounts' first {FIRST_YEAR_DAYS} days "
            "(plus the grace), or pass --fit-model URI"
        )
    return load_model(uri, FIT)


def read_deals(path: Path | str) -> pd.DataFrame:
    """A CSV, Excel (first sheet) or Parquet file of deals, as given: only empty cells are
    missing (a region "NA" is text)."""
    path = Path(path)
    if not path.is_file():
        raise DealsError(f"deals: no file at {path}")
    try:
        return read_frame(path)
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        raise DealsError(f"deals: {path} is not a readable CSV, Excel or Parquet file "
                         f"({exc})") from None  # fmt: skip


def signed_since(data_dir: Path | str, cfg: Config, since: dt.date) -> pd.DataFrame:
    """The accounts of the data signed on or after `since`, as deals (id: account_id); the data
    is validated first."""
    table = signing_table(load(data_dir, cfg.data), cfg.labels)
    deals = table[table["signed_at"] >= pd.Timestamp(since)].reset_index(drop=True)
    if deals.empty:
        last = table["signed_at"].max()
        raise DealsError(f"deals: no account of {data_dir} signed on or after {since} (the last "
                         f"signed on {last:%Y-%m-%d})")  # fmt: skip
    return deals


def check_deals(deals: pd.DataFrame, model: TrainedModel) -> tuple[str, pd.DataFrame]:
    """The id column and the deals with the model's columns typed as at training; DealsError
    naming the rule, the columns and, for bad values, the row count and examples."""
    ids = [c for c in DEAL_IDS if c in deals]
    if not ids:
        raise DealsError(f"deals: no id column; name one {' or '.join(DEAL_IDS)}")
    if deals.empty:
        raise DealsError("deals: the file has no rows")
    missing = [c for c in model.features if c not in deals]
    if missing:
        raise DealsError(f"deals: column(s) {', '.join(missing)} missing: the fit model uses "
                         "them (leave a cell empty where a value is unknown)")  # fmt: skip
    out = deals.copy()
    for name in model.features:
        if name in model.categories:
            out[name] = out[name].astype("string").astype(object).where(out[name].notna())
            continue
        try:
            number = read_numbers(out[name])
        except ValueError as exc:
            raise DealsError(f"deals: column {name}: {exc}") from None
        bad = number.isna() & out[name].notna()
        if bad.any():
            examples = ", ".join(repr(v) for v in out.loc[bad, name].head(3))
            raise DealsError(f"deals: column {name} must be numbers; {int(bad.sum())} row(s) "
                             f"are not (e.g. {examples})")  # fmt: skip
        out[name] = number
    return ids[0], out


def score_deals(model: TrainedModel, deals: pd.DataFrame) -> pd.DataFrame:
    """Per deal: its id and columns, `fit_probability` (lost in the first year), `base_rate`,
    `fit` (good, average, poor against the base rate) and `reasons` (feature, value, points:
    the largest contributions first, each at least MIN_POINTS)."""
    key, deals = check_deals(deals, model)
    ex = explain(model, deals[model.features])
    points = ex.points.to_numpy()
    order = np.argsort(-np.abs(points), axis=1, kind="stable")[:, :TOP_REASONS]
    reasons = [
        [{"feature": model.features[j], "value": plain(deals[model.features[j]].iat[i]),
          "points": float(points[i, j])} for j in row if abs(points[i, j]) >= MIN_POINTS]
        for i, row in enumerate(order)
    ]  # fmt: skip
    ratio = ex.probability / np.maximum(ex.base, 1e-9)
    fit = np.where(ratio >= POOR, "poor", np.where(ratio <= GOOD, "good", "average"))
    out = deals[[key, *model.features]].assign(
        fit_probability=ex.probability, base_rate=ex.base, fit=fit, reasons=reasons
    )
    return out.sort_values("fit_probability", ascending=False, ignore_index=True)
