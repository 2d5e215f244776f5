"""Training: honest time splits, reproducible models, MLflow tracking and a promotion gate."""

from __future__ import annotations

import json
import os
import re
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
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from tests.helpers import Trained, store_in
from typer.testing import CliRunner

from churnml.cli import app
from churnml.config import Config, ModelConfig, RegistryConfig
from churnml.features import build
from churnml.features import catalogue as catalogue_module
from churnml.features.catalogue import Feature, catalogue
from churnml.models import pipeline
from churnml.models import train as training
from churnml.models.artifact import Calibration, TrainedModel
from churnml.models.pipeline import train, training_table
from churnml.models.registry import TrackingUnavailableError
from churnml.models.splits import TrainingError, cohort_split, time_split
from churnml.models.train import Dataset, make_dataset, sampled, train_target

FAST = {"backtests": 1, "max_rounds": 200, "min_data_in_leaf": 50}


def _config(tmp: Path, uri: str | None = None, **model: object) -> Config:
    base = Config()
    registry = RegistryConfig(tracking_uri=uri or store_in(tmp))
    return base.model_copy(
        update={"model": base.model.model_copy(update=FAST | model), "registry": registry}
    )


@pytest.fixture(scope="module")
def features(small_world: Path) -> pd.DataFrame:
    return training_table(small_world, Config(), check=False)


def _churn_data(features: pd.DataFrame, cfg: Config) -> tuple[Dataset, dict[str, Feature]]:
    cat = {f.name: f for f in catalogue(cfg.features)}
    ds = make_dataset(
        features,
        "churn_90d",
        [f for f in cat if f in features],
        features.involuntary_churn_90d == 1,
    )
    return ds, cat


def _churn(features: pd.DataFrame, cfg: Config):
    ds, cat = _churn_data(features, cfg)
    return train_target("churn", ds, cfg, 90, cat)


def _saved(model: TrainedModel, folder: Path) -> dict[str, object]:
    """A saved model's files, without the time it was trained."""
    model.save(folder)
    meta = json.loads((folder / "model.json").read_text())
    meta.pop("trained_at")
    trees = folder / "booster.txt"
    return {"meta": meta, "trees": trees.read_text() if trees.exists() else None}


def test_time_split_leaves_one_horizon_between_parts() -> None:
    as_of = pd.Series(pd.date_range("2023-01-01", periods=20, freq="MS"))
    split = time_split(as_of, 90, ModelConfig())
    train, test = as_of[split.train], as_of[split.test]
    assert train.max() + pd.Timedelta(days=90) <= test.min()
    assert list(test) == list(as_of[-3:])
    assert len(split.folds) == 3
    for fold in split.folds:
        fit, valid = as_of[fold.fit], as_of[fold.valid]
        assert fit.max() + pd.Timedelta(days=90) <= valid.min() and valid.max() <= train.max()


def test_parts_shrink_to_a_short_history() -> None:
    """8 labelled month starts (12 months of data, 90-day churn labels): one test date, one
    validation date, and two dates to fit the fold on, each part a horizon apart."""
    as_of = pd.Series(pd.date_range("2023-02-01", periods=8, freq="MS"))
    split = time_split(as_of, 90, ModelConfig())
    assert list(as_of[split.test]) == [pd.Timestamp("2023-09-01")]
    [fold] = split.folds
    assert list(as_of[fold.valid]) == [pd.Timestamp("2023-06-01")]
    assert list(as_of[fold.fit]) == [pd.Timestamp("2023-02-01"), pd.Timestamp("2023-03-01")]


def test_too_little_history_is_a_clear_error_saying_how_much_more() -> None:
    short = pd.Series(pd.date_range("2023-01-01", periods=6, freq="MS"))
    with pytest.raises(TrainingError, match="cannot hold a test date") as info:
        time_split(short, 90, ModelConfig())
    # the last date is 120 days after the second training date: 180 needs 60 more
    assert "Load at least 60 more days of history" in str(info.value)
    assert "labels.horizon_days" in str(info.value)
    weekly = pd.Series(pd.date_range("2023-01-02", "2023-07-03", freq="W-MON"))
    with pytest.raises(TrainingError, match="at least 5 more days"):  # more dates do not help
        time_split(weekly, 90, ModelConfig())


def test_too_few_dates_over_a_long_history_ask_for_more_snapshots() -> None:
    sparse = pd.Series(pd.to_datetime(["2023-01-01", "2023-07-01", "2024-01-01"]))
    with pytest.raises(TrainingError, match=r"labels\.snapshot_every") as info:
        time_split(sparse, 90, ModelConfig())
    assert "more days of history" not in str(info.value)


def test_the_fit_models_test_months_hold_both_classes_or_it_is_not_trained() -> None:
    """A young book's last signing month held one account, which stayed: the fit model was
    judged on it, and the run stopped in its calibration plot (pandas: "Bin edges must be
    unique"). The test part now reaches back until it holds both classes, up to half the
    months; else the fit model is not trained, and says why."""
    months = pd.Series(pd.to_datetime([f"2023-0{m}-01" for m in range(1, 5) for _ in range(10)]
                                      + ["2023-05-01"]))  # fmt: skip
    y = np.array([0.0, 1.0] * 20 + [0.0])
    split = cohort_split(months, y, ModelConfig())
    assert set(months[split.test].dt.month) == {4, 5} and set(y[split.test]) == {0.0, 1.0}
    assert not (split.train & split.test).any() and (split.train | split.test).all()
    y[20:] = 0  # March to May: nobody lost
    with pytest.raises(TrainingError, match=r"11 row\(s\) of a single class: nothing to test"):
        cohort_split(months, y, ModelConfig())


def test_same_seed_and_data_give_identical_models(features: pd.DataFrame, tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    a, b = _churn(features, cfg), _churn(features, cfg)
    assert _saved(a.model, tmp_path / "a") == _saved(b.model, tmp_path / "b")
    np.testing.assert_array_equal(a.test.p_churnml, b.test.p_churnml)
    assert a.metrics == b.metrics


def test_an_oracle_known_on_some_dates_only_is_left_out(features: pd.DataFrame,
                                                        tmp_path: Path) -> None:  # fmt: skip
    """The simulator's truth is monthly: with weekly snapshots most rows have none. The oracle is
    measured where every test row has it, and training goes on (it once failed on NaN)."""
    cfg = _config(tmp_path)
    cat = {f.name: f for f in catalogue(cfg.features)}
    ds = make_dataset(features, "churn_90d", [f for f in cat if f in features],
                      features.involuntary_churn_90d == 1)  # fmt: skip
    months = pd.to_datetime(ds.frame.as_of).dt.month.to_numpy()
    truth = pd.Series(np.where(months % 2 == 0, 0.5, np.nan), index=ds.frame.index)
    result = train_target("churn", ds, cfg, 90, cat, truth)
    assert result.backtests and not any("oracle_roc_auc" in b for b in result.backtests)
    assert "oracle" not in result.metrics and "churnml" in result.metrics


def test_a_choice_that_ranks_nothing_out_of_fold_gives_way_to_the_next(
    features: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A chosen model whose out-of-fold scores rank backwards is calibrated flat (every row the
    base rate: a test ROC-AUC of 0.5); the next candidate by validation is fitted instead, until
    one ranks (here the third), and one warning names those passed over."""
    real, calls = training.fit_final, []

    def first_ranks_nothing(ds, rows, choice, m, horizon_days):
        model = real(ds, rows, choice, m, horizon_days)
        calls.append(choice.recipe)
        if len(calls) <= 2:
            model.calibration = Calibration("platt", {"a": 0.0, "b": -2.0})
        return model

    monkeypatch.setattr(training, "fit_final", first_ranks_nothing)
    cfg = _config(tmp_path)
    ds, _ = _churn_data(features, cfg)
    chosen = training.select(ds, time_split(ds.frame["as_of"], 90, cfg.model), cfg.model)
    with caplog.at_level("WARNING"):
        result = _churn(features, cfg)
    passed = [chosen.recipe, chosen.behind[0][0]]
    assert calls[:3] == [*passed, chosen.behind[1][0]] and result.choice.recipe == calls[2]
    warned = [r.getMessage() for r in caplog.records if "no better than chance" in r.getMessage()]
    assert len(warned) == 1 and all(r.label in warned[0] for r in passed)
    assert f"taking the next candidate by validation, {calls[2].label}" in warned[0]
    assert result.metrics["churnml"]["all"]["roc_auc"] > 0.6


def test_model_round_trips_through_text_and_json(features: pd.DataFrame, tmp_path: Path) -> None:
    result = _churn(features, _config(tmp_path))
    loaded = TrainedModel.load(result.model.save(tmp_path / "m"))
    assert not list((tmp_path / "m").glob("*.pkl"))
    rows = result.test_rows
    np.testing.assert_allclose(loaded.predict(rows), result.model.predict(rows))


def test_train_tracks_registers_and_promotes(
    trained: Trained, trained_config: Config, small_world: Path
) -> None:
    """The session's first training (`trained`), and a second one on the same data."""
    cfg, first = trained_config, trained.report
    skill = {r.name: r.skill.no_skill for r in first.results}
    assert not skill["churn"]
    assert set(skill) == {"churn", "expansion", "fit"}  # fit: at signing, for Sales
    expected = ["challenger" if skill[t] else "champion" for t in ("churn", "expansion", "fit")]
    assert [p.alias for p in first.promotions] == expected  # no skill: never champion on its own
    client = MlflowClient(tracking_uri=cfg.registry.tracking_uri)
    run = client.get_run(first.run_id)
    assert run.data.params["data_fingerprint"]
    children = client.search_runs(
        run.info.experiment_id, f"tags.mlflow.parentRunId = '{first.run_id}'"
    )
    assert {c.info.run_name for c in children} == {"churn", "expansion", "fit"}
    churn = next(c for c in children if c.info.run_name == "churn")
    assert {
        "churnml.all.roc_auc",
        "churnml.all.roc_auc_low",
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
        "candidates.csv",
        "importance_by_segment.csv",
        "plots/churn_roc.png",
        "plots/churn_shap_summary.png",
    } <= artifacts
    [production] = client.search_runs(
        run.info.experiment_id, f"tags.mlflow.parentRunId = '{churn.info.run_id}'"
    )
    assert production.info.run_name == "churn-production"  # both fits are kept
    mlflow.set_tracking_uri(cfg.registry.tracking_uri)
    logged = mlflow.search_logged_models(
        [run.info.experiment_id], output_format="list",
        filter_string=f"source_run_id = '{churn.info.run_id}'",
    )  # fmt: skip
    assert [m.name for m in logged] == ["evaluation_model"]
    assert {"forecast_cutoffs", "forecast_grr_coverage", "forecast_grr_mae_pts"} <= set(
        run.data.metrics)  # the revenue forecast's backtest, on the training run
    assert "forecast_backtest.csv" in {a.path for a in client.list_artifacts(first.run_id)}
    learnt = first.results[0].model.meta
    assert learnt["forecast"]["backtest"]["forecast_cutoffs"] >= 3
    assert set(learnt["forecast"]["history"]["involuntary"]) >= {"*", "smb"}
    stated = learnt["stated_reasons"]  # the generator's stated reasons, each churn once
    assert set(stated) <= {"too_expensive", "missing_features", "switched_competitor",
                           "low_usage", "non_payment", "bankruptcy", "acquisition"}  # fmt: skip
    assert sum(n for row in stated.values() for n in row.values()) > 10
    model = mlflow.pyfunc.load_model("models:/churnml-churn@champion")
    p = model.predict(first.results[0].test_rows)
    np.testing.assert_allclose(p, first.results[0].model.predict(first.results[0].test_rows))

    again = train(cfg, data_dir=small_world)  # same data and seed: an equal model is not worse
    assert again.promotions[0].alias == "champion" and again.promotions[0].version == "2"
    assert "by the evaluation fits' test metrics" in again.promotions[0].reason


def test_the_registered_model_is_trained_on_the_latest_labelled_rows(
    features: pd.DataFrame, trained_config: Config
) -> None:
    mlflow.set_tracking_uri(trained_config.registry.tracking_uri)
    registered = mlflow.pyfunc.load_model("models:/churnml-churn/1").unwrap_python_model().model
    labelled = features.dropna(subset=["churn_90d"])
    labelled = labelled[labelled.involuntary_churn_90d != 1]
    latest = labelled.as_of.max()
    assert registered.meta["trained_through"] == str(latest.date())
    assert registered.meta["training_rows"] == len(labelled)
    tested = registered.meta["evaluation"]["test_dates"]  # the evaluation fit never saw those
    assert tested[-1] == str(latest.date()) and registered.meta["fit"] == "production"


def test_gate_keeps_a_worse_model_as_challenger(features: pd.DataFrame, tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    frame = features.copy()
    good, weak = tmp_path / "good.parquet", tmp_path / "weak.parquet"
    frame.to_parquet(good)
    first = train(cfg, features_path=good, target="churn_90d")
    assert first.promotions[0].alias == "champion"
    again = train(cfg, features_path=good, target="churn_90d").promotions[0]  # the same model
    assert again.alias == "champion" and again.reason.startswith("ties the champion"), again
    # A churn label named as a column is still a risk: the health score is flipped for it (it
    # was not, and scored a flat 0.5, so any model "beat" it).
    assert first.results[0].metrics["health_score"]["all"]["roc_auc"] > 0.6
    # Only contract facts: some skill, but less than the champion on the same test dates.
    contract = ["tenure_days", "segment", "days_to_renewal", "term_months", "arr", "employees"]
    frame[["account_id", "as_of", "churn_90d", *contract]].to_parquet(weak)
    report = train(cfg, features_path=weak, target="churn_90d")
    assert not report.results[0].skill.no_skill
    promotion = report.promotions[0]
    assert promotion.alias == "challenger"
    assert "does not beat the champion" in promotion.reason
    client = MlflowClient(tracking_uri=cfg.registry.tracking_uri)
    assert str(client.get_model_version_by_alias("churnml-churn_90d", "champion").version) == "2"


def test_a_champion_whose_features_are_gone_is_replaced(
    small_world: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A champion from an earlier churnml needs a feature this one no longer computes: it cannot
    score, so the new models replace it, whatever they score on the test dates."""
    cfg = _config(tmp_path)
    first = {p.name: p for p in train(cfg, data_dir=small_world).promotions}
    gone = "weekly_stickiness_30d"
    current = catalogue
    monkeypatch.setattr(catalogue_module, "catalogue",
                        lambda c: [f for f in current(c) if f.name != gone])  # fmt: skip
    monkeypatch.setattr(build, "catalogue", catalogue_module.catalogue)
    again = {p.name: p for p in train(cfg, data_dir=small_world).promotions}
    churn = again["churnml-churn"]
    assert first["churnml-churn"].alias == "champion" and churn.alias == "champion", churn
    assert churn.reason.startswith("replaces champion v1, which needs 1 feature(s)")
    assert gone in churn.reason
    assert not again["churnml-fit"].reason.startswith("replaces")  # it never read usage


def test_a_model_without_skill_is_never_champion(features: pd.DataFrame, tmp_path: Path) -> None:
    """Labels shuffled within each date: nothing to learn, and the first version is not
    promoted although there is no champion to beat."""
    cfg = _config(tmp_path, backtests=0)
    frame = features.dropna(subset=["churn_90d"])
    frame["churn_90d"] = frame.groupby("as_of").churn_90d.transform(
        lambda y: y.sample(frac=1.0, random_state=3).to_numpy()
    )
    path = tmp_path / "shuffled.csv"  # a feature table may be a CSV (or a workbook)
    frame.to_csv(path, index=False)
    report = train(cfg, features_path=path, target="churn_90d")
    assert report.results[0].skill.no_skill
    assert report.promotions[0].alias == "challenger"
    assert report.promotions[0].reason.startswith("no skill")


def test_an_unreadable_feature_table_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "features.parquet"
    path.write_text("not parquet")
    with pytest.raises(TrainingError, match=r"features\.parquet: not a readable Parquet, CSV "
                       r"or Excel file"):  # fmt: skip
        train(_config(tmp_path, backtests=0), features_path=path, target="churn_90d")


def test_a_model_too_good_to_be_true_is_not_registered(
    features: pd.DataFrame, tmp_path: Path
) -> None:
    """An input filled in once the outcome is known (the days to a renewal that only the churn
    wrote): the target is refused, naming the input, unless model.leak_auc is raised to 1."""
    frame = features.dropna(subset=["churn_90d"])
    frame["days_to_renewal"] = np.where(frame.churn_90d == 1, 20.0, 200.0)
    path = tmp_path / "leaky.parquet"
    frame.to_parquet(path)
    with pytest.raises(TrainingError, match="too good to be true") as refused:
        train(_config(tmp_path, backtests=0), features_path=path, target="churn_90d")
    assert "Strongest inputs: days_to_renewal (Days until" in str(refused.value)
    kept = train(_config(tmp_path, backtests=0, leak_auc=1), features_path=path,
                 target="churn_90d")  # fmt: skip
    assert kept.results[0].skill.roc_auc > 0.98 and kept.promotions[0].alias == "champion"


def test_single_as_of_falls_back_to_a_stratified_split(
    features: pd.DataFrame, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    one = features[features.as_of == features.as_of.min() + pd.DateOffset(months=12)].dropna(
        subset=["churn_90d"]
    )
    path = tmp_path / "one.parquet"
    one.to_parquet(path)
    report = train(_config(tmp_path, min_positives=5), features_path=path, target="churn_90d")
    assert report.results[0].split.kind == "stratified"
    assert "STRATIFIED RANDOM split" in caplog.text


def test_cli_train_prints_a_summary(
    features: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A feature table and its label (`train --data` is run by test_cli's young product)."""
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "c.yaml"
    config.write_text("model: {backtests: 0, max_rounds: 100, max_rows: 2000}\n")
    features.to_parquet(tmp_path / "f.parquet")
    args = ["train", "--features", "f.parquet", "--target", "churn_90d", "--config", str(config)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "churnml" in result.output and "champion" in result.output
    assert "split: train" in result.output  # the split it used
    labelled = features.churn_90d.notna().sum()
    assert re.search(rf"a sample of [\d,]+ of {labelled:,} rows", result.output)
    assert (tmp_path / "mlruns.db").exists()  # the default store, in the working directory


def test_a_large_table_is_sampled_keeping_each_date_and_label_share(
    features: pd.DataFrame,
) -> None:
    ds = make_dataset(features, "churn_90d", ["tenure_days"])
    small = sampled(ds, 1000, seed=1)
    assert small.labelled == len(ds.frame) and 950 <= len(small.frame) <= 1050
    share = len(small.frame) / len(ds.frame)
    cells = ds.frame.groupby(["as_of", "churn_90d"]).size()
    kept = small.frame.groupby(["as_of", "churn_90d"]).size().reindex(cells.index, fill_value=0)
    assert ((kept - cells * share).abs() <= 1).all()  # each cell keeps its share, ±1 row
    assert sampled(ds, len(ds.frame), seed=1) is ds  # not past max_rows: untouched


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_train_against_a_real_mlflow_server(features: pd.DataFrame, tmp_path: Path) -> None:
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
        # Its job runner (six consumer processes, for GenAI evaluation jobs) would spin on 2 cores.
        env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
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
        path = tmp_path / "f.parquet"
        features.to_parquet(path)
        report = train(_config(tmp_path, uri=uri, backtests=0), features_path=path,
                       target="churn_90d")  # fmt: skip
        client = MlflowClient(tracking_uri=uri)
        name = "churnml-churn_90d"
        assert str(client.get_model_version_by_alias(name, "champion").version) == "1"
        assert client.get_run(report.run_id).info.status == "FINISHED"
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_an_unreachable_tracking_server_is_said_before_any_work(
    small_world: Path, tmp_path: Path
) -> None:
    config = tmp_path / "c.yaml"
    uri = f"http://127.0.0.1:{_free_port()}"  # nobody listens there
    config.write_text(f"registry: {{tracking_uri: '{uri}', timeout_seconds: 2}}\n")
    result = CliRunner().invoke(app, ["train", "--data", str(small_world), "--config", str(config)])
    message = " ".join(result.output.split())
    assert result.exit_code == 1 and f"the MLflow tracking server {uri} does not answer" in message
    args = ["score", "--data", str(small_world), "--as-of", "2024-06-01"]
    scored = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "o"), "--config", str(config)])
    assert scored.exit_code == 1 and "does not answer" in scored.output
    assert "no churn model" not in scored.output and not (tmp_path / "o").exists()


def test_models_are_kept_when_mlflow_fails_at_the_end_and_registered_later(
    small_world: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = _config(tmp_path, backtests=0, max_rounds=50)

    def server_gone(*_: object, **__: object) -> None:
        raise MlflowException("API request failed: connection refused")

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(pipeline, "log_training", server_gone)
    with pytest.raises(TrackingUnavailableError, match=r"kept in .*churnml register") as caught:
        train(cfg, data_dir=small_world)
    kept = tmp_path / str(caught.value).split("`churnml register ")[1].rstrip("`")
    assert (kept / "churn" / "model.json").exists()
    monkeypatch.undo()
    config = tmp_path / "c.yaml"
    config.write_text(f"registry: {{tracking_uri: '{cfg.registry.tracking_uri}'}}\n")
    result = CliRunner().invoke(app, ["register", str(kept), "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "churnml-churn v1 → champion" in " ".join(result.output.split())
    loaded = mlflow.pyfunc.load_model("models:/churnml-churn@champion").unwrap_python_model()
    assert loaded.model.meta["trained_through"] == TrainedModel.load(kept / "churn").meta[
        "trained_through"
    ]  # fmt: skip
