"""Shared fixtures: small generated worlds, made once per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("OMP_WAIT_POLICY", "passive")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

from churnml.data.synthetic import generate_world


@pytest.fixture(scope="session")
def small_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """300 accounts × 24 months: every table, about a million events."""
    out = tmp_path_factory.mktemp("world") / "small"
    generate_world(out, n_accounts=300, months=24, seed=3, truth_paths=40)
    return out
