"""The synthetic world: deterministic, realistic rates, and a truth that is a real oracle."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from churnml.config import Config
from churnml.data.contract import TABLES
from churnml.data.synthetic import generate_world
from churnml.features.truth import labels_with_truth


def _digests(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*.parquet"))
    }


def test_same_seed_gives_byte_identical_tables(tmp_path: Path) -> None:
    generate_world(tmp_path / "a", n_accounts=120, months=8, seed=11, truth_paths=8)
    generate_world(tmp_path / "b", n_accounts=120, months=8, seed=11, truth_paths=8)
    generate_world(tmp_path / "c", n_accounts=120, months=8, seed=12, truth_paths=8)
    a, b, c = (_digests(tmp_path / x) for x in "abc")
    assert len(a) == len(TABLES) + 1
    assert a == b
    assert a["usage_events.parquet"] != c["usage_events.parquet"]


def test_world_uses_the_contract_column_names(small_world: Path) -> None:
    for name, table in TABLES.items():
        columns = pd.read_parquet(small_world / f"{name}.parquet").columns
        assert list(columns) == table.column_names, name


def test_events_stay_inside_each_account_lifetime(small_world: Path) -> None:
    events = pd.read_parquet(small_world / "usage_events.parquet", columns=["account_id", "ts"])
    subs = pd.read_parquet(small_world / "subscriptions.parquet")
    accounts = pd.read_parquet(small_world / "accounts.parquet").set_index("account_id")
    span = events.groupby("account_id").ts.agg(["min", "max"])
    ends = pd.to_datetime(subs.canceled_at.fillna(subs.end_date)).groupby(subs.account_id).max()
    assert (
        span["min"].dt.normalize() >= pd.to_datetime(accounts.signup_date.reindex(span.index))
    ).all()
    churned = ends.dropna().index.intersection(span.index)
    assert (span.loc[churned, "max"] < ends[churned] + pd.Timedelta(days=1)).all()


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    """Realised labels joined with the simulator's truth on a 1,200-account, 30-month world."""
    out = tmp_path_factory.mktemp("rates") / "world"
    generate_world(out, n_accounts=1200, months=30, seed=21, truth_paths=60)
    return labels_with_truth(out, Config())


def test_rates_are_in_b2b_saas_ranges(outcomes: pd.DataFrame) -> None:
    churn = outcomes.dropna(subset=["churn_90d"])
    monthly = 1 - (1 - churn.churn_90d.mean()) ** (1 / 3)
    by_segment = churn.groupby("segment").churn_90d.mean()
    expansion = outcomes.expansion_90d.dropna().mean()
    assert 0.005 <= monthly <= 0.04
    assert by_segment["smb"] > by_segment["mid_market"] > by_segment["enterprise"]
    assert 0.05 <= expansion <= 0.20


def test_truth_is_a_calibrated_oracle(outcomes: pd.DataFrame) -> None:
    churn = outcomes.dropna(subset=["churn_90d"])
    voluntary = churn[churn.involuntary_churn_90d == 0]
    expansion = outcomes.dropna(subset=["expansion_90d"])
    auc = roc_auc_score(voluntary.churn_90d, voluntary.p_churn_90d)
    assert 0.75 <= auc <= 0.92
    assert roc_auc_score(expansion.expansion_90d, expansion.p_expansion_90d) > 0.65
    # Probabilities agree with what happened, overall and in the riskiest decile.
    assert voluntary.p_churn_90d.mean() == pytest.approx(voluntary.churn_90d.mean(), rel=0.15)
    assert expansion.p_expansion_90d.mean() == pytest.approx(
        expansion.expansion_90d.mean(), rel=0.15
    )
    top = voluntary[voluntary.p_churn_90d >= voluntary.p_churn_90d.quantile(0.9)]
    assert top.p_churn_90d.mean() == pytest.approx(top.churn_90d.mean(), rel=0.2)
