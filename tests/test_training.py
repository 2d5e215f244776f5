"""Training: honest time splits, reproducible models, MLflow tracking and a promotion gate."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from churnml.cli import app
from churnml.config import Config, RegistryConfig
from churnml.features.catalogue import catalogue
from churnml.models.artifact import TrainedModel
from churnml.models.pipeline import feature_table, train
from churnml.models.train import make_dataset, time_split, train_target

FAST = {"backtests": 1, "max_rounds": 200, "min_data_in_leaf": 50}


def _config(tmp: Path, uri: str | None = None, **model: object) -> Config:
    base = Config()
    registry = RegistryConfig(tracking_uri=uri or f"sqlite:///{tmp / 'mlruns.db'}")
    return base.model_copy(
        update={"model": base.model.model_copy(update=FAST | model), "registry": registry}
    )


@pytest.fixture(scope="module")
def features(small_world: Path) -> pd.DataFrame:
    return feature_table(small_world, Config(), check=False)


def _churn(features: pd.DataFrame, cfg: Config):
    cat = {f.name: f for f in catalogue(cfg.features)}
    ds = make_dataset(
        features,
        "churn_90d",
        [f for f in cat if f in features],
        features.involuntary_churn_90d == 1,
    )
    return train_target("churn", ds, cfg, 90, cat)


def test_time_split_leaves_one_horizon_between_parts() -> None:
    as_of = pd.Series(pd.date_range("2023-01-01", periods=20, freq="MS"))
    split = time_split(as_of, 90, test_dates=3, valid_dates=3)
    train, valid, test = (as_of[m] for m in (split.train, split.valid, split.test))
    assert train.max() + pd.Timedelta(days=90) <= valid.min()
    assert valid.max() + pd.Timedelta(days=90) <= test.min()
    assert list(test) == list(as_of[-3:])


def test_too_little_history_is_a_clear_error() -> None:
    from churnml.models.train import TrainingError

    with pytest.raises(TrainingError, match="cannot hold train, validation and test"):
        time_split(pd.Series(pd.date_range("2023-01-01", periods=6, freq="MS")), 90, 3, 3)


def test_same_seed_and_data_give_identical_models(features: pd.DataFrame, tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    a, b = _churn(features, cfg), _churn(features, cfg)
    assert a.model.booster.model_to_string() == b.model.booster.model_to_string()
    np.testing.assert_array_equal(a.test.p_lightgbm, b.test.p_lightgbm)
    assert a.metrics == b.metrics


def test_model_round_trips_through_text_and_json(features: pd.DataFrame, tmp_path: Path) -> None:
    result = _churn(features, _config(tmp_path))
    loaded = TrainedModel.load(result.model.save(tmp_path / "m"))
    assert not list((tmp_path / "m").glob("*.pkl"))
    np.testing.assert_allclose(loaded.predict(result.test_rows), result.test.p_lightgbm)


def test_train_tracks_registers_and_promotes(small_world: Path, tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    first = train(cfg, data_dir=small_world)
    assert [p.alias for p in first.promotions] == ["champion", "champion"]
    client = MlflowClient(tracking_uri=cfg.registry.tracking_uri)
    run = client.get_run(first.run_id)
    assert run.data.params["data_fingerprint"]
    children = client.search_runs(
        run.info.experiment_id, f"tags.mlflow.parentRunId = '{first.run_id}'"
    )
    assert {c.info.run_name for c in children} == {"churn", "expansion"}
    churn = next(c for c in children if c.info.run_name == "churn")
    assert {
        "lightgbm.all.roc_auc",
        "logistic_regression.all.roc_auc",
        "health_score.all.roc_auc",
        "oracle.all.roc_auc",
        "backtest.roc_auc_mean",
    } <= set(churn.data.metrics)
    artifacts = {a.path for a in client.list_artifacts(churn.info.run_id)} | {
        a.path for a in client.list_artifacts(churn.info.run_id, "plots")
    }
    assert {
        "model_card.md",
        "importance_by_segment.csv",
        "plots/churn_roc.png",
        "plots/churn_shap_summary.png",
    } <= artifacts
    mlflow.set_tracking_uri(cfg.registry.tracking_uri)
    model = mlflow.pyfunc.load_model("models:/churnml-churn@champion")
    p = model.predict(first.results[0].test_rows)
    np.testing.assert_allclose(p, first.results[0].test.p_lightgbm, rtol=1e-9)

    again = train(cfg, data_dir=small_world)  # same data and seed: an equal model is not worse
    assert [p.alias for p in again.promotions] == ["champion", "champion"]
    assert [p.version for p in again.promotions] == ["2", "2"]


def test_gate_keeps_a_worse_model_as_challenger(small_world: Path, tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    frame = feature_table(small_world, cfg, check=False)
    good, bad = tmp_path / "good.parquet", tmp_path / "bad.parquet"
    frame.to_parquet(good)
    assert train(cfg, features_path=good, target="churn_90d").promotions[0].alias == "champion"
    # Shuffle the labels the model learns from; keep the test rows (latest dates) true.
    dates = sorted(frame.dropna(subset=["churn_90d"]).as_of.unique())
    learn = frame.as_of < dates[-3]
    shuffled = frame.loc[learn, "churn_90d"].sample(frac=1.0, random_state=3).to_numpy()
    frame.loc[learn, "churn_90d"] = shuffled
    frame.to_parquet(bad)
    promotion = train(cfg, features_path=bad, target="churn_90d").promotions[0]
    assert promotion.alias == "challenger"
    assert "does not beat the champion" in promotion.reason
    client = MlflowClient(tracking_uri=cfg.registry.tracking_uri)
    assert str(client.get_model_version_by_alias("churnml-churn_90d", "champion").version) == "1"


def test_single_as_of_falls_back_to_a_stratified_split(
    features: pd.DataFrame, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    one = features[features.as_of == features.as_of.min() + pd.DateOffset(months=6)].dropna(
        subset=["expansion_90d"]
    )
    path = tmp_path / "one.parquet"
    one.to_parquet(path)
    report = train(_config(tmp_path), features_path=path, target="expansion_90d")
    assert report.results[0].split.kind == "stratified"
    assert "STRATIFIED RANDOM split" in caplog.text


def test_cli_train_prints_a_summary(
    small_world: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)  # set by mlflow in earlier tests
    config = tmp_path / "c.yaml"
    config.write_text("model: {backtests: 0, max_rounds: 100}\n")
    result = CliRunner().invoke(app, ["train", "--data", str(small_world), "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "lightgbm" in result.output and "champion" in result.output
    assert (tmp_path / "mlruns.db").exists()  # the default store, in the working directory


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_train_against_a_real_mlflow_server(small_world: Path, tmp_path: Path) -> None:
    port = _free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--backend-store-uri",
            f"sqlite:///{tmp_path / 'server.db'}",
            "--artifacts-destination",
            str(tmp_path / "artifacts"),
            "--workers",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    uri = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                if urllib.request.urlopen(f"{uri}/health", timeout=1).read() == b"OK":
                    break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("mlflow server did not start")
        report = train(_config(tmp_path, uri=uri, backtests=0), data_dir=small_world)
        client = MlflowClient(tracking_uri=uri)
        assert str(client.get_model_version_by_alias("churnml-churn", "champion").version) == "1"
        assert client.get_run(report.run_id).info.status == "FINISHED"
    finally:
        server.terminate()
        server.wait(timeout=30)
