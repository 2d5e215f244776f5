# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Review the latest training run
# Metrics of the model against the baselines and the oracle, calibration, and the drivers per
# segment, read back from MLflow (`MLFLOW_TRACKING_URI`, default `sqlite:///mlruns.db`).

# %%
import os

import mlflow
import pandas as pd
from IPython.display import Image, display

from churnml.config import load_config
from churnml.models.registry import latest_training, tracking_uri

cfg = load_config(os.environ.get("CHURNML_CONFIG"))
run_id, metrics = latest_training(cfg.registry)
print("run", run_id)

# %% [markdown]
# ## Model vs baselines vs oracle (test rows, all segments)

# %%
overall = metrics[metrics.segment == "all"]
overall.pivot_table(index=["target", "model"], columns="metric", values="value")[
    ["roc_auc", "pr_auc", "log_loss", "brier", "ece", "lift_top10", "arr_captured_top10"]
]

# %% [markdown]
# ## ROC-AUC per segment

# %%
auc = metrics[metrics.metric == "roc_auc"]
auc.pivot_table(index=["target", "model"], columns="segment", values="value")

# %% [markdown]
# ## Calibration and drivers

# %%
mlflow.set_tracking_uri(tracking_uri(cfg.registry))
client = mlflow.MlflowClient()
children = client.search_runs(
    [client.get_run(run_id).info.experiment_id], f"tags.mlflow.parentRunId = '{run_id}'"
)
for child in children:
    folder = mlflow.artifacts.download_artifacts(run_id=child.info.run_id)
    display(Image(filename=f"{folder}/plots/{child.info.run_name}_calibration.png"))
    drivers = pd.read_csv(f"{folder}/importance_by_segment.csv", index_col=0)
    display(drivers.head(10).round(3))
