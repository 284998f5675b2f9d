"""The model the platform logs: raw rows in, the task's outputs out, encoding baked in.

Binary: the probability of the contract's second class per row; multiclass: one probability
per class, in the contract's order; regression: the prediction in the label's units. train.py
pickles this module, trainer.encoding and trainer.model by value, so loading the model needs
torch, numpy, pandas and mlflow, not the trainer package.
"""

from __future__ import annotations

import copy

import mlflow.pyfunc
import numpy as np
import pandas as pd
import torch

from trainer.encoding import FeatureEncoder, LabelCodec


class TabularModel(mlflow.pyfunc.PythonModel):
    def __init__(self, network: torch.nn.Module, encoder: FeatureEncoder, labels: LabelCodec):
        self.network = copy.deepcopy(network).cpu().eval()
        self.encoder = encoder
        self.labels = labels

    def forward(self, frame: pd.DataFrame) -> np.ndarray:
        # The signature marks nullable columns optional, so a request may leave them out:
        # an absent column is all nulls (required ones MLflow checks before predict).
        frame = frame.reindex(columns=list(self.encoder.input_columns))
        inputs = torch.from_numpy(self.encoder.transform(frame))
        with torch.no_grad():
            out = self.network(inputs)
            if self.labels.task == "binary":
                out = torch.sigmoid(out)
            elif self.labels.task == "multiclass":
                out = torch.softmax(out, dim=1)
        values = out.numpy()
        if self.labels.task == "regression":
            return values.astype(np.float64) * self.labels.scale + self.labels.mean
        return values

    # A DataFrame hint: MLflow then checks inputs against the logged signature (the contract).
    def predict(self, context: object, model_input: pd.DataFrame, params: dict | None = None):
        return self.forward(model_input)
