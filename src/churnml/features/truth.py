"""The synthetic world's known truth, joined to realised labels (for oracle metrics)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from churnml.config import Config
from churnml.data import load
from churnml.features.labels import default_as_of, labelled_snapshots
from churnml.vocabulary import SIGNING_TRUTH_FILE, TRUTH_FILE


def load_truth(data_dir: Path | str) -> pd.DataFrame | None:
    """`_truth/truth.parquet` (account_id, as_of, p_churn_90d, …), or None for real data."""
    path = Path(data_dir) / TRUTH_FILE
    if not path.exists():
        return None
    truth = pd.read_parquet(path)
    truth["as_of"] = pd.to_datetime(truth["as_of"]).astype("datetime64[s]")
    return truth


def load_signing_truth(data_dir: Path | str) -> pd.DataFrame | None:
    """`_truth/signing.parquet` (account_id, fit, fit_visible, p_lost_first_year), or None."""
    path = Path(data_dir) / SIGNING_TRUTH_FILE
    return pd.read_parquet(path) if path.exists() else None


def labels_with_truth(data_dir: Path | str, cfg: Config) -> pd.DataFrame:
    """Every snapshot's labels, segment and the simulator's probabilities, one row each."""
    tables = load(data_dir, cfg.data, check=False)
    labels = labelled_snapshots(tables, default_as_of(tables), cfg.labels).execute()
    labels["as_of"] = pd.to_datetime(labels["as_of"]).astype("datetime64[s]")
    segments = tables["accounts"].select("account_id", "segment").execute()
    truth = load_truth(data_dir)
    if truth is None:
        raise FileNotFoundError(f"{data_dir} has no {TRUTH_FILE}: not a generated world")
    return labels.merge(truth, on=["account_id", "as_of"]).merge(segments, on="account_id")
