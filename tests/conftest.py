"""Shared fixtures: small generated worlds, made once per test session."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("OMP_WAIT_POLICY", "passive")  # before LightGBM loads OpenMP
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

from tests.helpers import Trained, fast_config, promote_every_target, store_in

from churnml.config import Config
from churnml.data.synthetic import generate_world


@pytest.fixture(scope="session")
def small_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """300 accounts × 24 months: every table, about a million events."""
    out = tmp_path_factory.mktemp("world") / "small"
    generate_world(out, n_accounts=300, months=24, seed=3, truth_paths=40)
    return out


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """xdist groups (`--dist loadgroup`): a file's tests run on one worker, so that its module
    fixtures are made once; the Spark tests run with test_scoring's (which holds the heaviest),
    because two local Spark sessions on two cores slowed each other more than they overlapped
    (the features test: 95 s alone, 156–230 s beside the scoring one)."""
    for item in items:
        spark = item.get_closest_marker("spark") is not None
        item.add_marker(pytest.mark.xdist_group("test_scoring" if spark else item.path.stem))


@pytest.fixture(autouse=True)
def _no_tracking_uri_from_earlier_tests(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts without $MLFLOW_TRACKING_URI: mlflow.set_tracking_uri writes it, so a
    test that ran before on the same worker (a server since stopped) would leak into the next."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


@pytest.fixture(scope="session", autouse=True)
def _empty_store(tmp_path_factory: pytest.TempPathFactory) -> None:
    """An empty MLflow store with its tables, for `helpers.store_in` to copy."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
    from tests import helpers

    folder = tmp_path_factory.mktemp("empty_store")
    SqlAlchemyStore(f"sqlite:///{folder / 'mlruns.db'}", str(folder / "artifacts"))
    helpers.EMPTY_STORE[:] = [folder / "mlruns.db"]


@pytest.fixture(scope="session")
def trained(small_world: Path, tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """small_world trained once (`fast_config`), then every target made champion: a store for
    modules to copy (`trained_config`), so that each keeps its own registry."""
    from churnml.models.pipeline import train

    cfg = fast_config(store_in(tmp_path_factory.mktemp("trained")))
    report = train(cfg, data_dir=small_world)
    promote_every_target(cfg.registry.tracking_uri)
    return Trained(Path(cfg.registry.tracking_uri.removeprefix("sqlite:///")), report)


@pytest.fixture(scope="module")
def trained_config(trained: Trained, tmp_path_factory: pytest.TempPathFactory) -> Config:
    """A Config whose registry is this module's copy of the `trained` store."""
    copy = tmp_path_factory.mktemp("store") / "mlruns.db"
    shutil.copy(trained.store, copy)
    return fast_config(f"sqlite:///{copy}")
