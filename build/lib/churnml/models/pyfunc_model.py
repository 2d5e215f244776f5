"""MLflow "model from code": the pyfunc wrapper of a `TrainedModel`.

MLflow stores this file with the model and runs it at load time instead of unpickling an object;
the model itself is read from its text booster and JSON (see `churnml.models.artifact`).
`predict` returns calibrated probabilities.
"""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pandas as pd

from churnml.models.artifact import TrainedModel


class ChurnmlModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        self.model = TrainedModel.load(Path(context.artifacts["model"]))

    def predict(
        self, context: mlflow.pyfunc.PythonModelContext, model_input: pd.DataFrame, params=None
    ) -> np.ndarray:
        return self.model.predict(model_input)


mlflow.models.set_model(ChurnmlModel())
