"""MLflow: log a training run, register its models, and promote only a better one.

One parent run per `train`; inside it one run per target, holding the evaluation fit (metrics,
plots, backtests, candidates); inside that, one run for the production fit, whose model is
registered. A new version becomes `champion` only if it shows skill and, judged fairly against
the current champion (see `_gate`), its ROC-AUC is at most `max_auc_drop` below the champion's and
its log loss is not worse; otherwise it is `challenger`, and the reason is recorded.
"""

from __future__ import annotations

import json
import os
import tempfile
import urllib.request
import warnings
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
from churnml.data.contract import BOOK
from churnml.features.catalogue import Feature, by_name, catalogue_markdown
from churnml.forecast.revenue import summary
from churnml.io import atomic_dir
from churnml.models import pyfunc_model
from churnml.models.artifact import META_FILE, TrainedModel
from churnml.models.card import model_card, plots, shap_summary
from churnml.models.train import TargetResult
from churnml.vocabulary import FIT, TARGETS

DEFAULT_STORE = "mlruns.db"  # a SQLite file in the working directory
PIP_REQUIREMENTS = [f"churnml=={churnml.__version__}", "lightgbm==4.7.0", "mlflow==3.17.2"]


def tracking_uri(cfg: RegistryConfig) -> str:
    """The config's URI, else $MLFLOW_TRACKING_URI, else a SQLite store in the working directory
    (as an absolute path: MLflow caches stores by URI, and a relative one would outlive a chdir)."""
    default = f"sqlite:///{Path(DEFAULT_STORE).resolve()}"
    return cfg.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or default


class TrackingUnavailableError(ConnectionError):
    """The MLflow tracking server does not answer."""


def check_tracking(cfg: RegistryConfig) -> None:
    """Fail fast when a tracking server does not answer within `timeout_seconds` (a local
    SQLite store always does), and keep MLflow's own retries short."""
    uri = tracking_uri(cfg)
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    if not uri.startswith(("http://", "https://")):
        return
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=cfg.timeout_seconds):
            pass
    except (OSError, ValueError) as exc:  # URLError, refused, timed out, bad URL
        reason = getattr(exc, "reason", exc)
        raise TrackingUnavailableError(
            f"the MLflow tracking server {uri} does not answer ({reason}); start it, or set "
            "registry.tracking_uri (or $MLFLOW_TRACKING_URI) to one that does"
        ) from None


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


def _log_model(model: TrainedModel, rows: pd.DataFrame, folder: Path, name: str,
               registered: str | None = None) -> mlflow.models.model.ModelInfo:  # fmt: skip
    """Log a model as an MLflow pyfunc ("model from code": no pickle), optionally registered."""
    model_dir = model.save(folder / name)
    example = rows[model.features].head(5)
    with warnings.catch_warnings():  # the model takes missing values in integer columns itself
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer")
        signature = infer_signature(example, model.predict(example))
    return mlflow.pyfunc.log_model(
        name=name,
        python_model=str(Path(pyfunc_model.__file__)),
        artifacts={"model": str(model_dir)},
        signature=signature,
        input_example=example,
        pip_requirements=PIP_REQUIREMENTS,
        registered_model_name=registered,
    )


def _log_evaluation(result: TargetResult, cfg: Config, catalogue: dict[str, Feature],
                    folder: Path) -> None:  # fmt: skip
    """The evaluation fit, in the active (target) run: split, candidates, metrics on the test
    part, skill, backtests, plots, tables and the model itself (not registered)."""
    choice, skill = result.choice, result.skill
    mlflow.log_params({"target": result.model.meta["target"], "split": result.split.kind,
                       **{f"{k.replace(' ', '_')}_dates": v for k, v in result.split.dates.items()},
                       "family": result.evaluation.family,
                       **{f"param_{k}": v for k, v in choice.recipe.params.items()},
                       "rounds": choice.rounds, "calibration": result.evaluation.calibration.method,
                       "test_rows": len(result.test), "no_skill": skill.no_skill,
                       "test_positive_rate": round(float(result.test.y.mean()), 5)})  # fmt: skip
    mlflow.log_metrics(_flat(result.metrics))
    mlflow.log_metrics(
        {"churnml.all.roc_auc_low": skill.low, "churnml.all.roc_auc_high": skill.high}
    )
    if skill.no_skill:
        mlflow.set_tag("no_skill", skill.reason)
    for i, row in enumerate(result.backtests):
        mlflow.log_metrics({f"backtest.{k}": v for k, v in row.items() if k != "cutoff"}, step=i)
    if result.backtests:
        aucs = [b["roc_auc"] for b in result.backtests]
        mlflow.log_metrics({"backtest.roc_auc_mean": float(np.mean(aucs)),
                            "backtest.roc_auc_std": float(np.std(aucs))})  # fmt: skip
    for path in [*plots(result, folder), shap_summary(result, folder)]:
        mlflow.log_artifact(str(path), "plots")
    tables = {
        "importance_by_segment.csv": result.importance,
        "backtests.csv": pd.DataFrame(result.backtests),
        "candidates.csv": pd.Series(choice.scores, name="validation_roc_auc").rename_axis("recipe"),
    }
    for name, table in tables.items():
        table.to_csv(folder / name, index=name != "backtests.csv")
    (folder / "model_card.md").write_text(model_card(result, cfg.labels.horizon_days, catalogue))
    for name in [*tables, "model_card.md"]:
        mlflow.log_artifact(str(folder / name))
    _log_model(result.evaluation, result.test_rows, folder, "evaluation_model")


def _log_production(
    result: TargetResult, cfg: Config, folder: Path
) -> mlflow.models.model.ModelInfo:
    """The production fit (every labelled row), in the active (production) run; registered."""
    meta = result.model.meta
    mlflow.log_params({"target": meta["target"], "family": result.model.family,
                       "rounds": meta["rounds"], "training_rows": meta["training_rows"],
                       "labelled_rows": meta["labelled_rows"],
                       "trained_through": meta["trained_through"],
                       "calibration": result.model.calibration.method})  # fmt: skip
    return _log_model(
        result.model, result.test_rows, folder, "model", model_name(cfg.registry, result.name)
    )


def _gate(result: TargetResult, name: str, cfg: Config, client: MlflowClient,
          built: bool) -> tuple[str, str]:  # fmt: skip
    """Alias and reason for a new version. A model with no skill is never promoted on its own.
    Otherwise, where churnml built the training table (`built`), it replaces a champion that
    needs features this churnml no longer computes; it is judged against any other on test rows
    the champion has not trained on, or, when there are none (no new labelled data), by the two
    evaluation fits' test metrics."""
    if result.skill.no_skill:
        return "challenger", f"no skill, not promoted on its own: {result.skill.reason}"
    try:
        champion = client.get_model_version_by_alias(name, "champion")
    except MlflowException:
        return "champion", "first registered version"
    old = mlflow.pyfunc.load_model(f"models:/{name}@champion").unwrap_python_model().model
    lost = _lost_features(old, result, cfg) if built else []
    if lost:
        return "champion", (f"replaces champion v{champion.version}, which needs {len(lost)} "
                            f"feature(s) this churnml no longer computes, e.g. "
                            f"{', '.join(lost[:3])}, and so cannot score")  # fmt: skip
    test = result.test
    through = old.meta.get("trained_through")
    fresh = (test.as_of > pd.Timestamp(through)).to_numpy() if through else np.ones(len(test), bool)
    new_auc, new_ll = (result.metrics["churnml"][BOOK][k] for k in ("roc_auc", "log_loss"))
    recorded = old.meta.get("evaluation")
    if test.y[fresh].nunique() == 2 or not recorded:
        rows = result.test_rows[fresh]
        y = test.y[fresh].to_numpy()
        new_p = np.clip(test["p_churnml"][fresh].to_numpy(), 1e-6, 1 - 1e-6)
        old_p = np.clip(old.predict(rows), 1e-6, 1 - 1e-6)
        new_auc, old_auc = roc_auc_score(y, new_p), roc_auc_score(y, old_p)
        new_ll, old_ll = log_loss(y, new_p, labels=[0, 1]), log_loss(y, old_p, labels=[0, 1])
        basis = f"on {fresh.sum():,} test rows newer than its training data"
    else:
        old_auc, old_ll = recorded["roc_auc"], recorded["log_loss"]
        same = recorded.get("test_dates") == result.model.meta["evaluation"]["test_dates"]
        basis = "by the evaluation fits' test metrics" + ("" if same else " (other test dates)")
    facts = (f"ROC-AUC {new_auc:.4f} vs champion v{champion.version} {old_auc:.4f}, "
             f"log loss {new_ll:.4f} vs {old_ll:.4f}, {basis}")  # fmt: skip
    if new_auc >= old_auc - cfg.registry.max_auc_drop and new_ll <= old_ll + 1e-9:
        better = new_auc > old_auc + 1e-9 or new_ll < old_ll - 1e-9
        how = "beats the champion" if better else "ties the champion (the newer version serves)"
        return "champion", f"{how}: {facts}"
    return "challenger", f"does not beat the champion: {facts}"


def _lost_features(old: TrainedModel, result: TargetResult, cfg: Config) -> list[str]:
    """The old model's features that neither the catalogue (with its own key events) nor the new
    training table has: a model from an earlier churnml, whose feature definitions changed."""
    events = old.meta.get("key_events")
    known = by_name((cfg if events is None else cfg.with_key_events(tuple(events))).features)
    return [f for f in old.features if f not in known and f not in result.test_rows.columns]


def log_training(
    results: list[TargetResult],
    cfg: Config,
    catalogue: dict[str, Feature],
    params: dict[str, object],
    forecast: pd.DataFrame | None = None,
    built: bool = True,
) -> tuple[str, list[Promotion]]:
    """Log a parent run with a child per target (the evaluation fit) and, inside it, a child for
    the production fit; register each production model and apply the gate (`built`: churnml
    built the training table from data, rather than reading a given one). The revenue
    forecast's backtest, if any, goes on the parent run (its summary as metrics)."""
    mlflow.set_tracking_uri(tracking_uri(cfg.registry))
    mlflow.set_experiment(cfg.registry.experiment)
    client = MlflowClient()
    promotions = []
    with mlflow.start_run(run_name="train") as parent, tempfile.TemporaryDirectory() as tmp:
        mlflow.log_params(params)
        mlflow.log_text(json.dumps(cfg.model_dump(mode="json"), indent=1), "config.json")
        mlflow.log_text(catalogue_markdown(catalogue.values()), "feature_catalogue.md")
        if forecast is not None:
            mlflow.log_metrics(summary(forecast))
            mlflow.log_text(forecast.to_csv(index=False), "forecast_backtest.csv")
        for result in results:
            folder = Path(tmp) / result.name
            folder.mkdir()
            with mlflow.start_run(run_name=result.name, nested=True):
                _log_evaluation(result, cfg, catalogue, folder)
                with mlflow.start_run(run_name=f"{result.name}-production", nested=True) as run:
                    info = _log_production(result, cfg, folder)
                    name = model_name(cfg.registry, result.name)
                    version = str(info.registered_model_version)
                    alias, reason = _gate(result, name, cfg, client, built)
                    client.set_registered_model_alias(name, alias, version)
                    client.set_model_version_tag(name, version, "promotion", reason)
                    mlflow.set_tag("promotion", f"{alias}: {reason}")
                    promotions.append(Promotion(name, version, alias, reason, run.info.run_id))
    return parent.info.run_id, promotions


EXAMPLE_FILE = "example.parquet"


def save_unregistered(results: list[TargetResult], out: Path | str) -> Path:
    """Keep trained models when MLflow fails: each production model in `<out>/<target>` with a
    few feature rows (the input example), for `register_saved` later."""
    with atomic_dir(out) as tmp:
        for result in results:
            folder = result.model.save(tmp / result.name)
            example = result.test_rows[result.model.features].head(5)
            example.to_parquet(folder / EXAMPLE_FILE, index=False)
    return Path(out)


def register_saved(cfg: Config, folder: Path | str) -> list[Promotion]:
    """Log and register models kept by `save_unregistered`. Without their test data they cannot
    be judged against a champion: each becomes champion only where there is none and it has
    skill, else challenger."""
    check_tracking(cfg.registry)
    mlflow.set_tracking_uri(tracking_uri(cfg.registry))
    mlflow.set_experiment(cfg.registry.experiment)
    client, promotions = MlflowClient(), []
    targets = [t for t in (*TARGETS, FIT) if (Path(folder) / t / META_FILE).exists()]
    if not targets:
        raise FileNotFoundError(f"no saved model in {folder} (expected <target>/{META_FILE})")
    with mlflow.start_run(run_name="register") as run, tempfile.TemporaryDirectory() as tmp:
        for target in targets:
            model = TrainedModel.load(Path(folder) / target)
            rows = pd.read_parquet(Path(folder) / target / EXAMPLE_FILE)
            name = model_name(cfg.registry, target)
            info = _log_model(model, rows, Path(tmp) / target, target, name)
            version = str(info.registered_model_version)
            has_champion = scoring_uri(cfg.registry, target, champion_only=True) is not None
            skilled = not model.meta.get("skill", {}).get("no_skill")
            alias = "champion" if skilled and not has_champion else "challenger"
            reason = f"registered later from {folder}; not judged against a champion"
            client.set_registered_model_alias(name, alias, version)
            client.set_model_version_tag(name, version, "promotion", reason)
            promotions.append(Promotion(name, version, alias, reason, run.info.run_id))
    return promotions


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


# -- finding models to score with ------------------------------------------------------------------
@dataclass(frozen=True)
class LoadedModel:
    model: TrainedModel
    source: str  # what was loaded: a models:/ URI or a folder

    @property
    def no_skill(self) -> bool:
        return bool(self.model.meta.get("skill", {}).get("no_skill"))


class ModelNotFoundError(FileNotFoundError):
    """No model where scoring was told (or defaulted) to look."""


def load_model(uri: str, target: str) -> LoadedModel:
    """A churnml model from a `models:/` URI, a run URI or an exported MLflow model folder."""
    try:
        pyfunc = mlflow.pyfunc.load_model(uri)
    except (MlflowException, OSError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelNotFoundError(
            f"no {target} model at {uri} ({reason}); train one with `churnml train`, or pass "
            f"--{target}-model URI or --model-dir (a folder from `churnml export`)"
        ) from None
    return LoadedModel(pyfunc.unwrap_python_model().model, uri)


def resolve_models(
    cfg: Config, uris: dict[str, str | None], model_dir: Path | None
) -> tuple[dict[str, LoadedModel], dict[str, str]]:
    """The models to score with, and why any target has none: a given URI (which must load), else
    an exported folder (`<dir>/<target>`), else the registry's model (`scoring_uri`). A target
    with nothing there is left out (a product without expansion). One at least is needed."""
    mlflow.set_tracking_uri(tracking_uri(cfg.registry))
    if model_dir is None and not all(uris.get(t) for t in TARGETS):
        check_tracking(cfg.registry)  # "server down" is not "no model"
    found, missing = {}, {}
    for target in TARGETS:
        if uris.get(target):
            found[target] = load_model(str(uris[target]), target)
        elif model_dir is not None:
            try:
                found[target] = load_model(str(Path(model_dir) / target), target)
            except ModelNotFoundError as exc:
                missing[target] = str(exc)
        elif uri := scoring_uri(cfg.registry, target):
            found[target] = load_model(uri, target)
        else:
            name = model_name(cfg.registry, target)
            missing[target] = f"no {target} model registered as {name} (not trained or trainable)"
    if not found:
        raise ModelNotFoundError(
            "no model to score with: " + "; ".join(missing.values())
            + "; train with `churnml train`, or pass --churn-model URI or --model-dir"
        )  # fmt: skip
    return found, missing


def scoring_uri(cfg: RegistryConfig, target: str, champion_only: bool = False) -> str | None:
    """The registry's model for a target: its champion, else (every version lacks skill, so none
    was promoted) its newest version, which scoring flags as having no skill; None if none."""
    name = model_name(cfg, target)
    client = MlflowClient(tracking_uri=tracking_uri(cfg))
    try:
        client.get_model_version_by_alias(name, "champion")
        return f"models:/{name}@champion"
    except MlflowException:
        if champion_only:
            return None
    try:
        versions = client.search_model_versions(f"name = '{name}'")
    except MlflowException:
        return None
    newest = max(versions, key=lambda v: int(v.version), default=None)
    return None if newest is None else f"models:/{name}/{newest.version}"


def export_models(cfg: Config, out: Path | str) -> dict[str, Path]:
    """Copy the models that scoring would use (`scoring_uri`) out of the registry as MLflow model
    folders (`<out>/<target>`); a target without any is left out, and one at least is needed."""
    paths = {}
    with atomic_dir(out) as tmp:
        for target in TARGETS:
            if uri := scoring_uri(cfg.registry, target):
                mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(tmp / target))
                paths[target] = Path(out) / target
        if not paths:
            raise ModelNotFoundError(f"no registered model in {tracking_uri(cfg.registry)}")
    return paths
