"""MLflow: log a training run, register its models, and promote only a better one.

One parent run per `train`, one child run per target. A new model version becomes `champion` only
if, on the same test rows, its ROC-AUC is at most `max_auc_drop` below the current champion's and
its log loss is not worse; otherwise it is `challenger`, and the reason is recorded.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient
from sklearn.metrics import log_loss, roc_auc_score

import churnml
from churnml.config import Config, RegistryConfig
from churnml.features.catalogue import Feature
from churnml.models import pyfunc_model
from churnml.models.report import model_card, plots, shap_summary
from churnml.models.train import TargetResult

DEFAULT_TRACKING_URI = "sqlite:///mlruns.db"
PIP_REQUIREMENTS = [f"churnml=={churnml.__version__}", "lightgbm==4.7.0", "mlflow==3.17.2"]


def tracking_uri(cfg: RegistryConfig) -> str:
    """The config's URI, else $MLFLOW_TRACKING_URI, else a SQLite store in the working directory."""
    return cfg.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def model_name(cfg: RegistryConfig, target: str) -> str:
    return f"{cfg.model_prefix}-{target}"


@dataclass(frozen=True)
class Promotion:
    name: str
    version: str
    alias: str  # "champion" or "challenger"
    reason: str
    run_id: str


def _flat(metrics: dict[str, dict[str, dict[str, float]]]) -> dict[str, float]:
    return {
        f"{model}.{segment}.{metric}": value
        for model, by_seg in metrics.items()
        for segment, values in by_seg.items()
        for metric, value in values.items()
        if np.isfinite(value)
    }


def _log_target(result: TargetResult, cfg: Config, catalogue: dict[str, Feature],
                folder: Path) -> mlflow.models.model.ModelInfo:  # fmt: skip
    """Metrics, plots, tables and the model of one target, in the active (child) run."""
    mlflow.log_params({"target": result.model.meta["target"], "split": result.split.kind,
                       **{f"{k}_dates": v for k, v in result.split.dates.items()},
                       "calibration": result.model.calibration.method,
                       "best_iteration": result.model.meta["best_iteration"],
                       "test_rows": len(result.test),
                       "test_positive_rate": round(float(result.test.y.mean()), 5)})  # fmt: skip
    mlflow.log_metrics(_flat(result.metrics))
    for i, row in enumerate(result.backtests):
        mlflow.log_metrics({f"backtest.{k}": v for k, v in row.items() if k != "cutoff"}, step=i)
    if result.backtests:
        aucs = [b["roc_auc"] for b in result.backtests]
        mlflow.log_metrics({"backtest.roc_auc_mean": float(np.mean(aucs)),
                            "backtest.roc_auc_std": float(np.std(aucs))})  # fmt: skip
    for path in [*plots(result, folder), shap_summary(result, folder)]:
        mlflow.log_artifact(str(path), "plots")
    result.importance.to_csv(folder / "importance_by_segment.csv")
    pd.DataFrame(result.backtests).to_csv(folder / "backtests.csv", index=False)
    (folder / "model_card.md").write_text(model_card(result, cfg.labels.horizon_days, catalogue))
    for name in ("importance_by_segment.csv", "backtests.csv", "model_card.md"):
        mlflow.log_artifact(str(folder / name))
    model_dir = result.model.save(folder / "model")
    example = result.test_rows[result.model.features].head(5)
    return mlflow.pyfunc.log_model(
        name="model",
        python_model=str(Path(pyfunc_model.__file__)),
        artifacts={"model": str(model_dir)},
        signature=infer_signature(example, result.model.predict(example)),
        input_example=example,
        pip_requirements=PIP_REQUIREMENTS,
        registered_model_name=model_name(cfg.registry, result.name),
    )


def _gate(result: TargetResult, name: str, cfg: RegistryConfig,
          client: MlflowClient) -> tuple[str, str]:  # fmt: skip
    """Alias and reason for a new version, judged against the champion on the same test rows."""
    try:
        champion = client.get_model_version_by_alias(name, "champion")
    except MlflowException:
        return "champion", "first registered version"
    y = result.test.y.to_numpy()
    new_p = np.clip(result.test["p_lightgbm"].to_numpy(), 1e-6, 1 - 1e-6)
    old = mlflow.pyfunc.load_model(f"models:/{name}@champion")
    old_p = np.clip(np.asarray(old.predict(result.test_rows), dtype=float), 1e-6, 1 - 1e-6)
    new_auc, old_auc = roc_auc_score(y, new_p), roc_auc_score(y, old_p)
    new_ll, old_ll = log_loss(y, new_p, labels=[0, 1]), log_loss(y, old_p, labels=[0, 1])
    facts = (f"ROC-AUC {new_auc:.4f} vs champion v{champion.version} {old_auc:.4f}, "
             f"log loss {new_ll:.4f} vs {old_ll:.4f}")  # fmt: skip
    if new_auc >= old_auc - cfg.max_auc_drop and new_ll <= old_ll:
        return "champion", f"beats the champion: {facts}"
    return "challenger", f"does not beat the champion: {facts}"


def log_training(
    results: list[TargetResult],
    cfg: Config,
    catalogue: dict[str, Feature],
    params: dict[str, object],
) -> tuple[str, list[Promotion]]:
    """Log a parent run with a child per target, register each model and apply the gate."""
    mlflow.set_tracking_uri(tracking_uri(cfg.registry))
    mlflow.set_experiment(cfg.registry.experiment)
    client = MlflowClient()
    promotions = []
    with mlflow.start_run(run_name="train") as parent, tempfile.TemporaryDirectory() as tmp:
        mlflow.log_params(params)
        mlflow.log_text(json.dumps(cfg.model_dump(mode="json"), indent=1), "config.json")
        mlflow.log_text(_catalogue_markdown(catalogue), "feature_catalogue.md")
        for result in results:
            folder = Path(tmp) / result.name
            folder.mkdir()
            with mlflow.start_run(run_name=result.name, nested=True) as child:
                info = _log_target(result, cfg, catalogue, folder)
                name = model_name(cfg.registry, result.name)
                version = str(info.registered_model_version)
                alias, reason = _gate(result, name, cfg.registry, client)
                client.set_registered_model_alias(name, alias, version)
                client.set_model_version_tag(name, version, "promotion", reason)
                mlflow.set_tag("promotion", f"{alias}: {reason}")
                promotions.append(Promotion(name, version, alias, reason, child.info.run_id))
    return parent.info.run_id, promotions


def _catalogue_markdown(catalogue: dict[str, Feature]) -> str:
    lines = [
        "| feature | family | window | unit | healthy | en | ja |",
        "|---|---|---|---|---|---|---|",
    ]
    for f in catalogue.values():
        window = f"{f.window_days}d" if f.window_days else ""
        lines.append(
            f"| {f.name} | {f.family} | {window} | {f.unit} | {f.healthy} | {f.en} | {f.ja} |"
        )
    return "\n".join(lines) + "\n"


def latest_training(cfg: RegistryConfig) -> tuple[str, pd.DataFrame]:
    """The newest `train` run of the experiment and its test metrics, one row per
    (target, model, segment, metric)."""
    client = MlflowClient(tracking_uri=tracking_uri(cfg))
    experiment = client.get_experiment_by_name(cfg.experiment)
    if experiment is None:
        raise LookupError(f"no MLflow experiment {cfg.experiment!r} at {tracking_uri(cfg)}")
    [parent] = client.search_runs(
        [experiment.experiment_id], "tags.mlflow.runName = 'train'",
        order_by=["attributes.start_time DESC"], max_results=1,
    )  # fmt: skip
    children = client.search_runs(
        [experiment.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    rows = [
        (child.info.run_name, *key.split(".", 2), value)
        for child in children
        for key, value in child.data.metrics.items()
        if key.count(".") == 2 and not key.startswith("backtest.")
    ]
    table = pd.DataFrame(rows, columns=["target", "model", "segment", "metric", "value"])
    return parent.info.run_id, table
