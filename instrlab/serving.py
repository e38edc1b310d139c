"""The ``python_function`` flavor of a logged instrlab model, as an MLflow "model from code".

:func:`instrlab.pipeline.log_trained_model` logs this file itself (``python_model=`` its
path), so MLflow pickles no model object: ``mlflow.pyfunc.load_model`` runs this file,
and ``load_context`` rebuilds the model from the weights and the JSON metadata the way
:func:`instrlab.predict.load_model` does. instrlab's own loader never runs this file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from mlflow.models import set_model
from mlflow.pyfunc import PythonModel

from instrlab.predict import load_weights_model


class InstrumentProbabilities(PythonModel):
    """Features (batch, *input_shape) in, one probability column per instrument out."""

    def load_context(self, context: Any) -> None:
        self.model, self.meta = load_weights_model(
            Path(context.artifacts["weights"]), Path(context.artifacts["meta"]),
            ref=str(Path(context.artifacts["meta"]).parent.parent))

    def predict(self, context: Any, model_input: np.ndarray,
                params: dict[str, Any] | None = None) -> pd.DataFrame:
        import torch

        x = torch.from_numpy(np.ascontiguousarray(model_input, dtype=np.float32))
        with torch.no_grad():
            probs = torch.sigmoid(self.model(x)).numpy()
        return pd.DataFrame(probs, columns=self.meta["instrument_names"])


set_model(InstrumentProbabilities())
